import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EventEnvelope } from '../src/platform/bus/bus.js'
import { hasPostgres } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'
const DAY = 24 * 3600_000
let seq = 0
const email = (tag = 'user') => `${tag}.${process.pid}.${Date.now()}.${seq++}@example.com`
const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

type Json = Record<string, unknown>
const code = (res: { json: () => { error: { code: string } } }) => res.json().error.code

describe.each(kinds)('catalog on %s', (kind) => {
  let t: TestReel
  let admin: string
  let member: { token: string; accountId: string }
  let german: string
  const events: EventEnvelope[] = []

  async function signUp(country = 'US'): Promise<{ token: string; accountId: string }> {
    const res = await t.call('POST', '/api/v1/accounts', {
      body: { email: email(), password: PASSWORD, plan: 'standard', country },
    })
    expect(res.statusCode, res.body).toBe(201)
    return { token: res.json().tokens.accessToken, accountId: res.json().account.id }
  }

  /** A valid movie; `over` replaces fields. */
  const movie = (over: Json = {}): Json => ({
    type: 'movie',
    title: `Movie ${seq++}`,
    maturityRating: 'PG',
    year: 2001,
    genres: ['drama'],
    availability: [{ region: '*' }],
    ...over,
  })

  async function create(body: Json): Promise<Json> {
    const res = await t.call('POST', '/api/v1/admin/titles', { token: admin, body })
    expect(res.statusCode, res.body).toBe(201)
    return res.json()
  }

  async function titleCount(): Promise<number> {
    let n = 0
    let cursor: string | null = null
    do {
      const q: string = cursor ? `&cursor=${cursor}` : ''
      const res = await t.call('GET', `/api/v1/titles?limit=100${q}`, { token: admin })
      n += res.json().items.length
      cursor = res.json().nextCursor
    } while (cursor)
    return n
  }

  beforeAll(async () => {
    t = await startReel(kind)
    const adminEmail = email('admin')
    await t.reel.use('accounts').createAdmin(adminEmail, PASSWORD)
    const login = await t.call('POST', '/api/v1/sessions', {
      body: { email: adminEmail, password: PASSWORD },
    })
    admin = login.json().accessToken
    member = await signUp('US')
    german = (await signUp('DE')).token
    await t.reel.ports.bus.subscribe({
      name: `test-catalog-${kind}`,
      types: ['catalog.>'],
      handler: async (e) => {
        events.push(e)
      },
    })
  })
  afterAll(() => t.stop())

  async function eventsFor(id: string, n: number): Promise<EventEnvelope[]> {
    for (let i = 0; i < 100; i++) {
      const found = events.filter((e) => e.key === id)
      if (found.length >= n) return found
      await new Promise((r) => setTimeout(r, 20))
    }
    return events.filter((e) => e.key === id)
  }

  describe('administration', () => {
    it('creates a movie with people, genres, tags, artwork and availability, and publishes it', async () => {
      const created = await create(
        movie({
          title: '  Amélie\u00a0 ',
          externalId: 'imdb:tt0211915',
          synopsis: 'A shy waitress decides to change the lives of those around her.',
          originalLanguage: 'fr',
          countries: ['fr', 'DE'],
          genres: ['comedy', 'romance'],
          tags: ['paris', 'Paris', 'waitress'],
          runtimeMin: 122,
          maturityRating: 'R',
          artwork: { poster: 'https://img.example.com/amelie.jpg' },
          credits: [
            { name: 'Jean-Pierre Jeunet', role: 'director' },
            { name: 'Audrey Tautou', role: 'cast', character: 'Amélie Poulain' },
            { name: 'Mathieu Kassovitz', role: 'cast', character: 'Nino Quincampoix' },
          ],
        }),
      )
      expect(created).toMatchObject({
        title: 'Amélie',
        type: 'movie',
        externalId: 'imdb:tt0211915',
        countries: ['FR', 'DE'],
        genres: [
          { id: 'comedy', name: 'Comedy' },
          { id: 'romance', name: 'Romance' },
        ],
        tags: ['paris', 'waitress'],
        mediaStatus: 'pending',
        version: 1,
        seasons: [],
      })
      const credits = created.credits as { role: string; order: number; name: string; personId: string }[]
      expect(credits.map((c) => [c.role, c.order, c.name])).toEqual([
        ['director', 0, 'Jean-Pierre Jeunet'],
        ['cast', 0, 'Audrey Tautou'],
        ['cast', 1, 'Mathieu Kassovitz'],
      ])
      const read = await t.call('GET', `/api/v1/titles/${created.id}`, { token: member.token })
      expect(read.statusCode).toBe(200)
      expect(read.json().title).toBe('Amélie')
      const [event] = await eventsFor(String(created.id), 1)
      expect(event).toMatchObject({
        type: 'catalog.title.upserted',
        key: created.id,
        data: { title: { id: created.id, title: 'Amélie', version: 1 } },
      })
      // The people exist on their own, with their filmography.
      const person = await t.call('GET', `/api/v1/people/${credits[1]?.personId}`, { token: member.token })
      expect(person.json()).toMatchObject({
        name: 'Audrey Tautou',
        credits: [{ role: 'cast', character: 'Amélie Poulain', title: { id: created.id } }],
      })
    })

    it('reuses a person named again (case and accents aside) and accepts people by id', async () => {
      const first = await create(movie({ credits: [{ name: 'Zoë Kravitz', role: 'cast' }] }))
      const personId = (first.credits as { personId: string }[])[0]?.personId
      const second = await create(
        movie({
          credits: [
            { name: 'zoe  KRAVITZ', role: 'cast' },
            { personId, role: 'producer' },
          ],
        }),
      )
      const ids = (second.credits as { personId: string }[]).map((c) => c.personId)
      expect(ids).toEqual([personId, personId])
      const person = (await t.call('GET', `/api/v1/people/${personId}`, { token: member.token })).json()
      expect(person.credits).toHaveLength(3)
    })

    it.each([
      ['a number as text', { year: '2001' }, 'invalid_request'],
      ['an unknown field', { budget: 5 }, 'invalid_request'],
      ['an unknown type', { type: 'episode' }, 'invalid_request'],
      ['an unknown rating', { maturityRating: 'TV-MA' }, 'invalid_request'],
      ['a 10 KB title', { title: 'x'.repeat(10_240) }, 'invalid_request'],
      ['a 10 KB synopsis', { synopsis: 's'.repeat(30_000) }, 'invalid_request'],
      ['a too long title', { title: 'x'.repeat(301) }, 'invalid_title'],
      ['a blank title', { title: ' \u00a0\t ' }, 'invalid_title'],
      ['an unknown genre', { genres: ['drama', 'telenovela'] }, 'unknown_genre'],
      ['an unknown person id', { credits: [{ personId: 'nobody', role: 'cast' }] }, 'unknown_person'],
      [
        'a credit with id and name',
        { credits: [{ personId: 'x', name: 'X', role: 'cast' }] },
        'invalid_credits',
      ],
      ['an unknown role', { credits: [{ name: 'X', role: 'grip' }] }, 'invalid_request'],
      ['a year before cinema', { year: 1500 }, 'invalid_year'],
      ['a negative runtime', { runtimeMin: -5 }, 'invalid_runtime'],
      ['an unknown language', { originalLanguage: 'not a language!' }, 'invalid_language'],
      ['an unknown country', { countries: ['XX'] }, 'invalid_country'],
      ['an unknown region', { availability: [{ region: 'Narnia' }] }, 'invalid_region'],
      [
        'a window ending before it starts',
        { availability: [{ region: 'US', startsAt: '2030-01-02', endsAt: '2030-01-01' }] },
        'invalid_availability',
      ],
      [
        'a malformed window date',
        { availability: [{ region: 'US', startsAt: 'tomorrow' }] },
        'invalid_availability',
      ],
      ['a script URL as artwork', { artwork: { poster: 'javascript:alert(1)' } }, 'invalid_artwork'],
      ['a negative popularity', { popularity: -1 }, 'invalid_popularity'],
      ['seasons on a movie', { seasons: [{ number: 1 }] }, 'not_a_series'],
      ['an external id with spaces', { externalId: 'a b' }, 'invalid_external_id'],
      ['SQL in an external id', { externalId: "x'; drop table catalog_titles; --" }, 'invalid_external_id'],
    ])('rejects %s (400) and stores nothing', async (_name, change, expected) => {
      const before = await titleCount()
      const res = await t.call('POST', '/api/v1/admin/titles', { token: admin, body: movie(change) })
      expect(res.statusCode, res.body).toBe(400)
      expect(code(res)).toBe(expected)
      expect(await titleCount()).toBe(before)
    })

    it('refuses a second title with the same external id (409)', async () => {
      await create(movie({ externalId: 'dup-1' }))
      const res = await t.call('POST', '/api/v1/admin/titles', {
        token: admin,
        body: movie({ externalId: 'dup-1' }),
      })
      expect(res.statusCode).toBe(409)
      expect(code(res)).toBe('external_id_taken')
    })

    it('is for administrators only: 401 without a token, 403 for a member', async () => {
      const target = await create(movie())
      const calls: [string, string, Json?][] = [
        ['POST', '/api/v1/admin/titles', movie()],
        ['GET', `/api/v1/admin/titles/${target.id}`],
        ['PATCH', `/api/v1/admin/titles/${target.id}`, { title: 'Hacked' }],
        ['DELETE', `/api/v1/admin/titles/${target.id}`],
        ['POST', `/api/v1/admin/titles/${target.id}/seasons`, { number: 1 }],
        ['POST', '/api/v1/admin/titles/import', { records: [] }],
      ]
      for (const [method, url, body] of calls) {
        expect((await t.call(method, url, { body })).statusCode).toBe(401)
        const res = await t.call(method, url, { token: member.token, body })
        expect(res.statusCode).toBe(403)
        expect(code(res)).toBe('admin_only')
      }
      expect((await t.call('GET', `/api/v1/titles/${target.id}`, { token: member.token })).json().title).toBe(
        target.title,
      )
    })

    it('changes a title: given lists replace, the version grows, readers see it at once', async () => {
      const created = await create(movie({ genres: ['drama'], tags: ['a'] }))
      // Read it once so that it is cached.
      await t.call('GET', `/api/v1/titles/${created.id}`, { token: member.token })
      const res = await t.call('PATCH', `/api/v1/admin/titles/${created.id}`, {
        token: admin,
        body: { title: 'Renamed', genres: ['comedy', 'family'], tags: [], popularity: 42 },
      })
      expect(res.statusCode, res.body).toBe(200)
      expect(res.json()).toMatchObject({ title: 'Renamed', tags: [], popularity: 42, version: 2, year: 2001 })
      expect(res.json().genres.map((g: { id: string }) => g.id)).toEqual(['comedy', 'family'])
      const read = await t.call('GET', `/api/v1/titles/${created.id}`, { token: member.token })
      expect(read.json().title).toBe('Renamed')
      const published = await eventsFor(String(created.id), 2)
      expect(published.map((e) => (e.data as { title: { version: number } }).title.version)).toEqual([1, 2])
    })

    it('refuses a bad change (400) and keeps the title as it was; unknown ids are 404', async () => {
      const created = await create(movie({ title: 'Steady' }))
      for (const body of [
        { year: 'soon' },
        { genres: ['nope'] },
        { title: '' },
        { type: 'series' },
        { title: 'x'.repeat(10_240) },
      ]) {
        const res = await t.call('PATCH', `/api/v1/admin/titles/${created.id}`, { token: admin, body })
        expect(res.statusCode, JSON.stringify(body)).toBe(400)
      }
      const read = await t.call('GET', `/api/v1/admin/titles/${created.id}`, { token: admin })
      expect(read.json()).toMatchObject({ title: 'Steady', version: 1 })
      for (const [method, url, body] of [
        ['PATCH', '/api/v1/admin/titles/unknown-id', { title: 'x' }],
        ['DELETE', '/api/v1/admin/titles/unknown-id', undefined],
        ['GET', '/api/v1/admin/titles/unknown-id', undefined],
        ['GET', '/api/v1/titles/unknown-id', undefined],
        ['GET', '/api/v1/people/unknown-id', undefined],
      ] as const) {
        const res = await t.call(method, url, { token: admin, body })
        expect(res.statusCode).toBe(404)
      }
    })

    it('deletes a title, which then is gone for readers, and publishes the removal', async () => {
      const created = await create(movie())
      const res = await t.call('DELETE', `/api/v1/admin/titles/${created.id}`, { token: admin })
      expect(res.statusCode).toBe(204)
      expect((await t.call('GET', `/api/v1/titles/${created.id}`, { token: member.token })).statusCode).toBe(
        404,
      )
      const published = await eventsFor(String(created.id), 2)
      expect(published[1]).toMatchObject({
        type: 'catalog.title.removed',
        data: { id: created.id, version: 2 },
      })
      expect(
        (await t.call('DELETE', `/api/v1/admin/titles/${created.id}`, { token: admin })).statusCode,
      ).toBe(404)
    })
  })

  describe('series', () => {
    it('has seasons and episodes, each episode with its own media', async () => {
      const series = await create(
        movie({
          type: 'series',
          title: 'Dark Waters',
          seasons: [{ number: 1, episodes: [{ number: 1, name: 'Pilot', runtimeMin: 50 }, { number: 2 }] }],
        }),
      )
      const seasons = series.seasons as {
        id: string
        number: number
        episodes: { id: string; name: string }[]
      }[]
      expect(seasons).toHaveLength(1)
      expect(seasons[0]?.episodes.map((e) => e.name)).toEqual(['Pilot', 'Episode 2'])
      const seasonId = seasons[0]?.id ?? ''
      const season2 = await t.call('POST', `/api/v1/admin/titles/${series.id}/seasons`, {
        token: admin,
        body: { number: 2, name: 'The Return' },
      })
      expect(season2.statusCode, season2.body).toBe(201)
      const again = await t.call('POST', `/api/v1/admin/titles/${series.id}/seasons`, {
        token: admin,
        body: { number: 2 },
      })
      expect([again.statusCode, code(again)]).toEqual([409, 'season_exists'])
      const episode = await t.call(
        'POST',
        `/api/v1/admin/titles/${series.id}/seasons/${season2.json().id}/episodes`,
        {
          token: admin,
          body: { number: 1, name: 'Back', runtimeMin: 48 },
        },
      )
      expect(episode.statusCode, episode.body).toBe(201)
      const dupEpisode = await t.call(
        'POST',
        `/api/v1/admin/titles/${series.id}/seasons/${seasonId}/episodes`,
        {
          token: admin,
          body: { number: 1 },
        },
      )
      expect([dupEpisode.statusCode, code(dupEpisode)]).toEqual([409, 'episode_exists'])
      const renamed = await t.call(
        'PATCH',
        `/api/v1/admin/titles/${series.id}/episodes/${episode.json().id}`,
        {
          token: admin,
          body: { name: 'Back Again' },
        },
      )
      expect(renamed.json()).toMatchObject({ name: 'Back Again', number: 1, runtimeMin: 48 })

      // The media pipeline reports an episode's media; the series is as playable as its best episode.
      const catalog = t.reel.use('catalog')
      await catalog.upsertMedia({
        titleId: String(series.id),
        episodeId: episode.json().id,
        status: 'available',
        durationMs: 2_880_000,
      })
      const detail = (await t.call('GET', `/api/v1/titles/${series.id}`, { token: member.token })).json()
      expect(detail).toMatchObject({ mediaStatus: 'available', seasonCount: 2, episodeCount: 3 })
      const back = detail.seasons[1].episodes[0]
      expect(back).toMatchObject({ name: 'Back Again', mediaStatus: 'available', durationMs: 2_880_000 })
      expect(detail.seasons[0].episodes[0].mediaStatus).toBe('pending')

      expect(
        (await t.call('DELETE', `/api/v1/admin/titles/${series.id}/seasons/${seasonId}`, { token: admin }))
          .statusCode,
      ).toBe(204)
      const after = (await t.call('GET', `/api/v1/admin/titles/${series.id}`, { token: admin })).json()
      expect(after).toMatchObject({ seasonCount: 1, episodeCount: 1 })
      const missing = await t.call(
        'PATCH',
        `/api/v1/admin/titles/${series.id}/episodes/${seasons[0]?.episodes[0]?.id}`,
        {
          token: admin,
          body: { name: 'Gone' },
        },
      )
      expect([missing.statusCode, code(missing)]).toEqual([404, 'episode_not_found'])
    })

    it('refuses seasons for a movie and bad season or episode numbers', async () => {
      const film = await create(movie())
      const res = await t.call('POST', `/api/v1/admin/titles/${film.id}/seasons`, {
        token: admin,
        body: { number: 1 },
      })
      expect([res.statusCode, code(res)]).toEqual([400, 'not_a_series'])
      const series = await create(movie({ type: 'series', seasons: [{ number: 1 }] }))
      const bad = await t.call('POST', `/api/v1/admin/titles/${series.id}/seasons`, {
        token: admin,
        body: { number: -1 },
      })
      expect([bad.statusCode, code(bad)]).toEqual([400, 'invalid_season_number'])
      const seasonId = (series.seasons as { id: string }[])[0]?.id
      const badEpisode = await t.call(
        'POST',
        `/api/v1/admin/titles/${series.id}/seasons/${seasonId}/episodes`,
        {
          token: admin,
          body: { number: 0 },
        },
      )
      expect([badEpisode.statusCode, code(badEpisode)]).toEqual([400, 'invalid_episode_number'])
      const wrongSeason = await t.call('POST', `/api/v1/admin/titles/${series.id}/seasons/nope/episodes`, {
        token: admin,
        body: { number: 1 },
      })
      expect([wrongSeason.statusCode, code(wrongSeason)]).toEqual([404, 'season_not_found'])
    })
  })

  describe('media pipeline API', () => {
    it('creates a minimal title once per external id and records media status and duration', async () => {
      const catalog = t.reel.use('catalog')
      const first = await catalog.upsertMedia({
        newTitle: { title: 'Upload 1', externalId: 'upload-1' },
        status: 'processing',
      })
      const again = await catalog.upsertMedia({
        newTitle: { title: 'Upload 1', externalId: 'upload-1' },
        status: 'available',
        durationMs: 36_000,
      })
      expect(again.titleId).toBe(first.titleId)
      const title = await catalog.adminTitle(first.titleId)
      expect(title).toMatchObject({
        maturityRating: 'NC-17',
        availability: [],
        mediaStatus: 'available',
        durationMs: 36_000,
      })
      // Shown nowhere until an administrator says where.
      expect(
        (await t.call('GET', `/api/v1/titles/${first.titleId}`, { token: member.token })).statusCode,
      ).toBe(404)
      const chosen = await catalog.upsertMedia({
        newTitle: { id: `upload-id-${kind}`, title: 'Upload 2', year: 2024 },
        status: 'pending',
      })
      expect(chosen.titleId).toBe(`upload-id-${kind}`)
      const again2 = await catalog.upsertMedia({
        newTitle: { id: `upload-id-${kind}`, title: 'Upload 2' },
        status: 'processing',
      })
      expect(again2.titleId).toBe(`upload-id-${kind}`)
      expect((await catalog.adminTitle(chosen.titleId)).mediaStatus).toBe('processing')
      await expect(catalog.upsertMedia({ status: 'pending' })).rejects.toMatchObject({
        code: 'invalid_media_update',
      })
      await expect(catalog.upsertMedia({ titleId: 'missing', status: 'failed' })).rejects.toMatchObject({
        code: 'title_not_found',
      })
      await expect(
        catalog.upsertMedia({ titleId: first.titleId, status: 'available', durationMs: -1 }),
      ).rejects.toMatchObject({
        code: 'invalid_duration',
      })
      await expect(
        catalog.upsertMedia({ titleId: first.titleId, episodeId: 'nope', status: 'available' }),
      ).rejects.toMatchObject({
        code: 'episode_not_found',
      })
    })
  })

  describe('browsing', () => {
    let ids: Record<string, string>
    beforeAll(async () => {
      const make = async (name: string, over: Json) =>
        [name, String((await create(movie({ title: `Browse ${name}`, ...over }))).id)] as const
      ids = Object.fromEntries(
        await Promise.all([
          make('old-drama', {
            year: 1950,
            genres: ['drama', 'film-noir'],
            originalLanguage: 'en',
            popularity: 10,
          }),
          make('new-comedy', { year: 2020, genres: ['comedy'], originalLanguage: 'fr', popularity: 30 }),
          make('series', {
            type: 'series',
            year: 2010,
            genres: ['comedy'],
            originalLanguage: 'en',
            popularity: 20,
          }),
          make('r-rated', { year: 2005, genres: ['horror'], maturityRating: 'R', popularity: 25 }),
          make('germany-only', {
            year: 2011,
            genres: ['drama'],
            availability: [{ region: 'DE' }],
            popularity: 5,
          }),
          make('later', {
            year: 2012,
            genres: ['war'],
            availability: [{ region: 'US', startsAt: new Date(Date.now() + 10 * DAY).toISOString() }],
          }),
          make('ended', {
            year: 2013,
            genres: ['war'],
            availability: [{ region: '*', endsAt: new Date(Date.now() - DAY).toISOString() }],
          }),
        ]),
      )
    })

    const list = async (query: string, token = member.token) => {
      const res = await t.call('GET', `/api/v1/titles?limit=100&${query}`, { token })
      expect(res.statusCode, res.body).toBe(200)
      return (res.json().items as { id: string; title: string }[]).map((i) => i.title)
    }

    it('filters by genre, year range, language and type', async () => {
      const browse = async (query: string) => (await list(query)).filter((n) => n.startsWith('Browse'))
      expect(await browse('genre=film-noir')).toEqual(['Browse old-drama'])
      expect(await browse('genre=comedy&type=movie')).toEqual(['Browse new-comedy'])
      expect(await browse('genre=comedy&type=series')).toEqual(['Browse series'])
      expect(await browse('yearFrom=2004&yearTo=2010')).toEqual(['Browse r-rated', 'Browse series'])
      expect(await browse('language=fr&genre=comedy')).toEqual(['Browse new-comedy'])
      expect(await browse('genre=horror&genre=film-noir')).toEqual(['Browse r-rated', 'Browse old-drama'])
    })

    it('never shows a title outside its region or its window', async () => {
      const us = await list('')
      expect(us).not.toContain('Browse germany-only')
      expect(us).not.toContain('Browse later')
      expect(us).not.toContain('Browse ended')
      expect(
        (await t.call('GET', `/api/v1/titles/${ids['germany-only']}`, { token: member.token })).statusCode,
      ).toBe(404)
      expect(await list('', german)).toContain('Browse germany-only')
      expect(
        (await t.call('GET', `/api/v1/titles/${ids['germany-only']}`, { token: german })).statusCode,
      ).toBe(200)
      expect(await list('', german)).not.toContain('Browse later')
      t.clock.advance(11 * DAY)
      try {
        expect(await list('')).toContain('Browse later')
        expect((await t.call('GET', `/api/v1/titles/${ids.later}`, { token: member.token })).statusCode).toBe(
          200,
        )
      } finally {
        t.clock.advance(-11 * DAY)
      }
    })

    it('gives a kids profile no R title, anywhere; another account’s profile is 404', async () => {
      const kids = await t.call('POST', '/api/v1/profiles', {
        token: member.token,
        body: { name: `Kid ${seq++}`, kids: true },
      })
      expect(kids.statusCode, kids.body).toBe(201)
      const profileId = kids.json().id
      expect(await list('')).toContain('Browse r-rated')
      expect(await list(`profileId=${profileId}`)).not.toContain('Browse r-rated')
      expect(await list(`profileId=${profileId}`)).toContain('Browse new-comedy')
      const detail = await t.call('GET', `/api/v1/titles/${ids['r-rated']}?profileId=${profileId}`, {
        token: member.token,
      })
      expect(detail.statusCode).toBe(404)
      const other = await signUp()
      for (const url of [
        `/api/v1/titles?profileId=${profileId}`,
        `/api/v1/titles/${ids['new-comedy']}?profileId=${profileId}`,
      ]) {
        const res = await t.call('GET', url, { token: other.token })
        expect([res.statusCode, code(res)]).toEqual([404, 'profile_not_found'])
      }
    })

    it('pages with a cursor through every title once, in popularity or title order', async () => {
      for (const sort of ['popularity', 'title']) {
        const all = await list(`sort=${sort}`)
        const paged: string[] = []
        let cursor: string | null = null
        do {
          const after: string = cursor ? `&cursor=${cursor}` : ''
          const res = await t.call('GET', `/api/v1/titles?sort=${sort}&limit=2${after}`, {
            token: member.token,
          })
          expect(res.statusCode).toBe(200)
          const body = res.json()
          expect(body.items.length).toBeLessThanOrEqual(2)
          paged.push(...body.items.map((i: { title: string }) => i.title))
          cursor = body.nextCursor
        } while (cursor)
        expect(paged).toEqual(all)
      }
    })

    it('sorts by title without case, accents or a leading article', async () => {
      await create(movie({ title: 'The Aardvark Affair', externalId: `sort-${kind}-1` }))
      await create(movie({ title: 'Ábaco', externalId: `sort-${kind}-2` }))
      await create(movie({ title: 'aardvark', externalId: `sort-${kind}-3` }))
      const sorted = (await list('sort=title')).filter((n) => /aardvark|ábaco/i.test(n))
      expect(sorted).toEqual(['aardvark', 'The Aardvark Affair', 'Ábaco'])
    })

    it('caps limit at 100 and answers bad paging or filters with 400', async () => {
      const records = Array.from({ length: 101 }, (_, i) =>
        movie({ externalId: `cap-${kind}-${i}`, title: `Cap ${i}` }),
      )
      const imported = await t.call('POST', '/api/v1/admin/titles/import', {
        token: admin,
        body: { records },
      })
      expect(imported.statusCode).toBe(200)
      const big = await t.call('GET', '/api/v1/titles?limit=10000', { token: member.token })
      expect(big.json().items).toHaveLength(100)
      expect(big.json().nextCursor).toEqual(expect.any(String))
      const popularityCursor = big.json().nextCursor
      for (const [query, expected] of [
        ['limit=0', 'invalid_limit'],
        ['limit=-1', 'invalid_request'],
        ['limit=abc', 'invalid_request'],
        ['cursor=not-a-cursor!', 'invalid_cursor'],
        ['cursor=eyJ4IjoxfQ', 'invalid_cursor'],
        [`sort=title&cursor=${popularityCursor}`, 'invalid_cursor'],
        ['genre=telenovela', 'unknown_genre'],
        ['type=episode', 'invalid_request'],
        ['language=%27%3B%20drop%20table', 'invalid_language'],
        ['yearFrom=twenty', 'invalid_request'],
        ['colour=blue', 'invalid_request'],
      ]) {
        const res = await t.call('GET', `/api/v1/titles?${query}`, { token: member.token })
        expect([res.statusCode, code(res)], query).toEqual([400, expected])
      }
    })

    it('lists the genres and needs a signed-in caller', async () => {
      const res = await t.call('GET', '/api/v1/genres', { token: member.token })
      expect(res.json().genres).toContainEqual({ id: 'sci-fi', name: 'Sci-Fi' })
      expect((await t.call('GET', '/api/v1/genres')).statusCode).toBe(401)
      expect((await t.call('GET', '/api/v1/titles')).statusCode).toBe(401)
    })

    it('caches a title read and drops the copy on change', async () => {
      const id = ids['new-comedy'] ?? ''
      await t.call('GET', `/api/v1/titles/${id}`, { token: member.token })
      expect(await t.reel.ports.cache.get(`catalog:title:${id}`)).toContain('Browse new-comedy')
      await t.reel.use('catalog').setPopularity(id, 31)
      expect(await t.reel.ports.cache.get(`catalog:title:${id}`)).toBeUndefined()
      expect((await t.call('GET', `/api/v1/titles/${id}`, { token: member.token })).json().popularity).toBe(
        31,
      )
    })
  })

  describe('import', () => {
    it('keeps good records, reports bad ones with the reason, and upserts by external id', async () => {
      const records = [
        movie({ externalId: `imp-${kind}-1`, title: 'Imported One' }),
        { ...movie({ externalId: `imp-${kind}-2` }), year: 'last year' },
        movie({ externalId: `imp-${kind}-3`, genres: ['telenovela'] }),
        movie({ title: 'No external id' }),
        'not an object',
        movie({ externalId: `imp-${kind}-1`, title: 'Imported One' }),
        movie({ externalId: `imp-${kind}-1`, title: 'Imported One, again' }),
      ]
      const res = await t.call('POST', '/api/v1/admin/titles/import', { token: admin, body: { records } })
      expect(res.statusCode, res.body).toBe(200)
      const outcomes = res.json().outcomes as { status: string; code?: string; id?: string }[]
      expect(outcomes.map((o) => [o.status, o.code])).toEqual([
        ['created', undefined],
        ['rejected', 'invalid_record'],
        ['rejected', 'unknown_genre'],
        ['rejected', 'missing_external_id'],
        ['rejected', 'invalid_record'],
        ['unchanged', undefined],
        ['updated', undefined],
      ])
      expect(outcomes[6]?.id).toBe(outcomes[0]?.id)
      const again = await t.call('POST', '/api/v1/admin/titles/import', {
        token: admin,
        body: { records: records.slice(6) },
      })
      expect(again.json().outcomes[0].status).toBe('unchanged')
      const stored = (
        await t.call('GET', `/api/v1/titles/${outcomes[0]?.id}`, { token: member.token })
      ).json()
      expect(stored).toMatchObject({ title: 'Imported One, again', version: 2 })
      expect((await eventsFor(String(outcomes[0]?.id), 2)).length).toBe(2)
    })

    it('refuses to turn an imported movie into a series', async () => {
      const records = [movie({ externalId: `kind-${kind}` })]
      const first = await t.call('POST', '/api/v1/admin/titles/import', { token: admin, body: { records } })
      expect(first.json().outcomes[0].status).toBe('created')
      const series = [{ ...records[0], type: 'series', title: 'Now a series' }]
      const res = await t.call('POST', '/api/v1/admin/titles/import', {
        token: admin,
        body: { records: series },
      })
      expect(res.json().outcomes[0]).toMatchObject({ status: 'rejected', code: 'type_mismatch' })
    })

    it('refuses more than 500 records in one request (the CLI batches)', async () => {
      const res = await t.call('POST', '/api/v1/admin/titles/import', {
        token: admin,
        body: { records: Array.from({ length: 501 }, () => ({})) },
      })
      expect([res.statusCode, code(res)]).toEqual([400, 'invalid_request'])
    })

    it('publishes what the outbox still holds after a crash between commit and publish', async () => {
      {
        const id = 'outbox-test-title'
        await t.reel.ports.db.kysely
          .insertInto('catalog_outbox' as never)
          .values({
            id: `catalog:${id}:7`,
            type: 'catalog.title.removed',
            key: id,
            data: JSON.stringify({ id, version: 7 }),
            created_at: t.clock.now - 60_000,
          } as never)
          .execute()
        expect(await t.reel.use('catalog').relayOutbox()).toBe(1)
        expect((await eventsFor(id, 1))[0]).toMatchObject({
          type: 'catalog.title.removed',
          data: { version: 7 },
        })
        expect(await t.reel.use('catalog').relayOutbox()).toBe(0)
      }
    })
  })
})
