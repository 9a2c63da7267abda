import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { accountsMigrations } from '../src/services/accounts/migrations.js'
import { AccountsStore, type RefreshTokenRow, type SessionRow } from '../src/services/accounts/store.js'
import { hasPostgres, type TestDb, testDb } from './engines.js'

// Refresh tokens written before tokens had a generation and a presented time keep working, and a
// replay of one of them is still told from a lost answer.

interface Tables {
  accounts_sessions: SessionRow
  accounts_refresh_tokens: RefreshTokenRow
}
/** A row as the first migration left them. */
type OldTables = {
  accounts_sessions: SessionRow
  accounts_refresh_tokens: Omit<RefreshTokenRow, 'generation' | 'presented_at'>
}

const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

describe.each(kinds)('the accounts migrations on %s', (kind) => {
  let test: TestDb

  beforeAll(async () => {
    test = await testDb(kind)
    const first = 'accounts_0001_accounts_sessions_profiles'
    await test.db.migrate({ [first]: accountsMigrations[first] as (typeof accountsMigrations)[string] })
    const db = test.db.tables<OldTables>()
    await db
      .insertInto('accounts_sessions')
      .values({
        id: 's1',
        account_id: 'a1',
        device: 'web',
        address: '127.0.0.1',
        created_at: 1000,
        last_used_at: 3000,
        expires_at: 10_000_000,
        revoked_at: null,
      })
      .execute()
    await db
      .insertInto('accounts_refresh_tokens')
      .values([
        { token_hash: 'h1', session_id: 's1', created_at: 1000, used_at: 2000 },
        { token_hash: 'h2', session_id: 's1', created_at: 2000, used_at: 3000 },
        { token_hash: 'h3', session_id: 's1', created_at: 3000, used_at: null },
        // Another session's line is numbered apart; two tokens of one millisecond share a generation.
        { token_hash: 'k1', session_id: 's2', created_at: 2500, used_at: 2600 },
        { token_hash: 'k2', session_id: 's2', created_at: 2600, used_at: null },
        { token_hash: 'k3', session_id: 's2', created_at: 2600, used_at: null },
      ])
      .execute()
    await test.db.migrate(accountsMigrations)
  })
  afterAll(() => test?.cleanup())

  it('numbers existing tokens in creation order and counts the spent ones as presented', async () => {
    const rows = await test.db
      .tables<Tables>()
      .selectFrom('accounts_refresh_tokens')
      .select(['token_hash', 'generation', 'presented_at'])
      .orderBy('token_hash')
      .execute()
    expect(
      rows.map((r) => ({ ...r, presented_at: r.presented_at === null ? null : Number(r.presented_at) })),
    ).toEqual([
      { token_hash: 'h1', generation: 1, presented_at: 2000 },
      { token_hash: 'h2', generation: 2, presented_at: 3000 },
      { token_hash: 'h3', generation: 3, presented_at: null },
      { token_hash: 'k1', generation: 1, presented_at: 2600 },
      { token_hash: 'k2', generation: 2, presented_at: null },
      { token_hash: 'k3', generation: 2, presented_at: null },
    ])
  })

  it('refuses to issue again for an old token whose successor was used, and rotates the newest', async () => {
    const store = new AccountsStore(test.db)
    const times = { id: 's1', last_used_at: 4000, expires_at: 10_000_000 }
    const token = async (hash: string) => (await store.refreshToken(hash)) as RefreshTokenRow
    const next = (hash: string) => ({
      token_hash: hash,
      session_id: 's1',
      created_at: 4000,
      used_at: null,
      presented_at: null,
    })
    expect(await store.reissueLostRefreshToken(await token('h1'), next('x1'), times)).toBe(false)
    expect(await store.rotateRefreshToken('h3', next('h4'), times)).toBe(true)
    expect((await token('h4')).generation).toBe(4)
    // h2's successor h3 has now been presented, so h2 coming back is a copy as well.
    expect(await store.reissueLostRefreshToken(await token('h2'), next('x2'), times)).toBe(false)
  })

  it('finds the sessions that ended through indexes, not by reading every session', async () => {
    const db = test.db.tables<Tables>()
    // The prune's query (AccountsStore.deleteEndedSessions).
    const query = sql.raw('select id from accounts_sessions where revoked_at < 5 or expires_at < 5 limit 500')
    const plan =
      kind === 'sqlite'
        ? (await sql<{ detail: string }>`explain query plan ${query}`.execute(db)).rows.map((r) => r.detail)
        : await db.transaction().execute(async (tx) => {
            // A table this small is cheaper to scan: ask whether an index could serve the query at all.
            await sql`set local enable_seqscan = off`.execute(tx)
            const rows = (await sql<Record<string, string>>`explain ${query}`.execute(tx)).rows
            return rows.map((r) => Object.values(r).join(' '))
          })
    const text = plan.join('\n')
    expect(text).toContain('accounts_sessions_revoked')
    expect(text).toContain('accounts_sessions_expires')
    expect(text).not.toMatch(/SCAN accounts_sessions($|\s)|Seq Scan/)
  })
})
