import { CompiledQuery, type Kysely } from 'kysely'
import { type Db, type DbKind, insertValuesText, nextTurn } from '../../platform/db/db.js'

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

const PROGRESS_COLUMNS = [
  'profile_id',
  'media_id',
  'title_id',
  'title_type',
  'series_id',
  'season_id',
  'position_ms',
  'duration_ms',
  'completed',
  'updated_at',
] as const satisfies readonly (keyof ProgressRow)[]
/** The latest position per (profile, title): an older report never overwrites a newer one. */
const PROGRESS_HEAD = `insert into playback_progress (${PROGRESS_COLUMNS.join(', ')})`
const PROGRESS_TAIL = `on conflict (profile_id, media_id) do update set ${PROGRESS_COLUMNS.slice(2)
  .map((c) => `${c} = excluded.${c}`)
  .join(', ')} where playback_progress.updated_at <= excluded.updated_at`

const SESSION_COLUMNS = [
  'id',
  'account_id',
  'profile_id',
  'title_id',
  'media_id',
  'device',
  'region',
  'max_height',
  'position_ms',
  'duration_ms',
  'started_at',
  'seen_at',
  'stopped_at',
] as const satisfies readonly (keyof SessionRow)[]
/** A stopped session's row is final. */
const SESSION_HEAD = `insert into playback_sessions (${SESSION_COLUMNS.join(', ')})`
const SESSION_TAIL = `on conflict (id) do update set position_ms = excluded.position_ms,
  seen_at = excluded.seen_at, stopped_at = excluded.stopped_at where playback_sessions.stopped_at is null`

/** One multi-row upsert (hand-written: a flush writes thousands of values, see insertValuesText). */
function upsert<Row>(
  kind: DbKind,
  head: string,
  columns: readonly (keyof Row)[],
  tail: string,
  rows: readonly Row[],
): CompiledQuery {
  const parameters: unknown[] = []
  for (const row of rows) for (const column of columns) parameters.push(row[column])
  return CompiledQuery.raw(
    insertValuesText(kind, head, columns.length, rows.length, tail, ROWS_PER_STATEMENT),
    parameters,
  )
}

export class PlaybackStore {
  private readonly db: Kysely<PlaybackTables>
  private readonly kind: DbKind

  constructor(db: Db) {
    this.db = db.tables<PlaybackTables>()
    this.kind = db.kind
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
        await trx.executeQuery(upsert(this.kind, PROGRESS_HEAD, PROGRESS_COLUMNS, PROGRESS_TAIL, rows))
      }
      for (const rows of chunks(sessions, ROWS_PER_STATEMENT)) {
        if (statements++ > 0) await nextTurn()
        await trx.executeQuery(upsert(this.kind, SESSION_HEAD, SESSION_COLUMNS, SESSION_TAIL, rows))
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
