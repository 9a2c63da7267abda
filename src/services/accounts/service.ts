import { createHash, randomBytes } from 'node:crypto'
import { hash, verify } from '@node-rs/argon2'
import type { Auth, Authenticator, Entitlement, Role } from '../../platform/auth.js'
import type { Bus } from '../../platform/bus/bus.js'
import { type Cache, CacheUnavailableError, readThrough } from '../../platform/cache/cache.js'
import { AppError, conflict, notFound, tooManyRequests, unauthorized } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import type { Logger } from '../../platform/log.js'
import type { BillingService, Subscription } from '../billing/service.js'
import {
  ACCOUNT_CLOSED,
  ACCOUNT_CREATED,
  type AccountClosed,
  type AccountCreated,
  PROFILE_CREATED,
  PROFILE_DELETED,
  PROFILE_UPDATED,
  type ProfileChanged,
  type ProfileDeleted,
} from './events.js'
import {
  checkPassword,
  KIDS_MAX_RATING,
  MAX_PROFILES,
  type MaturityRating,
  normalizeCountry,
  normalizeEmail,
  normalizeLanguage,
  normalizeProfileName,
  ratingRank,
} from './rules.js'
import type { AccountRow, AccountsStore, ProfileRow, SessionRow } from './store.js'

/** OWASP's argon2id floor (19 MiB, 2 passes): ~50 ms a hash here. */
const ARGON2 = { algorithm: 2 /* Argon2id */ as const, memoryCost: 19_456, timeCost: 2, parallelism: 1 }
const LOGIN_WINDOW_MS = 15 * 60_000
/** A spent refresh token may come back this soon when its answer was lost (see reissueLostRefreshToken). */
const LOST_ANSWER_GRACE_MS = 30_000
const CACHE_TTL_MS = 5 * 60_000
const DAY_MS = 24 * 3600_000
/** An ended session's row stays this long, then is forgotten with its refresh tokens. */
const ENDED_SESSION_DAYS = 30
const PRUNE_BATCH = 500

export interface Account {
  id: string
  email: string
  role: Role
  country: string
  createdAt: string
}

export interface Profile {
  id: string
  name: string
  kids: boolean
  maturityLimit: MaturityRating
  language: string
  avatar: string
  createdAt: string
}

export interface Tokens {
  accessToken: string
  refreshToken: string
  tokenType: 'Bearer'
  expiresIn: number
  sessionId: string
}

export interface Device {
  /** The client's description of itself (User-Agent), shortened. */
  name: string
  address: string
}

export interface SessionView {
  id: string
  device: string
  address: string
  createdAt: string
  lastUsedAt: string
  current: boolean
}

export interface ProfileInput {
  name?: string
  kids?: boolean
  maturityLimit?: MaturityRating
  language?: string
  avatar?: string
}

const iso = (ms: number) => new Date(ms).toISOString()
const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url')

const toAccount = (a: AccountRow): Account => ({
  id: a.id,
  email: a.email,
  role: a.role,
  country: a.country,
  createdAt: iso(a.created_at),
})

const toProfile = (p: ProfileRow): Profile => ({
  id: p.id,
  name: p.name,
  kids: p.kids === 1,
  maturityLimit: p.maturity_limit as MaturityRating,
  language: p.language,
  avatar: p.avatar,
  createdAt: iso(p.created_at),
})

export interface AccountsOptions {
  store: AccountsStore
  cache: Cache
  bus: Bus
  auth: Authenticator
  billing: BillingService
  log: Logger
  defaultCountry: string
  refreshTokenTtlDays: number
  loginMaxFailures: number
  loginMaxAttemptsPerAddress: number
  now?: () => number
}

/** Who a caller is: accounts, credentials, sessions on devices, and the profiles of an account. */
export class AccountsService {
  private readonly o: AccountsOptions & { now: () => number }
  /** Verified against when the email is unknown, so a login takes as long either way. */
  private readonly decoyHash: Promise<string>

  constructor(options: AccountsOptions) {
    this.o = { ...options, now: options.now ?? Date.now }
    this.decoyHash = hash(randomBytes(16).toString('hex'), ARGON2)
  }

  async signUp(
    input: { email: string; password: string; country?: string; plan?: string; profileName?: string },
    device: Device,
    role: Role = 'member',
  ): Promise<{ account: Account; tokens: Tokens; subscription: Subscription | null }> {
    const email = normalizeEmail(input.email)
    checkPassword(input.password, email)
    const country = input.country === undefined ? this.o.defaultCountry : normalizeCountry(input.country)
    if (input.plan !== undefined)
      await this.o.billing.plans().then((plans) => this.assertPlan(plans, input.plan))
    const [profileName, nameKey] = normalizeProfileName(input.profileName ?? (email.split('@')[0] || 'Me'))
    if (await this.o.store.accountByEmail(email))
      throw conflict('email_taken', 'An account with this email exists; log in instead')
    const now = this.o.now()
    const account: AccountRow = {
      id: newId(),
      email,
      password_hash: await hash(input.password, ARGON2),
      role,
      country,
      created_at: now,
      updated_at: now,
    }
    const profile = this.newProfile(account.id, profileName, nameKey, {}, now)
    try {
      await this.o.store.insertAccount(account, profile)
    } catch (e) {
      // Two sign-ups with one email at once: the unique index lets one through.
      if (await this.o.store.accountByEmail(email))
        throw conflict('email_taken', 'An account with this email exists; log in instead')
      throw e
    }
    await this.o.bus.publish<AccountCreated>({
      type: ACCOUNT_CREATED,
      key: account.id,
      data: { accountId: account.id, country, role },
    })
    await this.publishProfile(PROFILE_CREATED, profile)
    let subscription: Subscription | null = null
    if (input.plan !== undefined) {
      try {
        subscription = (await this.o.billing.subscribe(account.id, input.plan)).subscription
      } catch (e) {
        // The account stands; the person can subscribe again from the account page.
        if (!(e instanceof AppError && e.code === 'payment_declined')) throw e
        this.o.log.warn({ accountId: account.id }, 'first payment declined at sign-up')
      }
    }
    const tokens = await this.openSession(account, device)
    return { account: toAccount(account), tokens, subscription }
  }

  private assertPlan(plans: { id: string }[], plan: string | undefined): void {
    if (!plans.some((p) => p.id === plan))
      throw new AppError(
        400,
        'unknown_plan',
        `There is no plan "${plan}"; plans on offer: ${plans.map((p) => p.id).join(', ')}`,
      )
  }

  async logIn(input: { email: string; password: string }, device: Device): Promise<Tokens> {
    let email: string
    try {
      email = normalizeEmail(input.email)
    } catch {
      email = input.email.trim().toLowerCase()
    }
    const window = Math.floor(this.o.now() / LOGIN_WINDOW_MS)
    const addressKey = `accounts:login:address:${device.address}:${window}`
    const failuresKey = `accounts:login:failures:${sha256(email)}:${window}`
    const attempts = await this.count(addressKey)
    if (attempts > this.o.loginMaxAttemptsPerAddress) throw await this.throttled(addressKey)
    if (Number((await this.o.cache.get(failuresKey)) ?? 0) >= this.o.loginMaxFailures)
      throw await this.throttled(failuresKey)

    const account = await this.o.store.accountByEmail(email)
    const ok =
      input.password.length <= 4096 &&
      (await verify(account?.password_hash ?? (await this.decoyHash), input.password).catch(() => false))
    if (!account || !ok) {
      await this.count(failuresKey)
      throw unauthorized('invalid_credentials', 'That email and password do not match an account')
    }
    await this.o.cache.del(failuresKey)
    return this.openSession(account, device)
  }

  /** Counts one more in a login window; a cache outage lets logins through rather than locking everyone out. */
  private async count(key: string): Promise<number> {
    try {
      return await this.o.cache.incr(key, LOGIN_WINDOW_MS)
    } catch (e) {
      if (!(e instanceof CacheUnavailableError)) throw e
      this.o.log.warn('login rate limit skipped: cache unavailable')
      return 0
    }
  }

  private async throttled(key: string): Promise<AppError> {
    const ttl = (await this.o.cache.ttl(key)) ?? LOGIN_WINDOW_MS
    return tooManyRequests(
      'too_many_login_attempts',
      'Too many login attempts; wait and try again',
      Math.max(1, ttl / 1000),
    )
  }

  async refresh(refreshToken: string, device: Device): Promise<Tokens> {
    const now = this.o.now()
    const invalid = () =>
      unauthorized('invalid_refresh_token', 'That refresh token is not valid; log in again')
    const token = await this.o.store.refreshToken(sha256(refreshToken))
    if (!token) throw invalid()
    const session = await this.o.store.session(token.session_id)
    if (!session || session.revoked_at !== null || session.expires_at <= now) throw invalid()
    const account = await this.o.store.accountById(session.account_id)
    if (!account) throw invalid()
    const next = this.newRefreshToken(session.id, now)
    const times = { id: session.id, last_used_at: now, expires_at: now + this.o.refreshTokenTtlDays * DAY_MS }
    let rotated =
      token.used_at === null && (await this.o.store.rotateRefreshToken(token.token_hash, next.row, times))
    if (!rotated) {
      // Spent already, or just now by a request racing this one (two tabs, a reload mid-refresh).
      const spent = token.used_at === null ? await this.o.store.refreshToken(token.token_hash) : token
      const usedAt = spent?.used_at ?? null
      // A presented token may come back only soon after; a retired one was never presented, so it
      // is the latest the client holds unless a later token has been presented (checked below).
      rotated =
        spent !== undefined &&
        usedAt !== null &&
        (spent.presented_at === null || now - usedAt <= LOST_ANSWER_GRACE_MS) &&
        (await this.o.store.reissueLostRefreshToken(spent, next.row, times))
    }
    if (!rotated) {
      // A spent token came back: someone holds a copy. End the whole session family.
      await this.revoke({ sessionId: session.id })
      this.o.log.warn(
        { accountId: account.id, sessionId: session.id, device: device.name },
        'refresh token reused; session revoked',
      )
      throw unauthorized(
        'refresh_token_reused',
        'This refresh token was already used; the session has been signed out',
      )
    }
    return this.tokens(account, session.id, next.token)
  }

  async logOut(auth: Auth): Promise<void> {
    await this.revoke({ sessionId: auth.sessionId })
  }

  /**
   * Forgets sessions that ended (signed out, or unused past their lifetime) more than
   * ENDED_SESSION_DAYS ago, with their refresh tokens, a batch at a time; returns how many.
   */
  async pruneEndedSessions(): Promise<number> {
    const before = this.o.now() - ENDED_SESSION_DAYS * DAY_MS
    let pruned = 0
    for (;;) {
      const n = await this.o.store.deleteEndedSessions(before, PRUNE_BATCH)
      pruned += n
      if (n < PRUNE_BATCH) return pruned
    }
  }

  async logOutEverywhere(auth: Auth): Promise<number> {
    return (await this.revoke({ accountId: auth.accountId })).length
  }

  private async revoke(where: { sessionId: string } | { accountId: string }): Promise<string[]> {
    const ids = await this.o.store.revokeSessions(where, this.o.now())
    for (const id of ids) await this.o.auth.revokeSession(id)
    return ids
  }

  async sessions(auth: Auth): Promise<SessionView[]> {
    return (await this.o.store.activeSessions(auth.accountId, this.o.now())).map((s) => ({
      id: s.id,
      device: s.device,
      address: s.address,
      createdAt: iso(s.created_at),
      lastUsedAt: iso(s.last_used_at),
      current: s.id === auth.sessionId,
    }))
  }

  /** The account, read through the cache; 404 once it is closed. */
  async account(accountId: string): Promise<Account> {
    const account = await readThrough(
      this.o.cache,
      `accounts:account:${accountId}`,
      CACHE_TTL_MS,
      async () => {
        const row = await this.o.store.accountById(accountId)
        return row && toAccount(row)
      },
    )
    if (!account) throw notFound('account_not_found', 'This account does not exist (it may have been closed)')
    return account
  }

  async overview(
    accountId: string,
  ): Promise<{ account: Account; subscription: Subscription | null; entitlements: Entitlement }> {
    const [account, subscription, entitlements] = await Promise.all([
      this.account(accountId),
      this.o.billing.subscription(accountId),
      this.o.billing.entitlement(accountId),
    ])
    return { account, subscription, entitlements }
  }

  async closeAccount(auth: Auth, password: string): Promise<void> {
    const account = await this.o.store.accountById(auth.accountId)
    if (!account) throw notFound('account_not_found', 'This account does not exist')
    if (password.length > 4096 || !(await verify(account.password_hash, password).catch(() => false)))
      throw unauthorized('invalid_credentials', 'The password is not right')
    const sessions = await this.o.store.activeSessions(account.id, 0)
    const profileIds = await this.o.store.deleteAccount(account.id)
    for (const s of sessions) await this.o.auth.revokeSession(s.id)
    await this.o.cache.del(`accounts:account:${account.id}`, `accounts:profiles:${account.id}`)
    for (const profileId of profileIds)
      await this.o.bus.publish<ProfileDeleted>({
        type: PROFILE_DELETED,
        key: account.id,
        data: { accountId: account.id, profileId },
      })
    await this.o.bus.publish<AccountClosed>({
      type: ACCOUNT_CLOSED,
      key: account.id,
      data: { accountId: account.id, profileIds },
    })
    this.o.log.info({ accountId: account.id, profiles: profileIds.length }, 'account closed')
  }

  /** `reel admin create`: a new administrator account with a Premium subscription. */
  async createAdmin(email: string, password: string): Promise<Account> {
    const { account } = await this.signUp(
      { email, password, plan: 'premium' },
      { name: 'reel admin create', address: 'cli' },
      'admin',
    )
    await this.o.store.revokeSessions({ accountId: account.id }, this.o.now())
    return account
  }

  async profiles(accountId: string): Promise<Profile[]> {
    return (
      (await readThrough(this.o.cache, `accounts:profiles:${accountId}`, CACHE_TTL_MS, async () =>
        (await this.o.store.profiles(accountId)).map(toProfile),
      )) ?? []
    )
  }

  /** A profile of this account; 404 for ids that do not exist or belong to someone else. */
  async profile(accountId: string, profileId: string): Promise<Profile> {
    const profile = (await this.profiles(accountId)).find((p) => p.id === profileId)
    if (!profile) throw notFound('profile_not_found', 'No such profile on this account')
    return profile
  }

  async createProfile(accountId: string, input: ProfileInput & { name: string }): Promise<Profile> {
    const [name, key] = normalizeProfileName(input.name)
    if ((await this.o.store.countProfiles(accountId)) >= MAX_PROFILES)
      throw conflict('profile_limit', `An account can have at most ${MAX_PROFILES} profiles`)
    const row = this.newProfile(accountId, name, key, input, this.o.now())
    try {
      await this.o.store.insertProfile(row)
    } catch (e) {
      if ((await this.o.store.profiles(accountId)).some((p) => p.name_key === key))
        throw conflict('profile_name_taken', `This account already has a profile called "${name}"`)
      throw e
    }
    await this.o.cache.del(`accounts:profiles:${accountId}`)
    await this.publishProfile(PROFILE_CREATED, row)
    return toProfile(row)
  }

  async updateProfile(accountId: string, profileId: string, input: ProfileInput): Promise<Profile> {
    const current = await this.o.store.profile(accountId, profileId)
    if (!current) throw notFound('profile_not_found', 'No such profile on this account')
    const next: ProfileRow = { ...current, updated_at: this.o.now() }
    if (input.name !== undefined) [next.name, next.name_key] = normalizeProfileName(input.name)
    if (input.kids !== undefined) next.kids = input.kids ? 1 : 0
    if (input.language !== undefined) next.language = normalizeLanguage(input.language)
    if (input.avatar !== undefined) next.avatar = input.avatar
    if (input.maturityLimit !== undefined) next.maturity_limit = input.maturityLimit
    else if (input.kids === true && ratingRank(next.maturity_limit) > ratingRank(KIDS_MAX_RATING))
      next.maturity_limit = KIDS_MAX_RATING
    this.assertKidsLimit(next.kids === 1, next.maturity_limit)
    if (
      next.name_key !== current.name_key &&
      (await this.o.store.profiles(accountId)).some((p) => p.name_key === next.name_key)
    )
      throw conflict('profile_name_taken', `This account already has a profile called "${next.name}"`)
    await this.o.store.updateProfile(accountId, profileId, next)
    await this.o.cache.del(`accounts:profiles:${accountId}`)
    await this.publishProfile(PROFILE_UPDATED, next)
    return toProfile(next)
  }

  async deleteProfile(accountId: string, profileId: string): Promise<void> {
    const profiles = await this.o.store.profiles(accountId)
    if (!profiles.some((p) => p.id === profileId))
      throw notFound('profile_not_found', 'No such profile on this account')
    if (profiles.length === 1) throw conflict('last_profile', 'An account keeps at least one profile')
    if (!(await this.o.store.deleteProfile(accountId, profileId)))
      throw notFound('profile_not_found', 'No such profile on this account')
    await this.o.cache.del(`accounts:profiles:${accountId}`)
    await this.o.bus.publish<ProfileDeleted>({
      type: PROFILE_DELETED,
      key: accountId,
      data: { accountId, profileId },
    })
  }

  private newProfile(
    accountId: string,
    name: string,
    key: string,
    input: ProfileInput,
    now: number,
  ): ProfileRow {
    const kids = input.kids === true
    const maturity = input.maturityLimit ?? (kids ? KIDS_MAX_RATING : 'NC-17')
    this.assertKidsLimit(kids, maturity)
    return {
      id: newId(),
      account_id: accountId,
      name,
      name_key: key,
      kids: kids ? 1 : 0,
      maturity_limit: maturity,
      language: input.language === undefined ? 'en' : normalizeLanguage(input.language),
      avatar: input.avatar ?? 'avatar-1',
      created_at: now,
      updated_at: now,
    }
  }

  private assertKidsLimit(kids: boolean, maturity: string): void {
    if (kids && ratingRank(maturity) > ratingRank(KIDS_MAX_RATING))
      throw new AppError(
        400,
        'kids_maturity_limit',
        `A kids profile can be limited to ${KIDS_MAX_RATING} at most`,
      )
  }

  private async publishProfile(type: string, p: ProfileRow): Promise<void> {
    await this.o.bus.publish<ProfileChanged>({
      type,
      key: p.account_id,
      data: {
        accountId: p.account_id,
        profileId: p.id,
        kids: p.kids === 1,
        maturityLimit: p.maturity_limit,
        language: p.language,
      },
    })
  }

  private newRefreshToken(sessionId: string, now: number) {
    const token = randomBytes(32).toString('base64url')
    return {
      token,
      row: {
        token_hash: sha256(token),
        session_id: sessionId,
        created_at: now,
        used_at: null,
        presented_at: null,
      },
    }
  }

  private async openSession(account: AccountRow, device: Device): Promise<Tokens> {
    const now = this.o.now()
    const session: SessionRow = {
      id: newId(),
      account_id: account.id,
      device: device.name.slice(0, 200) || 'unknown device',
      address: device.address.slice(0, 64),
      created_at: now,
      last_used_at: now,
      expires_at: now + this.o.refreshTokenTtlDays * DAY_MS,
      revoked_at: null,
    }
    const refresh = this.newRefreshToken(session.id, now)
    await this.o.store.insertSession(session, refresh.row)
    return this.tokens(account, session.id, refresh.token)
  }

  private async tokens(account: AccountRow, sessionId: string, refreshToken: string): Promise<Tokens> {
    const accessToken = await this.o.auth.sign({
      accountId: account.id,
      sessionId,
      role: account.role,
      country: account.country,
      entitlement: await this.o.billing.entitlement(account.id),
    })
    return {
      accessToken,
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: this.o.auth.accessTokenTtlS,
      sessionId,
    }
  }
}
