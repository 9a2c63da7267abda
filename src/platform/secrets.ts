import type { Kysely } from 'kysely'
import type { Db, ReelMigration } from './db/db.js'

interface SecretsTable {
  name: string
  value: string
  created_at: number
}

/** Secrets every process of one install must share when none is configured (the token signing key). */
export const secretsMigrations: Record<string, ReelMigration> = {
  platform_secrets_001_table: {
    async up(db) {
      await db.schema
        .createTable('platform_secrets')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute()
    },
  },
}

/**
 * The secret of that name kept in the database: the first process to ask stores `offer`, every
 * later one (of any process) gets that same value back.
 */
export async function sharedSecret(db: Db, name: string, offer: string, now: number): Promise<string> {
  const k = db.tables<{ platform_secrets: SecretsTable }>() as Kysely<{ platform_secrets: SecretsTable }>
  await k
    .insertInto('platform_secrets')
    .values({ name, value: offer, created_at: now })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute()
  const row = await k
    .selectFrom('platform_secrets')
    .select('value')
    .where('name', '=', name)
    .executeTakeFirstOrThrow()
  return row.value
}
