import type { ReelMigration } from '../../platform/db/db.js'

export const cdnMigrations: Record<string, ReelMigration> = {
  cdn_0001_edges: {
    async up(db) {
      await db.schema
        .createTable('cdn_edges')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('region', 'text', (c) => c.notNull())
        .addColumn('capacity_bytes', 'bigint', (c) => c.notNull())
        .addColumn('used_bytes', 'bigint', (c) => c.notNull())
        .addColumn('healthy', 'integer', (c) => c.notNull())
        .addColumn('reported_at', 'bigint', (c) => c.notNull())
        .execute()
    },
  },
}
