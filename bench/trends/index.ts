// Trends under load, against baselines measured in the same run:
//  - events/s aggregated end to end (bus → trends consumer → archive + counters in the DB + window
//    sets in the cache, acked) through the in-process Bus on SQLite, beside the raw rate of the same
//    bus (a handler that does nothing, same concurrency) on the same events; target ≥ 50 000/s;
//  - the same through NATS JetStream (nats://127.0.0.1:4222 or REEL_BENCH_NATS_URL, a unique stream
//    prefix, deleted afterwards); target ≥ 0.5 of the raw JetStream rate;
//  - GET /api/v1/trending under load (autocannon) against a reel in its own process holding the
//    in-process run's counters; target p99 ≤ 5 ms.
// Rates are backlog drains: the events are published first, then the consumer is started and timed
// until it has handled them all. Sizes: BENCH_TRENDS_EVENTS (default 100 000), BENCH_TRENDS_JETSTREAM_EVENTS
// (30 000), BENCH_DURATION_S (8). BENCH_TRENDS_PROFILE=<dir> writes a CPU profile of each trends drain
// there (open in Chrome DevTools), with BENCH_TRENDS_HEAP_PROFILE=1 also a sampled allocation profile
// (garbage included), and BENCH_TRENDS_ONLY=in-process skips the JetStream and HTTP parts.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { availableParallelism, loadavg } from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { connect } from 'nats'
import { createReel, type Reel } from '../../src/platform/app.js'
import type { PublishInput } from '../../src/platform/bus/bus.js'
import { loadConfig } from '../../src/platform/config.js'
import { createLogger } from '../../src/platform/log.js'
import {
  PLAYBACK_HEARTBEAT,
  PLAYBACK_STARTED,
  PLAYBACK_STOPPED,
  type PlaybackEventBase,
} from '../../src/services/playback/events.js'
import { FLUSH_EVENTS, FLUSHES_AT_ONCE } from '../../src/services/trends/ingest.js'
import { tempDir } from '../../test/engines.js'
import { ratio, startScript, verdict } from '../lib.js'
import { type Playable, type Seeded, seedCatalog } from './catalog.js'

const EVENTS = Number(process.env.BENCH_TRENDS_EVENTS ?? 100_000)
const JETSTREAM_EVENTS = Number(process.env.BENCH_TRENDS_JETSTREAM_EVENTS ?? 30_000)
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8)
const IN_PROCESS_TARGET = 50_000
const JETSTREAM_RATIO_TARGET = 0.5
const P99_TARGET_MS = 5
const PUBLISH_CHUNK = 2000
const PROFILES = 20_000
const REGIONS = [
  'US',
  'GB',
  'DE',
  'FR',
  'BR',
  'MX',
  'JP',
  'KR',
  'IN',
  'CA',
  'ES',
  'IT',
  'NL',
  'SE',
  'PL',
  'AU',
]
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123456789'
const PROFILE_DIR = process.env.BENCH_TRENDS_PROFILE
const HEAP_PROFILE = process.env.BENCH_TRENDS_HEAP_PROFILE === '1'
const IN_PROCESS_ONLY = process.env.BENCH_TRENDS_ONLY === 'in-process'
const natsUrl = process.env.REEL_BENCH_NATS_URL || process.env.REEL_TEST_NATS_URL || 'nats://127.0.0.1:4222'

/** A small deterministic random source. */
function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Live playback events (times within the last 2 minutes, as heartbeats arrive): 20 000 profiles, 16
 * regions, titles drawn with a long tail (a few hits, many rarely watched), 18 % starts, 72 %
 * heartbeats, 10 % stops.
 */
function playbackEvents(count: number, titles: readonly Playable[], seed: number): PublishInput[] {
  const rnd = random(seed)
  const now = Date.now()
  return Array.from({ length: count }, (_, i) => {
    const title = titles[Math.floor(titles.length * rnd() ** 3)] ?? titles[0]
    if (!title) throw new Error('no titles to play')
    const profile = `profile-${Math.floor(rnd() * PROFILES)}`
    const r = rnd()
    const type = r < 0.18 ? PLAYBACK_STARTED : r < 0.9 ? PLAYBACK_HEARTBEAT : PLAYBACK_STOPPED
    const base: PlaybackEventBase = {
      sessionId: `session-${profile}`,
      accountId: `account-${profile}`,
      profileId: profile,
      ...title,
      region: REGIONS[Math.floor(rnd() * REGIONS.length)] ?? 'US',
      positionMs: 0,
      durationMs: 3_600_000,
      at: new Date(now - Math.floor(rnd() * 120_000)).toISOString(),
    }
    const data =
      type === PLAYBACK_STARTED
        ? { ...base, resumeAtMs: 0, maxHeight: 1080, device: 'bench' }
        : { ...base, watchedMs: 60_000, state: 'playing', completed: false }
    return { id: `bench-${seed}-${i}`, type, key: profile, data }
  })
}

async function publishAll(reel: Reel, events: readonly PublishInput[]): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < events.length; i += PUBLISH_CHUNK)
    await Promise.all(events.slice(i, i + PUBLISH_CHUNK).map((e) => reel.ports.bus.publish(e)))
  return events.length / ((performance.now() - started) / 1000)
}

/** Events/s (and CPU µs an event) of a consumer that does nothing (subscribed as trends is), draining the backlog of `count` events. */
async function rawDrain(reel: Reel, count: number): Promise<{ rate: number; cpu: number }> {
  let handled = 0
  let done = () => {}
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  const started = performance.now()
  const cpu = process.cpuUsage()
  const subscription = await reel.ports.bus.subscribe({
    name: 'bench-raw',
    types: ['playback.session.*'],
    concurrency: FLUSHES_AT_ONCE,
    maxBatch: FLUSH_EVENTS,
    batchHandler: async (events) => {
      handled += events.length
      if (handled === count) done()
    },
  })
  await all
  const rate = count / ((performance.now() - started) / 1000)
  const used = cpuPerEvent(cpu, count)
  await subscription.stop()
  return { rate, cpu: used }
}

/** CPU time of this process per event since `since`, in µs: what a drain cost, whatever else the machine runs. */
function cpuPerEvent(since: NodeJS.CpuUsage, count: number): number {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / count
}

/** Runs `work` under the CPU profiler when BENCH_TRENDS_PROFILE names a directory. */
async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (!PROFILE_DIR) return work()
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
  if (HEAP_PROFILE) {
    await session.post('HeapProfiler.enable')
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 64 * 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    })
  }
  try {
    return await work()
  } finally {
    const { profile } = await session.post('Profiler.stop')
    mkdirSync(PROFILE_DIR, { recursive: true })
    const file = path.join(PROFILE_DIR, `${name}-${Date.now()}.cpuprofile`)
    writeFileSync(file, JSON.stringify(profile))
    console.log(`CPU profile of the ${name} drain: ${file}`)
    if (HEAP_PROFILE) {
      const { profile: heap } = await session.post('HeapProfiler.stopSampling')
      const heapFile = path.join(PROFILE_DIR, `${name}-${Date.now()}.heapprofile`)
      writeFileSync(heapFile, JSON.stringify(heap))
      console.log(`allocation profile of the ${name} drain: ${heapFile}`)
    }
    session.disconnect()
  }
}

/** Events/s of the real trends module (its own consumer, started with the process) draining the backlog. */
async function trendsDrain(reel: Reel, count: number): Promise<{ rate: number; cpu: number }> {
  const trends = reel.use('trends')
  const started = performance.now()
  const cpu = process.cpuUsage()
  await reel.start()
  for (;;) {
    const r = trends.aggregator.report
    if (r.counted + r.duplicates + r.outOfGrace + r.rejected >= count) break
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  // Stored and acked is not yet visible: the clock stops once the last pending counts are added.
  await trends.aggregator.apply()
  return { rate: count / ((performance.now() - started) / 1000), cpu: cpuPerEvent(cpu, count) }
}

interface Rates {
  publish: number
  raw: number
  trends: number
  /** CPU µs an event, of the bench process (publishing aside). */
  rawCpu: number
  trendsCpu: number
}

/** Publishes, drains with a do-nothing consumer, then with the trends module, over one data dir. */
async function measure(
  name: string,
  env: Record<string, string>,
  events: readonly PublishInput[],
): Promise<Rates> {
  const base = {
    REEL_LOG_LEVEL: 'warn',
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
    REEL_JWT_SECRET: JWT_SECRET,
    ...env,
  }
  const log = createLogger('warn')
  const producer = await createReel({ config: loadConfig(base), roles: [], log })
  let publish: number
  let raw: { rate: number; cpu: number }
  try {
    publish = await publishAll(producer, events)
    raw = await profiled(`${name}-raw`, () => rawDrain(producer, events.length))
  } finally {
    await producer.stop()
  }
  const consumer = await createReel({ config: loadConfig(base), roles: ['trends'], log })
  try {
    const trends = await profiled(name, () => trendsDrain(consumer, events.length))
    return { publish, raw: raw.rate, trends: trends.rate, rawCpu: raw.cpu, trendsCpu: trends.cpu }
  } finally {
    await consumer.stop()
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en')

// 1. In process: SQLite, embedded bus, in-process cache, local blobs. Its counters serve part 3.
const data = tempDir('reel-bench-trends-')
const children: ChildProcess[] = []
try {
  const seeded = await seedCatalog({
    REEL_DATA_DIR: data.dir,
    REEL_LOG_LEVEL: 'warn',
    REEL_JWT_SECRET: JWT_SECRET,
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
  })
  const inProcess = await measure(
    'in-process',
    { REEL_DATA_DIR: data.dir },
    playbackEvents(EVENTS, seeded.titles, 1),
  )

  if (IN_PROCESS_ONLY)
    console.log(
      `in process (SQLite): ${fmt(inProcess.trends)} trends/s, ${fmt(inProcess.raw)} raw bus/s, ` +
        `CPU µs/ev ${inProcess.rawCpu.toFixed(1)}/${inProcess.trendsCpu.toFixed(1)}, load ${loadavg()[0]?.toFixed(2)}`,
    )
  else await theRest(inProcess, seeded)
} finally {
  for (const child of children) {
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
  data.cleanup()
}

/** Parts 2 and 3, and the table. */
async function theRest(inProcess: Rates, seeded: Seeded): Promise<void> {
  // 2. JetStream: same, with the bus on NATS (the DB, cache and blobs stay embedded).
  let jetstream: Rates | string
  const nc = await connect({ servers: natsUrl, timeout: 2000, reconnect: false }).catch(() => undefined)
  if (!nc) jetstream = `no NATS server answers at ${natsUrl}`
  else {
    const prefix = `bench_trends_${process.pid}_${Date.now().toString(36)}`
    const jsData = tempDir('reel-bench-trends-js-')
    try {
      jetstream = await measure(
        'jetstream',
        { REEL_DATA_DIR: jsData.dir, REEL_NATS_URL: natsUrl, REEL_NATS_PREFIX: prefix },
        playbackEvents(JETSTREAM_EVENTS, seeded.titles, 2),
      )
    } finally {
      const jsm = await nc.jetstreamManager()
      for (const stream of ['EVENTS', 'WORK', 'DLQ'])
        await jsm.streams.delete(`${prefix.toUpperCase()}_${stream}`).catch(() => {})
      await nc.close()
      jsData.cleanup()
    }
  }

  // 3. GET /api/v1/trending in a reel of its own process, on the in-process run's data.
  const server = await startScript('bench/trends/server.ts', [], {
    REEL_DATA_DIR: data.dir,
    REEL_JWT_SECRET: JWT_SECRET,
  })
  children.push(server.child)
  const headers = { authorization: `Bearer ${seeded.token}` }
  const paths = [
    `/api/v1/trending?profile=${seeded.profileId}&window=day`,
    `/api/v1/trending?profile=${seeded.profileId}&window=hour&region=world`,
    `/api/v1/trending?profile=${seeded.profileId}&window=week&type=series&limit=50`,
    `/api/v1/trending?profile=${seeded.profileId}&window=day&region=GB&type=movie`,
  ]
  const first = await fetch(`${server.url}${paths[0]}`, { headers })
  if (first.status !== 200) throw new Error(`trending answered ${first.status}: ${await first.text()}`)
  const shown = ((await first.json()) as { items: unknown[] }).items.length
  const load = () =>
    autocannon({
      url: server.url,
      connections: 10,
      duration: DURATION_S,
      requests: paths.map((path) => ({ method: 'GET' as const, path, headers })),
    })
  await load() // warm caches and JIT
  const trending = await load()
  if (trending.non2xx > 0) throw new Error(`${trending.non2xx} trending requests failed`)
  // The same server's floor under the same load: what the machine (and the load generator beside it) allows.
  const health = await autocannon({ url: `${server.url}/healthz`, connections: 10, duration: DURATION_S })

  const row = (cells: string[]) =>
    console.log(cells.map((c, i) => (i === 0 ? c.padEnd(34) : c.padStart(11))).join(' '))
  console.log(
    `Trends: events aggregated end to end (backlog drains; bus batches of up to ${FLUSH_EVENTS}, ${FLUSHES_AT_ONCE} at once, one flush each)`,
  )
  row(['bus', 'events', 'publish/s', 'raw bus/s', 'trends/s', 'trends/raw', 'CPU µs/ev', 'target'])
  row([
    'in process (SQLite)',
    fmt(EVENTS),
    fmt(inProcess.publish),
    fmt(inProcess.raw),
    fmt(inProcess.trends),
    ratio(inProcess.trends, inProcess.raw).toFixed(2),
    `${inProcess.rawCpu.toFixed(1)}/${inProcess.trendsCpu.toFixed(1)}`,
    `≥ ${fmt(IN_PROCESS_TARGET)}/s ${verdict(inProcess.trends, IN_PROCESS_TARGET)}`,
  ])
  if (typeof jetstream === 'string') console.log(`JetStream not measured: ${jetstream}`)
  else {
    const r = ratio(jetstream.trends, jetstream.raw)
    row([
      `JetStream (${natsUrl.replace(/^nats:\/\//, '')})`,
      fmt(JETSTREAM_EVENTS),
      fmt(jetstream.publish),
      fmt(jetstream.raw),
      fmt(jetstream.trends),
      r.toFixed(2),
      `${jetstream.rawCpu.toFixed(1)}/${jetstream.trendsCpu.toFixed(1)}`,
      `≥ ${JETSTREAM_RATIO_TARGET} of raw ${verdict(r, JETSTREAM_RATIO_TARGET)}`,
    ])
    if (r > 1)
      console.log(
        '  (the do-nothing consumer ran slower than trends: that run of the raw JetStream drain is no ceiling)',
      )
  }
  console.log(
    `GET /api/v1/trending (4 window/region/type mixes, ${shown} titles shown of the day row, 10 connections, ${DURATION_S} s): ` +
      `${fmt(trending.requests.average)} req/s, p50 ${trending.latency.p50} ms, p99 ${trending.latency.p99} ms ` +
      `(target ≤ ${P99_TARGET_MS} ms: ${verdict(trending.latency.p99, P99_TARGET_MS, 'lower')})`,
  )
  console.log(
    `GET /healthz on the same server, same load: ${fmt(health.requests.average)} req/s, p50 ${health.latency.p50} ms, p99 ${health.latency.p99} ms`,
  )
  console.log(
    `CPU µs/ev: this process's CPU time per event, raw drain/trends drain. Load average while measuring: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} on ${availableParallelism()} cores`,
  )
}
