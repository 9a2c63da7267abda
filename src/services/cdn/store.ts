import { type Generated, type Kysely, sql } from 'kysely'
import type { Db } from '../../platform/db/db.js'

export interface EdgeRow {
  id: string
  url: string
  region: string
  capacity_bytes: number
  used_bytes: number
  healthy: number
  reported_at: number
}

export interface PublishedRow {
  seq: number
  event_id: string
  title_id: string
  data: string
  published_at: number
  /** When a server process recorded it (its clock). */
  recorded_at: number
}

interface CdnTables {
  cdn_edges: EdgeRow
  cdn_secrets: { name: string; value: string; created_at: number }
  cdn_published: Omit<PublishedRow, 'seq'> & { seq: Generated<number> }
}

export class CdnStore {
  private readonly db: Kysely<CdnTables>

  constructor(db: Db) {
    this.db = db.tables<CdnTables>()
  }

  async saveEdge(row: EdgeRow): Promise<void> {
    const { id, ...changes } = row
    await this.db
      .insertInto('cdn_edges')
      .values(row)
      .onConflict((oc) => oc.column('id').doUpdateSet(changes))
      .execute()
  }

  edgesReportedSince(since: number): Promise<EdgeRow[]> {
    return this.db
      .selectFrom('cdn_edges')
      .selectAll()
      .where('reported_at', '>=', since)
      .orderBy('id')
      .execute()
  }

  allEdges(): Promise<EdgeRow[]> {
    return this.db.selectFrom('cdn_edges').selectAll().orderBy('id').execute()
  }

  /** The secret of this name: the one stored first by any process (`candidate` when none was). */
  async secret(name: string, candidate: string, now: number): Promise<string> {
    await this.db
      .insertInto('cdn_secrets')
      .values({ name, value: candidate, created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute()
    const row = await this.db
      .selectFrom('cdn_secrets')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirstOrThrow()
    return row.value
  }

  /** Records a published title (an event delivered twice is recorded once). */
  async recordPublished(row: Omit<PublishedRow, 'seq'>): Promise<void> {
    await this.db
      .insertInto('cdn_published')
      .values(row)
      .onConflict((oc) => oc.column('event_id').doNothing())
      .execute()
  }

  /** Published titles after `afterSeq`, oldest first (afterSeq undefined: those published since `since`). */
  published(afterSeq: number | undefined, since: number, limit: number): Promise<PublishedRow[]> {
    let query = this.db.selectFrom('cdn_published').selectAll()
    query =
      afterSeq === undefined ? query.where('published_at', '>=', since) : query.where('seq', '>', afterSeq)
    return query.orderBy('seq').limit(limit).execute()
  }

  /**
   * Titles at or below `seq` recorded at most `windowMs` before the latest of them, oldest first:
   * where a seq taken before another but committed after it can be.
   */
  recordedBehind(seq: number, windowMs: number, limit: number): Promise<PublishedRow[]> {
    return this.db
      .selectFrom('cdn_published')
      .selectAll()
      .where('seq', '<=', seq)
      .where('recorded_at', '>', 0)
      .where(
        'recorded_at',
        '>=',
        sql<number>`(select max(recorded_at) from cdn_published where seq <= ${seq}) - ${windowMs}`,
      )
      .orderBy('seq')
      .limit(limit)
      .execute()
  }

  /** The last sequence number recorded (0: none). */
  async lastPublishedSeq(): Promise<number> {
    const row = await this.db
      .selectFrom('cdn_published')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirst()
    return Number(row?.seq ?? 0)
  }

  async prunePublished(before: number): Promise<void> {
    await this.db.deleteFrom('cdn_published').where('published_at', '<', before).execute()
  }
}
