import { autoIncrementType, type ReelMigration } from '../../platform/db/db.js'

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
  cdn_0002_secrets_published: {
    async up(db, kind) {
      // Secrets every process of one install must share (the URL signing key when no REEL_CDN_URL_KEY).
      await db.schema
        .createTable('cdn_secrets')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute()
      // Titles published, in order: what edges without the event bus poll to push-fill.
      await db.schema
        .createTable('cdn_published')
        .ifNotExists()
        .addColumn('seq', autoIncrementType(kind), (c) =>
          kind === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey(),
        )
        .addColumn('event_id', 'text', (c) => c.notNull().unique())
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('published_at', 'bigint', (c) => c.notNull())
        .execute()
    },
  },
  cdn_0003_published_recorded_at: {
    async up(db) {
      // When this server recorded the row: polls read again the rows recorded lately below their
      // cursor (a seq taken before another but committed after it).
      await db.schema
        .alterTable('cdn_published')
        .addColumn('recorded_at', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute()
    },
  },
}
