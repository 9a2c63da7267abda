import fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { Command } from 'commander'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { registerSeedCommands } from '../src/cli/seed.js'
import { DEMO_TITLES, demoRecord } from '../src/services/catalog/demo.js'
import { SEED_MARKER_KEY, type SeedStatus } from '../src/services/catalog/seed.js'
import { hasPostgres, tempDir } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'
/** The first two demo titles: a movie and a series of 2 seasons × 2 episodes, as tiny clips. */
const SMALL = { titles: 2, clipSeconds: 2, clipHeight: 240 }
const MOVIE = DEMO_TITLES[0]
const SERIES = DEMO_TITLES[1]

const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

describe.each(kinds)('the demo seed on %s', (kind) => {
  let t: TestReel
  let admin: string
  let member: { token: string; profileId: string }

  beforeAll(async () => {
    t = await startReel(kind, { REEL_MEDIA_WORKERS: '2' })
    await t.reel.use('accounts').createAdmin('seed-admin@example.com', PASSWORD)
    admin = (
      await t.call('POST', '/api/v1/sessions', {
        body: { email: 'seed-admin@example.com', password: PASSWORD },
      })
    ).json().accessToken
    const signUp = await t.call('POST', '/api/v1/accounts', {
      body: { email: `seed-viewer-${kind}@example.com`, password: PASSWORD, plan: 'standard', country: 'US' },
    })
    expect(signUp.statusCode, signUp.body).toBe(201)
    const token: string = signUp.json().tokens.accessToken
    const profiles = await t.call('GET', '/api/v1/profiles', { token })
    member = { token, profileId: profiles.json().profiles[0].id }
  })
  afterAll(async () => {
    await t?.stop()
  })

  const seedStatus = async (): Promise<SeedStatus> => {
    const res = await t.call('GET', '/api/v1/admin/seed', { token: admin })
    expect(res.statusCode, res.body).toBe(200)
    return res.json()
  }

  const finished = async (): Promise<SeedStatus> => {
    await vi.waitFor(async () => expect((await seedStatus()).running).toBe(false), {
      timeout: 240_000,
      interval: 500,
    })
    return seedStatus()
  }

  const catalogTitles = async () => {
    const res = await t.call('GET', '/api/v1/titles?limit=100', { token: member.token })
    expect(res.statusCode, res.body).toBe(200)
    return res.json().items as {
      id: string
      title: string
      mediaStatus: string
      artwork: { poster?: string }
    }[]
  }

  it('refuses bad requests with stable codes', async () => {
    const post = (body: unknown, token = admin) => t.call('POST', '/api/v1/admin/seed', { token, body })
    expect((await post({}, '')).statusCode).toBe(401)
    const forbidden = await post({}, member.token)
    expect(forbidden.statusCode).toBe(403)
    for (const body of [
      { titles: 0 },
      { titles: DEMO_TITLES.length + 1 },
      { titles: '2' },
      { clipSeconds: 1 },
      { clipSeconds: 3600 },
      { clipHeight: 1080 },
      { clipHeight: '240; rm -rf /' },
      { force: 'yes' },
      { titles: 2, extra: true },
    ]) {
      const res = await post(body)
      expect(res.statusCode, JSON.stringify(body)).toBe(400)
      expect(res.json().error.code).toBeTruthy()
    }
    expect((await t.call('GET', '/api/v1/admin/seed', { token: member.token })).statusCode).toBe(403)
    // Nothing was started by any of them.
    expect((await seedStatus()).running).toBe(false)
    expect(await catalogTitles()).toEqual([])
  })

  it('fills an empty install with available, searchable, playable titles (a movie and a series)', async () => {
    const res = await t.call('POST', '/api/v1/admin/seed', { token: admin, body: SMALL })
    expect(res.statusCode, res.body).toBe(202)
    expect(res.json()).toMatchObject({ running: true, titles: 2 })
    // One seed at a time.
    const again = await t.call('POST', '/api/v1/admin/seed', { token: admin, body: SMALL })
    expect(again.statusCode).toBe(409)
    expect(again.json().error.code).toBe('seed_running')

    const status = await finished()
    expect(status.error).toBeNull()
    expect(status.items).toHaveLength(5)
    expect(status.items.map((i) => i.state)).toEqual(Array(5).fill('available'))
    expect(status).toMatchObject({ available: 5, failed: 0, percent: 100, otherTitles: 0 })
    expect(await t.reel.ports.blobs.head(SEED_MARKER_KEY)).toBeDefined()

    const titles = await catalogTitles()
    expect(titles.map((x) => x.title).sort()).toEqual([MOVIE?.title, SERIES?.title].sort())
    for (const title of titles) {
      expect(title.mediaStatus).toBe('available')
      expect(title.artwork.poster).toMatch(/^data:image\/svg\+xml;base64,/)
    }
    const movie = titles.find((x) => x.title === MOVIE?.title)
    const series = titles.find((x) => x.title === SERIES?.title)
    if (!movie || !series) throw new Error('the seeded titles are missing')

    const detail = (await t.call('GET', `/api/v1/titles/${series.id}`, { token: member.token })).json()
    expect(detail.seasons.map((s: { episodes: unknown[] }) => s.episodes.length)).toEqual([2, 2])
    expect(detail.credits.some((c: { role: string }) => c.role === 'director')).toBe(true)
    const episode = detail.seasons[1].episodes[1]
    expect(episode).toMatchObject({ name: 'Storm Warning', mediaStatus: 'available' })
    expect(episode.durationMs).toBeGreaterThanOrEqual(1900)

    // Searchable by a typed prefix and by a person.
    await vi.waitFor(
      async () => {
        const hits = (await t.call('GET', '/api/v1/search?q=lighthou', { token: member.token })).json()
          .hits as { id: string }[]
        expect(hits.map((h) => h.id)).toContain(movie.id)
      },
      { timeout: 20_000, interval: 200 },
    )
    const byPerson = (await t.call('GET', '/api/v1/search?q=Maren%20Holt', { token: member.token })).json()
    expect(byPerson.hits.map((h: { id: string }) => h.id)).toContain(movie.id)

    // Playable: the movie and an episode of the series.
    for (const body of [
      { profileId: member.profileId, titleId: movie.id },
      { profileId: member.profileId, titleId: series.id, episodeId: episode.id },
    ]) {
      const play = await t.call('POST', '/api/v1/playback', { token: member.token, body })
      expect(play.statusCode, play.body).toBe(201)
      const master = await t.call('GET', play.json().manifestUrl)
      expect(master.statusCode).toBe(200)
      expect(master.body).toContain('#EXT-X-STREAM-INF')
      expect(master.body).toMatch(/RESOLUTION=\d+x2\d\d/)
      await t.call('DELETE', `/api/v1/playback/${play.json().sessionId}`, { token: member.token })
    }
  })

  it('changes nothing when run again: no second title, no new media', async () => {
    const before = await catalogTitles()
    const beforeStatus = await seedStatus()
    const res = await t.call('POST', '/api/v1/admin/seed', { token: admin, body: SMALL })
    expect(res.statusCode, res.body).toBe(202)
    const status = await finished()
    expect(status.error).toBeNull()
    expect(status.available).toBe(5)
    expect(status.items.map((i) => [i.titleId, i.episodeId])).toEqual(
      beforeStatus.items.map((i) => [i.titleId, i.episodeId]),
    )
    expect(await catalogTitles()).toEqual(before)
  })

  it('`reel seed` follows the seed on the running server and reports the result', async () => {
    const port = (t.reel.http.server.address() as AddressInfo).port
    const saved = { url: process.env.REEL_URL, token: process.env.REEL_TOKEN }
    process.env.REEL_URL = `http://127.0.0.1:${port}`
    process.env.REEL_TOKEN = admin
    const log = vi.spyOn(console, 'log').mockImplementation(() => {})
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      const cli = new Command('reel').exitOverride()
      registerSeedCommands(cli)
      await cli.parseAsync([
        'node',
        'reel',
        'seed',
        '--titles',
        '2',
        '--clip-seconds',
        '2',
        '--clip-height',
        '240',
      ])
      expect(log.mock.calls.map((c) => c.join(' ')).join('\n')).toMatch(
        /5 of 5 demo clips available \(2 titles\)/,
      )
      const bad = new Command('reel').exitOverride().configureOutput({ writeErr: () => {} })
      registerSeedCommands(bad)
      await expect(bad.parseAsync(['node', 'reel', 'seed', '--clip-height', '1080'])).rejects.toThrow(
        /expected one of/,
      )
    } finally {
      log.mockRestore()
      stderr.mockRestore()
      process.env.REEL_URL = saved.url
      process.env.REEL_TOKEN = saved.token
      if (saved.url === undefined) delete process.env.REEL_URL
      if (saved.token === undefined) delete process.env.REEL_TOKEN
    }
  })

  it('refuses a catalog with titles of its own unless forced, then adds the demo titles beside them', async () => {
    const own = await t.call('POST', '/api/v1/admin/titles', {
      token: admin,
      body: { type: 'movie', title: 'Our Own Film', maturityRating: 'PG', availability: [{ region: '*' }] },
    })
    expect(own.statusCode, own.body).toBe(201)
    const refused = await t.call('POST', '/api/v1/admin/seed', { token: admin, body: SMALL })
    expect(refused.statusCode).toBe(409)
    expect(refused.json().error).toMatchObject({ code: 'catalog_not_empty' })
    expect(refused.json().error.message).toContain('1 title')

    const forced = await t.call('POST', '/api/v1/admin/seed', {
      token: admin,
      body: { ...SMALL, force: true },
    })
    expect(forced.statusCode, forced.body).toBe(202)
    const status = await finished()
    expect(status).toMatchObject({ available: 5, failed: 0, otherTitles: 1 })
    expect((await catalogTitles()).map((x) => x.title).sort()).toEqual(
      [MOVIE?.title, SERIES?.title, 'Our Own Film'].sort(),
    )
  })

  it('takes inline image artwork only as a small base64 image', async () => {
    for (const poster of [
      'data:text/html;base64,PHNjcmlwdD4=',
      'data:image/svg+xml,<svg onload=alert(1)>',
      'data:image/png;base64,not base64!',
    ]) {
      const res = await t.call('POST', '/api/v1/admin/titles', {
        token: admin,
        body: { type: 'movie', title: 'Art', maturityRating: 'G', artwork: { poster } },
      })
      expect(res.statusCode, poster.slice(0, 30)).toBe(400)
      expect(res.json().error.code).toBe('invalid_artwork')
    }
  })
})

describe('the demo seed after failed media', () => {
  let t: TestReel
  let admin: string
  const tmp = tempDir()

  beforeAll(async () => {
    t = await startReel('sqlite', { REEL_MEDIA_WORKERS: '2' })
    await t.reel.use('accounts').createAdmin('seed-admin@example.com', PASSWORD)
    admin = (
      await t.call('POST', '/api/v1/sessions', {
        body: { email: 'seed-admin@example.com', password: PASSWORD },
      })
    ).json().accessToken
  })
  afterAll(async () => {
    await t?.stop()
    tmp.cleanup()
  })

  it('makes a failed movie and a failed episode anew (their failed ids cannot be sent again)', async () => {
    // The demo titles exist already, and an upload of something that is not a video failed for
    // the movie and for one episode.
    const imported = await t.call('POST', '/api/v1/admin/titles/import', {
      token: admin,
      body: { records: DEMO_TITLES.slice(0, 2).map(demoRecord) },
    })
    expect(imported.json().outcomes.map((o: { status: string }) => o.status)).toEqual(['created', 'created'])
    const [movieId, seriesId] = imported.json().outcomes.map((o: { id: string }) => o.id)
    const series = (await t.call('GET', `/api/v1/admin/titles/${seriesId}`, { token: admin })).json()
    const episodeId: string = series.seasons[0].episodes[1].id
    const notVideo = path.join(tmp.dir, 'notes.txt')
    fs.writeFileSync(notVideo, 'not a video')
    const media = t.reel.use('media')
    for (const mediaId of [movieId, episodeId])
      await media.ingestFile({ mediaId, title: 'broken', file: notVideo })
    await vi.waitFor(
      async () => {
        for (const mediaId of [movieId, episodeId])
          expect((await media.titleMedia(mediaId)).error?.code).toBe('not_media')
      },
      { timeout: 30_000, interval: 200 },
    )
    const before = (await t.call('GET', '/api/v1/admin/seed', { token: admin })).json() as SeedStatus
    expect(before.failed).toBe(2)

    const res = await t.call('POST', '/api/v1/admin/seed', { token: admin, body: SMALL })
    expect(res.statusCode, res.body).toBe(202)
    await vi.waitFor(
      async () =>
        expect(
          ((await t.call('GET', '/api/v1/admin/seed', { token: admin })).json() as SeedStatus).running,
        ).toBe(false),
      { timeout: 240_000, interval: 500 },
    )
    const after = (await t.call('GET', '/api/v1/admin/seed', { token: admin })).json() as SeedStatus
    expect(after).toMatchObject({ available: 5, failed: 0, error: null, otherTitles: 0 })
    // The movie is a new title (its failed media id cannot be sent again); the series is the same
    // title with a new second episode, in its place.
    const movie = after.items.find((i) => i.episodeId === null)
    expect(movie?.titleId).not.toBe(movieId)
    expect((await t.call('GET', `/api/v1/admin/titles/${movieId}`, { token: admin })).statusCode).toBe(404)
    const episodes = after.items.filter((i) => i.episodeId !== null)
    expect(new Set(episodes.map((i) => i.titleId))).toEqual(new Set([seriesId]))
    expect(episodes.map((i) => i.episodeId)).not.toContain(episodeId)
    const again = (await t.call('GET', `/api/v1/admin/titles/${seriesId}`, { token: admin })).json()
    expect(again.seasons[0].episodes.map((e: { name: string }) => e.name)).toEqual([
      'Low Tide',
      'The Auction',
    ])
    expect(again.mediaStatus).toBe('available')
  })
})
