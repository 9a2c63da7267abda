import type { Kysely } from 'kysely'
import type { Db } from '../../platform/db/db.js'

interface SettingRow {
  name: string
  value: string
  updated_at: number
}

interface SearchTables {
  search_settings: SettingRow
}

/** The search service's SQL, and nothing else. */
export class SearchStore {
  private readonly db: Kysely<SearchTables>

  constructor(db: Db) {
    this.db = db.tables<SearchTables>()
  }

  setting(name: string): Promise<SettingRow | undefined> {
    return this.db.selectFrom('search_settings').selectAll().where('name', '=', name).executeTakeFirst()
  }

  async putSetting(name: string, value: string, now: number): Promise<void> {
    await this.db
      .insertInto('search_settings')
      .values({ name, value, updated_at: now })
      .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: now }))
      .execute()
  }
}
