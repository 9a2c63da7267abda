import type { Kysely } from 'kysely'
import type { Role } from '../../platform/auth.js'
import type { Db } from '../../platform/db/db.js'

export interface AccountRow {
  id: string
  email: string
  password_hash: string
  role: Role
  country: string
  created_at: number
  updated_at: number
}

export interface SessionRow {
  id: string
  account_id: string
  device: string
  address: string
  created_at: number
  last_used_at: number
  expires_at: number
  revoked_at: number | null
}

export interface RefreshTokenRow {
  token_hash: string
  session_id: string
  created_at: number
  /** When it stopped working for a plain rotation: presented by a client, or retired. */
  used_at: number | null
  /** When a client presented it (null: never; a retired token was spent without being presented). */
  presented_at: number | null
  /** Its place in the session's line of tokens: 1 for the first, above every earlier one after. */
  generation: number
}

/** A token about to be issued: the store gives it its generation. */
export type NewRefreshToken = Omit<RefreshTokenRow, 'generation'>

export interface ProfileRow {
  id: string
  account_id: string
  name: string
  name_key: string
  kids: number
  maturity_limit: string
  language: string
  avatar: string
  created_at: number
  updated_at: number
}

interface AccountsTables {
  accounts: AccountRow
  accounts_sessions: SessionRow
  accounts_refresh_tokens: RefreshTokenRow
  accounts_profiles: ProfileRow
}

/** The accounts service's SQL, and nothing else. */
export class AccountsStore {
  private readonly db: Kysely<AccountsTables>

  constructor(db: Db) {
    this.db = db.tables<AccountsTables>()
  }

  /** Account, first profile and first session in one transaction: all of them or none. */
  async insertAccount(account: AccountRow, profile: ProfileRow): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.insertInto('accounts').values(account).execute()
      await tx.insertInto('accounts_profiles').values(profile).execute()
    })
  }

  accountById(id: string): Promise<AccountRow | undefined> {
    return this.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst()
  }

  accountByEmail(email: string): Promise<AccountRow | undefined> {
    return this.db.selectFrom('accounts').selectAll().where('email', '=', email).executeTakeFirst()
  }

  async updateAccount(id: string, changes: Partial<Omit<AccountRow, 'id'>>): Promise<void> {
    await this.db.updateTable('accounts').set(changes).where('id', '=', id).execute()
  }

  async insertSession(session: SessionRow, token: NewRefreshToken): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.insertInto('accounts_sessions').values(session).execute()
      await tx
        .insertInto('accounts_refresh_tokens')
        .values({ ...token, generation: 1 })
        .execute()
    })
  }

  session(id: string): Promise<SessionRow | undefined> {
    return this.db.selectFrom('accounts_sessions').selectAll().where('id', '=', id).executeTakeFirst()
  }

  activeSessions(accountId: string, now: number): Promise<SessionRow[]> {
    return this.db
      .selectFrom('accounts_sessions')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('last_used_at', 'desc')
      .execute()
  }

  refreshToken(hash: string): Promise<RefreshTokenRow | undefined> {
    return this.db
      .selectFrom('accounts_refresh_tokens')
      .selectAll()
      .where('token_hash', '=', hash)
      .executeTakeFirst()
  }

  /**
   * Spends a refresh token and issues its successor in one step. False when the token was already
   * spent (by a thief, a replay, or a request racing this one), in which case nothing is written.
   */
  async rotateRefreshToken(
    oldHash: string,
    next: NewRefreshToken,
    session: Pick<SessionRow, 'id' | 'last_used_at' | 'expires_at'>,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const spent = await tx
        .updateTable('accounts_refresh_tokens')
        .set({ used_at: next.created_at, presented_at: next.created_at })
        .where('token_hash', '=', oldHash)
        .where('used_at', 'is', null)
        .executeTakeFirst()
      if (Number(spent.numUpdatedRows) !== 1) return false
      await issueRefreshToken(tx, next, session)
      return true
    })
  }

  /**
   * A spent token came back: if no token issued after it has been presented, the client never
   * received (or kept) its successor (the answer was lost, a page navigated away, a racing request
   * got it), so the unpresented successors are retired and a new one issued. False when a later
   * token was presented: a real replay.
   */
  async reissueLostRefreshToken(
    spent: RefreshTokenRow,
    next: NewRefreshToken,
    session: Pick<SessionRow, 'id' | 'last_used_at' | 'expires_at'>,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const presentedSince = await tx
        .selectFrom('accounts_refresh_tokens')
        .select('token_hash')
        .where('session_id', '=', spent.session_id)
        .where('generation', '>', spent.generation)
        .where('presented_at', 'is not', null)
        .executeTakeFirst()
      if (presentedSince) return false
      await tx
        .updateTable('accounts_refresh_tokens')
        .set({ presented_at: next.created_at })
        .where('token_hash', '=', spent.token_hash)
        .where('presented_at', 'is', null)
        .execute()
      await tx
        .updateTable('accounts_refresh_tokens')
        .set({ used_at: next.created_at })
        .where('session_id', '=', spent.session_id)
        .where('used_at', 'is', null)
        .execute()
      await issueRefreshToken(tx, next, session)
      return true
    })
  }

  /** Revokes sessions (one, or every one of the account); returns the ids revoked now. */
  async revokeSessions(where: { sessionId: string } | { accountId: string }, now: number): Promise<string[]> {
    let query = this.db
      .updateTable('accounts_sessions')
      .set({ revoked_at: now })
      .where('revoked_at', 'is', null)
    query =
      'sessionId' in where
        ? query.where('id', '=', where.sessionId)
        : query.where('account_id', '=', where.accountId)
    const rows = await query.returning('id').execute()
    return rows.map((r) => r.id)
  }

  profiles(accountId: string): Promise<ProfileRow[]> {
    return this.db
      .selectFrom('accounts_profiles')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
  }

  profile(accountId: string, profileId: string): Promise<ProfileRow | undefined> {
    return this.db
      .selectFrom('accounts_profiles')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('id', '=', profileId)
      .executeTakeFirst()
  }

  async countProfiles(accountId: string): Promise<number> {
    const row = await this.db
      .selectFrom('accounts_profiles')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('account_id', '=', accountId)
      .executeTakeFirstOrThrow()
    return Number(row.n)
  }

  async insertProfile(profile: ProfileRow): Promise<void> {
    await this.db.insertInto('accounts_profiles').values(profile).execute()
  }

  async updateProfile(accountId: string, profileId: string, changes: Partial<ProfileRow>): Promise<void> {
    await this.db
      .updateTable('accounts_profiles')
      .set(changes)
      .where('account_id', '=', accountId)
      .where('id', '=', profileId)
      .execute()
  }

  async deleteProfile(accountId: string, profileId: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('accounts_profiles')
      .where('account_id', '=', accountId)
      .where('id', '=', profileId)
      .executeTakeFirst()
    return Number(result.numDeletedRows) === 1
  }

  /**
   * Deletes up to `limit` sessions that ended (revoked or expired) before `before`, with their
   * refresh tokens; returns how many.
   */
  async deleteEndedSessions(before: number, limit: number): Promise<number> {
    return this.db.transaction().execute(async (tx) => {
      const ended = await tx
        .selectFrom('accounts_sessions')
        .select('id')
        .where((eb) => eb.or([eb('revoked_at', '<', before), eb('expires_at', '<', before)]))
        .limit(limit)
        .execute()
      const ids = ended.map((s) => s.id)
      if (ids.length === 0) return 0
      await tx.deleteFrom('accounts_refresh_tokens').where('session_id', 'in', ids).execute()
      await tx.deleteFrom('accounts_sessions').where('id', 'in', ids).execute()
      return ids.length
    })
  }

  /** Removes the account and everything of it this service keeps; returns the profile ids removed. */
  async deleteAccount(accountId: string): Promise<string[]> {
    return this.db.transaction().execute(async (tx) => {
      const profiles = await tx
        .deleteFrom('accounts_profiles')
        .where('account_id', '=', accountId)
        .returning('id')
        .execute()
      const sessions = tx.selectFrom('accounts_sessions').select('id').where('account_id', '=', accountId)
      await tx.deleteFrom('accounts_refresh_tokens').where('session_id', 'in', sessions).execute()
      await tx.deleteFrom('accounts_sessions').where('account_id', '=', accountId).execute()
      await tx.deleteFrom('accounts').where('id', '=', accountId).execute()
      return profiles.map((p) => p.id)
    })
  }
}

/**
 * Spent tokens a session keeps, newest first: enough to tell a lost answer from a replay. An older
 * one coming back is not known any more (401 invalid_refresh_token, the session stays), so a device
 * refreshing every few minutes for months does not pile up rows.
 */
export const KEPT_REFRESH_TOKENS = 20

/**
 * Inserts a session's next token, above every generation issued before, forgets the spent ones
 * beyond KEPT_REFRESH_TOKENS, and marks the session used.
 */
async function issueRefreshToken(
  tx: Kysely<AccountsTables>,
  next: NewRefreshToken,
  session: Pick<SessionRow, 'id' | 'last_used_at' | 'expires_at'>,
): Promise<void> {
  const top = await tx
    .selectFrom('accounts_refresh_tokens')
    .select((eb) => eb.fn.max('generation').as('generation'))
    .where('session_id', '=', next.session_id)
    .executeTakeFirst()
  const generation = Number(top?.generation ?? 0) + 1
  await tx
    .insertInto('accounts_refresh_tokens')
    .values({ ...next, generation })
    .execute()
  await tx
    .deleteFrom('accounts_refresh_tokens')
    .where('session_id', '=', next.session_id)
    .where('generation', '<=', generation - KEPT_REFRESH_TOKENS)
    .where('used_at', 'is not', null)
    .execute()
  await tx
    .updateTable('accounts_sessions')
    .set({ last_used_at: session.last_used_at, expires_at: session.expires_at })
    .where('id', '=', session.id)
    .execute()
}
