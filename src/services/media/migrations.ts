import type { ReelMigration } from '../../platform/db/db.js'

export const mediaMigrations: Record<string, ReelMigration> = {
  media_0001_jobs_tasks_parts: {
    async up(db) {
      await db.schema
        .createTable('media_jobs')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.primaryKey())
        .addColumn('stage', 'text', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('year', 'integer')
        .addColumn('duration_ms', 'bigint')
        .addColumn('source_key', 'text', (c) => c.notNull())
        .addColumn('source_name', 'text')
        .addColumn('source_bytes', 'bigint')
        .addColumn('source', 'text')
        .addColumn('plan', 'text')
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .execute()
      await db.schema.createIndex('media_jobs_stage').ifNotExists().on('media_jobs').column('stage').execute()

      await db.schema
        .createTable('media_tasks')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('rendition', 'text')
        .addColumn('chunk', 'integer')
        .addColumn('weight', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('progress_permille', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text')
        .addColumn('worker', 'text')
        .addColumn('started_at', 'bigint')
        .addColumn('finished_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('media_tasks_pk', ['title_id', 'key'])
        .execute()

      await db.schema
        .createTable('media_renditions')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('width', 'integer')
        .addColumn('height', 'integer')
        .addColumn('frame_rate', 'text')
        .addColumn('codecs', 'text', (c) => c.notNull())
        .addColumn('bandwidth', 'bigint', (c) => c.notNull())
        .addColumn('average_bandwidth', 'bigint', (c) => c.notNull())
        .addColumn('playlist_key', 'text', (c) => c.notNull())
        .addColumn('init_key', 'text', (c) => c.notNull())
        .addColumn('parts', 'integer', (c) => c.notNull())
        .addColumn('duration_us', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('media_renditions_pk', ['title_id', 'name'])
        .execute()

      // The parts index: which blob holds each segment of each rendition, and how long and big it is.
      await db.schema
        .createTable('media_parts')
        .ifNotExists()
        .addColumn('title_id', 'text', (c) => c.notNull())
        .addColumn('rendition', 'text', (c) => c.notNull())
        .addColumn('part_no', 'integer', (c) => c.notNull())
        .addColumn('blob_key', 'text', (c) => c.notNull())
        .addColumn('start_us', 'bigint', (c) => c.notNull())
        .addColumn('duration_us', 'bigint', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('media_parts_pk', ['title_id', 'rendition', 'part_no'])
        .execute()
    },
  },
}
