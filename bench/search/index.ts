// Search, measured on the IMDb-5000 feed and on a synthetic 100,000-title catalog, each against
// baselines from the same run:
//  - index build time (wall and CPU) and heap; snapshot size, warm start, and the longest event-loop
//    stall while writing it: all at once (JSON.stringify, the old way) next to in slices (now);
//  - the service fed 100,000 catalog events through its bus handler: the longest event-loop stall;
//  - query latency p50/p99 for 1–3 word queries with typos (and the last word cut, as typed),
//    through the library (reel's TitleIndex, uncached and cached) and through GET /api/v1/search
//    (Fastify inject: auth, validation, serialisation, no socket), next to GET /healthz; wall time
//    and this process's CPU time per query (wall time follows the machine's other load; CPU less so),
//    and the service's own time (tookMs in each response: without the HTTP stack or other event-loop work);
//  - plain MiniSearch (its own prefix/fuzzy, no candidate bounds) on the same titles: what the
//    bounding layer buys;
//  - IMDb-5000 imported through the catalog (admin import, outbox, bus) until the search index holds it;
//  - autocannon (a child process) against the listening server at 100,000 titles.
// Targets: p99 ≤ 5 ms through the API at 100,000 titles; index build ≤ 10 s for 100,000 titles.
// `npm run bench -- search [--data PATH] [--titles N]` (env BENCH_SEARCH_DATA, BENCH_SEARCH_TITLES).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import MiniSearch from 'minisearch'
import { createReel, type Reel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import { createLogger } from '../../src/platform/log.js'
import { TITLE_UPSERTED } from '../../src/services/catalog/events.js'
import { readFeed } from '../../src/services/catalog/feed.js'
import { type IndexedTitle, TitleIndex, typoBudget } from '../../src/services/search/engine.js'
import { indexedTitle } from '../../src/services/search/service.js'
import { compileSynonyms, DEFAULT_SYNONYMS } from '../../src/services/search/synonyms.js'
import { terms } from '../../src/services/search/text.js'
import { SERVER_FLAGS, verdict } from '../lib.js'
import { syntheticCatalog, typedQueries } from './catalog.js'

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const DATA = arg('data') ?? process.env.BENCH_SEARCH_DATA ?? '../shared/data/imdb5000/movie_metadata.csv'
const SYNTHETIC = Number(arg('titles') ?? process.env.BENCH_SEARCH_TITLES ?? 100_000)
const QUERIES = 1000
const PLAIN_QUERIES = 200
const PLAIN_BUDGET_MS = 10_000

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
const heapMb = () => {
  gc()
  return process.memoryUsage().heapUsed / 2 ** 20
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0
}
const ms = (n: number) => `${n.toFixed(2)} ms`

const synonyms = compileSynonyms(DEFAULT_SYNONYMS)
const audience = { country: 'US', now: Date.now() }

const cpuMs = () => process.cpuUsage().user / 1000

/** Wall and CPU milliseconds of each query, after 100 to warm up. */
function timeQueries(index: TitleIndex, queries: string[]): { wall: number[]; cpu: number[] } {
  for (const q of queries.slice(0, 100))
    index.query({ q, filters: {}, audience, offset: 0, limit: 20, synonyms })
  const wall: number[] = []
  const cpu: number[] = []
  for (const q of queries) {
    const started = performance.now()
    const cpuStarted = cpuMs()
    index.query({ q, filters: {}, audience, offset: 0, limit: 20, synonyms })
    cpu.push(cpuMs() - cpuStarted)
    wall.push(performance.now() - started)
  }
  return { wall, cpu }
}

/**
 * The longest the event loop went without a turn while `work` ran, in ms: the largest gap between
 * two ticks of a 1 ms interval, less the 1 ms. (perf_hooks monitorEventLoopDelay records nothing
 * for one long synchronous block, so it cannot show the baseline.)
 */
async function longestStall<T>(
  work: () => Promise<T> | T,
): Promise<{ result: T; stallMs: number; ms: number }> {
  let last = performance.now()
  let longest = 0
  const ticker = setInterval(() => {
    const now = performance.now()
    longest = Math.max(longest, now - last - 1)
    last = now
  }, 1)
  await new Promise((r) => setTimeout(r, 5))
  const started = performance.now()
  const result = await work()
  const took = performance.now() - started
  // Let the loop take a turn, so a stall that lasted until the end is counted.
  await new Promise((r) => setTimeout(r, 5))
  clearInterval(ticker)
  return { result, stallMs: Math.max(0, longest), ms: took }
}

const quantiles = (xs: number[]) => `p50 ${ms(pct(xs, 0.5))}  p99 ${ms(pct(xs, 0.99))}`

/** Plain MiniSearch with its own prefix and fuzzy options: the library without reel's bounds. */
function plainMiniSearch(titles: IndexedTitle[], queries: string[]) {
  const before = heapMb()
  const started = performance.now()
  const mini = new MiniSearch<IndexedTitle>({
    fields: ['title', 'people', 'genres', 'keywords', 'synopsis'],
    extractField: (d, f) =>
      f === 'id'
        ? d.id
        : f === 'people'
          ? d.people.join(' ')
          : f === 'genres'
            ? d.genres.map((g) => g.name).join(' ')
            : f === 'keywords'
              ? d.tags.join(' ')
              : f === 'title'
                ? d.title
                : d.synopsis,
    tokenize: (text) => terms(text),
    processTerm: (t) => t,
  })
  mini.addAll(titles)
  const buildMs = performance.now() - started
  const heap = heapMb() - before
  const latencies: number[] = []
  const deadline = Date.now() + PLAIN_BUDGET_MS
  for (const q of queries.slice(0, PLAIN_QUERIES)) {
    if (Date.now() > deadline) break
    const t0 = performance.now()
    mini.search(q, {
      boost: { title: 6, people: 3, genres: 2, keywords: 1.5 },
      prefix: (_t, i, all) => i === all.length - 1,
      fuzzy: (t) => typoBudget(t.length) || false,
      combineWith: 'AND',
    })
    latencies.push(performance.now() - t0)
  }
  return { buildMs, heap, latencies }
}

async function startReel(): Promise<{ reel: Reel; dataDir: string; token: string; url: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-search-'))
  const reel = await createReel({
    config: loadConfig({
      REEL_DATA_DIR: dataDir,
      REEL_PORT: '0',
      REEL_HOST: '127.0.0.1',
      REEL_LOG_LEVEL: 'silent',
    }),
    log: createLogger('silent'),
  })
  const url = await reel.start()
  const signUp = await reel.http.inject({
    method: 'POST',
    url: '/api/v1/accounts',
    payload: { email: `bench.${Date.now()}@example.com`, password: 'correct horse battery', plan: 'premium' },
  })
  if (signUp.statusCode !== 201) throw new Error(`sign-up failed: ${signUp.body}`)
  return { reel, dataDir, token: signUp.json().tokens.accessToken, url }
}

function tookMsOf(body: Buffer): number {
  const at = body.indexOf('"tookMs":')
  const took = at < 0 ? Number.NaN : Number.parseFloat(body.toString('latin1', at + 9, at + 40))
  if (Number.isNaN(took)) throw new Error('a search response without tookMs')
  return took
}

async function apiLatencies(reel: Reel, token: string, queries: string[]) {
  const get = (url: string) =>
    reel.http.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })
  for (const q of queries.slice(0, 100)) await get(`/api/v1/search?q=${encodeURIComponent(q)}`)
  const health: number[] = []
  for (let i = 0; i < 500; i++) {
    const t0 = performance.now()
    await reel.http.inject({ method: 'GET', url: '/healthz' })
    health.push(performance.now() - t0)
  }
  const search: number[] = []
  const cpu: number[] = []
  const took: number[] = []
  let failures = 0
  for (const q of queries) {
    const t0 = performance.now()
    const c0 = cpuMs()
    const res = await get(`/api/v1/search?q=${encodeURIComponent(q)}&limit=20`)
    cpu.push(cpuMs() - c0)
    search.push(performance.now() - t0)
    if (res.statusCode !== 200) failures++
    // Read from the bytes: parsing each 10-20 KB body here was garbage (and scavenges) in the server's heap.
    else took.push(tookMsOf(res.rawPayload))
  }
  if (failures > 0) throw new Error(`${failures} searches failed`)
  return { health, search, cpu, took }
}

/** autocannon in its own process (so it does not share the server's event loop), 10 connections, 5 s. */
function autocannon(
  url: string,
  token: string,
  q: string,
): Promise<{ rps: number; p50: number; p99: number }> {
  return new Promise((resolve, reject) => {
    const bin = path.join('node_modules', '.bin', 'autocannon')
    const child = spawn(
      bin,
      [
        '-j',
        '-c',
        '10',
        '-d',
        '5',
        '-H',
        `authorization=Bearer ${token}`,
        `${url}/api/v1/search?q=${encodeURIComponent(q)}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    )
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += String(c)
    })
    child.once('exit', (code) => {
      try {
        const r = JSON.parse(out) as {
          requests: { average: number }
          latency: { p50: number; p99: number }
          non2xx: number
        }
        if (code !== 0 || r.non2xx > 0) throw new Error(`autocannon exited ${code}, ${r.non2xx} non-2xx`)
        resolve({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 })
      } catch (e) {
        reject(e)
      }
    })
  })
}

async function report(name: string, titles: IndexedTitle[]) {
  const queries = typedQueries(titles, QUERIES)
  const before = heapMb()
  const started = performance.now()
  const cpuStarted = cpuMs()
  const index = new TitleIndex({ cacheEntries: 0 })
  for (const t of titles) index.upsert(t)
  const buildMs = performance.now() - started
  const buildCpuMs = cpuMs() - cpuStarted
  const heap = heapMb() - before
  // The machine's own noise: the longest gap with nothing to do, for a second.
  const idle = await longestStall(() => new Promise((r) => setTimeout(r, 1000)))
  const whole = await longestStall(() => index.toSnapshot())
  const slices = { longestSliceMs: 0 }
  const sliced = await longestStall(() => index.snapshotChunks(undefined, 8, slices))
  if (sliced.result.join('') !== whole.result)
    throw new Error('the sliced snapshot differs from the whole one')
  const snapshot = whole.result
  const t1 = performance.now()
  const warm = TitleIndex.fromSnapshot(snapshot)
  const loadMs = performance.now() - t1
  if (!warm || warm.size !== index.size) throw new Error('snapshot round trip lost titles')
  const cold = timeQueries(index, queries)
  // The same snapshot, warmed up first (completion lists, packed postings), then the same queries uncached.
  let fresh = TitleIndex.fromSnapshot(snapshot, { cacheEntries: 0 })
  if (!fresh) throw new Error('snapshot round trip failed')
  const unwarmedHeap = heapMb()
  const unwarmedBuffers = process.memoryUsage().arrayBuffers
  const warmedUp = await longestStall(() => fresh?.warmUp())
  const warmHeap = heapMb() - unwarmedHeap
  const warmBuffers = (process.memoryUsage().arrayBuffers - unwarmedBuffers) / 2 ** 20
  const warmed = timeQueries(fresh, queries)
  fresh = undefined
  const cached = timeQueries(warm, [...queries, ...queries].slice(QUERIES / 2, QUERIES / 2 + QUERIES))
  const plain = plainMiniSearch(titles, queries)
  console.log(
    `\n${name}: ${titles.length} titles, ${queries.length} queries of 1–3 words with typos, last word cut half the time`,
  )
  console.log(
    `  e.g. ${queries
      .slice(0, 6)
      .map((q) => JSON.stringify(q))
      .join(', ')}`,
  )
  console.log(
    `  index build (TitleIndex)       ${ms(buildMs).padStart(12)}   CPU ${ms(buildCpuMs)}   heap ${heap.toFixed(0)} MB`,
  )
  console.log(
    `  snapshot ${(snapshot.length / 2 ** 20).toFixed(1)} MB JSON, warm start ${ms(loadMs)}; writing it, longest event-loop stall:`,
  )
  console.log(`    baseline: all at once          ${ms(whole.stallMs).padStart(12)}   (took ${ms(whole.ms)})`)
  console.log(
    `    baseline: idle, 1 s            ${ms(idle.stallMs).padStart(12)}   (this machine's scheduling noise)`,
  )
  console.log(
    `    in slices (snapshotChunks)     ${ms(sliced.stallMs).padStart(12)}   (took ${ms(sliced.ms)}; longest slice of its own work ${ms(slices.longestSliceMs)})`,
  )
  console.log(
    `  library, uncached              wall ${quantiles(cold.wall)}  max ${ms(pct(cold.wall, 1))} | CPU ${quantiles(cold.cpu)}`,
  )
  console.log(
    `  library, warmed up, uncached   wall ${quantiles(warmed.wall)}  max ${ms(pct(warmed.wall, 1))} | CPU ${quantiles(warmed.cpu)}  (warmUp() ${ms(warmedUp.ms)}, longest event-loop stall ${ms(warmedUp.stallMs)}, heap +${warmHeap.toFixed(0)} MB, typed arrays +${warmBuffers.toFixed(0)} MB)`,
  )
  console.log(
    `  library, cache (half repeats)  wall ${quantiles(cached.wall)} | CPU ${quantiles(cached.cpu)}`,
  )
  console.log(
    `  baseline: plain MiniSearch     build ${ms(plain.buildMs)}  heap ${plain.heap.toFixed(0)} MB  wall ${quantiles(plain.latencies)}  (${plain.latencies.length} queries)`,
  )
  console.log(
    '  (the library keeps completion lists of 1–3 letter prefixes even "uncached": they are part of the index, emptied per prefix when a title with such a word changes)',
  )
  return {
    queries,
    buildMs,
    buildCpuMs,
    warm,
    stalls: { whole: whole.stallMs, sliced: sliced.stallMs, idle: idle.stallMs },
  }
}

const summary: string[] = []
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')
console.log(
  `${os.cpus().length} CPUs, load average ${load()} (other work on this machine slows every figure alike)`,
)
// The server runs in this process: with the young-generation size reel starts with (package.json).
console.log(
  `node flags: ${SERVER_FLAGS.join(' ') || "none: Node's default young generation, not reel's (run it with npm run bench)"}`,
)

// 1. IMDb-5000 through the real path: catalog import → outbox → bus → search index; then the figures.
if (!fs.existsSync(DATA)) {
  console.log(`IMDb-5000 feed not found at ${DATA}: skipping it (give --data PATH or BENCH_SEARCH_DATA)`)
} else {
  const records: Record<string, unknown>[] = []
  for await (const item of readFeed(DATA, { regions: ['*'] })) if ('record' in item) records.push(item.record)
  const { reel, dataDir, token } = await startReel()
  try {
    const catalog = reel.use('catalog')
    const search = reel.use('search')
    const started = performance.now()
    const ids = new Set<string>()
    for (let i = 0; i < records.length; i += 500)
      for (const o of await catalog.importTitles(records.slice(i, i + 500))) if (o.id) ids.add(o.id)
    const importMs = performance.now() - started
    while (search.size < ids.size) await new Promise((r) => setTimeout(r, 20))
    const indexedMs = performance.now() - started
    console.log(`IMDb-5000 (${DATA}): ${records.length} rows → ${ids.size} titles`)
    console.log(
      `  catalog import (in-process, SQLite)   ${(importMs / 1000).toFixed(1)} s  (${(importMs / records.length).toFixed(2)} ms a row)`,
    )
    console.log(
      `  all in the search index (via events)  ${(indexedMs / 1000).toFixed(1)} s after the import started`,
    )
    const documents = [...(await catalog.titlesById([...ids])).values()]
    const { queries } = await report('IMDb-5000', documents.map(indexedTitle))
    const api = await apiLatencies(reel, token, queries)
    console.log(
      `  GET /healthz (inject, baseline)       p50 ${ms(pct(api.health, 0.5))}  p99 ${ms(pct(api.health, 0.99))}`,
    )
    console.log(
      `  GET /api/v1/search (inject)           wall ${quantiles(api.search)} | CPU ${quantiles(api.cpu)} | tookMs ${quantiles(api.took)}`,
    )
    summary.push(`IMDb-5000: API p99 ${ms(pct(api.search, 0.99))} (CPU ${ms(pct(api.cpu, 0.99))})`)
  } finally {
    await reel.stop()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

// 2. The synthetic catalog: the library, then the service fed through its event handler.
{
  const documents = syntheticCatalog(SYNTHETIC)
  const { queries, buildMs, buildCpuMs, stalls } = await report(`synthetic`, documents.map(indexedTitle))
  const { reel, dataDir, token, url } = await startReel()
  try {
    const search = reel.use('search')
    // As the bus hands them over: one awaited handler call per event, in log order.
    const fed = await longestStall(async () => {
      let position = 0
      for (const title of documents)
        await search.applyDelivered(
          { id: title.id, type: TITLE_UPSERTED, key: title.id, time: title.updatedAt, data: { title } },
          ++position,
        )
    })
    console.log(
      `  service fed through its bus handler ${ms(fed.ms).padStart(12)}   longest event-loop stall ${ms(fed.stallMs)} (fed in one go it would be the whole build above)`,
    )
    const saved = await longestStall(() => search.saveSnapshot())
    console.log(
      `  service saveSnapshot (local blobs)  ${ms(saved.ms).padStart(12)}   longest event-loop stall ${ms(saved.stallMs)}`,
    )
    // The service warms its index up once titles stop changing (during the snapshot here): what is left of it.
    const warming = await longestStall(() => search.warmedUp())
    console.log(
      `  service warm-up left after that    ${ms(warming.ms).padStart(12)}   longest event-loop stall ${ms(warming.stallMs)}`,
    )
    const api = await apiLatencies(reel, token, queries)
    const p99 = pct(api.search, 0.99)
    console.log(
      `  GET /healthz (inject, baseline)       p50 ${ms(pct(api.health, 0.5))}  p99 ${ms(pct(api.health, 0.99))}`,
    )
    console.log(
      `  GET /api/v1/search (inject)           wall ${quantiles(api.search)} | CPU ${quantiles(api.cpu)} | tookMs ${quantiles(api.took)}  (the 1000 queries, repeats included, caches on; tookMs: the service's own time, in the response)`,
    )
    const repeated = queries.find((q) => q.includes(' ')) ?? 'the'
    const load = await autocannon(url, token, repeated)
    console.log(
      `  autocannon, 10 connections, 5 s       ${load.rps.toFixed(0)} req/s  p50 ${load.p50} ms  p99 ${load.p99} ms  (one query, q=${JSON.stringify(repeated)}: answered from the cache)`,
    )
    summary.push(
      `${SYNTHETIC} titles: API p99 ${ms(p99)} (target ≤ 5 ms: ${verdict(p99, 5, 'lower')}; CPU p99 ${ms(pct(api.cpu, 0.99))}), build ${(buildMs / 1000).toFixed(1)} s, CPU ${(buildCpuMs / 1000).toFixed(1)} s (target ≤ 10 s: ${verdict(buildMs, 10_000, 'lower')}), snapshot stall ${ms(stalls.whole)} → ${ms(stalls.sliced)} (idle ${ms(stalls.idle)}), replay stall ${ms(fed.stallMs)}; /healthz p99 ${ms(pct(api.health, 0.99))}`,
    )
  } finally {
    await reel.stop()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

console.log(`\nsummary (load average now ${load()}): ${summary.join('; ')}`)
