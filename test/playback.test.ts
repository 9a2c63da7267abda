import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createReel, type Reel } from '../src/platform/app.js'
import { Authenticator } from '../src/platform/auth.js'
import type { Bus, EventEnvelope, PublishInput } from '../src/platform/bus/bus.js'
import { type Cache, RedisCache } from '../src/platform/cache/index.js'
import { loadConfig } from '../src/platform/config.js'
import { AppError } from '../src/platform/errors.js'
import { newId } from '../src/platform/ids.js'
import { createLogger, type Logger } from '../src/platform/log.js'
import type { PlaybackEventBase } from '../src/services/playback/events.js'
import { PlaybackService } from '../src/services/playback/service.js'
import { PlaybackStore } from '../src/services/playback/store.js'
import { PlayableTitles } from '../src/services/playback/titles.js'
import { engines, hasPostgres, hasRedis, tempDir } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const run = promisify(execFile)
const PASSWORD = 'correct horse battery'
let seq = 0
const email = () => `play.${process.pid}.${Date.now()}.${seq++}@example.com`
const fixtures = tempDir('reel-playback-fixtures-')
afterAll(() => fixtures.cleanup())

const PLAYBACK_MEDIA_ENV = {
  REEL_MEDIA_CHUNK_SECONDS: '6',
  REEL_MEDIA_LADDER: '360p-365k,234p-145k',
  REEL_MEDIA_PRESET: 'superfast',
  REEL_MEDIA_WORKERS: '1',
}

/** A real title through the media pipeline: a 4 s 640×360 clip with sound, packaged as HLS. */
async function makeTitle(t: TestReel, name = 'clip'): Promise<string> {
  const file = path.join(fixtures.dir, `${name}-${seq++}.mp4`)
  await run('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=640x360:rate=24:duration=4',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000:duration=4',
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    '-g',
    '48',
    '-c:a',
    'aac',
    '-shortest',
    file,
  ])
  const media = t.reel.use('media')
  const titleId = newId()
  await media.beginUpload({ titleId, title: `Playback ${name}` })
  await media.finishUpload(titleId, file)
  const deadline = Date.now() + 180_000
  for (;;) {
    const view = await media.titleMedia(titleId)
    if (view.status === 'available') break
    if (view.status === 'failed' || Date.now() > deadline)
      throw new Error(`title ${view.status}: ${JSON.stringify(view.error)}`)
    await new Promise((r) => setTimeout(r, 250))
  }
  await publishEverywhere(t, titleId)
  return titleId
}

/** Media titles land in the catalog unrated and shown nowhere; an administrator would complete them. */
async function publishEverywhere(t: TestReel, titleId: string): Promise<void> {
  try {
    await t.reel.use('catalog').update(titleId, { maturityRating: 'PG', availability: [{ region: '*' }] })
  } catch (e) {
    if (!(e instanceof AppError && e.status === 404)) throw e
  }
}

async function signUp(t: TestReel, plan = 'standard', country = 'DE') {
  const res = await t.call('POST', '/api/v1/accounts', {
    body: { email: email(), password: PASSWORD, plan, country },
  })
  expect(res.statusCode, res.body).toBe(201)
  const body = res.json()
  const token: string = body.tokens.accessToken
  const profiles = await t.call('GET', '/api/v1/profiles', { token })
  return { accountId: body.account.id as string, token, profileId: profiles.json().profiles[0].id as string }
}

const code = (res: { json: () => { error: { code: string } } }) => res.json().error.code

/** A second playback service over the test reel's own parts, with another Bus, Cache or Logger given. */
function playbackOver(t: TestReel, parts: { bus?: Bus; cache?: Cache; log?: Logger }): PlaybackService {
  const { reel } = t
  return new PlaybackService({
    store: new PlaybackStore(reel.ports.db),
    cache: parts.cache ?? reel.ports.cache,
    bus: parts.bus ?? reel.ports.bus,
    billing: () => reel.use('billing'),
    accounts: () => reel.use('accounts'),
    cdn: () => reel.use('cdn'),
    titles: new PlayableTitles(
      () => reel.use('catalog'),
      () => reel.use('media'),
    ),
    log: parts.log ?? reel.log,
    now: () => t.clock.now,
    settings: {
      heartbeatIntervalMs: reel.config.playbackHeartbeatMs,
      streamTimeoutMs: reel.config.playbackStreamTimeoutMs,
      tokenTtlS: reel.config.playbackTokenTtlS,
      flushRows: reel.config.playbackFlushRows,
    },
  })
}

/** The reel's own Bus, refusing the publishes `refuse` picks (as a Bus briefly away does). */
function refusingBus(bus: Bus, refuse: (event: PublishInput) => boolean): Bus & { refused: number } {
  const refusing = {
    refused: 0,
    kind: bus.kind,
    publish: <T>(input: PublishInput<T>) => {
      if (!refuse(input)) return bus.publish(input)
      refusing.refused++
      return Promise.reject(new Error('bus away'))
    },
    subscribe: bus.subscribe.bind(bus),
    enqueue: bus.enqueue.bind(bus),
    work: bus.work.bind(bus),
    deadLetters: bus.deadLetters.bind(bus),
    prune: bus.prune.bind(bus),
    consumers: bus.consumers.bind(bus),
    ping: bus.ping.bind(bus),
    close: bus.close.bind(bus),
  }
  return refusing
}

const client = { headers: {}, address: '127.0.0.1' }

const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

describe.each(kinds)('playback on %s', (kind) => {
  let t: TestReel
  let titleId: string
  const events: EventEnvelope<PlaybackEventBase>[] = []

  beforeAll(async () => {
    t = await startReel(kind, {
      ...PLAYBACK_MEDIA_ENV,
      REEL_PLAYBACK_FLUSH_MS: '200',
      REEL_CDN_REGION_HEADER: 'x-client-country',
      REEL_CDN_REGIONS: '10.9.0.0/16=FR',
      ...(kind === 'postgres' && hasRedis() ? { REEL_REDIS_URLS: engines.redisUrls.join(',') } : {}),
    })
    await t.reel.ports.bus.subscribe<PlaybackEventBase>({
      name: 'test-playback-events',
      types: ['playback.session.*'],
      handler: async (e) => {
        events.push(e)
      },
    })
    titleId = await makeTitle(t)
  }, 240_000)
  afterAll(() => t?.stop())

  const start = (
    token: string,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
    address?: string,
  ) => t.call('POST', '/api/v1/playback', { token, body, headers, address })
  const beat = (token: string, sessionId: string, body: Record<string, unknown>) =>
    t.call('POST', `/api/v1/playback/${sessionId}/heartbeat`, { token, body })

  it('starts: signed manifest on the built-in edge, the origin last, resume 0, plan height, events keyed by profile', async () => {
    const u = await signUp(t)
    const res = await start(u.token, { profileId: u.profileId, titleId, device: 'living room TV' })
    expect(res.statusCode, res.body).toBe(201)
    const s = res.json()
    expect(s).toMatchObject({ resumeAtMs: 0, maxHeight: 1080, heartbeatIntervalMs: 10_000, region: 'DE' })
    expect(s.manifestUrl).toMatch(new RegExp(`^/edge/t/[^/]+/titles/${titleId}/hls/master\\.m3u8$`))
    expect(s.fallbackUrls.at(-1)).toMatch(/^\/origin\/t\/[^/]+\/titles\/.+\/master\.m3u8$/)
    const master = await t.call('GET', s.manifestUrl)
    expect(master.statusCode).toBe(200)
    expect(master.headers['content-type']).toBe('application/vnd.apple.mpegurl')
    expect(master.body).toContain('#EXT-X-STREAM-INF')
    const origin = await t.call('GET', s.fallbackUrls.at(-1))
    expect(origin.statusCode).toBe(200)
    await expect
      .poll(() => events.find((e) => e.data.sessionId === s.sessionId)?.type)
      .toBe('playback.session.started')
    const started = events.find((e) => e.data.sessionId === s.sessionId)
    expect(started?.key).toBe(u.profileId)
    expect(started?.data).toMatchObject({ region: 'DE', titleId, profileId: u.profileId, titleType: 'movie' })
  })

  it('resumes on a second device from the last heartbeat; the DB holds it within the write-behind interval', async () => {
    const u = await signUp(t)
    const a = (await start(u.token, { profileId: u.profileId, titleId })).json()
    expect(
      (await beat(u.token, a.sessionId, { positionMs: 1500, state: 'playing', bitrate: 365000 })).statusCode,
    ).toBe(200)
    const b = await start(u.token, { profileId: u.profileId, titleId, device: 'phone' })
    expect(b.statusCode).toBe(201)
    expect(b.json().resumeAtMs).toBe(1500)
    const db = t.reel.ports.db.kysely
    await expect
      .poll(
        async () =>
          (
            await sql<{
              position_ms: number
            }>`select position_ms from playback_progress where profile_id = ${u.profileId}`.execute(db)
          ).rows[0]?.position_ms,
        { timeout: 1000, interval: 50 },
      )
      .toBe(1500)
    await expect
      .poll(
        () =>
          events.find((e) => e.type === 'playback.session.heartbeat' && e.data.sessionId === a.sessionId)
            ?.data,
      )
      .toMatchObject({ positionMs: 1500, region: 'DE' })
  })

  it('takes heartbeats over a WebSocket: each frame answered, bad frames get the error shape, no token is refused', async () => {
    const u = await signUp(t)
    const started = (await start(u.token, { profileId: u.profileId, titleId })).json()
    const port = (t.reel.http.server.address() as { port: number }).port
    const url = `ws://127.0.0.1:${port}/api/v1/playback/${started.sessionId}/ws`
    const open = async (query: string) => {
      const socket = new WebSocket(`${url}${query}`)
      const frames: unknown[] = []
      socket.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString())))
      const closed = new Promise<number>((resolve) => socket.on('close', (code: number) => resolve(code)))
      await new Promise((resolve, reject) => {
        socket.once('open', resolve)
        socket.once('error', reject)
      })
      return { socket, frames, closed }
    }
    const ws = await open(`?access_token=${u.token}`)
    ws.socket.send(JSON.stringify({ positionMs: 2200, state: 'playing' }))
    ws.socket.send('{not json')
    ws.socket.send(JSON.stringify({ positionMs: -5, state: 'playing' }))
    ws.socket.send(JSON.stringify({ positionMs: 2600, state: 'paused', rebuffers: 1 }))
    await expect.poll(() => ws.frames.length).toBe(4)
    expect(ws.frames[0]).toEqual({ positionMs: 2200 })
    expect(ws.frames[1]).toMatchObject({ error: { code: 'malformed_json' } })
    expect(ws.frames[2]).toMatchObject({ error: { code: 'invalid_request' } })
    expect(ws.frames[3]).toEqual({ positionMs: 2600 })
    ws.socket.close()
    const again = await start(u.token, { profileId: u.profileId, titleId, device: 'tv' })
    expect(again.json().resumeAtMs).toBe(2600)
    const anonymous = await open('')
    expect(await anonymous.closed).toBe(4401)
    expect(anonymous.frames[0]).toMatchObject({ error: { code: 'missing_token' } })
  })

  it('answers the frames a client sends the moment its WebSocket opens, while its token is still being checked', async () => {
    const mail = email()
    const signUp = await t.call('POST', '/api/v1/accounts', {
      body: { email: mail, password: PASSWORD, plan: 'standard', country: 'DE' },
    })
    expect(signUp.statusCode, signUp.body).toBe(201)
    const token = signUp.json().tokens.accessToken as string
    const profileId = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles[0].id as string
    const started = (await start(token, { profileId, titleId })).json()
    const port = (t.reel.http.server.address() as { port: number }).port
    for (let i = 0; i < 5; i++) {
      // A new sign-in: a token this server has not checked before (no shortcut through its memory).
      const fresh = (
        await t.call('POST', '/api/v1/sessions', { body: { email: mail, password: PASSWORD } })
      ).json().accessToken as string
      const socket = new WebSocket(
        `ws://127.0.0.1:${port}/api/v1/playback/${started.sessionId}/ws?access_token=${fresh}`,
      )
      const frames: unknown[] = []
      socket.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString())))
      await new Promise((resolve, reject) => {
        socket.once('open', resolve)
        socket.once('error', reject)
      })
      socket.send(JSON.stringify({ positionMs: 1000 + i, state: 'playing' }))
      await expect.poll(() => frames).toEqual([{ positionMs: 1000 + i }])
      socket.close()
    }
  })

  it('refuses bad heartbeats: unknown session 404, another account 404, negative 400, past the end clamped, stopped 404', async () => {
    const u = await signUp(t)
    const other = await signUp(t)
    const s = (await start(u.token, { profileId: u.profileId, titleId })).json()
    expect(code(await beat(u.token, newId(), { positionMs: 1, state: 'playing' }))).toBe('session_not_found')
    expect((await beat(other.token, s.sessionId, { positionMs: 1, state: 'playing' })).statusCode).toBe(404)
    const negative = await beat(u.token, s.sessionId, { positionMs: -5, state: 'playing' })
    expect(negative.statusCode).toBe(400)
    expect((await beat(u.token, s.sessionId, { positionMs: 1, state: 'dancing' })).statusCode).toBe(400)
    expect((await beat(u.token, s.sessionId, { positionMs: '7', state: 'playing' })).statusCode).toBe(400)
    const beyond = await beat(u.token, s.sessionId, { positionMs: 99_999_999, state: 'playing' })
    expect(beyond.statusCode).toBe(200)
    expect(beyond.json().positionMs).toBe(s.durationMs)
    const stop = await t.call('DELETE', `/api/v1/playback/${s.sessionId}`, { token: u.token })
    expect(stop.statusCode).toBe(200)
    expect(stop.json()).toEqual({ positionMs: s.durationMs, completed: true })
    expect(code(await beat(u.token, s.sessionId, { positionMs: 1, state: 'playing' }))).toBe(
      'session_stopped',
    )
    expect((await t.call('DELETE', `/api/v1/playback/${s.sessionId}`, { token: u.token })).statusCode).toBe(
      404,
    )
    expect(
      (
        await t.call('POST', '/api/v1/playback', {
          token: u.token,
          body: '{"profileId":',
          headers: { 'content-type': 'application/json' },
        })
      ).statusCode,
    ).toBe(400)
    expect((await start(u.token, { profileId: u.profileId })).statusCode).toBe(400)
  })

  it("refuses another account's profile (404), an unknown title (404) and no plan (403)", async () => {
    const u = await signUp(t)
    const other = await signUp(t)
    expect((await start(u.token, { profileId: other.profileId, titleId })).statusCode).toBe(404)
    expect(code(await start(u.token, { profileId: u.profileId, titleId: newId() }))).toBe('title_not_found')
    const res = await t.call('POST', '/api/v1/accounts', { body: { email: email(), password: PASSWORD } })
    const token = res.json().tokens.accessToken
    const profileId = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles[0].id
    expect(code(await start(token, { profileId, titleId }))).toBe('no_active_subscription')
    expect((await start('not-a-token', { profileId, titleId })).statusCode).toBe(401)
  })

  it('refuses an R title to a kids profile (403 maturity_restricted) and a title not yet available (409)', async () => {
    const u = await signUp(t)
    const kids = await t.reel.use('accounts').createProfile(u.accountId, { name: 'Kid', kids: true })
    const catalog = t.reel.use('catalog')
    const rated = await catalog.create({
      type: 'movie',
      title: 'Rated R',
      maturityRating: 'R',
      availability: [{ region: '*' }],
    })
    await catalog.upsertMedia({ titleId: rated.id, status: 'available', durationMs: 4000 })
    const restricted = await start(u.token, { profileId: kids.id, titleId: rated.id })
    expect(restricted.statusCode).toBe(403)
    expect(code(restricted)).toBe('maturity_restricted')
    const pending = await catalog.create({
      type: 'movie',
      title: 'Coming soon',
      maturityRating: 'PG',
      availability: [{ region: '*' }],
    })
    await catalog.upsertMedia({ titleId: pending.id, status: 'processing' })
    const early = await start(u.token, { profileId: u.profileId, titleId: pending.id })
    expect(early.statusCode).toBe(409)
    expect(code(early)).toBe('title_not_available')
    const elsewhere = await catalog.create({
      type: 'movie',
      title: 'US only',
      maturityRating: 'PG',
      availability: [{ region: 'US' }],
    })
    await catalog.upsertMedia({ titleId: elsewhere.id, status: 'available', durationMs: 4000 })
    expect(code(await start(u.token, { profileId: u.profileId, titleId: elsewhere.id }))).toBe(
      'title_not_available',
    )
  })

  it('limits concurrent streams to the plan (409 with the active devices); a stop or 60 s of silence frees a slot', async () => {
    const u = await signUp(t, 'standard')
    const one = (await start(u.token, { profileId: u.profileId, titleId, device: 'tv' })).json()
    const two = await start(u.token, { profileId: u.profileId, titleId, device: 'tablet' })
    expect(two.statusCode).toBe(201)
    const three = await start(u.token, { profileId: u.profileId, titleId, device: 'phone' })
    expect(three.statusCode).toBe(409)
    expect(code(three)).toBe('stream_limit_reached')
    expect(
      three
        .json()
        .error.details.activeDevices.map((d: { device: string }) => d.device)
        .sort(),
    ).toEqual(['tablet', 'tv'])
    await t.call('DELETE', `/api/v1/playback/${one.sessionId}`, { token: u.token })
    const again = await start(u.token, { profileId: u.profileId, titleId, device: 'phone' })
    expect(again.statusCode).toBe(201)
    expect((await start(u.token, { profileId: u.profileId, titleId })).statusCode).toBe(409)
    t.clock.advance(61_000)
    expect((await start(u.token, { profileId: u.profileId, titleId })).statusCode).toBe(201)
  })

  it('racing starts on a 2-stream plan: exactly 2 win', async () => {
    const u = await signUp(t, 'standard')
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        start(u.token, { profileId: u.profileId, titleId, device: `d${i}` }),
      ),
    )
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(2)
    expect(results.filter((r) => r.statusCode === 409)).toHaveLength(4)
  })

  it('continue-watching and history: in progress listed most recent first; ≥ 95 % marks it watched and resumes at 0', async () => {
    const u = await signUp(t)
    const s = (await start(u.token, { profileId: u.profileId, titleId })).json()
    await beat(u.token, s.sessionId, { positionMs: 1000, state: 'playing' })
    const cw = await t.call('GET', `/api/v1/profiles/${u.profileId}/continue-watching`, { token: u.token })
    expect(cw.statusCode).toBe(200)
    expect(cw.json().items).toMatchObject([{ titleId, positionMs: 1000, completed: false, type: 'movie' }])
    await t.call('DELETE', `/api/v1/playback/${s.sessionId}?positionMs=${Math.ceil(s.durationMs * 0.96)}`, {
      token: u.token,
    })
    expect(
      (await t.call('GET', `/api/v1/profiles/${u.profileId}/continue-watching`, { token: u.token })).json()
        .items,
    ).toEqual([])
    const history = (
      await t.call('GET', `/api/v1/profiles/${u.profileId}/history`, { token: u.token })
    ).json().items
    expect(history).toMatchObject([{ titleId, completed: true }])
    expect((await start(u.token, { profileId: u.profileId, titleId })).json().resumeAtMs).toBe(0)
    const other = await signUp(t)
    expect(
      (await t.call('GET', `/api/v1/profiles/${u.profileId}/history`, { token: other.token })).statusCode,
    ).toBe(404)
    await expect
      .poll(
        () =>
          events.find((e) => e.type === 'playback.session.stopped' && e.data.sessionId === s.sessionId)?.data,
      )
      .toMatchObject({ completed: true })
  })

  it("region: a trusted header, else the address table, else the account's country", async () => {
    const u = await signUp(t, 'standard', 'DE')
    const byHeader = await start(u.token, { profileId: u.profileId, titleId }, { 'x-client-country': 'it' })
    expect(byHeader.json().region).toBe('IT')
    const byAddress = await start(u.token, { profileId: u.profileId, titleId }, {}, '10.9.3.4')
    expect(byAddress.json().region).toBe('FR')
  })

  it('deletes the history and positions of a deleted profile (accounts.profile.deleted)', async () => {
    const u = await signUp(t)
    const second = await t.reel.use('accounts').createProfile(u.accountId, { name: 'Second' })
    const s = (await start(u.token, { profileId: second.id, titleId })).json()
    await beat(u.token, s.sessionId, { positionMs: 2000, state: 'playing' })
    await t.call('DELETE', `/api/v1/playback/${s.sessionId}`, { token: u.token })
    const db = t.reel.ports.db.kysely
    const rows = async () =>
      Number(
        (
          await sql<{
            n: number
          }>`select count(*) as n from playback_progress where profile_id = ${second.id}`.execute(db)
        ).rows[0]?.n,
      )
    expect(await rows()).toBe(1)
    await t.reel.use('accounts').deleteProfile(u.accountId, second.id)
    await expect.poll(rows, { timeout: 10_000 }).toBe(0)
    // Delivered twice: the same effect.
    await t.reel.use('playback').profileDeleted(second.id)
    expect(await rows()).toBe(0)
  })

  it('leaves nothing of a profile deleted while a flush writes its rows, and ends its sessions', async () => {
    const u = await signUp(t)
    const third = await t.reel.use('accounts').createProfile(u.accountId, { name: 'Third' })
    const s = (await start(u.token, { profileId: third.id, titleId })).json()
    expect((await beat(u.token, s.sessionId, { positionMs: 2000, state: 'playing' })).statusCode).toBe(200)
    const playback = t.reel.use('playback')
    // The flush takes the rows and starts writing them; the deletion arrives meanwhile.
    const flushed = playback.flush()
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
    await playback.profileDeleted(third.id)
    await flushed
    const db = t.reel.ports.db.kysely
    const count = async (table: 'playback_progress' | 'playback_sessions') =>
      Number(
        (
          await sql<{
            n: number
          }>`select count(*) as n from ${sql.table(table)} where profile_id = ${third.id}`.execute(db)
        ).rows[0]?.n,
      )
    expect(await count('playback_progress')).toBe(0)
    expect(await count('playback_sessions')).toBe(0)
    const after = await beat(u.token, s.sessionId, { positionMs: 3000, state: 'playing' })
    expect(after.statusCode).toBe(404)
    expect(code(after)).toBe('session_stopped')
  })

  it("writes session rows behind; a stop is in the DB when it answers; a session's events leave in order", async () => {
    const u = await signUp(t)
    const s = (await start(u.token, { profileId: u.profileId, titleId, device: 'hall TV' })).json()
    const db = t.reel.ports.db.kysely
    const session = async () =>
      (
        await sql<{
          position_ms: number
          stopped_at: number | null
          device: string
        }>`select position_ms, stopped_at, device from playback_sessions where id = ${s.sessionId}`.execute(
          db,
        )
      ).rows[0]
    // Within the write-behind interval (200 ms here), without any heartbeat.
    await expect.poll(async () => (await session())?.device, { timeout: 2000, interval: 50 }).toBe('hall TV')
    expect((await beat(u.token, s.sessionId, { positionMs: 1000, state: 'playing' })).statusCode).toBe(200)
    // Heartbeats since the last flush leave as one event at the next flush (a stop before it folds them in).
    await expect
      .poll(() =>
        events.some((e) => e.type === 'playback.session.heartbeat' && e.data.sessionId === s.sessionId),
      )
      .toBe(true)
    const stop = await t.call('DELETE', `/api/v1/playback/${s.sessionId}?positionMs=1500`, { token: u.token })
    expect(stop.statusCode).toBe(200)
    // No waiting: the stop answered after its transaction.
    expect(await session()).toMatchObject({ position_ms: 1500, stopped_at: expect.any(Number) })
    const progress = await sql<{
      position_ms: number
    }>`select position_ms from playback_progress where profile_id = ${u.profileId}`.execute(db)
    expect(progress.rows[0]?.position_ms).toBe(1500)
    await expect
      .poll(() => events.filter((e) => e.data.sessionId === s.sessionId).map((e) => e.type))
      .toEqual(['playback.session.started', 'playback.session.heartbeat', 'playback.session.stopped'])
    const stopped = events.find(
      (e) => e.type === 'playback.session.stopped' && e.data.sessionId === s.sessionId,
    )
    expect(stopped?.data).toMatchObject({ positionMs: 1500, profileId: u.profileId })
  })

  const authOf = async (token: string) =>
    (await Authenticator.create(t.reel.config, t.reel.ports.db, t.reel.ports.cache)).verify(token)
  const typesOf = (sessionId: string) =>
    events.filter((e) => e.data.sessionId === sessionId).map((e) => e.type.replace('playback.session.', ''))

  it('a refused publish holds back the later events of the profile; they go in order once the Bus takes them', async () => {
    const u = await signUp(t)
    let away = true
    const bus = refusingBus(
      t.reel.ports.bus,
      (e) => away && e.key === u.profileId && e.type === 'playback.session.started',
    )
    const playback = playbackOver(t, { bus })
    const auth = await authOf(u.token)
    const s = await playback.start(auth, { profileId: u.profileId, titleId }, client)
    await playback.heartbeat(auth, s.sessionId, { positionMs: 1000, state: 'playing' })
    await playback.flush()
    await expect.poll(() => bus.refused).toBeGreaterThan(0)
    await playback.stop(auth, s.sessionId, 1500)
    away = false
    await playback.drain()
    await expect.poll(() => typesOf(s.sessionId)).toEqual(['started', 'heartbeat', 'stopped'])
  })

  it('a graceful shutdown publishes again what the Bus refuses, until it goes', async () => {
    const u = await signUp(t)
    let refusals = 3
    const bus = refusingBus(t.reel.ports.bus, (e) => e.key === u.profileId && refusals-- > 0)
    const playback = playbackOver(t, { bus })
    const auth = await authOf(u.token)
    const s = await playback.start(auth, { profileId: u.profileId, titleId }, client)
    await playback.drain()
    expect(bus.refused).toBe(3)
    await expect.poll(() => typesOf(s.sessionId)).toEqual(['started'])
  })

  it('a graceful shutdown gives up after its deadline and logs the events lost', async () => {
    const u = await signUp(t)
    const bus = refusingBus(t.reel.ports.bus, (e) => e.key === u.profileId)
    const lines: string[] = []
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) })
    const playback = playbackOver(t, { bus, log })
    const auth = await authOf(u.token)
    const s = await playback.start(auth, { profileId: u.profileId, titleId }, client)
    await playback.stop(auth, s.sessionId, 500)
    await playback.drain(300)
    const lost = lines.map((l) => JSON.parse(l)).find((l) => l.level === 50)
    expect(lost).toMatchObject({ events: 2, positions: 0, sessions: 0 })
    expect(lost.msg).toContain('lost')
  })

  it.skipIf(kind !== 'postgres')(
    'with the Cache away, slots are counted from the DB, the rows to flush and the rows of a flush in progress',
    async () => {
      const u = await signUp(t, 'standard')
      // A Redis node nobody listens on: every sorted-set read answers "cannot tell".
      const cache = new RedisCache({
        urls: ['redis://127.0.0.1:1/0'],
        prefix: 'gone:',
        log: t.reel.log,
        connectTimeoutMs: 200,
      })
      const playback = playbackOver(t, { cache })
      const auth = await authOf(u.token)
      const play = () => playback.start(auth, { profileId: u.profileId, titleId }, client)
      await play()
      const db = t.reel.ports.db.kysely
      let release = () => {}
      const released = new Promise<void>((resolve) => {
        release = resolve
      })
      let locked = () => {}
      const isLocked = new Promise<void>((resolve) => {
        locked = resolve
      })
      // The flush's insert waits behind this lock: the first session is in neither the DB nor the pending rows.
      const holder = db.transaction().execute(async (trx) => {
        await sql`lock table playback_sessions in exclusive mode`.execute(trx)
        locked()
        await released
      })
      try {
        await isLocked
        const flushing = playback.flush()
        await expect
          .poll(
            async () =>
              (
                await sql<{
                  n: number
                }>`select count(*)::int as n from pg_locks where not granted and relation = to_regclass('playback_sessions')`.execute(
                  db,
                )
              ).rows[0]?.n,
          )
          .toBe(1)
        await play()
        await expect(play()).rejects.toMatchObject({ status: 409, code: 'stream_limit_reached' })
        release()
        await holder
        await flushing
      } finally {
        release()
        await holder
        await cache.close()
      }
    },
  )

  it('a graceful stop flushes the last positions to the DB', async () => {
    const u = await signUp(t)
    const s = (await start(u.token, { profileId: u.profileId, titleId })).json()
    await beat(u.token, s.sessionId, { positionMs: 2222, state: 'paused' })
    await t.reel.use('playback').flush()
    const db = t.reel.ports.db.kysely
    const row = (
      await sql<{
        position_ms: number
      }>`select position_ms from playback_progress where profile_id = ${u.profileId}`.execute(db)
    ).rows[0]
    expect(row?.position_ms).toBe(2222)
  })
})

describe.skipIf(!(hasPostgres() && hasRedis()))(
  'playback across two API processes (PostgreSQL + Redis)',
  () => {
    let a: TestReel
    let b: Reel
    let titleId: string

    beforeAll(async () => {
      a = await startReel('postgres', {
        ...PLAYBACK_MEDIA_ENV,
        // Rows would reach the DB only a minute later: what the second process knows comes from Redis.
        REEL_PLAYBACK_FLUSH_MS: '60000',
        REEL_REDIS_URLS: engines.redisUrls.join(','),
      })
      titleId = await makeTitle(a, 'shared')
      b = await createReel({
        config: loadConfig({
          REEL_DATA_DIR: a.reel.config.dataDir,
          REEL_PORT: '0',
          REEL_HOST: '127.0.0.1',
          REEL_JWT_SECRET: 'test-secret-test-secret-test-secret-0123456789',
          REEL_DATABASE_URL: engines.databaseUrl ?? '',
          REEL_DATABASE_SCHEMA: a.reel.config.databaseSchema,
          REEL_REDIS_URLS: engines.redisUrls.join(','),
          REEL_MEDIA_WORKERS: '0',
          REEL_CDN_BUILTIN_EDGE: 'false',
          REEL_PLAYBACK_FLUSH_MS: '60000',
        }),
        log: createLogger('silent'),
      })
      await b.start()
    }, 240_000)
    afterAll(async () => {
      await b?.stop()
      await a?.stop()
    })
    /** Requests to the second process, as the holder of this token. */
    const onProcessB = (token: string) => (method: string, url: string, body?: unknown) =>
      b.http.inject({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${token}` },
        ...(body === undefined ? {} : { payload: body as object }),
      })

    it('a profile deleted through one process leaves nothing the other had not flushed, and ends its sessions there', async () => {
      a.clock.now = Date.now()
      const u = await signUp(a, 'standard')
      const guest = await a.reel.use('accounts').createProfile(u.accountId, { name: 'Guest' })
      const onB = onProcessB(u.token)
      const started = await onB('POST', '/api/v1/playback', { profileId: guest.id, titleId })
      expect(started.statusCode, started.body).toBe(201)
      const heartbeat = () =>
        onB('POST', `/api/v1/playback/${started.json().sessionId}/heartbeat`, {
          positionMs: 1500,
          state: 'playing',
        })
      // B holds the session's row and position, unflushed (its flush interval is a minute).
      expect((await heartbeat()).statusCode).toBe(200)
      await a.reel.use('accounts').deleteProfile(u.accountId, guest.id)
      await expect.poll(async () => (await heartbeat()).statusCode, { timeout: 15_000 }).toBe(404)
      expect(code(await heartbeat())).toBe('session_stopped')
      await b.use('playback').flush()
      await a.reel.use('playback').flush()
      const db = a.reel.ports.db.kysely
      for (const table of ['playback_progress', 'playback_sessions'])
        expect(
          Number(
            (
              await sql<{
                n: number
              }>`select count(*) as n from ${sql.table(table)} where profile_id = ${guest.id}`.execute(db)
            ).rows[0]?.n,
          ),
        ).toBe(0)
    })

    it('a session started on one process beats and stops on the other before its row is flushed; slots count across both', async () => {
      // Both processes on the real clock (B has no other): the stream sets are windows of time.
      a.clock.now = Date.now()
      const u = await signUp(a, 'standard')
      const onA = (method: string, url: string, body?: unknown) =>
        a.call(method, url, { token: u.token, body })
      const onB = onProcessB(u.token)
      const first = await onA('POST', '/api/v1/playback', { profileId: u.profileId, titleId, device: 'tv' })
      expect(first.statusCode, first.body).toBe(201)
      const sessionId = first.json().sessionId as string
      const db = a.reel.ports.db.kysely
      const rows = async () =>
        Number(
          (
            await sql<{
              n: number
            }>`select count(*) as n from playback_sessions where id = ${sessionId}`.execute(db)
          ).rows[0]?.n,
        )
      expect(await rows()).toBe(0)
      const beat = await onB('POST', `/api/v1/playback/${sessionId}/heartbeat`, {
        positionMs: 1200,
        state: 'playing',
      })
      expect(beat.statusCode, beat.body).toBe(200)
      // The plan's second screen on B, a third anywhere is refused: the slots are in Redis.
      expect((await onB('POST', '/api/v1/playback', { profileId: u.profileId, titleId })).statusCode).toBe(
        201,
      )
      const third = await onA('POST', '/api/v1/playback', {
        profileId: u.profileId,
        titleId,
        device: 'phone',
      })
      expect(third.statusCode).toBe(409)
      expect(third.json().error.details.activeDevices.map((d: { device: string }) => d.device)).toContain(
        'tv',
      )
      // Stopped on B: B's flush writes the whole row, though A never flushed it.
      const stop = await onB('DELETE', `/api/v1/playback/${sessionId}?positionMs=1800`)
      expect(stop.statusCode, stop.body).toBe(200)
      const row = (
        await sql<{
          position_ms: number
          stopped_at: number | null
          device: string
        }>`select position_ms, stopped_at, device from playback_sessions where id = ${sessionId}`.execute(db)
      ).rows[0]
      expect(row).toMatchObject({ position_ms: 1800, device: 'tv', stopped_at: expect.any(Number) })
      // The freed screen is free on A too.
      expect((await onA('POST', '/api/v1/playback', { profileId: u.profileId, titleId })).statusCode).toBe(
        201,
      )
      // A learns of the stop at its next slot refresh (every few seconds): later heartbeats there are refused.
      a.clock.now = Date.now() + 6_000
      const late = await onA('POST', `/api/v1/playback/${sessionId}/heartbeat`, {
        positionMs: 1900,
        state: 'playing',
      })
      expect(late.statusCode).toBe(404)
      expect(late.json().error.code).toBe('session_stopped')
    })
  },
)

describe('write-behind under a burst of plays', () => {
  let t: TestReel
  let titleId: string

  beforeAll(async () => {
    // The timer would flush a minute later: only the row count starts a flush here.
    t = await startReel('sqlite', {
      ...PLAYBACK_MEDIA_ENV,
      REEL_PLAYBACK_FLUSH_MS: '60000',
      REEL_PLAYBACK_FLUSH_ROWS: '2',
    })
    titleId = await makeTitle(t, 'burst')
  }, 240_000)
  afterAll(async () => {
    await t?.stop()
  })

  it('flushes before its timer once REEL_PLAYBACK_FLUSH_ROWS rows wait', async () => {
    const u = await signUp(t, 'standard')
    const rows = async () =>
      Number(
        (
          await sql<{
            n: number
          }>`select count(*) as n from playback_sessions where profile_id = ${u.profileId}`.execute(
            t.reel.ports.db.kysely,
          )
        ).rows[0]?.n,
      )
    const start = () =>
      t.call('POST', '/api/v1/playback', { token: u.token, body: { profileId: u.profileId, titleId } })
    expect((await start()).statusCode).toBe(201)
    await new Promise((r) => setTimeout(r, 300))
    expect(await rows()).toBe(0)
    expect((await start()).statusCode).toBe(201)
    await expect.poll(rows).toBe(2)
  })
})
