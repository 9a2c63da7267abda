import type { ReelMigration } from '../../platform/db/db.js'

export const recoMigrations: Record<string, ReelMigration> = {
  reco_0001_tables: {
    async up(db) {
      // reco's own copy of the catalog (from catalog.title.* events): training and row rules read it.
      await db.schema
        .createTable('reco_titles')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('version', 'bigint', (c) => c.notNull())
        .addColumn('removed', 'integer', (c) => c.notNull())
        .addColumn('doc', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('reco_titles_seq').ifNotExists().on('reco_titles').column('seq').execute()
      // What each profile watched (from playback.* events): a movie as itself, an episode as its series.
      // Facts only grow (progress is a maximum, completed sticks), so a redelivered event changes nothing.
      await db.schema
        .createTable('reco_history')
        .ifNotExists()
        .addColumn('profile_id', 'text', (c) => c.notNull())
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('progress', 'real', (c) => c.notNull())
        .addColumn('completed', 'integer', (c) => c.notNull())
        .addColumn('last_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('reco_history_pk', ['profile_id', 'title_id'])
        .execute()
      await db.schema
        .createTable('reco_ratings')
        .ifNotExists()
        .addColumn('profile_id', 'text', (c) => c.notNull())
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('rating', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('reco_ratings_pk', ['profile_id', 'title_id'])
        .execute()
      // "user_id → pre-computed json module with movie_ids": one row per profile, read behind the cache.
      await db.schema
        .createTable('reco_modules')
        .ifNotExists()
        .addColumn('profile_id', 'text', (c) => c.primaryKey())
        .addColumn('module', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute()
      // Neighbours of each title from the last training run: kind 'content' or 'cf'; neighbours a JSON array of ids.
      await db.schema
        .createTable('reco_similar')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('neighbours', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('reco_similar_pk', ['title_id', 'kind'])
        .execute()
      await db.schema
        .createTable('reco_runs')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('report', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('reco_campaigns')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('doc', 'text', (c) => c.notNull())
        .addColumn('budget', 'bigint', (c) => c.notNull())
        .addColumn('impressions', 'bigint', (c) => c.notNull())
        .addColumn('starts_at', 'bigint', (c) => c.notNull())
        .addColumn('ends_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('reco_state')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'bigint', (c) => c.notNull())
        .execute()
    },
  },
  // A module's version: training and the recomputation after a play write it by compare-and-set,
  // so neither overwrites what the other wrote from newer facts.
  reco_0002_module_version: {
    async up(db) {
      await db.schema
        .alterTable('reco_modules')
        .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
        .execute()
    },
  },
}
