import type { Kysely } from 'kysely'
import type { Db } from '../../platform/db/db.js'

export interface SessionRow {
  id: string
  account_id: string
  profile_id: string
  /** What the client asked to play: a movie, or a series. */
  title_id: string
  /** What plays: the movie, or the episode (its media lives under titles/<media_id>/). */
  media_id: string
  device: string
  region: string
  max_height: number
  position_ms: number
  duration_ms: number
  started_at: number
  seen_at: number
  stopped_at: number | null
}

export interface ProgressRow {
  profile_id: string
  media_id: string
  title_id: string
  title_type: 'movie' | 'episode'
  series_id: string | null
  season_id: string | null
  position_ms: number
  duration_ms: number
  completed: number
  updated_at: number
}

interface PlaybackTables {
  playback_sessions: SessionRow
  playback_progress: ProgressRow
}

export class PlaybackStore {
  private readonly db: Kysely<PlaybackTables>

  constructor(db: Db) {
    this.db = db.tables<PlaybackTables>()
  }

  async insertSession(row: SessionRow): Promise<void> {
    await this.db.insertInto('playback_sessions').values(row).execute()
  }

  session(id: string): Promise<SessionRow | undefined> {
    return this.db.selectFrom('playback_sessions').selectAll().where('id', '=', id).executeTakeFirst()
  }

  async stopSession(id: string, positionMs: number, at: number): Promise<void> {
    await this.db
      .updateTable('playback_sessions')
      .set({ stopped_at: at, position_ms: positionMs, seen_at: at })
      .where('id', '=', id)
      .execute()
  }

  /** Sessions of an account still counting as streams (used when the cache cannot answer). */
  activeSessions(accountId: string, seenSince: number): Promise<SessionRow[]> {
    return this.db
      .selectFrom('playback_sessions')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('seen_at', '>=', seenSince)
      .where('stopped_at', 'is', null)
      .orderBy('id')
      .execute()
  }

  /** Writes coalesced heartbeats: latest progress per (profile, title) and each session's last sight. */
  async writeBehind(
    progress: ProgressRow[],
    sessions: { id: string; position_ms: number; seen_at: number }[],
  ): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      for (const row of progress) {
        const { profile_id, media_id, ...changes } = row
        await trx
          .insertInto('playback_progress')
          .values(row)
          .onConflict((oc) =>
            oc
              .columns(['profile_id', 'media_id'])
              .doUpdateSet(changes)
              .where('playback_progress.updated_at', '<=', row.updated_at),
          )
          .execute()
      }
      for (const s of sessions) {
        await trx
          .updateTable('playback_sessions')
          .set({ position_ms: s.position_ms, seen_at: s.seen_at })
          .where('id', '=', s.id)
          .where('stopped_at', 'is', null)
          .execute()
      }
    })
  }

  progress(profileId: string, mediaId: string): Promise<ProgressRow | undefined> {
    return this.db
      .selectFrom('playback_progress')
      .selectAll()
      .where('profile_id', '=', profileId)
      .where('media_id', '=', mediaId)
      .executeTakeFirst()
  }

  recent(profileId: string, limit: number): Promise<ProgressRow[]> {
    return this.db
      .selectFrom('playback_progress')
      .selectAll()
      .where('profile_id', '=', profileId)
      .orderBy('updated_at', 'desc')
      .orderBy('media_id')
      .limit(limit)
      .execute()
  }

  latestOfSeries(profileId: string, seriesId: string): Promise<ProgressRow | undefined> {
    return this.db
      .selectFrom('playback_progress')
      .selectAll()
      .where('profile_id', '=', profileId)
      .where('series_id', '=', seriesId)
      .orderBy('updated_at', 'desc')
      .limit(1)
      .executeTakeFirst()
  }

  /** Removes what a deleted profile watched; returns the titles it had positions for. */
  async deleteProfile(profileId: string): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('playback_progress')
        .select('media_id')
        .where('profile_id', '=', profileId)
        .execute()
      await trx.deleteFrom('playback_progress').where('profile_id', '=', profileId).execute()
      await trx.deleteFrom('playback_sessions').where('profile_id', '=', profileId).execute()
      return rows.map((r) => r.media_id)
    })
  }
}
