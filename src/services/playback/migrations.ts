import type { ReelMigration } from '../../platform/db/db.js'

export const playbackMigrations: Record<string, ReelMigration> = {
  playback_0001_sessions_progress: {
    async up(db) {
      await db.schema
        .createTable('playback_sessions')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('profile_id', 'text', (c) => c.notNull())
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('media_id', 'text', (c) => c.notNull())
        .addColumn('device', 'text', (c) => c.notNull())
        .addColumn('region', 'text', (c) => c.notNull())
        .addColumn('max_height', 'integer', (c) => c.notNull())
        .addColumn('position_ms', 'bigint', (c) => c.notNull())
        .addColumn('duration_ms', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('seen_at', 'bigint', (c) => c.notNull())
        .addColumn('stopped_at', 'bigint')
        .execute()
      await db.schema
        .createIndex('playback_sessions_account')
        .ifNotExists()
        .on('playback_sessions')
        .columns(['account_id', 'seen_at'])
        .execute()
      // One row per (profile, playable title): the resume position, and the viewing history.
      await db.schema
        .createTable('playback_progress')
        .ifNotExists()
        .addColumn('profile_id', 'text', (c) => c.notNull())
        .addColumn('media_id', 'text', (c) => c.notNull())
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('title_type', 'text', (c) => c.notNull())
        .addColumn('series_id', 'text')
        .addColumn('season_id', 'text')
        .addColumn('position_ms', 'bigint', (c) => c.notNull())
        .addColumn('duration_ms', 'bigint', (c) => c.notNull())
        .addColumn('completed', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('playback_progress_pk', ['profile_id', 'media_id'])
        .execute()
      await db.schema
        .createIndex('playback_progress_recent')
        .ifNotExists()
        .on('playback_progress')
        .columns(['profile_id', 'updated_at'])
        .execute()
    },
  },
}
