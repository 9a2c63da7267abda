import type { Kysely } from 'kysely'
import type { Db } from '../../platform/db/db.js'
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

interface TrendsTables {
  trends_counts: CountsTable
  trends_seen: SeenTable
}

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

const byKey = (a: CountRow, b: CountRow) =>
  a.grain.localeCompare(b.grain) ||
  a.region.localeCompare(b.region) ||
  a.kind.localeCompare(b.kind) ||
  a.bucket - b.bucket ||
  (a.subjectId < b.subjectId ? -1 : a.subjectId > b.subjectId ? 1 : 0)

/** The trends tables: counters per bucket and the ids of the events they counted. */
export class TrendsStore {
  private readonly db: Kysely<TrendsTables>

  constructor(db: Db | Kysely<TrendsTables>) {
    this.db = 'tables' in db ? db.tables<TrendsTables>() : db
  }

  /** Runs work in one transaction, with a store bound to it. */
  transaction<T>(work: (store: TrendsStore) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) => work(new TrendsStore(trx)))
  }

  /** Records event ids; returns those not recorded before. Sorted, so concurrent writers lock in one order. */
  async markSeen(events: readonly { hour: number; id: string }[]): Promise<Set<string>> {
    const fresh = new Set<string>()
    const rows = events
      .map((e) => ({ hour: e.hour, event_id: e.id }))
      .sort((a, b) => a.hour - b.hour || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0))
    for (let i = 0; i < rows.length; i += CHUNK) {
      const inserted = await this.db
        .insertInto('trends_seen')
        .values(rows.slice(i, i + CHUNK))
        .onConflict((oc) => oc.columns(['hour', 'event_id']).doNothing())
        .returning('event_id')
        .execute()
      for (const row of inserted) fresh.add(row.event_id)
    }
    return fresh
  }

  /** Adds to the counters; returns each counter's total afterwards. */
  async addCounts(rows: readonly CountRow[]): Promise<CountRow[]> {
    const totals: CountRow[] = []
    const sorted = [...rows].sort(byKey)
    for (let i = 0; i < sorted.length; i += CHUNK) {
      const updated = await this.db
        .insertInto('trends_counts')
        .values(
          sorted.slice(i, i + CHUNK).map((r) => ({
            grain: r.grain,
            region: r.region,
            kind: r.kind,
            bucket: r.bucket,
            subject_id: r.subjectId,
            plays: r.plays,
            watched_ms: r.watchedMs,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['grain', 'region', 'kind', 'bucket', 'subject_id']).doUpdateSet((eb) => ({
            plays: eb('trends_counts.plays', '+', eb.ref('excluded.plays')),
            watched_ms: eb('trends_counts.watched_ms', '+', eb.ref('excluded.watched_ms')),
          })),
        )
        .returningAll()
        .execute()
      for (const row of updated) totals.push(toCountRow(row))
    }
    return totals
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

  /** Forgets the ids of events whose hour started before `hour`. */
  async pruneSeen(hour: number): Promise<number> {
    const result = await this.db.deleteFrom('trends_seen').where('hour', '<', hour).executeTakeFirst()
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
