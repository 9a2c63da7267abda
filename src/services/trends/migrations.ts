import type { ReelMigration } from '../../platform/db/db.js'

export const trendsMigrations: Record<string, ReelMigration> = {
  trends_0001_counts_seen: {
    async up(db) {
      // One row per subject, bucket and region, at three grains (5m, 1h, 1d); worldwide is region 'world'.
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
        .addPrimaryKeyConstraint('trends_counts_pk', ['grain', 'region', 'kind', 'bucket', 'subject_id'])
        .execute()
      // Ids of the events counted, by the hour of their time: kept for the grace period, after which
      // a redelivery is too late to count anyway. The hour first makes pruning a range delete.
      await db.schema
        .createTable('trends_seen')
        .ifNotExists()
        .addColumn('hour', 'bigint', (c) => c.notNull())
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('trends_seen_pk', ['hour', 'event_id'])
        .execute()
    },
  },
}
