import { CompiledQuery, type Kysely, sql } from 'kysely'
import { type Db, type DbKind, insertValuesText } from '../../platform/db/db.js'
import type { CountRow, Grain, SubjectKind } from './rules.js'

interface CountsTable {
  grain: string
  region: string
  kind: string
  bucket: number
  subject_id: string
  plays: number
  watched_ms: number
}

interface SeenTable {
  hour: number
  event_id: string
}

interface StateTable {
  name: string
  value: number
}

interface PendingTable {
  id: string
  first_bucket: number
  created_at: number
  counts: string
}

interface OutboxTable {
  id: string
  partition: string
  created_at: number
  lines: string
}

/** Archive lines of one flush and hour partition, on their way to the blob store. */
export interface ArchivePart {
  id: string
  partition: string
  lines: string
}

interface TrendsTables {
  trends_archive_outbox: OutboxTable
  trends_counts: CountsTable
  trends_seen: SeenTable
  trends_state: StateTable
  trends_pending: PendingTable
}

/** Counts of one flush waiting to be added to the counters. */
export interface PendingCounts {
  id: string
  rows: CountRow[]
}

type CountTuple = [Grain, number, string, SubjectKind, string, number, number]
const toTuple = (r: CountRow): CountTuple => [
  r.grain,
  r.bucket,
  r.region,
  r.kind,
  r.subjectId,
  r.plays,
  r.watchedMs,
]
const fromTuple = ([grain, bucket, region, kind, subjectId, plays, watchedMs]: CountTuple): CountRow => ({
  grain,
  bucket,
  region,
  kind,
  subjectId,
  plays,
  watchedMs,
})

export type Watermark = 'sealed_hours' | 'sealed_days'

/** Rows per statement: 7 parameters a row stays far below SQLite's and PostgreSQL's limits. */
const CHUNK = 1000

const toCountRow = (r: CountsTable): CountRow => ({
  grain: r.grain as Grain,
  region: r.region,
  kind: r.kind as SubjectKind,
  bucket: Number(r.bucket),
  subjectId: r.subject_id,
  plays: Number(r.plays),
  watchedMs: Number(r.watched_ms),
})

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** Primary-key order: concurrent writers lock rows in one order, and inserts walk the tree forwards. */
const byKey = (a: CountRow, b: CountRow) =>
  cmp(a.grain, b.grain) ||
  a.bucket - b.bucket ||
  cmp(a.region, b.region) ||
  cmp(a.kind, b.kind) ||
  cmp(a.subjectId, b.subjectId)

const SEEN_HEAD = 'insert into trends_seen (hour, event_id)'
const SEEN_TAIL = 'on conflict (hour, event_id) do nothing returning event_id'
/** SQLite: one hour's ids as a JSON array. `where true` tells the parser the upsert's ON from a join's. */
const SEEN_JSON = `insert into trends_seen (hour, event_id)
  select ?, value from json_each(?) where true
  on conflict (hour, event_id) do nothing`
const SEEN_JSON_RETURNING = `${SEEN_JSON} returning event_id`
const COUNTS_HEAD = 'insert into trends_counts (grain, bucket, region, kind, subject_id, plays, watched_ms)'
const COUNTS_TAIL = `on conflict (grain, bucket, region, kind, subject_id) do update set
  plays = trends_counts.plays + excluded.plays, watched_ms = trends_counts.watched_ms + excluded.watched_ms
  returning grain, bucket, region, kind, subject_id, plays, watched_ms`

/** The trends tables: counters per bucket and the ids of the events they counted. */
export class TrendsStore {
  private readonly db: Kysely<TrendsTables>
  private readonly kind: DbKind

  constructor(db: Db | { kind: DbKind; kysely: Kysely<TrendsTables> }) {
    this.kind = db.kind
    this.db = 'tables' in db ? db.tables<TrendsTables>() : db.kysely
  }

  /** Runs work in one transaction, with a store bound to it. */
  transaction<T>(work: (store: TrendsStore) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) => work(new TrendsStore({ kind: this.kind, kysely: trx })))
  }

  /**
   * Records event ids (by the hour of their events); returns those not recorded before, or 'all'
   * when every one of them is new. Sorted, so concurrent writers lock in one order. Hand-written
   * statements: the hot path's cost is per row, and the query builder's objects per value would
   * double it.
   */
  async markSeen(idsByHour: ReadonlyMap<number, readonly string[]>): Promise<Set<string> | 'all'> {
    const hours = [...idsByHour.keys()].sort((a, b) => a - b)
    const sorted = hours.map((hour) => ({ hour, ids: [...(idsByHour.get(hour) ?? [])].sort() }))
    if (this.kind === 'sqlite') return this.markSeenSqlite(sorted)
    const fresh = new Set<string>()
    const rows: (string | number)[] = []
    for (const { hour, ids } of sorted) for (const id of ids) rows.push(hour, id)
    for (let i = 0; i < rows.length; i += 2 * CHUNK) {
      const parameters = rows.slice(i, i + 2 * CHUNK)
      const result = await this.db.executeQuery<{ event_id: string }>(
        CompiledQuery.raw(
          insertValuesText(this.kind, SEEN_HEAD, 2, parameters.length / 2, SEEN_TAIL, CHUNK),
          parameters,
        ),
      )
      for (const row of result.rows) fresh.add(row.event_id)
    }
    return fresh
  }

  /**
   * SQLite: an hour's ids as one JSON parameter (the driver would prepare a statement of thousands
   * of placeholders anew). Usually every id is new: the plain insert tells that by its count of
   * changes, without RETURNING (which SQLite buffers, a row object each); when some were recorded
   * before, the inserts are rolled back to the savepoint and run again returning the new ids.
   */
  private async markSeenSqlite(
    sorted: readonly { hour: number; ids: string[] }[],
  ): Promise<Set<string> | 'all'> {
    const run = (text: string, hour: number, ids: string) =>
      this.db.executeQuery<{ event_id: string }>(CompiledQuery.raw(text, [hour, ids]))
    const json = sorted.map(({ hour, ids }) => ({ hour, ids: JSON.stringify(ids) }))
    let total = 0
    let inserted = 0
    await this.db.executeQuery(CompiledQuery.raw('savepoint trends_mark_seen'))
    try {
      for (const { ids } of sorted) total += ids.length
      for (const { hour, ids } of json)
        inserted += Number((await run(SEEN_JSON, hour, ids)).numAffectedRows ?? 0)
      if (inserted === total) return 'all'
      await this.db.executeQuery(CompiledQuery.raw('rollback to trends_mark_seen'))
      const fresh = new Set<string>()
      for (const { hour, ids } of json)
        for (const row of (await run(SEEN_JSON_RETURNING, hour, ids)).rows) fresh.add(row.event_id)
      return fresh
    } finally {
      await this.db.executeQuery(CompiledQuery.raw('release trends_mark_seen'))
    }
  }

  /** Adds to the counters; returns each counter's total afterwards. */
  async addCounts(rows: readonly CountRow[]): Promise<CountRow[]> {
    const totals: CountRow[] = []
    const sorted = [...rows].sort(byKey)
    for (let i = 0; i < sorted.length; i += CHUNK) {
      const chunk = sorted.slice(i, i + CHUNK)
      const parameters: (string | number)[] = []
      for (const r of chunk)
        parameters.push(r.grain, r.bucket, r.region, r.kind, r.subjectId, r.plays, r.watchedMs)
      const result = await this.db.executeQuery<CountsTable>(
        CompiledQuery.raw(
          insertValuesText(this.kind, COUNTS_HEAD, 7, chunk.length, COUNTS_TAIL, CHUNK),
          parameters,
        ),
      )
      for (const row of result.rows) totals.push(toCountRow(row))
    }
    return totals
  }

  /** Keeps a flush's counts until they are added (in the transaction that records the flush's event ids). */
  async addPending(id: string, rows: readonly CountRow[], createdAt: number): Promise<void> {
    if (rows.length === 0) return
    await this.db
      .insertInto('trends_pending')
      .values({
        id,
        first_bucket: rows.reduce((min, r) => Math.min(min, r.bucket), Number.POSITIVE_INFINITY),
        created_at: createdAt,
        counts: JSON.stringify(rows.map(toTuple)),
      })
      .execute()
  }

  /** Deletes the pending counts of ids; returns the ids this call deleted (another may have taken some). */
  async claimPending(ids: readonly string[]): Promise<string[]> {
    const claimed: string[] = []
    for (let i = 0; i < ids.length; i += CHUNK) {
      const rows = await this.db
        .deleteFrom('trends_pending')
        .where('id', 'in', ids.slice(i, i + CHUNK))
        .returning('id')
        .execute()
      for (const row of rows) claimed.push(row.id)
    }
    return claimed
  }

  /** Pending counts written before `before` (by a process that stopped before adding them), oldest first. */
  async stalePending(before: number, limit: number): Promise<PendingCounts[]> {
    const rows = await this.db
      .selectFrom('trends_pending')
      .select(['id', 'counts'])
      .where('created_at', '<', before)
      .orderBy('created_at')
      .limit(limit)
      .execute()
    return rows.map((r) => ({ id: r.id, rows: (JSON.parse(r.counts) as CountTuple[]).map(fromTuple) }))
  }

  /** The earliest bucket any pending counts touch: hours from it on cannot be sealed yet. */
  async firstPendingBucket(): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('trends_pending')
      .select((eb) => eb.fn.min('first_bucket').as('bucket'))
      .executeTakeFirst()
    return row?.bucket === null || row?.bucket === undefined ? undefined : Number(row.bucket)
  }

  async addArchiveParts(parts: readonly ArchivePart[], createdAt: number): Promise<void> {
    for (const part of parts)
      await this.db
        .insertInto('trends_archive_outbox')
        .values({ id: part.id, partition: part.partition, created_at: createdAt, lines: part.lines })
        .execute()
  }

  /**
   * The oldest archive parts not yet in the blob store, without their lines (read one at a time
   * with archivePartLines: a part holds up to a thousand events, and reads run on the event loop).
   */
  async archivePartIds(limit: number): Promise<{ id: string; partition: string }[]> {
    return this.db
      .selectFrom('trends_archive_outbox')
      .select(['id', 'partition'])
      .orderBy('created_at')
      .orderBy('id')
      .limit(limit)
      .execute()
  }

  /** A staged part's lines; undefined once it has gone (another process moved it). */
  async archivePartLines(id: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('trends_archive_outbox')
      .select('lines')
      .where('id', '=', id)
      .executeTakeFirst()
    return row?.lines
  }

  async deleteArchiveParts(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK)
      await this.db
        .deleteFrom('trends_archive_outbox')
        .where('id', 'in', ids.slice(i, i + CHUNK))
        .execute()
  }

  /** Every counter of some buckets of one grain and region. */
  async counts(
    grain: Grain,
    region: string,
    kinds: readonly SubjectKind[],
    buckets: readonly number[],
  ): Promise<CountRow[]> {
    if (buckets.length === 0 || kinds.length === 0) return []
    const rows = await this.db
      .selectFrom('trends_counts')
      .selectAll()
      .where('grain', '=', grain)
      .where('region', '=', region)
      .where('kind', 'in', kinds)
      .where('bucket', 'in', buckets)
      .execute()
    return rows.map(toCountRow)
  }

  /** Totals per subject over buckets [from, to) of one grain and region. */
  async sums(
    grain: Grain,
    region: string,
    kinds: readonly SubjectKind[],
    from: number,
    to: number,
  ): Promise<{ kind: SubjectKind; subjectId: string; plays: number; watchedMs: number }[]> {
    if (kinds.length === 0) return []
    const rows = await this.db
      .selectFrom('trends_counts')
      .select((eb) => [
        'kind',
        'subject_id',
        eb.fn.sum<number>('plays').as('plays'),
        eb.fn.sum<number>('watched_ms').as('watched_ms'),
      ])
      .where('grain', '=', grain)
      .where('region', '=', region)
      .where('kind', 'in', kinds)
      .where('bucket', '>=', from)
      .where('bucket', '<', to)
      .groupBy(['kind', 'subject_id'])
      .execute()
    return rows.map((r) => ({
      kind: r.kind as SubjectKind,
      subjectId: r.subject_id,
      plays: Number(r.plays),
      watchedMs: Number(r.watched_ms),
    }))
  }

  /** Every counter of buckets [from, to) at the given grains, in key order (for comparing and rebuilding). */
  async countsBetween(grains: readonly Grain[], from: number, to: number): Promise<CountRow[]> {
    const rows = await this.db
      .selectFrom('trends_counts')
      .selectAll()
      .where('grain', 'in', grains)
      .where('bucket', '>=', from)
      .where('bucket', '<', to)
      .execute()
    return rows.map(toCountRow).sort(byKey)
  }

  /** Replaces the counters of buckets [from, to) at the given grains with rows. */
  async replaceCounts(
    grains: readonly Grain[],
    from: number,
    to: number,
    rows: readonly CountRow[],
  ): Promise<void> {
    await this.db
      .deleteFrom('trends_counts')
      .where('grain', 'in', grains)
      .where('bucket', '>=', from)
      .where('bucket', '<', to)
      .execute()
    await this.addCounts(rows)
  }

  /**
   * Rewrites the `to`-grain rollup of bucket [start, start + size) as the sum of its `from`-grain
   * counters (hourly from 5-minute ones, daily from hourly ones).
   */
  async seal(from: Grain, to: Grain, start: number, size: number): Promise<void> {
    await this.db.deleteFrom('trends_counts').where('grain', '=', to).where('bucket', '=', start).execute()
    await this.db
      .insertInto('trends_counts')
      .columns(['grain', 'bucket', 'region', 'kind', 'subject_id', 'plays', 'watched_ms'])
      .expression((eb) =>
        eb
          .selectFrom('trends_counts')
          .select((s) => [
            sql<string>`${sql.lit(to)}`.as('grain'),
            sql<number>`cast(${start} as bigint)`.as('bucket'),
            'region',
            'kind',
            'subject_id',
            s.fn.sum<number>('plays').as('plays'),
            s.fn.sum<number>('watched_ms').as('watched_ms'),
          ])
          .where('grain', '=', from)
          .where('bucket', '>=', start)
          .where('bucket', '<', start + size)
          .groupBy(['region', 'kind', 'subject_id']),
      )
      // Another process sealing the same bucket at once writes the same sums.
      .onConflict((oc) => oc.columns(['grain', 'bucket', 'region', 'kind', 'subject_id']).doNothing())
      .execute()
  }

  /** Earliest bucket of a grain, if any. */
  async firstBucket(grain: Grain): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('trends_counts')
      .select((eb) => eb.fn.min('bucket').as('bucket'))
      .where('grain', '=', grain)
      .executeTakeFirst()
    return row?.bucket === null || row?.bucket === undefined ? undefined : Number(row.bucket)
  }

  async watermark(name: Watermark): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('trends_state')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst()
    return row ? Number(row.value) : undefined
  }

  async setWatermark(name: Watermark, value: number): Promise<void> {
    await this.db
      .insertInto('trends_state')
      .values({ name, value })
      .onConflict((oc) => oc.column('name').doUpdateSet({ value }))
      .execute()
  }

  /**
   * Forgets the ids of at most `limit` events whose hour started before `hour`, oldest first;
   * returns how many. In chunks: a busy hour holds millions of ids, and one statement deleting them
   * all would hold the DB (and, on SQLite, the process) for seconds.
   */
  async pruneSeen(hour: number, limit: number): Promise<number> {
    const result = await this.db
      .deleteFrom('trends_seen')
      .where((eb) =>
        eb(
          eb.refTuple('hour', 'event_id'),
          'in',
          eb
            .selectFrom('trends_seen')
            .select(['hour', 'event_id'])
            .where('hour', '<', hour)
            .orderBy('hour')
            .orderBy('event_id')
            .limit(limit)
            .$asTuple('hour', 'event_id'),
        ),
      )
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  /** Drops counters of one grain older than `bucket`. */
  async pruneCounts(grain: Grain, bucket: number): Promise<number> {
    const result = await this.db
      .deleteFrom('trends_counts')
      .where('grain', '=', grain)
      .where('bucket', '<', bucket)
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
