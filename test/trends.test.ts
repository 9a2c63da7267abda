import { execFile } from 'node:child_process'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import { connect } from 'nats'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createReel, type Reel } from '../src/platform/app.js'
import type { EventEnvelope, PublishInput } from '../src/platform/bus/bus.js'
import { createDb } from '../src/platform/db/db.js'
import { createLogger } from '../src/platform/log.js'
import {
  PLAYBACK_HEARTBEAT,
  PLAYBACK_STARTED,
  PLAYBACK_STOPPED,
  type PlaybackEventBase,
} from '../src/services/playback/events.js'
import { partitionOf } from '../src/services/trends/archive.js'
import type { CountRow } from '../src/services/trends/rules.js'
import { TrendsStore } from '../src/services/trends/store.js'
import { engines, hasNats, hasPostgres, hasRedis, uniqueName } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
/** A Monday, 00:00 UTC. */
const MONDAY = Date.parse('2026-11-16T00:00:00Z')
const GRACE_MS = HOUR

interface Title {
  titleId: string
  titleType: 'movie' | 'episode'
  seriesId: string | null
  seasonId: string | null
  durationMs: number
}

const movie = (id: string): Title => ({
  titleId: id,
  titleType: 'movie',
  seriesId: null,
  seasonId: null,
  durationMs: 100 * MINUTE,
})
const episode = (series: string, season: number, n: number): Title => ({
  titleId: `${series}-s${season}e${n}`,
  titleType: 'episode',
  seriesId: series,
  seasonId: `${series}-s${season}`,
  durationMs: 40 * MINUTE,
})

type Kind = 'started' | 'heartbeat' | 'stopped'
const TYPES: Record<Kind, string> = {
  started: PLAYBACK_STARTED,
  heartbeat: PLAYBACK_HEARTBEAT,
  stopped: PLAYBACK_STOPPED,
}

let eventSeq = 0
/** A playback event of the published contract (src/services/playback/events.ts). */
function play(
  kind: Kind,
  title: Title,
  at: number,
  region: string,
  watchedMs = 0,
  profile = `profile-${eventSeq % 97}`,
): PublishInput {
  const base: PlaybackEventBase = {
    sessionId: `session-${profile}`,
    accountId: `account-${profile}`,
    profileId: profile,
    ...title,
    region,
    positionMs: 0,
    durationMs: title.durationMs,
    at: new Date(at).toISOString(),
  }
  const data =
    kind === 'started'
      ? { ...base, resumeAtMs: 0, maxHeight: 1080, device: 'test' }
      : kind === 'heartbeat'
        ? { ...base, state: 'playing', watchedMs }
        : { ...base, watchedMs, completed: false }
  return { id: `ev-${process.pid}-${eventSeq++}`, type: TYPES[kind], key: profile, data }
}

/** A small deterministic random source, so a failing run can be replayed. */
function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const trendsOf = (reel: Reel) => reel.use('trends')
const processed = (reel: Reel) => {
  const r = trendsOf(reel).aggregator.report
  return r.counted + r.duplicates + r.outOfGrace + r.rejected
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** Plays and watched time per (grain, region, kind, subject), summed over buckets: the invariants a test can state. */
function totals(rows: readonly CountRow[], grain: string): Map<string, { plays: number; watchedMs: number }> {
  const out = new Map<string, { plays: number; watchedMs: number }>()
  for (const r of rows) {
    if (r.grain !== grain) continue
    const key = `${r.region}|${r.kind}|${r.subjectId}`
    const t = out.get(key) ?? { plays: 0, watchedMs: 0 }
    t.plays += r.plays
    t.watchedMs += r.watchedMs
    out.set(key, t)
  }
  return out
}

/** What the events should add up to, computed the plain way: distinct ids, a movie as itself, an episode as its series and season. */
function expectedTotals(events: readonly PublishInput[]): Map<string, { plays: number; watchedMs: number }> {
  const out = new Map<string, { plays: number; watchedMs: number }>()
  const seen = new Set<string>()
  for (const e of events) {
    if (!e.id || seen.has(e.id)) continue
    seen.add(e.id)
    const d = e.data as PlaybackEventBase & { watchedMs?: number }
    const subjects =
      d.titleType === 'movie'
        ? [['movie', d.titleId]]
        : [
            ['series', d.seriesId],
            ['season', `${d.seriesId}/${d.seasonId}`],
          ]
    for (const region of [d.region, 'world'])
      for (const [kind, id] of subjects) {
        const key = `${region}|${kind}|${id}`
        const t = out.get(key) ?? { plays: 0, watchedMs: 0 }
        if (e.type === PLAYBACK_STARTED) t.plays++
        else t.watchedMs += d.watchedMs ?? 0
        out.set(key, t)
      }
  }
  return out
}

const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

describe.each(kinds)('trends on %s', (kind) => {
  let t: TestReel

  beforeAll(async () => {
    t = await startReel(kind, {
      REEL_TRENDS_GRACE_S: String(GRACE_MS / 1000),
      REEL_TRENDS_ANSWER_TTL_MS: '0',
    })
  })
  afterAll(() => t.stop())

  const publish = (events: readonly PublishInput[]) =>
    Promise.all(events.map((e) => t.reel.ports.bus.publish(e)))

  async function streamed(events: readonly PublishInput[], extra = 0): Promise<void> {
    const before = processed(t.reel)
    await publish(events)
    await until(() => processed(t.reel) >= before + events.length + extra, 'the trends consumer')
  }

  it('streaming equals batch on thousands of events over days and regions, with repeats and late events', async () => {
    const rnd = random(42)
    const titles = [
      ...['m1', 'm2', 'm3', 'm4', 'm5', 'm6'].map((m) => movie(`${kind}-${m}`)),
      ...['a', 'b', 'c'].flatMap((s) =>
        [1, 2].flatMap((season) => [1, 2, 3].map((n) => episode(`${kind}-${s}`, season, n))),
      ),
    ]
    const regions = ['US', 'DE', 'BR', 'JP', 'us']
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T
    const all: PublishInput[] = []
    const STEP = 30 * MINUTE
    let redelivered = 0
    for (let stepEnd = MONDAY + STEP; stepEnd <= MONDAY + 3 * DAY; stepEnd += STEP) {
      t.clock.now = stepEnd
      const batch: PublishInput[] = []
      for (let i = 0; i < 35; i++) {
        // One in ten arrives 30 to 55 minutes after its time: within the grace, so it counts in its own bucket.
        const late = rnd() < 0.1
        const at = late
          ? stepEnd - STEP - Math.floor(rnd() * 25 * MINUTE)
          : stepEnd - Math.floor(rnd() * STEP) - 1
        if (at < MONDAY) continue
        const k: Kind = pick(['started', 'started', 'heartbeat', 'heartbeat', 'stopped'])
        batch.push(
          play(k, pick(titles), at, pick(regions), k === 'started' ? 0 : Math.floor(rnd() * 10 * MINUTE)),
        )
      }
      const envelopes = await publish(batch)
      // A repeated publish of the same id (the bus drops it) and a redelivery straight to the handler.
      const again = batch.filter(() => rnd() < 0.05)
      await publish(again)
      const redeliveries = envelopes.filter(() => rnd() < 0.05)
      await Promise.all(redeliveries.map((e) => trendsOf(t.reel).handle(e)))
      redelivered += redeliveries.length
      all.push(...batch)
      await until(() => processed(t.reel) >= all.length + redelivered, 'the trends consumer')
    }
    expect(all.length).toBeGreaterThan(4000)
    const report = trendsOf(t.reel).aggregator.report
    expect(report).toMatchObject({ counted: all.length, duplicates: redelivered, outOfGrace: 0, rejected: 0 })

    // Hourly and daily rollups are sealed from the 5-minute counters once the hour (day) is closed.
    t.clock.now = MONDAY + 3 * DAY + GRACE_MS + HOUR
    expect((await trendsOf(t.reel).seal()).hours).toBeGreaterThanOrEqual(72)
    const streaming = await trendsOf(t.reel).counters(MONDAY, MONDAY + 3 * DAY)
    const expected = expectedTotals(
      all.map((e) => ({
        ...e,
        data: { ...(e.data as object), region: (e.data as { region: string }).region.toUpperCase() },
      })),
    )
    for (const grain of ['5m', '1h', '1d']) expect(totals(streaming, grain)).toEqual(expected)

    const first = await trendsOf(t.reel).rollup(MONDAY, MONDAY + 3 * DAY)
    expect(first).toMatchObject({ events: all.length, days: ['2026-11-16', '2026-11-17', '2026-11-18'] })
    const batch = await trendsOf(t.reel).counters(MONDAY, MONDAY + 3 * DAY)
    expect(batch).toEqual(streaming)

    const second = await trendsOf(t.reel).rollup(MONDAY, MONDAY + 3 * DAY)
    expect(second).toEqual(first)
    expect(await trendsOf(t.reel).counters(MONDAY, MONDAY + 3 * DAY)).toEqual(streaming)
  })

  it('lands an event at hh:59:59.999 and one at the next hh:00 in their own buckets at every grain', async () => {
    const day = MONDAY + 7 * DAY
    const title = movie(`${kind}-edge`)
    t.clock.now = day + 23 * HOUR + 30 * MINUTE
    await streamed([
      play('started', title, day + 23 * HOUR - 1, 'FR'),
      play('started', title, day + 23 * HOUR, 'FR'),
    ])
    t.clock.now = day + DAY - 1
    await streamed([play('started', title, day + DAY - 1, 'FR')])
    t.clock.now = day + DAY + 2 * MINUTE
    await streamed([play('started', title, day + DAY, 'FR')])
    t.clock.now = day + 2 * DAY + GRACE_MS
    await trendsOf(t.reel).seal()
    const rows = (await trendsOf(t.reel).counters(day, day + 2 * DAY)).filter(
      (r) => r.region === 'FR' && r.subjectId === title.titleId,
    )
    const at = (grain: string) =>
      rows.filter((r) => r.grain === grain).map((r) => [new Date(r.bucket).toISOString(), r.plays])
    expect(at('5m')).toEqual([
      ['2026-11-23T22:55:00.000Z', 1],
      ['2026-11-23T23:00:00.000Z', 1],
      ['2026-11-23T23:55:00.000Z', 1],
      ['2026-11-24T00:00:00.000Z', 1],
    ])
    expect(at('1h')).toEqual([
      ['2026-11-23T22:00:00.000Z', 1],
      ['2026-11-23T23:00:00.000Z', 2],
      ['2026-11-24T00:00:00.000Z', 1],
    ])
    expect(at('1d')).toEqual([
      ['2026-11-23T00:00:00.000Z', 3],
      ['2026-11-24T00:00:00.000Z', 1],
    ])
  })

  it('counts a repeated event once, whether the bus or the handler sees it twice', async () => {
    t.clock.now = MONDAY + 10 * DAY
    const title = movie(`${kind}-dup`)
    const event = play('started', title, t.clock.now - MINUTE, 'IT')
    const [envelope] = await publish([event])
    if (!envelope) throw new Error('not published')
    await until(async () => {
      const rows = await trendsOf(t.reel).counters(MONDAY + 10 * DAY - HOUR, MONDAY + 10 * DAY)
      return rows.some((r) => r.subjectId === title.titleId)
    }, 'the count')
    const report = await trendsOf(t.reel).ingest([envelope, envelope, { ...envelope }])
    expect(report).toEqual({ counted: 0, duplicates: 3, outOfGrace: 0, rejected: 0 })
    t.clock.now = MONDAY + 11 * DAY
    await trendsOf(t.reel).seal()
    const rows = await trendsOf(t.reel).counters(MONDAY + 10 * DAY - DAY, MONDAY + 10 * DAY)
    expect(
      rows.filter((r) => r.subjectId === title.titleId).map((r) => [r.grain, r.region, r.plays]),
    ).toEqual([
      ['1d', 'IT', 1],
      ['1d', 'world', 1],
      ['1h', 'IT', 1],
      ['1h', 'world', 1],
      ['5m', 'IT', 1],
      ['5m', 'world', 1],
    ])
  })

  it('archives an event later than the grace without counting it; the next rollup counts it', async () => {
    const now = MONDAY + 12 * DAY + 12 * HOUR
    t.clock.now = now
    const title = movie(`${kind}-late`)
    const lateAt = now - GRACE_MS - 5 * MINUTE
    const report = await trendsOf(t.reel).ingest([
      {
        id: `late-${kind}`,
        type: PLAYBACK_STARTED,
        key: 'p',
        time: new Date(now).toISOString(),
        data: play('started', title, lateAt, 'ES').data,
      },
    ])
    expect(report).toEqual({ counted: 0, duplicates: 0, outOfGrace: 1, rejected: 0 })
    await trendsOf(t.reel).aggregator.moveArchive()
    const parts = await t.reel.ports.blobs.list(partitionOf(lateAt))
    expect(parts.length).toBeGreaterThan(0)
    expect(parts.every((p) => p.key.endsWith('.ndjson'))).toBe(true)
    const hour = Math.floor(lateAt / HOUR) * HOUR
    const counted = async () =>
      (await trendsOf(t.reel).counters(hour, hour + HOUR)).filter((r) => r.subjectId === title.titleId)
    expect(await counted()).toEqual([])

    await expect(trendsOf(t.reel).rollup(hour, now)).rejects.toMatchObject({
      status: 409,
      code: 'range_still_open',
    })
    await trendsOf(t.reel).rollup(hour, hour + HOUR)
    expect((await counted()).map((r) => [r.grain, r.region, r.plays])).toEqual([
      ['1h', 'ES', 1],
      ['1h', 'world', 1],
      ['5m', 'ES', 1],
      ['5m', 'world', 1],
    ])
  })

  it('moves a flush’s staged archive part from memory; parts left in the DB are moved from there', async () => {
    const now = MONDAY + 13 * DAY + 12 * HOUR
    t.clock.now = now
    const db = t.reel.ports.db.kysely
    const outbox = async () =>
      (
        await db
          .selectFrom('trends_archive_outbox' as never)
          .select('id' as never)
          .execute()
      ).length
    const partsAt = async (at: number) => {
      const out: string[] = []
      for (const info of await t.reel.ports.blobs.list(partitionOf(at)))
        for await (const chunk of (await t.reel.ports.blobs.get(info.key)).body) out.push(String(chunk))
      return out.join('')
    }
    const readBack = vi.spyOn(TrendsStore.prototype, 'archivePartLines')
    try {
      // A small flush (live traffic) stages its part in its transaction; this process moves it
      // from memory: nothing is read back from the DB.
      await trendsOf(t.reel).aggregator.moveArchive()
      readBack.mockClear()
      const title = movie(`${kind}-staged`)
      const event = play('started', title, now - MINUTE, 'FR')
      await streamed([event])
      await trendsOf(t.reel).aggregator.moveArchive()
      expect(await partsAt(now - MINUTE)).toContain(String(event.id))
      expect(await outbox()).toBe(0)
      expect(readBack).not.toHaveBeenCalled()

      // The blob store refusing the move: the part stays in the DB, and a later move takes it from there.
      const refused = vi.spyOn(t.reel.ports.blobs, 'put').mockRejectedValueOnce(new Error('disk full'))
      const second = play('started', title, now - 2 * HOUR, 'FR')
      await streamed([second])
      await until(async () => refused.mock.calls.length > 0, 'the refused move')
      await until(async () => (await outbox()) === 1, 'the part kept in the DB')
      refused.mockRestore()
      await trendsOf(t.reel).aggregator.moveArchive()
      expect(await outbox()).toBe(0)
      expect(await partsAt(now - 2 * HOUR)).toContain(String(second.id))
      expect(readBack).toHaveBeenCalledTimes(1)
    } finally {
      readBack.mockRestore()
    }
  })

  it('rejects events that are not usable playback events, without failing the rest', async () => {
    t.clock.now = MONDAY + 13 * DAY
    const good = play('started', movie(`${kind}-ok`), t.clock.now - MINUTE, 'PT')
    const envelope = (id: string, data: unknown): EventEnvelope => ({
      id,
      type: PLAYBACK_STARTED,
      key: 'k',
      time: new Date().toISOString(),
      data,
    })
    const report = await trendsOf(t.reel).ingest([
      envelope(`bad1-${kind}`, null),
      envelope(`bad2-${kind}`, { ...(good.data as object), at: 'yesterday' }),
      envelope(`bad3-${kind}`, { ...(good.data as object), titleType: 'episode' }),
      envelope(`bad4-${kind}`, { ...(good.data as object), titleType: 'trailer' }),
      { ...envelope(`bad5-${kind}`, { ...(good.data as object), watchedMs: -5 }), type: PLAYBACK_HEARTBEAT },
      envelope(`good-${kind}`, good.data),
    ])
    expect(report).toEqual({ counted: 1, duplicates: 0, outOfGrace: 0, rejected: 5 })
  })
})

describe.each(kinds)('a trends consumer restarted mid-stream on %s', (kind) => {
  let t: TestReel
  let second: Reel | undefined

  beforeAll(async () => {
    t = await startReel(kind, {
      REEL_TRENDS_GRACE_S: String(GRACE_MS / 1000),
      REEL_TRENDS_ANSWER_TTL_MS: '0',
    })
  })
  afterAll(async () => {
    await second?.stop()
    await t.stop()
  })

  it('loses nothing and counts nothing twice, even when the bus redelivers everything', async () => {
    const now = MONDAY + 2 * HOUR
    t.clock.now = now
    const titles = [movie(`${kind}-r1`), movie(`${kind}-r2`), episode(`${kind}-rs`, 1, 1)]
    const events = Array.from({ length: 3000 }, (_, i) =>
      play(
        i % 3 === 0 ? 'started' : 'heartbeat',
        titles[i % 3] as Title,
        now - (i % 50) * MINUTE,
        ['US', 'CA'][i % 2] ?? 'US',
        1000,
        `p${i % 400}`,
      ),
    )
    const bus = t.reel.ports.bus
    await Promise.all(events.slice(0, 1500).map((e) => bus.publish(e)))
    await until(() => processed(t.reel) >= 300, 'some events counted')
    await t.reel.stop()
    const first = trendsOf(t.reel).aggregator.report
    expect(first.counted).toBeLessThanOrEqual(1500)

    // As if the process had crashed before its acks were stored: the bus will deliver everything again.
    const db = openDb(t)
    await sql`update platform_bus_consumers set cursor_seq = 0, delivered_seq = 0 where name = 'trends'`.execute(
      db.kysely,
    )
    await db.close()
    second = await createReel({
      config: t.reel.config,
      log: createLogger('silent'),
      clock: () => t.clock.now,
    })
    await second.start()
    await Promise.all(events.slice(1500).map((e) => second?.ports.bus.publish(e)))
    const reel = second
    await until(() => processed(reel) >= 3000, 'every event after the restart')
    t.clock.now = now + DAY + GRACE_MS
    await trendsOf(reel).seal()
    const report = trendsOf(reel).aggregator.report
    expect(report.counted + first.counted).toBe(3000)
    expect(report.duplicates).toBeGreaterThanOrEqual(first.counted)
    const rows = await trendsOf(reel).counters(now - DAY, now + DAY)
    for (const grain of ['5m', '1h', '1d']) expect(totals(rows, grain)).toEqual(expectedTotals(events))
  })
})

/** A connection of its own to a reel's database. */
function openDb(t: TestReel) {
  const c = t.reel.config
  return createDb({
    databaseUrl: c.databaseUrl,
    schema: c.databaseSchema,
    sqliteFile: path.join(c.dataDir, 'reel.db'),
  })
}

describe.skipIf(!hasNats())('a trends consumer on JetStream', () => {
  const prefix = uniqueName('trends')
  let t: TestReel
  let second: Reel | undefined

  beforeAll(async () => {
    t = await startReel('sqlite', {
      REEL_NATS_URL: engines.natsUrl ?? '',
      REEL_NATS_PREFIX: prefix,
      REEL_TRENDS_GRACE_S: String(GRACE_MS / 1000),
      REEL_TRENDS_ANSWER_TTL_MS: '0',
    })
  })
  afterAll(async () => {
    await second?.stop()
    await t.stop()
    const nc = await connect({ servers: engines.natsUrl })
    const jsm = await nc.jetstreamManager()
    for (const stream of ['EVENTS', 'WORK', 'DLQ'])
      await jsm.streams.delete(`${prefix.toUpperCase()}_${stream}`).catch(() => {})
    await nc.close()
  })

  it('restarted mid-stream with every message redelivered, counts each event once', async () => {
    const now = MONDAY + 5 * HOUR
    t.clock.now = now
    const titles = [movie('js-1'), episode('js-s', 2, 3)]
    const events = Array.from({ length: 2000 }, (_, i) =>
      play(
        i % 4 === 0 ? 'started' : 'stopped',
        titles[i % 2] as Title,
        now - (i % 40) * MINUTE,
        'NL',
        500,
        `q${i % 300}`,
      ),
    )
    await Promise.all(events.slice(0, 1000).map((e) => t.reel.ports.bus.publish(e)))
    await until(() => processed(t.reel) >= 200, 'some events counted')
    await t.reel.stop()
    const first = trendsOf(t.reel).aggregator.report

    // The durable consumer forgets its acks: a new one of the same name starts from the first message.
    const nc = await connect({ servers: engines.natsUrl })
    await (await nc.jetstreamManager()).consumers.delete(`${prefix.toUpperCase()}_EVENTS`, 'trends')
    await nc.close()

    second = await createReel({
      config: t.reel.config,
      log: createLogger('silent'),
      clock: () => t.clock.now,
    })
    await second.start()
    const reel = second
    await Promise.all(events.slice(1000).map((e) => reel.ports.bus.publish(e)))
    await until(() => processed(reel) >= 2000, 'every event after the restart')
    t.clock.now = now + DAY + GRACE_MS
    await trendsOf(reel).seal()
    expect(trendsOf(reel).aggregator.report.counted + first.counted).toBe(2000)
    const rows = await trendsOf(reel).counters(now - DAY, now + DAY)
    for (const grain of ['5m', '1h', '1d']) expect(totals(rows, grain)).toEqual(expectedTotals(events))
  })
})

interface Viewer {
  token: string
  profileId: string
}

/** The trending and Top 10 API over real catalog titles and accounts. */
function apiSuite(label: string, env: Record<string, string> | undefined, dbKind: 'sqlite' | 'postgres') {
  describe.skipIf(env === undefined)(`trends API (${label})`, () => {
    let t: TestReel
    let adult: Viewer
    let kid: Viewer
    let german: Viewer
    const ids = { everywhere: '', usOnly: '', deOnly: '', series: '', season1: '', season2: '' }
    let seasonEpisodes: { s1: Title; s2: Title }
    // A Wednesday, 12:00 UTC.
    const NOW = Date.parse('2026-12-02T12:00:00Z')

    async function signUp(country: string): Promise<Viewer & { accountId: string }> {
      const res = await t.call('POST', '/api/v1/accounts', {
        body: {
          email: `trends.${uniqueName('v')}@example.com`,
          password: 'correct horse battery',
          country,
          plan: 'standard',
        },
      })
      expect(res.statusCode, res.body).toBe(201)
      const { account, tokens } = res.json()
      const profiles = await t.call('GET', '/api/v1/profiles', { token: tokens.accessToken })
      return { token: tokens.accessToken, profileId: profiles.json().profiles[0].id, accountId: account.id }
    }

    const movieOf = (id: string, runtimeMin: number): Title => ({
      ...movie(id),
      durationMs: runtimeMin * MINUTE,
    })
    const get = (viewer: Viewer, path: string, query: Record<string, string> = {}) =>
      t.call('GET', `${path}?${new URLSearchParams({ profile: viewer.profileId, ...query })}`, {
        token: viewer.token,
      })
    const items = async (viewer: Viewer, path: string, query: Record<string, string> = {}) => {
      const res = await get(viewer, path, query)
      expect(res.statusCode, res.body).toBe(200)
      return res.json().items as {
        titleId: string
        seasonId: string | null
        type: string
        rank: number
        plays: number
        views: number
        hoursViewed: number
        previousRank: number | null
        rankChange: number | null
      }[]
    }

    async function live(events: readonly PublishInput[]): Promise<void> {
      const before = processed(t.reel)
      await Promise.all(events.map((e) => t.reel.ports.bus.publish(e)))
      await until(() => processed(t.reel) >= before + events.length, 'the trends consumer')
      // Counts become visible within a quarter second; the tests do not wait for the timer.
      await trendsOf(t.reel).aggregator.apply()
    }

    beforeAll(async () => {
      t = await startReel(dbKind, {
        REEL_TRENDS_GRACE_S: String(GRACE_MS / 1000),
        REEL_TRENDS_ANSWER_TTL_MS: '0',
        ...env,
      })
      t.clock.now = NOW - 75 * MINUTE
      const catalog = t.reel.use('catalog')
      const make = async (input: Parameters<typeof catalog.create>[0]) => catalog.create(input)
      ids.everywhere = (
        await make({
          type: 'movie',
          title: 'Everywhere',
          maturityRating: 'PG',
          runtimeMin: 90,
          availability: [{ region: '*' }],
        })
      ).id
      ids.usOnly = (
        await make({
          type: 'movie',
          title: 'Only in the US',
          maturityRating: 'R',
          runtimeMin: 100,
          availability: [{ region: 'US' }],
        })
      ).id
      ids.deOnly = (
        await make({
          type: 'movie',
          title: 'Nur in Deutschland',
          maturityRating: 'PG',
          runtimeMin: 80,
          availability: [{ region: 'DE' }],
        })
      ).id
      const series = await make({
        type: 'series',
        title: 'A Series',
        maturityRating: 'PG-13',
        availability: [{ region: '*' }],
        seasons: [
          {
            number: 1,
            episodes: [
              { number: 1, runtimeMin: 40 },
              { number: 2, runtimeMin: 40 },
            ],
          },
          { number: 2, episodes: [{ number: 1, runtimeMin: 50 }] },
        ],
      })
      ids.series = series.id
      const [s1, s2] = series.seasons
      if (!s1 || !s2) throw new Error('seasons missing')
      ids.season1 = s1.id
      ids.season2 = s2.id
      const ep = (seasonId: string, episodeId: string, minutes: number): Title => ({
        titleId: episodeId,
        titleType: 'episode',
        seriesId: series.id,
        seasonId,
        durationMs: minutes * MINUTE,
      })
      seasonEpisodes = {
        s1: ep(s1.id, s1.episodes[0]?.id ?? 'e1', 40),
        s2: ep(s2.id, s2.episodes[0]?.id ?? 'e2', 50),
      }
      adult = await signUp('US')
      const kidProfile = await t.call('POST', '/api/v1/profiles', {
        token: adult.token,
        body: { name: 'Kid', kids: true },
      })
      expect(kidProfile.statusCode, kidProfile.body).toBe(201)
      kid = { token: adult.token, profileId: kidProfile.json().id }
      german = await signUp('DE')

      // In the hour before the last one "Only in the US" led; in the last hour "Everywhere" does.
      await live([
        ...Array.from({ length: 6 }, () =>
          play('started', movieOf(ids.usOnly, 100), t.clock.now - MINUTE, 'US'),
        ),
        ...Array.from({ length: 2 }, () =>
          play('started', movieOf(ids.everywhere, 90), t.clock.now - MINUTE, 'US'),
        ),
      ])
      t.clock.now = NOW - 30 * MINUTE
      await live([
        ...Array.from({ length: 5 }, () =>
          play('started', movieOf(ids.everywhere, 90), t.clock.now - MINUTE, 'US'),
        ),
        ...Array.from({ length: 3 }, () =>
          play('started', movieOf(ids.usOnly, 100), t.clock.now - MINUTE, 'US'),
        ),
        ...Array.from({ length: 4 }, () =>
          play('started', movieOf(ids.deOnly, 80), t.clock.now - MINUTE, 'DE'),
        ),
        ...Array.from({ length: 2 }, () => play('started', seasonEpisodes.s1, t.clock.now - MINUTE, 'US')),
        play('heartbeat', seasonEpisodes.s1, t.clock.now - MINUTE, 'US', 80 * MINUTE),
        play('stopped', seasonEpisodes.s2, t.clock.now - MINUTE, 'US', 26 * MINUTE),
      ])
      t.clock.now = NOW
    })
    afterAll(async () => {
      await t?.stop()
      const prefix = env?.REEL_CACHE_PREFIX
      if (prefix) await deleteRedisKeys(prefix)
    })

    it('ranks by recent plays what the caller may see, with rank changes against the window before', async () => {
      const hour = await items(adult, '/api/v1/trending', { window: 'hour' })
      expect(hour.map((i) => [i.titleId, i.rank, i.plays, i.previousRank, i.rankChange])).toEqual([
        [ids.everywhere, 1, 5, 2, 1],
        [ids.usOnly, 2, 3, 1, -1],
        [ids.series, 3, 2, null, null],
      ])
      const day = await items(adult, '/api/v1/trending', { window: 'day' })
      expect(day.map((i) => [i.titleId, i.plays])).toEqual([
        [ids.usOnly, 9],
        [ids.everywhere, 7],
        [ids.series, 2],
      ])
    })

    it('never shows a title the caller’s country may not show, whatever region is asked for', async () => {
      const world = await items(adult, '/api/v1/trending', { window: 'day', region: 'world' })
      expect(world.map((i) => i.titleId)).not.toContain(ids.deOnly)
      expect(await items(adult, '/api/v1/trending', { window: 'day', region: 'DE' })).toEqual([])
      const inGermany = await items(german, '/api/v1/trending', { window: 'day' })
      expect(inGermany.map((i) => [i.titleId, i.plays])).toEqual([[ids.deOnly, 4]])
      const germanWorld = await items(german, '/api/v1/trending', { window: 'week', region: 'world' })
      expect(germanWorld.map((i) => i.titleId)).not.toContain(ids.usOnly)
    })

    it('never shows a title above the profile’s maturity limit', async () => {
      const forKid = await items(kid, '/api/v1/trending', { window: 'day' })
      expect(forKid.map((i) => [i.titleId, i.rank])).toEqual([[ids.everywhere, 1]])
      const top = await items(kid, '/api/v1/top10')
      expect(top.map((i) => i.titleId)).toEqual([ids.everywhere])
    })

    it('counts episodes towards their series and season; views are hours viewed ÷ runtime', async () => {
      const series = await items(adult, '/api/v1/top10', { type: 'series' })
      // 80 + 26 minutes watched of a 130-minute series.
      expect(series).toMatchObject([
        { titleId: ids.series, seasonId: null, type: 'series', plays: 2, views: 0.8, hoursViewed: 1.8 },
      ])
      const seasons = await items(adult, '/api/v1/top10', { type: 'season' })
      expect(seasons.map((i) => [i.titleId, i.seasonId, i.rank, i.views])).toEqual([
        [ids.series, ids.season1, 1, 1],
        [ids.series, ids.season2, 2, 0.5],
      ])
      const movies = await items(adult, '/api/v1/trending', { window: 'hour', type: 'movie' })
      expect(movies.map((i) => i.type)).toEqual(['movie', 'movie'])
    })

    it('puts an event at 10:59:59.999 and one at 11:00 in their own 5-minute buckets of the sliding hour', async () => {
      const edge = await t.reel.use('catalog').create({
        type: 'movie',
        title: 'Edge',
        maturityRating: 'G',
        runtimeMin: 60,
        availability: [{ region: '*' }],
      })
      const eleven = Date.parse('2026-12-02T13:00:00Z')
      t.clock.now = eleven + MINUTE
      await live([
        play('started', movieOf(edge.id, 60), eleven - 1, 'FR'),
        play('started', movieOf(edge.id, 60), eleven, 'FR'),
      ])
      const plays = async (now: number) => {
        t.clock.now = now
        return (await items(adult, '/api/v1/trending', { window: 'hour', region: 'FR' })).find(
          (i) => i.titleId === edge.id,
        )?.plays
      }
      expect(await plays(eleven + 55 * MINUTE - 1)).toBe(2)
      expect(await plays(eleven + 55 * MINUTE)).toBe(1)
      expect(await plays(eleven + 60 * MINUTE - 1)).toBe(1)
      expect(await plays(eleven + 60 * MINUTE)).toBeUndefined()
    })

    it('puts Sunday 23:59:59.999 and Monday 00:00 in their own Top 10 weeks, with the week before for rank changes', async () => {
      const monday = Date.parse('2026-12-07T00:00:00Z')
      const a = await t.reel.use('catalog').create({
        type: 'movie',
        title: 'Weekend',
        maturityRating: 'G',
        runtimeMin: 60,
        availability: [{ region: '*' }],
      })
      t.clock.now = monday + MINUTE
      await live([
        play('started', movieOf(a.id, 60), monday - 1, 'SE'),
        play('stopped', movieOf(a.id, 60), monday - 1, 'SE', 60 * MINUTE),
        play('stopped', movieOf(a.id, 60), monday, 'SE', 30 * MINUTE),
      ])
      const week = async (w?: string) =>
        (await items(adult, '/api/v1/top10', { region: 'SE', ...(w ? { week: w } : {}) })).map((i) => [
          i.titleId,
          i.views,
          i.previousRank,
        ])
      expect(await week('2026-W49')).toEqual([[a.id, 1, null]])
      expect(await week('2026-12-06')).toEqual([[a.id, 1, null]])
      expect(await week()).toEqual([[a.id, 0.5, 1]])
      expect(await week('2026-W50')).toEqual([[a.id, 0.5, 1]])
      const res = await get(adult, '/api/v1/top10', { region: 'SE' })
      expect(res.json()).toMatchObject({
        week: '2026-W50',
        from: '2026-12-07T00:00:00.000Z',
        to: '2026-12-14T00:00:00.000Z',
      })
    })

    it('answers bad query values with 400, caps limit, and an unknown or empty region with an empty list', async () => {
      const codes = async (query: Record<string, string>, path = '/api/v1/trending') =>
        (await get(adult, path, query)).statusCode
      expect(await codes({ window: 'month' })).toBe(400)
      expect(await codes({ limit: '0' })).toBe(400)
      expect(await codes({ limit: '-3' })).toBe(400)
      expect(await codes({ limit: 'ten' })).toBe(400)
      expect(await codes({ type: 'trailer' })).toBe(400)
      expect(await codes({ region: 'x'.repeat(65) })).toBe(400)
      expect(await codes({ week: '2026-W60' }, '/api/v1/top10')).toBe(400)
      expect(await codes({ week: 'last week' }, '/api/v1/top10')).toBe(400)
      expect(await codes({ week: '2026-02-30' }, '/api/v1/top10')).toBe(400)
      expect((await get(adult, '/api/v1/top10', { week: '2026-W60' })).json().error.code).toBe('invalid_week')
      for (const region of ['ZZ', 'NZ', 'not a region', '🎬', ''])
        for (const path of ['/api/v1/trending', '/api/v1/top10']) {
          const res = await get(adult, path, { region })
          expect(res.statusCode, `${path} ${region}`).toBe(200)
          if (region !== '') expect(res.json().items).toEqual([])
        }
      const noProfile = await t.call('GET', '/api/v1/trending', { token: adult.token })
      expect(noProfile.statusCode).toBe(400)
      expect(
        (await get({ token: adult.token, profileId: german.profileId }, '/api/v1/trending')).statusCode,
      ).toBe(404)
      expect((await t.call('GET', `/api/v1/trending?profile=${adult.profileId}`)).statusCode).toBe(401)

      const catalog = t.reel.use('catalog')
      const many = await Promise.all(
        Array.from({ length: 55 }, (_, i) =>
          catalog.create({
            type: 'movie',
            title: `Many ${i}`,
            maturityRating: 'G',
            runtimeMin: 60,
            availability: [{ region: '*' }],
          }),
        ),
      )
      t.clock.now += MINUTE
      await live(many.map((m) => play('started', movieOf(m.id, 60), t.clock.now - MINUTE, 'AR')))
      expect(
        await items(adult, '/api/v1/trending', { region: 'AR', window: 'hour', limit: '1000' }),
      ).toHaveLength(50)
      expect(
        await items(adult, '/api/v1/trending', { region: 'AR', window: 'hour', limit: '7' }),
      ).toHaveLength(7)
      expect(await items(adult, '/api/v1/trending', { region: 'ar', window: 'hour' })).toHaveLength(20)
    })

    it('answers the same after the cache loses the window sets (they are reloaded from the DB)', async () => {
      const before = await items(adult, '/api/v1/trending', { window: 'day', region: 'world' })
      const week = await items(adult, '/api/v1/trending', { window: 'week', region: 'US' })
      expect(before.length).toBeGreaterThan(0)
      await forgetWindowSets(t, ['world', 'US'])
      expect(await items(adult, '/api/v1/trending', { window: 'day', region: 'world' })).toEqual(before)
      expect(await items(adult, '/api/v1/trending', { window: 'week', region: 'US' })).toEqual(week)
    })

    it('gives popularity for search and recommendations, and hands it to the catalog', async () => {
      const trends = trendsOf(t.reel)
      const popularity = await trends.popularity([ids.everywhere, ids.usOnly, ids.deOnly, 'unknown-title'])
      expect(popularity.get('unknown-title')).toBe(0)
      expect(popularity.get(ids.usOnly)).toBeGreaterThan(0)
      expect(popularity.get(ids.deOnly)).toBeGreaterThan(0)
      const inGermany = await trends.popularity([ids.everywhere, ids.deOnly], { region: 'DE' })
      expect(inGermany.get(ids.everywhere)).toBe(0)
      expect(await trends.publishPopularity()).toBeGreaterThan(0)
      const title = await t.reel.use('catalog').adminTitle(ids.everywhere)
      expect(title.popularity).toBe(popularity.get(ids.everywhere))
      expect(await trends.publishPopularity()).toBe(0)
    })
  })
}

/** Deletes the cached window sets of some regions over the last 8 days, as a cache flush would. */
async function forgetWindowSets(t: TestReel, regions: readonly string[]): Promise<void> {
  const { counterKey } = await import('../src/services/trends/windows.js')
  const keys: string[] = []
  const now = t.clock.now
  for (const region of regions)
    for (const kind of ['movie', 'series', 'season'] as const)
      for (const metric of ['p', 'w'] as const) {
        for (let b = Math.floor((now - 8 * DAY) / HOUR) * HOUR; b <= now; b += HOUR)
          keys.push(counterKey(region, '1h', b, kind, metric))
        for (let b = Math.floor((now - 3 * HOUR) / (5 * MINUTE)) * 5 * MINUTE; b <= now; b += 5 * MINUTE)
          keys.push(counterKey(region, '5m', b, kind, metric))
      }
  for (let i = 0; i < keys.length; i += 500) await t.reel.ports.cache.del(...keys.slice(i, i + 500))
}

/** Deletes every key under prefix on each test Redis node (the Redis is shared: never FLUSHDB). */
async function deleteRedisKeys(prefix: string): Promise<void> {
  for (const url of engines.redisUrls) {
    const redis = new Redis(url)
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    await redis.quit()
  }
}

apiSuite('SQLite, in-process cache', {}, 'sqlite')
if (hasPostgres()) apiSuite('PostgreSQL, in-process cache', {}, 'postgres')
apiSuite(
  'SQLite, Redis ring',
  hasRedis()
    ? { REEL_REDIS_URLS: engines.redisUrls.join(','), REEL_CACHE_PREFIX: `${uniqueName('trends')}:` }
    : undefined,
  'sqlite',
)

describe('trending answers cached briefly', () => {
  let t: TestReel
  beforeAll(async () => {
    t = await startReel('sqlite', { REEL_TRENDS_ANSWER_TTL_MS: '400' })
  })
  afterAll(() => t.stop())

  it('serves a computed ranking for the configured time, then recomputes it', async () => {
    const title = await t.reel.use('catalog').create({
      type: 'movie',
      title: 'Cached',
      maturityRating: 'G',
      runtimeMin: 60,
      availability: [{ region: '*' }],
    })
    const res = await t.call('POST', '/api/v1/accounts', {
      body: {
        email: `cache.${uniqueName('v')}@example.com`,
        password: 'correct horse battery',
        country: 'US',
      },
    })
    const token = res.json().tokens.accessToken
    const profile = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles[0].id
    const plays = async () =>
      (await t.call('GET', `/api/v1/trending?profile=${profile}&window=hour`, { token })).json().items[0]
        ?.plays
    const start = async () => {
      const before = processed(t.reel)
      await t.reel.ports.bus.publish(play('started', { ...movie(title.id) }, t.clock.now - 1000, 'US'))
      await until(() => processed(t.reel) > before, 'the consumer')
      await trendsOf(t.reel).aggregator.apply()
    }
    await start()
    expect(await plays()).toBe(1)
    await start()
    expect(await plays()).toBe(1)
    await sleep(450)
    expect(await plays()).toBe(2)
  })
})

describe('reel trends rollup (the command)', () => {
  const cli = (args: string[], dataDir: string) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      execFile(
        process.execPath,
        ['bin/reel.js', 'trends', 'rollup', ...args],
        { env: { ...process.env, REEL_DATA_DIR: dataDir, REEL_LOG_LEVEL: 'warn' } },
        (error, out, err) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err }),
      )
    })

  it('recomputes the counters of a stopped reel from its archive, the same twice; refuses open ranges and bad times', async () => {
    const t = await startReel('sqlite', { REEL_TRENDS_GRACE_S: '3600', REEL_TRENDS_ANSWER_TTL_MS: '0' })
    try {
      const hour = Math.floor((Date.now() - 5 * HOUR) / HOUR) * HOUR
      t.clock.now = hour + 30 * MINUTE
      const titles = [movie('cli-movie'), episode('cli-series', 1, 1)]
      const events = Array.from({ length: 200 }, (_, i) =>
        play(
          i % 3 === 0 ? 'started' : 'heartbeat',
          titles[i % 2] as Title,
          hour + (i % 30) * MINUTE,
          ['US', 'JP'][i % 2] ?? 'US',
          30_000,
        ),
      )
      await Promise.all(events.map((e) => t.reel.ports.bus.publish(e)))
      await until(() => processed(t.reel) >= events.length, 'the consumer')
      t.clock.now = Date.now()
      await trendsOf(t.reel).seal()
      const streaming = await trendsOf(t.reel).counters(hour, hour + HOUR)
      expect(streaming.length).toBeGreaterThan(0)
      await t.reel.stop()

      const from = new Date(hour).toISOString()
      const to = new Date(hour + HOUR).toISOString()
      const first = await cli(['--from', from, '--to', to], t.reel.config.dataDir)
      expect(first.err).toBe('')
      expect(first.code).toBe(0)
      // A range in a day already closed widens to the whole day (there are no other events in it here).
      expect(first.out).toMatch(/^rolled up \S+ … \S+: 200 events \(0 repeats ignored\)/)
      const second = await cli(
        ['--from', from.slice(0, 16), '--to', to.replace('.000Z', 'Z')],
        t.reel.config.dataDir,
      )
      expect(second.out).toBe(first.out)

      const again = await createReel({ config: t.reel.config, log: createLogger('silent'), roles: [] })
      try {
        expect(await trendsOf(again).counters(hour, hour + HOUR)).toEqual(streaming)
      } finally {
        await again.stop()
      }

      const open = await cli(['--from', from, '--to', new Date().toISOString()], t.reel.config.dataDir)
      expect(open.code).toBe(1)
      expect(open.err).toContain('range_still_open')
      const bad = await cli(['--from', 'yesterday', '--to', to], t.reel.config.dataDir)
      expect(bad.code).not.toBe(0)
      expect(bad.err).toContain('is not a time')
    } finally {
      await t.stop()
    }
  }, 60_000)
})

describe.each(kinds)('pending counts on %s', (kind) => {
  it('left by a process that stopped before adding them are added once by another, even when both try', async () => {
    const t = await startReel(kind, {
      REEL_TRENDS_GRACE_S: String(GRACE_MS / 1000),
      REEL_TRENDS_ANSWER_TTL_MS: '0',
    })
    const other = await createReel({
      config: t.reel.config,
      log: createLogger('silent'),
      clock: () => t.clock.now,
      roles: [],
    })
    try {
      const now = MONDAY + 30 * DAY
      t.clock.now = now
      const title = movie(`${kind}-pending`)
      const events: EventEnvelope[] = Array.from({ length: 50 }, (_, i) => ({
        id: `pending-${kind}-${i}`,
        type: PLAYBACK_STARTED,
        key: `k${i}`,
        time: new Date(now).toISOString(),
        data: play('started', title, now - MINUTE, 'KE').data,
      }))
      expect(await trendsOf(t.reel).ingest(events)).toMatchObject({ counted: 50 })
      // A minute later the first process's counts look abandoned: the other one adds them at once.
      t.clock.now = now + 2 * MINUTE
      expect(await trendsOf(other).aggregator.recover()).toBe(1)
      await trendsOf(t.reel).aggregator.apply()
      const rows = (await trendsOf(other).counters(now - HOUR, now)).filter(
        (r) => r.subjectId === title.titleId,
      )
      expect(rows.map((r) => [r.grain, r.region, r.plays])).toEqual([
        ['5m', 'KE', 50],
        ['5m', 'world', 50],
      ])
      // Sealing waits for no one now, and counts the hour once.
      t.clock.now = now + DAY
      await trendsOf(t.reel).seal()
      const hourly = (await trendsOf(t.reel).counters(now - HOUR, now)).filter(
        (r) => r.grain === '1h' && r.subjectId === title.titleId,
      )
      expect(hourly.map((r) => r.plays)).toEqual([50, 50])
    } finally {
      await other.stop()
      await t.stop()
    }
  })
})

describe.each(kinds)('the event ids kept for deduplication on %s', (kind) => {
  it('are forgotten once no event of their hour can count again, in chunks; later ids still dedupe', async () => {
    const t = await startReel(kind, {
      REEL_TRENDS_GRACE_S: String(GRACE_MS / 1000),
      REEL_TRENDS_ANSWER_TTL_MS: '0',
    })
    const db = openDb(t)
    try {
      const trends = trendsOf(t.reel)
      const title = movie(`${kind}-prune`)
      const at10 = MONDAY + 40 * DAY + 10 * HOUR
      const envelope = (id: string, at: number): EventEnvelope => ({
        id: `prune-${kind}-${id}`,
        type: PLAYBACK_STARTED,
        key: id,
        time: new Date(at).toISOString(),
        data: play('started', title, at, 'NO').data,
      })
      // 30 events of the 09:00 hour and one of 10:00, all within the grace when they arrive.
      t.clock.now = at10
      const nine = Array.from({ length: 30 }, (_, i) => envelope(`nine-${i}`, at10 - HOUR + i * MINUTE))
      expect(await trends.ingest([...nine, envelope('ten', at10)])).toMatchObject({ counted: 31 })
      const idsByHour = async () => {
        const rows = await db
          .tables<{ trends_seen: { hour: number; event_id: string } }>()
          .selectFrom('trends_seen')
          .select(['hour', 'event_id'])
          .where('event_id', 'like', `prune-${kind}-%`)
          .execute()
        const out: Record<string, number> = {}
        for (const r of rows) {
          const hour = new Date(Number(r.hour)).toISOString().slice(11, 16)
          out[hour] = (out[hour] ?? 0) + 1
        }
        return out
      }
      expect(await idsByHour()).toEqual({ '09:00': 30, '10:00': 1 })

      // At 11:59 an event of 09:xx may still count (grace one hour, plus an hour for slow clocks): nothing goes.
      t.clock.now = at10 + 2 * HOUR - 1
      expect((await trends.prune(7)).seen).toBe(0)
      // At 12:30 no event of 09:xx counts any more (older than 11:30): their ids go, seven at a time.
      t.clock.now = at10 + 2 * HOUR + 30 * MINUTE
      const late = envelope('late', t.clock.now - 50 * MINUTE)
      expect(await trends.ingest([late])).toMatchObject({ counted: 1 })
      expect((await trends.prune(7)).seen).toBe(30)
      expect(await idsByHour()).toEqual({ '10:00': 1, '11:00': 1 })
      // A forgotten id redelivered is too late to count; a kept one is still a repeat.
      expect(await trends.ingest([nine[0] as EventEnvelope, late])).toEqual({
        counted: 0,
        duplicates: 1,
        outOfGrace: 1,
        rejected: 0,
      })
    } finally {
      await db.close()
      await t.stop()
    }
  })
})
