import { sql } from 'kysely'
import type { ReelMigration } from '../../platform/db/db.js'

export const accountsMigrations: Record<string, ReelMigration> = {
  accounts_0001_accounts_sessions_profiles: {
    async up(db) {
      await db.schema
        .createTable('accounts')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('country', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('accounts_sessions')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('device', 'text', (c) => c.notNull())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute()
      await db.schema
        .createIndex('accounts_sessions_account')
        .ifNotExists()
        .on('accounts_sessions')
        .column('account_id')
        .execute()
      await db.schema
        .createTable('accounts_refresh_tokens')
        .ifNotExists()
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('session_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .execute()
      await db.schema
        .createIndex('accounts_refresh_tokens_session')
        .ifNotExists()
        .on('accounts_refresh_tokens')
        .column('session_id')
        .execute()
      await db.schema
        .createTable('accounts_profiles')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('name_key', 'text', (c) => c.notNull())
        .addColumn('kids', 'integer', (c) => c.notNull())
        .addColumn('maturity_limit', 'text', (c) => c.notNull())
        .addColumn('language', 'text', (c) => c.notNull())
        .addColumn('avatar', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('accounts_profiles_name')
        .ifNotExists()
        .unique()
        .on('accounts_profiles')
        .columns(['account_id', 'name_key'])
        .execute()
    },
  },
  accounts_0002_refresh_token_lineage: {
    async up(db) {
      // presented_at: when a client presented the token; a token can also be spent without being
      // presented (retired when a lost answer was issued again). generation: its place in its
      // session's line of tokens, so "issued after this one" does not hang on clock resolution.
      // Rows from before: a spent token counts as presented; generations follow creation time.
      await db.schema.alterTable('accounts_refresh_tokens').addColumn('presented_at', 'bigint').execute()
      await db.schema
        .alterTable('accounts_refresh_tokens')
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
        .execute()
      await sql`update accounts_refresh_tokens set presented_at = used_at where used_at is not null`.execute(
        db,
      )
      // rank(): tokens of one session made in the same millisecond share a generation.
      await sql`update accounts_refresh_tokens set generation = ranked.generation from (
          select token_hash, rank() over (partition by session_id order by created_at) as generation
          from accounts_refresh_tokens) as ranked
        where accounts_refresh_tokens.token_hash = ranked.token_hash`.execute(db)
    },
  },
  accounts_0003_ended_session_indexes: {
    async up(db) {
      // The hourly prune finds sessions that ended (revoked_at or expires_at long past) through
      // these rather than reading every session there is.
      for (const column of ['revoked_at', 'expires_at'])
        await db.schema
          .createIndex(`accounts_sessions_${column.replace('_at', '')}`)
          .ifNotExists()
          .on('accounts_sessions')
          .column(column)
          .execute()
    },
  },
}
