import type { Kysely } from 'kysely'
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

interface CdnTables {
  cdn_edges: EdgeRow
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
}
