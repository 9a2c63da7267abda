import type { Kysely } from 'kysely'
import { type Db, nextTurn } from '../../platform/db/db.js'

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

/**
 * Rows per INSERT (13 columns × 250 stays far below SQLite's and PostgreSQL's bound-parameter
 * limits); the event loop takes a turn between statements (~6 ms each on SQLite).
 */
const ROWS_PER_STATEMENT = 250

function* chunks<T>(rows: T[], size: number): Generator<T[]> {
  for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size)
}

export class PlaybackStore {
  private readonly db: Kysely<PlaybackTables>

  constructor(db: Db) {
    this.db = db.tables<PlaybackTables>()
  }

  session(id: string): Promise<SessionRow | undefined> {
    return this.db.selectFrom('playback_sessions').selectAll().where('id', '=', id).executeTakeFirst()
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

  /**
   * One write-behind flush in one transaction: the latest progress per (profile, title) (an older
   * report never overwrites a newer one) and the sessions started, seen or stopped since the last
   * flush (a stopped session row is final). Rows go in multi-row statements.
   */
  async writeBehind(progress: ProgressRow[], sessions: SessionRow[]): Promise<void> {
    if (progress.length === 0 && sessions.length === 0) return
    await this.db.transaction().execute(async (trx) => {
      let statements = 0
      for (const rows of chunks(progress, ROWS_PER_STATEMENT)) {
        if (statements++ > 0) await nextTurn()
        await trx
          .insertInto('playback_progress')
          .values(rows)
          .onConflict((oc) =>
            oc
              .columns(['profile_id', 'media_id'])
              .doUpdateSet((eb) => ({
                title_id: eb.ref('excluded.title_id'),
                title_type: eb.ref('excluded.title_type'),
                series_id: eb.ref('excluded.series_id'),
                season_id: eb.ref('excluded.season_id'),
                position_ms: eb.ref('excluded.position_ms'),
                duration_ms: eb.ref('excluded.duration_ms'),
                completed: eb.ref('excluded.completed'),
                updated_at: eb.ref('excluded.updated_at'),
              }))
              .where('playback_progress.updated_at', '<=', (eb) => eb.ref('excluded.updated_at')),
          )
          .execute()
      }
      for (const rows of chunks(sessions, ROWS_PER_STATEMENT)) {
        if (statements++ > 0) await nextTurn()
        await trx
          .insertInto('playback_sessions')
          .values(rows)
          .onConflict((oc) =>
            oc
              .column('id')
              .doUpdateSet((eb) => ({
                position_ms: eb.ref('excluded.position_ms'),
                seen_at: eb.ref('excluded.seen_at'),
                stopped_at: eb.ref('excluded.stopped_at'),
              }))
              .where('playback_sessions.stopped_at', 'is', null),
          )
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
