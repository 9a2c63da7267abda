import { SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { EventEnvelope } from '../src/platform/bus/bus.js'
import { KEPT_REFRESH_TOKENS } from '../src/services/accounts/store.js'
import { engines, hasPostgres, hasRedis, uniqueName } from './engines.js'
import { startReel, type TestReel } from './harness.js'

/** Effects that travel through the bus arrive soon, not at once, on a loaded machine. */
const soon = { timeout: 15_000, interval: 50 }

const DAY = 24 * 3600_000
const PASSWORD = 'correct horse battery'
let seq = 0
const email = (tag = 'user') => `${tag}.${process.pid}.${Date.now()}.${seq++}@example.com`

interface SignedUp {
  accountId: string
  accessToken: string
  refreshToken: string
  sessionId: string
  email: string
}

const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

describe.each(kinds)('accounts, profiles and billing on %s', (kind) => {
  let t: TestReel
  const deleted: EventEnvelope[] = []

  const subscriptionChanges: EventEnvelope[] = []

  beforeAll(async () => {
    t = await startReel(kind, { REEL_LOGIN_MAX_FAILURES: '5', REEL_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '40' })
    await t.reel.ports.bus.subscribe({
      name: 'test-subscription-changed',
      types: ['billing.subscription.changed'],
      handler: async (e) => {
        subscriptionChanges.push(e)
      },
    })
    await t.reel.ports.bus.subscribe({
      name: 'test-profile-deleted',
      types: ['accounts.profile.deleted'],
      handler: async (e) => {
        deleted.push(e)
      },
    })
  })
  afterAll(() => t.stop())

  async function signUp(body: Record<string, unknown> = {}): Promise<SignedUp> {
    const address = email()
    const res = await t.call('POST', '/api/v1/accounts', {
      body: { email: address, password: PASSWORD, plan: 'standard', ...body },
    })
    expect(res.statusCode, res.body).toBe(201)
    const json = res.json()
    return { accountId: json.account.id, email: address, ...json.tokens }
  }

  const errorCode = (res: { json: () => { error: { code: string } } }) => res.json().error.code
  const refresh = (refreshToken: string) =>
    t.call('POST', '/api/v1/sessions/refresh', { body: { refreshToken } })

  describe('sign-up', () => {
    it('creates the account, a first profile, a session and the subscription', async () => {
      const who = email()
      const res = await t.call('POST', '/api/v1/accounts', {
        body: { email: `  ${who.toUpperCase()} `, password: PASSWORD, plan: 'standard', country: 'de' },
      })
      expect(res.statusCode).toBe(201)
      const body = res.json()
      expect(body.account).toMatchObject({ email: who, role: 'member', country: 'DE' })
      expect(body.account).not.toHaveProperty('password_hash')
      expect(res.body).not.toContain(PASSWORD)
      expect(body.subscription).toMatchObject({ status: 'active', plan: { id: 'standard', maxStreams: 2 } })
      expect(body.tokens.tokenType).toBe('Bearer')
      const profiles = await t.call('GET', '/api/v1/profiles', { token: body.tokens.accessToken })
      expect(profiles.json().profiles).toHaveLength(1)
      const account = await t.call('GET', '/api/v1/account', { token: body.tokens.accessToken })
      expect(account.json().entitlements).toEqual({ active: true, maxStreams: 2, maxHeight: 1080 })
    })

    it('uses the configured default country', async () => {
      const { accessToken } = await signUp()
      expect((await t.call('GET', '/api/v1/account', { token: accessToken })).json().account.country).toBe(
        'US',
      )
    })

    it('refuses a taken email, whatever its case and spacing (409 email_taken)', async () => {
      const { email: taken } = await signUp()
      const res = await t.call('POST', '/api/v1/accounts', {
        body: { email: ` ${taken.toUpperCase()}`, password: PASSWORD },
      })
      expect(res.statusCode).toBe(409)
      expect(errorCode(res)).toBe('email_taken')
    })

    it.each([
      ['malformed email', { email: 'not-an-email' }, 'invalid_email'],
      ['email with spaces', { email: 'a b@example.com' }, 'invalid_email'],
      ['short password', { password: 'short' }, 'weak_password'],
      ['common password', { password: 'password123' }, 'weak_password'],
      ['one-letter password', { password: 'aaaaaaaaaaaa' }, 'weak_password'],
      ['over-long password', { password: 'x1'.repeat(65) }, 'password_too_long'],
      ['unknown plan', { plan: 'gold' }, 'unknown_plan'],
      ['unknown country', { country: 'XX' }, 'invalid_country'],
      ['missing password', { password: undefined }, 'invalid_request'],
      ['wrong type', { email: 42 }, 'invalid_request'],
      ['string for a boolean elsewhere', { plan: ['basic'] }, 'invalid_request'],
      ['unknown field', { role: 'admin' }, 'invalid_request'],
    ])('rejects %s (400) and creates nothing', async (_name, change, code) => {
      const address = email('bad')
      const res = await t.call('POST', '/api/v1/accounts', {
        body: { email: address, password: PASSWORD, ...change },
      })
      expect(res.statusCode).toBe(400)
      expect(errorCode(res)).toBe(code)
      if (code === 'weak_password') expect(res.json().error.message).toMatch(/at least 8|easy to guess/)
      // Nothing was written: the same email signs up cleanly afterwards.
      const clean = await t.call('POST', '/api/v1/accounts', { body: { email: address, password: PASSWORD } })
      if (!('email' in change)) expect(clean.statusCode).toBe(201)
    })

    it('lists the plans on offer, kept as data', async () => {
      const plans = (await t.call('GET', '/api/v1/plans')).json().plans
      expect(plans.map((p: { id: string }) => p.id)).toEqual(['basic', 'standard', 'premium'])
      expect(plans[2]).toMatchObject({ maxStreams: 4, maxHeight: 2160, currency: 'USD' })
    })

    it('without a plan, the account is entitled to nothing playable', async () => {
      const res = await t.call('POST', '/api/v1/accounts', { body: { email: email(), password: PASSWORD } })
      const token = res.json().tokens.accessToken
      const account = (await t.call('GET', '/api/v1/account', { token })).json()
      expect(account.subscription).toBeNull()
      expect(account.entitlements).toEqual({ active: false, maxStreams: 0, maxHeight: 0 })
    })
  })

  describe('sessions and tokens', () => {
    it('logs in with the right password only', async () => {
      const user = await signUp()
      const wrong = await t.call('POST', '/api/v1/sessions', {
        body: { email: user.email, password: 'wrong password!' },
      })
      expect(wrong.statusCode).toBe(401)
      expect(errorCode(wrong)).toBe('invalid_credentials')
      const unknown = await t.call('POST', '/api/v1/sessions', {
        body: { email: email('nobody'), password: PASSWORD },
      })
      expect(errorCode(unknown)).toBe('invalid_credentials')
      const ok = await t.call('POST', '/api/v1/sessions', {
        body: { email: user.email.toUpperCase(), password: PASSWORD },
      })
      expect(ok.statusCode).toBe(201)
      expect((await t.call('GET', '/api/v1/account', { token: ok.json().accessToken })).statusCode).toBe(200)
    })

    it('refuses missing, tampered, alg:none, foreign-key and expired tokens (401)', async () => {
      const { accessToken, accountId, sessionId } = await signUp()
      const get = (token?: string) => t.call('GET', '/api/v1/account', { token })
      expect(errorCode(await get())).toBe('missing_token')
      const [h, p, s] = accessToken.split('.')
      const forged = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(p ?? '', 'base64url').toString()), role: 'admin' }),
      ).toString('base64url')
      expect(errorCode(await get(`${h}.${forged}.${s}`))).toBe('invalid_token')
      const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`
      expect(errorCode(await get(none))).toBe('invalid_token')
      expect((await get('garbage')).statusCode).toBe(401)
      const claims = {
        sid: sessionId,
        role: 'member',
        country: 'US',
        ent: { active: true, maxStreams: 4, maxHeight: 2160 },
      }
      const otherKey = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(accountId)
        .setIssuer('reel')
        .setAudience('reel-api')
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode('another-secret-another-secret-another-secret'))
      expect(errorCode(await get(otherKey))).toBe('invalid_token')
      const expired = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(accountId)
        .setIssuer('reel')
        .setAudience('reel-api')
        .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
        .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
        .sign(new TextEncoder().encode('test-secret-test-secret-test-secret-0123456789'))
      expect(errorCode(await get(expired))).toBe('token_expired')
    })

    it('rotates refresh tokens; a reused one revokes the whole session family', async () => {
      const user = await signUp()
      const first = await t.call('POST', '/api/v1/sessions/refresh', {
        body: { refreshToken: user.refreshToken },
      })
      expect(first.statusCode).toBe(200)
      const next = first.json()
      expect(next.refreshToken).not.toBe(user.refreshToken)
      expect(next.sessionId).toBe(user.sessionId)
      // Past the grace for lost answers, a spent token coming back can only be a copy.
      t.clock.advance(31_000)
      const reused = await t.call('POST', '/api/v1/sessions/refresh', {
        body: { refreshToken: user.refreshToken },
      })
      expect(reused.statusCode).toBe(401)
      expect(errorCode(reused)).toBe('refresh_token_reused')
      const successor = await t.call('POST', '/api/v1/sessions/refresh', {
        body: { refreshToken: next.refreshToken },
      })
      expect(successor.statusCode).toBe(401)
      const access = await t.call('GET', '/api/v1/account', { token: next.accessToken })
      expect(errorCode(access)).toBe('session_revoked')
      const bogus = await t.call('POST', '/api/v1/sessions/refresh', {
        body: { refreshToken: 'x'.repeat(43) },
      })
      expect(errorCode(bogus)).toBe('invalid_refresh_token')
    })

    it("keeps the web app's refresh token in an httpOnly cookie, refreshed only with the CSRF header", async () => {
      const user = await signUp()
      const web = { 'x-reel-client': 'web' }
      const login = await t.call('POST', '/api/v1/sessions', {
        body: { email: user.email, password: PASSWORD },
        headers: web,
      })
      expect(login.statusCode).toBe(201)
      expect(login.json().refreshToken).toBe('')
      const setCookie = String(login.headers['set-cookie'])
      expect(setCookie).toMatch(/^reel_refresh=[^;]+;/)
      expect(setCookie).toContain('HttpOnly')
      expect(setCookie).toContain('SameSite=Strict')
      expect(setCookie).toContain('Path=/api/v1/sessions')
      const cookie = setCookie.split(';')[0] ?? ''
      const noCsrf = await t.call('POST', '/api/v1/sessions/refresh', {
        headers: { ...web, cookie },
        body: {},
      })
      expect(noCsrf.statusCode).toBe(403)
      expect(errorCode(noCsrf)).toBe('csrf_check_failed')
      const refreshed = await t.call('POST', '/api/v1/sessions/refresh', {
        headers: { ...web, cookie, 'x-reel-csrf': '1' },
        body: {},
      })
      expect(refreshed.statusCode, refreshed.body).toBe(200)
      expect(
        (await t.call('GET', '/api/v1/account', { token: refreshed.json().accessToken })).statusCode,
      ).toBe(200)
      expect(String(refreshed.headers['set-cookie']).split(';')[0]).not.toBe(cookie)
      const newer = String(refreshed.headers['set-cookie']).split(';')[0] ?? ''
      const onward = await t.call('POST', '/api/v1/sessions/refresh', {
        headers: { ...web, cookie: newer, 'x-reel-csrf': '1' },
        body: {},
      })
      expect(onward.statusCode).toBe(200)
      const replay = await t.call('POST', '/api/v1/sessions/refresh', {
        headers: { ...web, cookie, 'x-reel-csrf': '1' },
        body: {},
      })
      expect(errorCode(replay)).toBe('refresh_token_reused')
      const none = await t.call('POST', '/api/v1/sessions/refresh', {
        headers: { ...web, 'x-reel-csrf': '1' },
        body: {},
      })
      expect(errorCode(none)).toBe('invalid_refresh_token')
    })

    it('a spent token whose answer was lost works once more soon after; replayed after a later token was used, it revokes', async () => {
      // The client never saw `lost` (it navigated away) and sends its old token again: `lost` is
      // retired and `retry` issued. If `lost` turns up after all (two answers, the earlier kept),
      // it still works while no later token has been used.
      const user = await signUp()
      const lost = await refresh(user.refreshToken)
      expect(lost.statusCode).toBe(200)
      const retry = await refresh(user.refreshToken)
      expect(retry.statusCode).toBe(200)
      expect((await refresh(lost.json().refreshToken)).statusCode).toBe(200)
      // Once a later token was used, the retired one coming back is a copy.
      const other = await signUp()
      const lost2 = await refresh(other.refreshToken)
      const retry2 = await refresh(other.refreshToken)
      expect((await refresh(retry2.json().refreshToken)).statusCode).toBe(200)
      expect(errorCode(await refresh(lost2.json().refreshToken))).toBe('refresh_token_reused')
      // And a spent token replayed after its successor was used revokes the session.
      const fresh = await signUp()
      const second = await refresh(fresh.refreshToken)
      expect((await refresh(second.json().refreshToken)).statusCode).toBe(200)
      const replay = await refresh(fresh.refreshToken)
      expect(errorCode(replay)).toBe('refresh_token_reused')
      const after = await t.call('GET', '/api/v1/account', { token: second.json().accessToken })
      expect(errorCode(after)).toBe('session_revoked')
    })

    it('refreshes racing with one token (two tabs, a reload) all succeed and keep the session', async () => {
      for (let round = 0; round < 5; round++) {
        const fresh = await signUp()
        const answers = await Promise.all(Array.from({ length: 3 }, () => refresh(fresh.refreshToken)))
        expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200])
        const last = answers[2]?.json()
        expect((await t.call('GET', '/api/v1/account', { token: last.accessToken })).statusCode).toBe(200)
        expect((await refresh(last.refreshToken)).statusCode).toBe(200)
      }
    })

    it('keeps the newest spent refresh tokens of a session, not every one it ever had', async () => {
      const user = await signUp()
      const spent: string[] = [user.refreshToken]
      let current = user.refreshToken
      for (let i = 0; i < KEPT_REFRESH_TOKENS + 5; i++) {
        t.clock.advance(1000)
        const next = await refresh(current)
        expect(next.statusCode).toBe(200)
        current = next.json().refreshToken
        spent.push(current)
      }
      const rows = await t.reel.ports.db
        .tables<{ accounts_refresh_tokens: { session_id: string } }>()
        .selectFrom('accounts_refresh_tokens')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('session_id', '=', user.sessionId)
        .executeTakeFirstOrThrow()
      expect(Number(rows.n)).toBe(KEPT_REFRESH_TOKENS)
      t.clock.advance(31_000)
      // The first one is forgotten: not known, and the session goes on.
      expect(errorCode(await refresh(spent[0] ?? ''))).toBe('invalid_refresh_token')
      expect((await refresh(current)).statusCode).toBe(200)
      // One still kept coming back past the grace is a copy, as ever: the session ends.
      expect(errorCode(await refresh(spent[spent.length - 3] ?? ''))).toBe('refresh_token_reused')
    })

    it('logs out one device, then every device', async () => {
      const user = await signUp()
      const second = (
        await t.call('POST', '/api/v1/sessions', { body: { email: user.email, password: PASSWORD } })
      ).json()
      const third = (
        await t.call('POST', '/api/v1/sessions', { body: { email: user.email, password: PASSWORD } })
      ).json()
      const sessions = (await t.call('GET', '/api/v1/sessions', { token: second.accessToken })).json()
        .sessions
      expect(sessions).toHaveLength(3)
      expect(sessions.filter((s: { current: boolean }) => s.current)).toHaveLength(1)
      expect(
        (await t.call('DELETE', '/api/v1/sessions/current', { token: user.accessToken })).statusCode,
      ).toBe(204)
      expect((await t.call('GET', '/api/v1/account', { token: user.accessToken })).statusCode).toBe(401)
      expect((await t.call('GET', '/api/v1/account', { token: second.accessToken })).statusCode).toBe(200)
      const everywhere = await t.call('DELETE', '/api/v1/sessions', { token: second.accessToken })
      expect(everywhere.json()).toEqual({ revoked: 2 })
      expect((await t.call('GET', '/api/v1/account', { token: third.accessToken })).statusCode).toBe(401)
      const refresh = await t.call('POST', '/api/v1/sessions/refresh', {
        body: { refreshToken: third.refreshToken },
      })
      expect(refresh.statusCode).toBe(401)
    })

    it('rate limits failed logins per account, whatever the address (429 with retry-after)', async () => {
      const user = await signUp()
      for (let i = 0; i < 5; i++) {
        const res = await t.call('POST', '/api/v1/sessions', {
          body: { email: user.email, password: `wrong-${i}-password` },
          address: `10.1.0.${i}`,
        })
        expect(res.statusCode).toBe(401)
      }
      const blocked = await t.call('POST', '/api/v1/sessions', {
        body: { email: user.email, password: PASSWORD },
        address: '10.1.0.99',
      })
      expect(blocked.statusCode).toBe(429)
      expect(errorCode(blocked)).toBe('too_many_login_attempts')
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0)
    })

    it('rate limits attempts per client address', async () => {
      const address = '10.2.0.1'
      let last = 0
      for (let i = 0; i < 41; i++) {
        last = (
          await t.call('POST', '/api/v1/sessions', {
            body: { email: email('spray'), password: 'nope nope nope' },
            address,
          })
        ).statusCode
      }
      expect(last).toBe(429)
      const elsewhere = await t.call('POST', '/api/v1/sessions', {
        body: { email: email('spray'), password: 'nope nope nope' },
        address: '10.2.0.2',
      })
      expect(elsewhere.statusCode).toBe(401)
    })
  })

  describe('profiles', () => {
    it('keeps one to five profiles with unique names', async () => {
      const { accessToken: token } = await signUp()
      for (const name of ['Anna', 'Ben', 'Cleo', 'Dev']) {
        const res = await t.call('POST', '/api/v1/profiles', { token, body: { name } })
        expect(res.statusCode).toBe(201)
      }
      const sixth = await t.call('POST', '/api/v1/profiles', { token, body: { name: 'Eve' } })
      expect(sixth.statusCode).toBe(409)
      expect(errorCode(sixth)).toBe('profile_limit')
      const profiles = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles
      expect(profiles).toHaveLength(5)
    })

    it('refuses duplicate (case-insensitive), empty, over-long and control-character names', async () => {
      const { accessToken: token } = await signUp()
      await t.call('POST', '/api/v1/profiles', { token, body: { name: 'Zoë' } })
      const dup = await t.call('POST', '/api/v1/profiles', { token, body: { name: ' ZOË ' } })
      expect(dup.statusCode).toBe(409)
      expect(errorCode(dup)).toBe('profile_name_taken')
      for (const name of ['', '   ', 'x'.repeat(10_240), 'tab\there']) {
        const res = await t.call('POST', '/api/v1/profiles', { token, body: { name } })
        expect(res.statusCode).toBe(400)
      }
      const huge = await t.call('POST', '/api/v1/profiles', { token, body: { name: 'x'.repeat(10_240) } })
      expect(errorCode(huge)).toBe('invalid_profile_name')
    })

    it('stores unicode and injection strings literally', async () => {
      const { accessToken: token } = await signUp()
      const names = [
        "Robert'); DROP TABLE accounts;--",
        '<script>alert(1)</script>',
        '🎬 Zoë 北京',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a log-injection string, meant literally
        '${jndi:x}',
      ]
      for (const name of names) {
        const res = await t.call('POST', '/api/v1/profiles', { token, body: { name } })
        expect(res.statusCode).toBe(201)
        expect(res.json().name).toBe(name)
      }
      const stored = (await t.call('GET', '/api/v1/profiles', { token }))
        .json()
        .profiles.map((p: { name: string }) => p.name)
      expect(stored).toEqual(expect.arrayContaining(names))
    })

    it('kids profiles are limited to PG; other fields are validated', async () => {
      const { accessToken: token } = await signUp()
      const kids = await t.call('POST', '/api/v1/profiles', { token, body: { name: 'Kiddo', kids: true } })
      expect(kids.json()).toMatchObject({ kids: true, maturityLimit: 'PG' })
      const r = await t.call('POST', '/api/v1/profiles', {
        token,
        body: { name: 'Kid2', kids: true, maturityLimit: 'R' },
      })
      expect(errorCode(r)).toBe('kids_maturity_limit')
      const patch = await t.call('PATCH', `/api/v1/profiles/${kids.json().id}`, {
        token,
        body: { maturityLimit: 'NC-17' },
      })
      expect(errorCode(patch)).toBe('kids_maturity_limit')
      const lang = await t.call('POST', '/api/v1/profiles', {
        token,
        body: { name: 'Lang', language: 'not a language!' },
      })
      expect(errorCode(lang)).toBe('invalid_language')
      const rating = await t.call('POST', '/api/v1/profiles', {
        token,
        body: { name: 'Rt', maturityLimit: 'X' },
      })
      expect(rating.statusCode).toBe(400)
      const ok = await t.call('PATCH', `/api/v1/profiles/${kids.json().id}`, {
        token,
        body: { name: 'Big Kid', kids: false, maturityLimit: 'PG-13', language: 'pt-br', avatar: 'avatar-7' },
      })
      expect(ok.json()).toMatchObject({
        name: 'Big Kid',
        kids: false,
        maturityLimit: 'PG-13',
        language: 'pt-BR',
      })
      const empty = await t.call('PATCH', `/api/v1/profiles/${kids.json().id}`, { token, body: {} })
      expect(empty.statusCode).toBe(400)
    })

    it("another account's profile is 404, never 403", async () => {
      const alice = await signUp()
      const bob = await signUp()
      const aliceProfile = (await t.call('GET', '/api/v1/profiles', { token: alice.accessToken })).json()
        .profiles[0]
      const patch = await t.call('PATCH', `/api/v1/profiles/${aliceProfile.id}`, {
        token: bob.accessToken,
        body: { name: 'Mine now' },
      })
      expect(patch.statusCode).toBe(404)
      expect(errorCode(patch)).toBe('profile_not_found')
      const del = await t.call('DELETE', `/api/v1/profiles/${aliceProfile.id}`, { token: bob.accessToken })
      expect(del.statusCode).toBe(404)
      const still = (await t.call('GET', '/api/v1/profiles', { token: alice.accessToken })).json().profiles[0]
      expect(still.name).toBe(aliceProfile.name)
      const unknown = await t.call('DELETE', '/api/v1/profiles/nope', { token: bob.accessToken })
      expect(unknown.statusCode).toBe(404)
    })

    it('deleting a profile announces accounts.profile.deleted; the last one stays', async () => {
      const { accessToken: token } = await signUp()
      const extra = (await t.call('POST', '/api/v1/profiles', { token, body: { name: 'Temp' } })).json()
      expect((await t.call('DELETE', `/api/v1/profiles/${extra.id}`, { token })).statusCode).toBe(204)
      await vi.waitFor(
        () => expect(deleted.map((e) => (e.data as { profileId: string }).profileId)).toContain(extra.id),
        soon,
      )
      const [last] = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles
      const res = await t.call('DELETE', `/api/v1/profiles/${last.id}`, { token })
      expect(res.statusCode).toBe(409)
      expect(errorCode(res)).toBe('last_profile')
    })
  })

  describe('subscriptions and invoices', () => {
    it('prorates an upgrade and credits a downgrade', async () => {
      const { accessToken: token } = await signUp()
      t.clock.advance(15 * DAY)
      const up = await t.call('PUT', '/api/v1/subscription', { token, body: { plan: 'premium' } })
      expect(up.statusCode).toBe(200)
      const upgrade = up.json()
      expect(upgrade.subscription.plan.id).toBe('premium')
      expect(upgrade.entitlement).toEqual({ active: true, maxStreams: 4, maxHeight: 2160 })
      expect(upgrade.invoice.status).toBe('paid')
      expect(upgrade.invoice.totalMinor).toBeGreaterThan(0)
      expect(upgrade.invoice.totalMinor).toBeLessThan(2299 - 1549)
      expect(upgrade.invoice.lines).toHaveLength(2)
      const down = (await t.call('PUT', '/api/v1/subscription', { token, body: { plan: 'basic' } })).json()
      expect(down.invoice).toBeUndefined()
      expect(down.subscription.creditMinor).toBeGreaterThan(0)
      const account = (await t.call('GET', '/api/v1/account', { token })).json()
      expect(account.entitlements.maxHeight).toBe(720)
      // Every change is announced, keyed by the account, with the entitlement it leaves.
      const accountId = account.account.id
      await vi.waitFor(
        () =>
          expect(
            subscriptionChanges
              .filter((e) => e.key === accountId)
              .map((e) => (e.data as { change: string; entitlement: { maxHeight: number } }).change),
          ).toEqual(['started', 'plan_changed', 'plan_changed']),
        soon,
      )
      const last = subscriptionChanges.filter((e) => e.key === accountId).at(-1)
      expect(last?.data).toMatchObject({ entitlement: { maxHeight: 720 } })
      const invoices = (await t.call('GET', '/api/v1/invoices', { token })).json().invoices
      expect(invoices.map((i: { reason: string }) => i.reason.split('_')[0])).toEqual([
        'proration',
        'subscription',
      ])
      t.clock.advance(30 * DAY)
      await t.reel.use('billing').runCycle()
      const renewal = (await t.call('GET', '/api/v1/invoices', { token })).json().invoices[0]
      expect(renewal.reason).toBe('subscription_cycle')
      expect(renewal.lines[1].description).toMatch(/Credit/)
      expect(renewal.totalMinor).toBe(799 - down.subscription.creditMinor)
    })

    it('cancels at period end, idempotently, and ends then', async () => {
      const { accessToken: token } = await signUp()
      const first = await t.call('POST', '/api/v1/subscription/cancel', { token })
      const second = await t.call('POST', '/api/v1/subscription/cancel', { token })
      expect(first.statusCode).toBe(200)
      expect(second.json()).toEqual(first.json())
      expect(first.json().subscription).toMatchObject({ status: 'active', cancelAtPeriodEnd: true })
      t.clock.advance(32 * DAY)
      await t.reel.use('billing').runCycle()
      const after = (await t.call('GET', '/api/v1/subscription', { token })).json()
      expect(after.subscription.status).toBe('canceled')
      expect(after.entitlement.active).toBe(false)
      const again = await t.call('POST', '/api/v1/subscription/cancel', { token })
      expect(again.json().subscription.status).toBe('canceled')
      const resumed = await t.call('PUT', '/api/v1/subscription', { token, body: { plan: 'basic' } })
      expect(resumed.json().subscription.status).toBe('active')
    })

    it('a declined renewal makes the subscription past_due with a failed invoice; a retry recovers it', async () => {
      const user = await signUp()
      const billing = t.reel.use('billing')
      await billing.setTestOutcome(user.accountId, 'decline')
      t.clock.advance(32 * DAY)
      await billing.runCycle()
      const sub = (await t.call('GET', '/api/v1/subscription', { token: user.accessToken })).json()
      expect(sub.subscription.status).toBe('past_due')
      expect(sub.entitlement.active).toBe(false)
      const [failed] = (await t.call('GET', '/api/v1/invoices', { token: user.accessToken })).json().invoices
      expect(failed).toMatchObject({ status: 'failed', failureReason: 'card_declined', attempts: 1 })
      const change = await t.call('PUT', '/api/v1/subscription', {
        token: user.accessToken,
        body: { plan: 'premium' },
      })
      expect(errorCode(change)).toBe('payment_required')
      await billing.setTestOutcome(user.accountId, 'succeed')
      t.clock.advance(DAY + 1000)
      await billing.runCycle()
      const recovered = (await t.call('GET', '/api/v1/subscription', { token: user.accessToken })).json()
      expect(recovered.subscription.status).toBe('active')
      const [paid] = (await t.call('GET', '/api/v1/invoices', { token: user.accessToken })).json().invoices
      expect(paid).toMatchObject({ id: failed.id, status: 'paid', attempts: 2 })
    })

    it('a declined first payment leaves the account without a subscription, nothing half-made', async () => {
      const user = await signUp({ plan: undefined })
      await t.reel.use('billing').setTestOutcome(user.accountId, 'decline')
      const res = await t.call('PUT', '/api/v1/subscription', {
        token: user.accessToken,
        body: { plan: 'basic' },
      })
      expect(res.statusCode).toBe(402)
      expect(errorCode(res)).toBe('payment_declined')
      const sub = (await t.call('GET', '/api/v1/subscription', { token: user.accessToken })).json()
      expect(sub.subscription).toBeNull()
      const invoices = (await t.call('GET', '/api/v1/invoices', { token: user.accessToken })).json().invoices
      expect(invoices[0].status).toBe('failed')
    })

    it('rejects unknown plans and bad bodies', async () => {
      const { accessToken: token } = await signUp()
      expect(errorCode(await t.call('PUT', '/api/v1/subscription', { token, body: { plan: 'gold' } }))).toBe(
        'unknown_plan',
      )
      expect((await t.call('PUT', '/api/v1/subscription', { token, body: { plan: 7 } })).statusCode).toBe(400)
      expect((await t.call('GET', '/api/v1/invoices?limit=0', { token })).statusCode).toBe(400)
    })

    it('admin routes need the admin role', async () => {
      const member = await signUp()
      const res = await t.call('POST', '/api/v1/admin/billing/cycle', { token: member.accessToken })
      expect(res.statusCode).toBe(403)
      expect(errorCode(res)).toBe('admin_only')
      const adminEmail = email('admin')
      const admin = await t.reel.use('accounts').createAdmin(adminEmail, PASSWORD)
      expect(admin.role).toBe('admin')
      const login = (
        await t.call('POST', '/api/v1/sessions', { body: { email: adminEmail, password: PASSWORD } })
      ).json()
      const ok = await t.call('POST', '/api/v1/admin/billing/cycle', { token: login.accessToken })
      expect(ok.statusCode).toBe(200)
      const outcome = await t.call(
        'PUT',
        `/api/v1/admin/billing/accounts/${member.accountId}/payment-outcome`,
        {
          token: login.accessToken,
          body: { outcome: 'sometimes' },
        },
      )
      expect(outcome.statusCode).toBe(400)
    })
  })

  describe('closing an account', () => {
    it('needs the password, then revokes sessions, deletes profiles through events and keeps invoices', async () => {
      const user = await signUp()
      const token = user.accessToken
      const profile = (await t.call('POST', '/api/v1/profiles', { token, body: { name: 'Second' } })).json()
      const wrong = await t.call('DELETE', '/api/v1/account', {
        token,
        body: { password: 'not my password' },
      })
      expect(wrong.statusCode).toBe(401)
      expect(
        (await t.call('DELETE', '/api/v1/account', { token, body: { password: PASSWORD } })).statusCode,
      ).toBe(204)
      expect((await t.call('GET', '/api/v1/account', { token })).statusCode).toBe(401)
      const login = await t.call('POST', '/api/v1/sessions', {
        body: { email: user.email, password: PASSWORD },
      })
      expect(login.statusCode).toBe(401)
      await vi.waitFor(
        () => expect(deleted.map((e) => (e.data as { profileId: string }).profileId)).toContain(profile.id),
        soon,
      )
      const billing = t.reel.use('billing')
      await vi.waitFor(
        async () => expect((await billing.subscription(user.accountId))?.status).toBe('canceled'),
        soon,
      )
      expect(await billing.invoices(user.accountId, 10)).toHaveLength(1)
      const again = await t.call('POST', '/api/v1/accounts', {
        body: { email: user.email, password: PASSWORD },
      })
      expect(again.statusCode).toBe(201)
    })
  })
})

describe.skipIf(!hasPostgres() || !hasRedis())('two processes sharing PostgreSQL and Redis', () => {
  let a: TestReel
  let b: TestReel
  beforeAll(async () => {
    const shared = {
      REEL_DATABASE_SCHEMA: uniqueName('reel'),
      REEL_REDIS_URLS: engines.redisUrls.join(','),
      REEL_CACHE_PREFIX: `${uniqueName('test')}:`,
      REEL_LOGIN_MAX_FAILURES: '3',
    }
    a = await startReel('postgres', shared)
    b = await startReel('postgres', shared)
  })
  afterAll(async () => {
    await a.stop()
    await b.stop()
  })

  it('counts failed logins, revocations and plan changes across processes', async () => {
    const address = email('shared')
    const signUp = await a.call('POST', '/api/v1/accounts', {
      body: { email: address, password: PASSWORD, plan: 'basic' },
    })
    const token = signUp.json().tokens.accessToken
    for (const t of [a, b, a]) {
      const res = await t.call('POST', '/api/v1/sessions', {
        body: { email: address, password: 'not the password' },
      })
      expect(res.statusCode).toBe(401)
    }
    const blocked = await b.call('POST', '/api/v1/sessions', { body: { email: address, password: PASSWORD } })
    expect(blocked.statusCode).toBe(429)

    expect((await b.call('GET', '/api/v1/account', { token })).json().entitlements.maxHeight).toBe(720)
    await a.call('PUT', '/api/v1/subscription', { token, body: { plan: 'premium' } })
    expect((await b.call('GET', '/api/v1/account', { token })).json().entitlements.maxHeight).toBe(2160)

    expect((await a.call('DELETE', '/api/v1/sessions/current', { token })).statusCode).toBe(204)
    const after = await b.call('GET', '/api/v1/account', { token })
    expect(after.statusCode).toBe(401)
    expect(after.json().error.code).toBe('session_revoked')
  })
})

describe('trials', () => {
  let t: TestReel
  beforeAll(async () => {
    t = await startReel('sqlite', { REEL_TRIAL_DAYS: '7' })
  })
  afterAll(() => t.stop())

  it('a trial is active without a charge; the first invoice comes when it ends; one trial per account', async () => {
    const res = await t.call('POST', '/api/v1/accounts', {
      body: { email: email('trial'), password: PASSWORD, plan: 'basic' },
    })
    const { tokens, subscription } = res.json()
    expect(subscription.status).toBe('trialing')
    const token = tokens.accessToken
    expect((await t.call('GET', '/api/v1/account', { token })).json().entitlements.active).toBe(true)
    expect((await t.call('GET', '/api/v1/invoices', { token })).json().invoices).toEqual([])
    t.clock.advance(7 * DAY + 1000)
    expect((await t.reel.use('billing').runCycle()).renewed).toBeGreaterThanOrEqual(1)
    const sub = (await t.call('GET', '/api/v1/subscription', { token })).json().subscription
    expect(sub.status).toBe('active')
    const [invoice] = (await t.call('GET', '/api/v1/invoices', { token })).json().invoices
    expect(invoice).toMatchObject({ status: 'paid', totalMinor: 799, currency: 'USD' })
    await t.call('POST', '/api/v1/subscription/cancel', { token })
    t.clock.advance(40 * DAY)
    await t.reel.use('billing').runCycle()
    const again = (await t.call('PUT', '/api/v1/subscription', { token, body: { plan: 'basic' } })).json()
    expect(again.subscription.status).toBe('active')
    expect(again.invoice.status).toBe('paid')
  })
})

describe.each(kinds)('ended sessions on %s', (kind) => {
  let t: TestReel
  beforeAll(async () => {
    t = await startReel(kind)
  })
  afterAll(() => t?.stop())

  it('are forgotten 30 days after they end, with their refresh tokens; live ones stay', async () => {
    const signUp = async () => {
      const res = await t.call('POST', '/api/v1/accounts', {
        body: { email: email(), password: PASSWORD, plan: 'basic' },
      })
      expect(res.statusCode).toBe(201)
      return res.json().tokens as { accessToken: string; refreshToken: string; sessionId: string }
    }
    const gone = await signUp()
    const idle = await signUp()
    const live = await signUp()
    expect((await t.call('DELETE', '/api/v1/sessions/current', { token: gone.accessToken })).statusCode).toBe(
      204,
    )
    // 61 days: `idle` expired after 30 unused days, `live` refreshed every 20.
    let refreshToken = live.refreshToken
    for (const days of [20, 20, 21]) {
      t.clock.advance(days * 24 * 3600_000)
      const res = await t.call('POST', '/api/v1/sessions/refresh', { body: { refreshToken } })
      expect(res.statusCode).toBe(200)
      refreshToken = res.json().refreshToken
    }
    const db = t.reel.ports.db.tables<{
      accounts_sessions: { id: string }
      accounts_refresh_tokens: { session_id: string }
    }>()
    const ids = [gone.sessionId, idle.sessionId, live.sessionId]
    const sessionsLeft = async () =>
      (await db.selectFrom('accounts_sessions').select('id').where('id', 'in', ids).execute())
        .map((r) => r.id)
        .sort()
    const tokensLeft = async () => [
      ...new Set(
        (
          await db
            .selectFrom('accounts_refresh_tokens')
            .select('session_id')
            .where('session_id', 'in', ids)
            .execute()
        ).map((r) => r.session_id),
      ),
    ]
    expect(await sessionsLeft()).toEqual([...ids].sort())
    expect(await t.reel.use('accounts').pruneEndedSessions()).toBe(2)
    expect(await sessionsLeft()).toEqual([live.sessionId])
    expect(await tokensLeft()).toEqual([live.sessionId])
    const still = await t.call('POST', '/api/v1/sessions/refresh', { body: { refreshToken } })
    expect(still.statusCode).toBe(200)
    expect(await t.reel.use('accounts').pruneEndedSessions()).toBe(0)
  })
})
