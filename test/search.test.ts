import fs from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../src/platform/log.js'
import { SearchService } from '../src/services/search/service.js'
import { SearchStore } from '../src/services/search/store.js'
import { hasPostgres } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'
const DAY = 24 * 3600_000
let seq = 0
const email = (tag = 'user') => `${tag}.${process.pid}.${Date.now()}.${seq++}@example.com`
const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

type Json = Record<string, unknown>
interface Hit {
  id: string
  title: string
  type: string
  year: number | null
  genres: string[]
  highlight: Record<string, string>
  score: number
}
const code = (res: { json: () => { error: { code: string } } }) => res.json().error.code

describe.each(kinds)('search on %s', (kind) => {
  let t: TestReel
  let admin: string
  let member: string
  let german: string
  const ids: Record<string, string> = {}

  async function signUp(country: string): Promise<string> {
    const res = await t.call('POST', '/api/v1/accounts', {
      body: { email: email(), password: PASSWORD, plan: 'standard', country },
    })
    expect(res.statusCode, res.body).toBe(201)
    return res.json().tokens.accessToken
  }

  /** Waits until this replica's index has applied the given version of a title. */
  async function indexed(id: string, version: number): Promise<void> {
    const search = t.reel.use('search')
    for (let i = 0; i < 300 && (search.indexedVersion(id) ?? 0) < version; i++)
      await new Promise((r) => setTimeout(r, 10))
    expect(search.indexedVersion(id)).toBeGreaterThanOrEqual(version)
  }

  async function create(name: string, body: Json): Promise<string> {
    const res = await t.call('POST', '/api/v1/admin/titles', {
      token: admin,
      body: { type: 'movie', maturityRating: 'PG', availability: [{ region: '*' }], ...body },
    })
    expect(res.statusCode, res.body).toBe(201)
    ids[name] = res.json().id
    await indexed(res.json().id, 1)
    return res.json().id
  }

  async function search(query: string, token = member): Promise<{ hits: Hit[]; total: number } & Json> {
    const res = await t.call('GET', `/api/v1/search?${query}`, { token })
    expect(res.statusCode, res.body).toBe(200)
    return res.json()
  }
  const titles = async (query: string, token = member) =>
    (await search(query, token)).hits.map((h) => h.title)

  beforeAll(async () => {
    t = await startReel(kind)
    const adminEmail = email('admin')
    await t.reel.use('accounts').createAdmin(adminEmail, PASSWORD)
    admin = (
      await t.call('POST', '/api/v1/sessions', { body: { email: adminEmail, password: PASSWORD } })
    ).json().accessToken
    member = await signUp('US')
    german = await signUp('DE')
    const keanu = { name: 'Keanu Reeves', role: 'cast' }
    await create('amelie', {
      title: 'Amélie',
      year: 2001,
      genres: ['comedy', 'romance'],
      originalLanguage: 'fr',
      maturityRating: 'R',
      credits: [{ name: 'Audrey Tautou', role: 'cast' }],
      popularity: 70,
    })
    await create('matrix', {
      title: 'The Matrix',
      year: 1999,
      genres: ['sci-fi', 'action'],
      originalLanguage: 'en',
      maturityRating: 'R',
      credits: [keanu, { name: 'Lana Wachowski', role: 'director' }],
      popularity: 100,
    })
    await create('reloaded', {
      title: 'The Matrix Reloaded',
      year: 2003,
      genres: ['sci-fi'],
      credits: [keanu],
      popularity: 50,
    })
    await create('matrix-doc', { title: 'Matrix', year: 2015, genres: ['documentary'], popularity: 1 })
    await create('interstellar', {
      title: 'Interstellar',
      year: 2014,
      genres: ['sci-fi', 'drama'],
      tags: ['wormhole', 'space travel'],
      maturityRating: 'PG-13',
      synopsis: 'Explorers travel through a wormhole in space to ensure humanity’s survival.',
      popularity: 90,
    })
    await create('alien', {
      title: 'Alien',
      year: 1979,
      genres: ['horror', 'sci-fi'],
      maturityRating: 'R',
      popularity: 80,
    })
    await create('aliens', {
      title: 'Aliens',
      year: 1986,
      genres: ['horror', 'sci-fi'],
      maturityRating: 'R',
      popularity: 75,
    })
    await create('toy', {
      title: 'Toy Story',
      year: 1995,
      genres: ['animation', 'family'],
      maturityRating: 'G',
      popularity: 60,
    })
    await create('tokyo', {
      title: '東京物語',
      year: 1953,
      genres: ['drama'],
      originalLanguage: 'ja',
      popularity: 10,
    })
    await create('berlin', {
      title: 'Berlin Nights',
      year: 2011,
      genres: ['drama'],
      availability: [{ region: 'DE' }],
    })
    await create('future', {
      title: 'Future Release',
      availability: [{ region: '*', startsAt: new Date(t.clock.now + 10 * DAY).toISOString() }],
    })
    await create('echo-low', { title: 'Echoes', year: 2000, popularity: 10 })
    await create('echo-high', { title: 'Echoes', year: 2001, popularity: 90 })
    await create('reeves-title', { title: 'Reeves Road Trip', popularity: 1 })
    await create('war-genre', { title: 'Trenches', genres: ['war'], popularity: 1 })
    await create('war-keyword', { title: 'Homefront', tags: ['war'], popularity: 50 })
    await create('heist-keyword', { title: 'The Vault', tags: ['heist'], popularity: 1 })
    await create('heist-synopsis', { title: 'Night Job', synopsis: 'A heist goes wrong.', popularity: 50 })
    await create('series', {
      type: 'series',
      title: 'Alien Worlds',
      year: 2020,
      genres: ['documentary'],
      popularity: 5,
    })
  })
  afterAll(() => t.stop())

  describe('matching', () => {
    it('matches the word being typed as a prefix, and only the last word', async () => {
      expect(await titles('q=inters')).toEqual(['Interstellar'])
      expect(await titles('q=the%20mat')).toEqual(['The Matrix', 'The Matrix Reloaded'])
      expect(await titles('q=mat%20reloaded')).toEqual([])
      // A space after the word says it is complete.
      expect(await titles('q=inters%20')).toEqual([])
    })

    it('forgives 1 typo from 5 letters and 2 from 9, not more', async () => {
      expect(await titles('q=alixn%20')).toContain('Alien')
      expect(await titles('q=alen%20')).toEqual([])
      expect(await titles('q=reloadex%20')).toEqual(['The Matrix Reloaded'])
      expect(await titles('q=relaoded%20')).toEqual([])
      expect(await titles('q=intersteller%20')).toEqual(['Interstellar'])
      expect(await titles('q=intrestellar%20')).toEqual(['Interstellar'])
      expect(await titles('q=intrestelalr%20')).toEqual([])
    })

    it('ignores accents and case', async () => {
      expect(await titles('q=amelie')).toEqual(['Amélie'])
      expect(await titles('q=AM%C3%89LIE')).toEqual(['Amélie'])
      expect((await search('q=amelie%20')).hits[0]?.highlight.title).toBe('<mark>Amélie</mark>')
    })

    it('finds people, genres, keywords and synopsis, weighted in that order after titles', async () => {
      const reeves = await titles('q=reeves%20')
      expect(reeves[0]).toBe('Reeves Road Trip')
      expect(reeves.slice(1).sort()).toEqual(['The Matrix', 'The Matrix Reloaded'])
      expect(await titles('q=war%20')).toEqual(['Trenches', 'Homefront'])
      expect(await titles('q=heist%20')).toEqual(['The Vault', 'Night Job'])
      expect(await titles('q=wormhole')).toEqual(['Interstellar'])
      const hit = (await search('q=keanu%20')).hits[0]
      expect(hit?.highlight.people).toBe('<mark>Keanu</mark> Reeves')
    })

    it('puts the exact title first, then relevance, then popularity', async () => {
      expect(await titles('q=matrix%20')).toEqual(['Matrix', 'The Matrix', 'The Matrix Reloaded'])
      expect(await titles('q=echoes%20')).toEqual(['Echoes', 'Echoes'])
      expect((await search('q=echoes%20')).hits.map((h) => h.id)).toEqual([ids['echo-high'], ids['echo-low']])
      // "aliens" is one typo away from "alien": found, after the exact title.
      const alien = await titles('q=alien%20')
      expect(alien[0]).toBe('Alien')
      expect(alien.slice(1).sort()).toEqual(['Alien Worlds', 'Aliens'])
    })

    it('highlights only the typed part of a completed word', async () => {
      const [hit] = (await search('q=inters')).hits
      expect(hit?.highlight.title).toBe('<mark>Inters</mark>tellar')
      expect(hit).toMatchObject({ type: 'movie', year: 2014, genres: ['Sci-Fi', 'Drama'] })
      expect(hit?.score).toBeGreaterThan(0)
    })

    it('expands synonyms, and administrators can change them', async () => {
      expect(await titles('q=science%20fiction%20&type=movie')).toEqual(
        expect.arrayContaining(['The Matrix', 'Interstellar', 'Alien']),
      )
      expect(await titles('q=starship%20')).toEqual([])
      const denied = await t.call('PUT', '/api/v1/admin/search/synonyms', {
        token: member,
        body: { groups: [] },
      })
      expect(denied.statusCode).toBe(403)
      for (const groups of [[['only one']], [['a', 'a']], [['', 'x']], [['x'.repeat(100), 'y']]]) {
        const bad = await t.call('PUT', '/api/v1/admin/search/synonyms', { token: admin, body: { groups } })
        expect([bad.statusCode, code(bad)], JSON.stringify(groups)).toEqual([400, 'invalid_synonyms'])
      }
      const res = await t.call('PUT', '/api/v1/admin/search/synonyms', {
        token: admin,
        body: { groups: [['starship', 'matrix']] },
      })
      expect(res.statusCode, res.body).toBe(200)
      try {
        expect(await titles('q=starship%20')).toContain('The Matrix')
        expect(await titles('q=science%20fiction%20')).toEqual([])
      } finally {
        const defaults = await t.call('PUT', '/api/v1/admin/search/synonyms', {
          token: admin,
          body: { groups: [['sci-fi', 'science fiction', 'scifi']] },
        })
        expect(defaults.statusCode).toBe(200)
      }
    })

    it('finds words of any script', async () => {
      expect(await titles('q=%E6%9D%B1%E4%BA%AC')).toEqual(['東京物語'])
    })
  })

  describe('filters and facets', () => {
    it('filters by genre, year, language and type', async () => {
      expect(await titles('q=alien%20&genre=horror&type=movie')).toEqual(['Alien', 'Aliens'])
      expect(await titles('q=alien%20&genre=documentary')).toEqual(['Alien Worlds'])
      expect(await titles('q=alien&type=series')).toEqual(['Alien Worlds'])
      expect(await titles('q=alien&year=1986')).toEqual(['Aliens'])
      expect(await titles('q=alien&year=1970-1990')).toEqual(['Alien', 'Aliens'])
      expect(await titles('language=fr')).toEqual(['Amélie'])
      expect(await titles('q=the&genre=Sci-Fi&genre=documentary')).toEqual([
        'The Matrix',
        'The Matrix Reloaded',
      ])
    })

    it('counts facets over the hits, each facet ignoring its own filter', async () => {
      const all = await search('q=alien')
      expect(all.total).toBe(3)
      expect(all.facets).toEqual({
        genre: { horror: 2, 'sci-fi': 2, documentary: 1 },
        year: { 1979: 1, 1986: 1, 2020: 1 },
        language: {},
      })
      const horror = await search('q=alien&genre=horror&year=1979')
      expect(horror.total).toBe(1)
      expect(horror.facets).toMatchObject({ genre: { horror: 1, 'sci-fi': 1 }, year: { 1979: 1, 1986: 1 } })
    })

    it('gives a kids profile no R title, and 404 for another account’s profile', async () => {
      const kids = await t.call('POST', '/api/v1/profiles', {
        token: member,
        body: { name: `Kid ${seq++}`, kids: true },
      })
      const profileId = kids.json().id
      expect(await titles('q=alien', member)).toContain('Alien')
      const forKids = await search(`q=alien&profileId=${profileId}`)
      expect(forKids.hits.map((h) => h.title)).toEqual(['Alien Worlds'])
      expect(forKids.total).toBe(1)
      expect(await titles(`profileId=${profileId}&limit=100`)).not.toContain('The Matrix')
      expect(await titles(`profileId=${profileId}&limit=100`)).toContain('Toy Story')
      const suggestions = await t.call('GET', `/api/v1/search/suggest?q=ali&profileId=${profileId}`, {
        token: member,
      })
      expect(suggestions.json().suggestions.map((s: { title: string }) => s.title)).toEqual(['Alien Worlds'])
      const other = await signUp('US')
      for (const url of [
        `/api/v1/search?q=a&profileId=${profileId}`,
        `/api/v1/search/suggest?profileId=${profileId}`,
      ]) {
        const res = await t.call('GET', url, { token: other })
        expect([res.statusCode, code(res)]).toEqual([404, 'profile_not_found'])
      }
    })

    it('never shows a title outside the caller’s region or window', async () => {
      expect(await titles('q=berlin')).toEqual([])
      expect(await titles('q=berlin', german)).toEqual(['Berlin Nights'])
      expect(await titles('limit=100')).not.toContain('Berlin Nights')
      expect(await titles('q=future')).toEqual([])
      t.clock.advance(11 * DAY)
      try {
        expect(await titles('q=future')).toEqual(['Future Release'])
      } finally {
        t.clock.advance(-11 * DAY)
      }
    })
  })

  describe('bad input', () => {
    it('answers an empty query with the most popular titles (and facets); suggest too', async () => {
      const empty = await search('q=')
      expect(empty.hits[0]?.title).toBe('The Matrix')
      expect(empty.total).toBeGreaterThan(15)
      expect(Object.keys((empty.facets as { genre: Json }).genre).length).toBeGreaterThan(3)
      expect((await search('')).total).toBe(empty.total)
      expect((await search('q=%20%20')).total).toBe(empty.total)
      const suggest = await t.call('GET', '/api/v1/search/suggest', { token: member })
      expect(suggest.json().suggestions[0].title).toBe('The Matrix')
    })

    it('answers a one-letter query with completions', async () => {
      const res = await search('q=a')
      expect(res.hits.map((h) => h.title)).toEqual(expect.arrayContaining(['Alien', 'Amélie']))
      const suggest = await t.call('GET', '/api/v1/search/suggest?q=t', { token: member })
      expect(suggest.statusCode).toBe(200)
      expect(suggest.json().suggestions.length).toBeGreaterThan(0)
    })

    it('refuses a query over 256 characters (400 query_too_long)', async () => {
      for (const url of ['/api/v1/search?q=', '/api/v1/search/suggest?q=']) {
        const res = await t.call('GET', `${url}${'a'.repeat(1024)}`, { token: member })
        expect([res.statusCode, code(res)]).toEqual([400, 'query_too_long'])
      }
      expect((await t.call('GET', `/api/v1/search?q=${'é'.repeat(256)}`, { token: member })).statusCode).toBe(
        200,
      )
    })

    it.each([
      ['emoji', '🎬🍿'],
      ['regex metacharacters', '(.*)[a-z]+\\d{2}|^$'],
      ['SQL', "'; DROP TABLE catalog_titles; --"],
      ['quotes and percent', '"%_\\\''],
      ['control characters', '\u0000\u0007\u001b[2J'],
      ['right-to-left text', 'שלום עולם'],
      ['a pasted paragraph', 'word '.repeat(50)],
    ])('answers %s with 200, never 500', async (_name, q) => {
      const res = await t.call('GET', `/api/v1/search?q=${encodeURIComponent(q)}`, { token: member })
      expect(res.statusCode, res.body).toBe(200)
      const suggest = await t.call('GET', `/api/v1/search/suggest?q=${encodeURIComponent(q)}`, {
        token: member,
      })
      expect(suggest.statusCode, suggest.body).toBe(200)
    })

    it('finds nothing for punctuation or emoji alone (unlike an empty query)', async () => {
      expect((await search(`q=${encodeURIComponent('🎬 ?!')}`)).total).toBe(0)
    })

    it('answers limit=0 with counts only and caps a large limit at 100', async () => {
      const counts = await search('q=alien&limit=0')
      expect(counts.hits).toEqual([])
      expect(counts.total).toBe(3)
      expect(counts.nextCursor).toBeNull()
      const big = await search('limit=10000')
      expect(big.hits.length).toBe(big.total)
      expect(big.hits.length).toBeLessThanOrEqual(100)
    })

    it('gives at most 100 hits however large the limit', async () => {
      const records = Array.from({ length: 105 }, (_, i) => ({
        type: 'movie',
        externalId: `many-${kind}-${i}`,
        title: `Zanzibar ${i}`,
        maturityRating: 'PG',
        availability: [{ region: '*' }],
      }))
      const res = await t.call('POST', '/api/v1/admin/titles/import', { token: admin, body: { records } })
      const last = res.json().outcomes[104]
      await indexed(last.id, 1)
      const big = await search('q=zanzibar&limit=10000')
      expect(big.hits).toHaveLength(100)
      expect(big.total).toBe(105)
      expect(big.nextCursor).toEqual(expect.any(String))
      const rest = await search(`q=zanzibar&limit=100&cursor=${big.nextCursor}`)
      expect(rest.hits).toHaveLength(5)
      expect(new Set([...big.hits, ...rest.hits].map((h) => h.id)).size).toBe(105)
      const suggest = await t.call('GET', '/api/v1/search/suggest?q=zanzibar&limit=10000', { token: member })
      expect(suggest.json().suggestions).toHaveLength(20)
    })

    it('pages with a cursor and refuses a malformed one', async () => {
      const all = await titles('q=the&limit=100')
      const paged: string[] = []
      let cursor: string | null = null
      do {
        const after: string = cursor ? `&cursor=${cursor}` : ''
        const page = await search(`q=the&limit=1${after}`)
        paged.push(...page.hits.map((h) => h.title))
        cursor = page.nextCursor as string | null
      } while (cursor)
      expect(paged).toEqual(all)
      for (const bad of [
        'garbage!',
        'bzoxMDAwMDA',
        Buffer.from('o:-1').toString('base64url'),
        'x'.repeat(60),
      ]) {
        const res = await t.call('GET', `/api/v1/search?q=the&cursor=${bad}`, { token: member })
        expect([res.statusCode, code(res)], bad).toEqual([400, 'invalid_cursor'])
      }
    })

    it.each([
      ['genre=telenovela', 'unknown_genre'],
      ['year=last', 'invalid_year'],
      ['year=2000-1990', 'invalid_year'],
      ['language=%3Cscript%3E', 'invalid_language'],
      ['type=episode', 'invalid_request'],
      ['limit=-1', 'invalid_request'],
      ['sort=price', 'invalid_request'],
    ])('refuses an unknown filter value: %s', async (query, expected) => {
      const res = await t.call('GET', `/api/v1/search?q=a&${query}`, { token: member })
      expect([res.statusCode, code(res)]).toEqual([400, expected])
    })

    it('needs a signed-in caller', async () => {
      expect((await t.call('GET', '/api/v1/search?q=a')).statusCode).toBe(401)
      expect((await t.call('GET', '/api/v1/search/suggest?q=a')).statusCode).toBe(401)
    })
  })

  describe('index', () => {
    it('answers a repeated query from its cache: the same JSON but for tookMs, search and suggest alike', async () => {
      await create('repeated', { title: 'Heliotrope Harbour', popularity: 2 })
      for (const path of ['/api/v1/search?q=heliotrope%20harb', '/api/v1/search/suggest?q=heliotr']) {
        const first = await t.call('GET', path, { token: member })
        const again = await t.call('GET', path, { token: member })
        for (const res of [first, again]) {
          expect(res.statusCode, res.body).toBe(200)
          expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
          expect(res.body.endsWith('}')).toBe(true)
          expect(typeof res.json().tookMs).toBe('number')
        }
        const { tookMs: _first, ...answer } = first.json()
        const { tookMs: _again, ...cached } = again.json()
        expect(cached).toEqual(answer)
        expect(JSON.stringify(answer)).toContain('Heliotrope Harbour')
      }
      // Nothing found is an answer too.
      const none = await t.call('GET', '/api/v1/search?q=zzzzqqqq', { token: member })
      expect(none.json()).toMatchObject({ hits: [], total: 0, nextCursor: null })
    })

    it('follows changes and removals from catalog events', async () => {
      const id = await create('changing', { title: 'Quicksilver Dawn', popularity: 3 })
      expect(await titles('q=quicksilver')).toEqual(['Quicksilver Dawn'])
      const patched = await t.call('PATCH', `/api/v1/admin/titles/${id}`, {
        token: admin,
        body: { title: 'Mercury Dusk' },
      })
      expect(patched.statusCode).toBe(200)
      await indexed(id, 2)
      expect(await titles('q=quicksilver')).toEqual([])
      expect(await titles('q=mercury')).toEqual(['Mercury Dusk'])
      await t.reel.use('catalog').setPopularity(id, 5)
      await indexed(id, 3)
      expect(await titles('q=mercury')).toEqual(['Mercury Dusk'])
      expect((await t.call('DELETE', `/api/v1/admin/titles/${id}`, { token: admin })).statusCode).toBe(204)
      await indexed(id, 4)
      expect(await titles('q=mercury')).toEqual([])
    })

    it('rebuilds a replica from the start of the event log, and warm-starts from the snapshot', async () => {
      const live = t.reel.use('search')
      const options = {
        store: new SearchStore(t.reel.ports.db),
        blobs: t.reel.ports.blobs,
        accounts: () => t.reel.use('accounts'),
        log: createLogger('silent'),
        now: () => t.clock.now,
      }
      const empty = new SearchService(options)
      const subscription = await t.reel.ports.bus.subscribe({
        name: `test-replica-${kind}-${seq++}`,
        types: ['catalog.title.upserted', 'catalog.title.removed'],
        startAt: 'all',
        handler: async (e) => empty.apply(e),
      })
      try {
        for (let i = 0; i < 300 && empty.size < live.size; i++) await new Promise((r) => setTimeout(r, 10))
        expect(empty.size).toBe(live.size)
      } finally {
        await subscription.stop()
      }
      // Once the events stop, the replica makes its completion lists ahead of the queries (the same ones).
      await empty.warmedUp()
      expect(empty.completionLists).toBeGreaterThan(0)
      const auth = {
        accountId: 'a',
        sessionId: 's',
        role: 'member' as const,
        country: 'US',
        entitlement: { active: true, maxStreams: 1, maxHeight: 1080 },
      }
      const expected = await live.search(auth, { q: 'matrix ' })
      expect((await empty.search(auth, { q: 'matrix ' })).hits).toEqual(expected.hits)

      expect(await live.saveSnapshot()).toBe(true)
      const warm = new SearchService(options)
      expect(await warm.loadSnapshot()).toBe(true)
      expect(warm.size).toBe(live.size)
      await warm.warmedUp()
      expect(warm.completionLists).toBeGreaterThan(0)
      expect((await warm.search(auth, { q: 'matrix ' })).hits).toEqual(expected.hits)
      for (const q of ['m', 'ma', 'inte', 'the m'])
        expect(await warm.search(auth, { q })).toEqual({
          ...(await live.search(auth, { q })),
          tookMs: expect.any(Number),
        })
      expect((await warm.search(auth, { q: 'intersteller ' })).hits.map((h) => h.title)).toEqual([
        'Interstellar',
      ])
      // Events the snapshot already holds change nothing when replayed.
      const matrix = ids.matrix ?? ''
      expect(warm.indexedVersion(matrix)).toBe(live.indexedVersion(matrix))
      const stale = await t.reel.use('catalog').adminTitle(matrix)
      warm.apply({
        id: 'x',
        type: 'catalog.title.upserted',
        key: matrix,
        time: '',
        data: { title: { ...stale, title: 'Stale', version: 1 } },
      })
      expect((await warm.search(auth, { q: 'stale ' })).total).toBe(0)
      empty.close()
      warm.close()
    })

    it('leaves no bus consumer behind, and a restarted replica reads only the events after its snapshot', async () => {
      const bus = t.reel.ports.bus
      // The running replica reads through an ephemeral consumer: the bus keeps no state for it.
      expect((await bus.consumers()).filter((n) => n.startsWith('search'))).toEqual([])
      const live = t.reel.use('search')
      await create('before-snapshot', { title: 'Harbor Lights' })
      expect(await live.saveSnapshot()).toBe(true)
      const warm = new SearchService({
        store: new SearchStore(t.reel.ports.db),
        blobs: t.reel.ports.blobs,
        accounts: () => t.reel.use('accounts'),
        log: createLogger('silent'),
        busKind: bus.kind,
      })
      expect(await warm.loadSnapshot()).toBe(true)
      // Made from this log: kept.
      await warm.verifySnapshotLog(bus)
      expect(warm.size).toBe(live.size)
      const resume = warm.resumeAt()
      if (resume === 'all') throw new Error('the snapshot recorded no log position')
      const positions: number[] = []
      const reader = await bus.subscribe({
        name: 'test-warm-replica',
        durability: 'ephemeral',
        types: ['catalog.title.upserted', 'catalog.title.removed'],
        startAt: resume,
        handler: async (event, info) => {
          positions.push(info.position)
          await warm.applyDelivered(event, info.position)
        },
      })
      try {
        const id = await create('after-snapshot', { title: 'Lighthouse Keeper' })
        for (let i = 0; i < 300 && warm.indexedVersion(id) === undefined; i++)
          await new Promise((r) => setTimeout(r, 10))
        expect(warm.indexedVersion(id)).toBe(1)
        expect(warm.size).toBe(live.size)
        // Only what came after the snapshot, not the whole log again.
        expect(positions.length).toBeGreaterThan(0)
        expect(positions.every((p) => p > resume.after)).toBe(true)
        expect(positions.length).toBeLessThan(live.size)
      } finally {
        await reader.stop()
      }
      expect((await bus.consumers()).filter((n) => n.includes('warm'))).toEqual([])
      // A snapshot written on another kind of bus gives no position: that replica replays from the start.
      const other = new SearchService({
        store: new SearchStore(t.reel.ports.db),
        blobs: t.reel.ports.blobs,
        accounts: () => t.reel.use('accounts'),
        log: createLogger('silent'),
        busKind: 'some-other-bus',
      })
      expect(await other.loadSnapshot()).toBe(true)
      expect(other.resumeAt()).toBe('all')
    })

    it('rebuilds from the start of the log when the snapshot was made from another log (fresh database, old blob store)', async () => {
      // A snapshot of this reel's index, made far into this reel's log.
      const live = t.reel.use('search')
      await create('old-log', { title: 'Lantern Harbour' })
      await live.saveSnapshot()
      const snapshot = await t.reel.ports.blobs.get('search/titles-index.json')
      const chunks: Buffer[] = []
      for await (const chunk of snapshot.body) chunks.push(Buffer.from(chunk))
      // Another install: a fresh database (a log of its own) whose blob store holds that snapshot.
      const first = await startReel(kind, {}, ['catalog'])
      const env = {
        REEL_DATA_DIR: first.reel.config.dataDir,
        REEL_DATABASE_SCHEMA: first.reel.config.databaseSchema,
      }
      await first.reel.ports.blobs.put('search/titles-index.json', Buffer.concat(chunks), {})
      const catalog = first.reel.use('catalog')
      const fresh = await catalog.create({
        type: 'movie',
        title: 'Saltmarsh Quay',
        maturityRating: 'PG',
        availability: [{ region: '*' }],
      })
      await catalog.relayOutbox()
      await first.reel.stop()
      const second = await startReel(kind, env)
      try {
        const search = second.reel.use('search')
        for (let i = 0; i < 300 && search.indexedVersion(fresh.id) === undefined; i++)
          await new Promise((r) => setTimeout(r, 10))
        // The title at the start of this log was read, not skipped as if the old position held here...
        expect(search.indexedVersion(fresh.id)).toBe(1)
        // ...and the other install's titles are gone.
        expect(search.indexedVersion(ids['old-log'] ?? '')).toBeUndefined()
        expect(search.size).toBe(1)
      } finally {
        await second.stop()
        fs.rmSync(env.REEL_DATA_DIR, { recursive: true, force: true })
      }
    })

    it('does not resume from a snapshot that does not say which log it was made from', async () => {
      const live = t.reel.use('search')
      await create('unlabelled', { title: 'Tidewater' })
      await live.saveSnapshot()
      const blob = await t.reel.ports.blobs.get('search/titles-index.json')
      let text = ''
      for await (const chunk of blob.body) text += Buffer.from(chunk).toString('utf8')
      const snapshot = JSON.parse(text)
      expect(snapshot.meta.logStart).toBeDefined()
      delete snapshot.meta.logStart
      await t.reel.ports.blobs.put('search/titles-index.json', JSON.stringify(snapshot), {})
      const older = new SearchService({
        store: new SearchStore(t.reel.ports.db),
        blobs: t.reel.ports.blobs,
        accounts: () => t.reel.use('accounts'),
        log: createLogger('silent'),
        busKind: t.reel.ports.bus.kind,
      })
      expect(await older.loadSnapshot()).toBe(false)
      expect(older.size).toBe(0)
      expect(older.resumeAt()).toBe('all')
    })

    it('ignores a damaged snapshot and starts empty', async () => {
      await t.reel.ports.blobs.put('search/titles-index.json', '{"format":"reel-search-1","docs":[', {})
      const fresh = new SearchService({
        store: new SearchStore(t.reel.ports.db),
        blobs: t.reel.ports.blobs,
        accounts: () => t.reel.use('accounts'),
        log: createLogger('silent'),
      })
      expect(await fresh.loadSnapshot()).toBe(false)
      expect(fresh.size).toBe(0)
    })
  })
})
