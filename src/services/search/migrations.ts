import type { ReelMigration } from '../../platform/db/db.js'

export const searchMigrations: Record<string, ReelMigration> = {
  search_0001_settings: {
    async up(db) {
      // Settings every replica reads (synonyms); the index itself lives in memory and in a blob snapshot.
      await db.schema
        .createTable('search_settings')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute()
    },
  },
}
