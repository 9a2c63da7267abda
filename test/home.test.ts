import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GZIP_MIN_BYTES } from '../src/platform/http/encoding.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'

describe('the home page', () => {
  let t: TestReel
  let admin: string
  let member: { token: string; profileId: string }
  let seq = 0

  async function title(over: Record<string, unknown>) {
    const res = await t.call('POST', '/api/v1/admin/titles', {
      token: admin,
      body: {
        type: 'movie',
        title: `Home movie ${seq++}`,
        maturityRating: 'PG',
        year: 2020,
        genres: ['drama'],
        availability: [{ region: '*' }],
        ...over,
      },
    })
    expect(res.statusCode, res.body).toBe(201)
    const created = res.json() as { id: string; title: string }
    // The home page's rows come from reco's copy of the catalog, fed by catalog events: wait for it.
    const deadline = Date.now() + 10_000
    while (!(await t.reel.use('reco').titles.fresh(true)).get(created.id)) {
      if (Date.now() > deadline) throw new Error('reco did not see the new title')
      await new Promise((r) => setTimeout(r, 20))
    }
    return created
  }

  beforeAll(async () => {
    t = await startReel('sqlite')
    await t.reel.use('accounts').createAdmin('home-admin@example.com', PASSWORD)
    admin = (
      await t.call('POST', '/api/v1/sessions', {
        body: { email: 'home-admin@example.com', password: PASSWORD },
      })
    ).json().accessToken
    const signUp = await t.call('POST', '/api/v1/accounts', {
      body: { email: 'home-member@example.com', password: PASSWORD, plan: 'basic', country: 'DE' },
    })
    const token = signUp.json().tokens.accessToken
    const profiles = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles
    member = { token, profileId: profiles[0].id }
  })
  afterAll(() => t.stop())

  const home = (token: string, profileId: string) =>
    t.call('GET', `/api/v1/profiles/${profileId}/home`, { token })

  it('shows new titles and genre rows, newest first, only where they may be shown', async () => {
    const first = await title({ genres: ['comedy'] })
    const second = await title({ genres: ['comedy', 'drama'] })
    const usOnly = await title({ availability: [{ region: 'US' }] })
    const res = await home(member.token, member.profileId)
    expect(res.statusCode).toBe(200)
    const rows = res.json().rows as {
      id: string
      kind: string
      title: string
      items: { titleId: string }[]
    }[]
    const fresh = rows.find((r) => r.kind === 'new')
    expect(fresh?.title).toBe('New on reel')
    const ids = fresh?.items.map((i) => i.titleId) ?? []
    expect(ids.indexOf(second.id)).toBeLessThan(ids.indexOf(first.id))
    expect(ids).not.toContain(usOnly.id)
    const comedy = rows.find((r) => r.kind === 'genre' && r.title === 'Comedy')
    expect(comedy?.items.map((i) => i.titleId)).toEqual(expect.arrayContaining([first.id, second.id]))
    for (const row of rows) expect(row.items.length).toBeGreaterThan(0)
  })

  it('keeps a kids profile within its maturity limit', async () => {
    const adult = await title({ maturityRating: 'R', genres: ['horror'] })
    const kids = await t.call('POST', '/api/v1/profiles', {
      token: member.token,
      body: { name: 'Little', kids: true },
    })
    const rows = (await home(member.token, kids.json().id)).json().rows as { items: { titleId: string }[] }[]
    expect(rows.flatMap((r) => r.items.map((i) => i.titleId))).not.toContain(adult.id)
    const grown = (await home(member.token, member.profileId)).json().rows as {
      items: { titleId: string }[]
    }[]
    expect(grown.flatMap((r) => r.items.map((i) => i.titleId))).toContain(adult.id)
  })

  it("answers 404 for another account's profile and 401 without a token", async () => {
    const other = await t.call('POST', '/api/v1/accounts', {
      body: { email: 'home-other@example.com', password: PASSWORD },
    })
    const res = await home(other.json().tokens.accessToken, member.profileId)
    expect(res.statusCode).toBe(404)
    expect(res.json().error.code).toBe('profile_not_found')
    expect((await t.call('GET', `/api/v1/profiles/${member.profileId}/home`)).statusCode).toBe(401)
  })

  it('sends the page gzip-compressed to a client that takes it, the same JSON either way', async () => {
    for (let i = 0; i < 12; i++) await title({ title: `A long enough title to fill the page, number ${i}` })
    const plain = await home(member.token, member.profileId)
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.rawPayload.length).toBeGreaterThanOrEqual(GZIP_MIN_BYTES)
    for (const accept of ['gzip', 'br;q=1.0, gzip;q=0.8, *;q=0.1', '*']) {
      const res = await t.call('GET', `/api/v1/profiles/${member.profileId}/home`, {
        token: member.token,
        headers: { 'accept-encoding': accept },
      })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-encoding'], accept).toBe('gzip')
      expect(res.headers.vary).toMatch(/accept-encoding/i)
      expect(res.rawPayload.length).toBeLessThan(plain.rawPayload.length)
      expect(JSON.parse(gunzipSync(res.rawPayload).toString('utf8'))).toEqual(plain.json())
    }
    for (const accept of ['gzip;q=0', 'identity', 'br, *;q=0']) {
      const res = await t.call('GET', `/api/v1/profiles/${member.profileId}/home`, {
        token: member.token,
        headers: { 'accept-encoding': accept },
      })
      expect(res.headers['content-encoding'], accept).toBeUndefined()
      expect(res.json()).toEqual(plain.json())
    }
  })
})
