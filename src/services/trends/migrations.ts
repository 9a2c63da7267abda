import { sql } from 'kysely'
import type { ReelMigration } from '../../platform/db/db.js'

/** SQLite: keep the rows in the primary-key B-tree itself (one tree to update per row, not two). */
const withoutRowid = (kind: string) => (kind === 'sqlite' ? sql`without rowid` : sql``)

export const trendsMigrations: Record<string, ReelMigration> = {
  trends_0001_counts_seen: {
    async up(db, kind) {
      // One row per subject, bucket and region, at three grains (5m, 1h, 1d); worldwide is region 'world'.
      // Streaming writes 5-minute rows; hourly and daily ones are sealed from them once closed.
      await db.schema
        .createTable('trends_counts')
        .ifNotExists()
        .addColumn('grain', 'text', (c) => c.notNull())
        .addColumn('region', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('bucket', 'bigint', (c) => c.notNull())
        .addColumn('subject_id', 'text', (c) => c.notNull())
        .addColumn('plays', 'bigint', (c) => c.notNull())
        .addColumn('watched_ms', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('trends_counts_pk', ['grain', 'bucket', 'region', 'kind', 'subject_id'])
        .modifyEnd(withoutRowid(kind))
        .execute()
      // Ids of the events counted, by the hour of their time: kept for the grace period, after which
      // a redelivery is too late to count anyway. The hour first makes pruning a range delete.
      await db.schema
        .createTable('trends_seen')
        .ifNotExists()
        .addColumn('hour', 'bigint', (c) => c.notNull())
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('trends_seen_pk', ['hour', 'event_id'])
        .modifyEnd(withoutRowid(kind))
        .execute()
      // Watermarks: hours (days) before `value` have their hourly (daily) rollups sealed.
      await db.schema
        .createTable('trends_state')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'bigint', (c) => c.notNull())
        .execute()
    },
  },
  trends_0002_pending: {
    async up(db) {
      // Counts of flushes not yet added to trends_counts: written with the ids they count, added in
      // batches of many flushes (fewer rows to update), deleted in the transaction that adds them.
      await db.schema
        .createTable('trends_pending')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('first_bucket', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('counts', 'text', (c) => c.notNull())
        .execute()
    },
  },
  trends_0003_archive_outbox: {
    async up(db) {
      // Raw events of a flush whose blob archive write failed, staged with its counts and moved to
      // the archive later.
      await db.schema
        .createTable('trends_archive_outbox')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('partition', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('lines', 'text', (c) => c.notNull())
        .execute()
    },
  },
}
