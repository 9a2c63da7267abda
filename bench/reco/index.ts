// Recommendations, measured in one run:
//  - serving: GET /api/v1/profiles/:id/home (precomputed module from the cache + live rows + a
//    sponsored row whose impression is a DB write) against GET /healthz of the same server, both
//    with the Accept-Encoding a browser sends (targets: ≥ 0.5 of /healthz's throughput, p99 ≤ 10 ms),
//    in BENCH_ROUNDS (3) rounds side by side; and the same pages without Accept-Encoding, for
//    comparison. The client is bench/lib's leanLoad (closed loop, prebuilt requests, bodies counted
//    and skipped); each measurement says how busy the server and the client were;
//  - training: BENCH_PROFILES × BENCH_TITLES (10,000 × 5,000) of synthetic history, each algorithm
//    in a fresh process (peak RSS is a process's high-water mark), popularity as the baseline.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import autocannon from 'autocannon'
import { leanLoad, ratio, SERVER_FLAGS, verdict, withCpu } from '../lib.js'

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20)
const WARM_S = 2
/** /healthz and home-page runs, in turn. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
/** Titles of the cached catalog page measured beside the home page (about its size in bytes). */
const LIST_LIMIT = 60
// BENCH_ALGORITHMS= (empty) skips training; the first one listed is the baseline.
const ALGORITHMS = (process.env.BENCH_ALGORITHMS ?? 'popularity,itemknn').split(',').filter(Boolean)
/** What Chromium sends with every request: the home page is measured as a browser fetches it. */
const BROWSER = { 'accept-encoding': 'gzip, deflate, br, zstd' }
const mb = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`

interface TrainLine {
  algorithm: string
  profiles: number
  titles: number
  interactions: number
  ms: number
  modelMs: number
  contentMs: number
  maxRssBytes: number
  rssBeforeBytes: number
  loopMaxMs: number
  loopP99Ms: number
  stallsMs: Record<string, number>
}

async function train(algorithm: string): Promise<TrainLine> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/reco/train.ts', algorithm], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, REEL_LOG_LEVEL: 'warn' },
  })
  let out = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    out += String(chunk)
  })
  const [code] = await once(child, 'exit')
  const line = out.split('\n').find((l) => l.startsWith('{'))
  if (code !== 0 || !line) throw new Error(`training bench (${algorithm}) exited ${code}`)
  return JSON.parse(line) as TrainLine
}

// Serving.
interface Ready {
  url: string
  viewers: { token: string; profileId: string }[]
  report: { interactions: number; profiles: number; titles: number }
}
// BENCH_PROFILE=<dir>: the server writes a V8 CPU profile there (open it in Chrome DevTools).
const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []
const child = spawn(
  process.execPath,
  [...SERVER_FLAGS, ...profile, '--import', 'tsx', 'bench/reco/server.ts'],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, REEL_LOG_LEVEL: 'warn' },
  },
)
const { url, viewers, report } = await new Promise<Ready>((resolve, reject) => {
  let out = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    out += String(chunk)
    // Only whole lines: the ready line is long and may come in several chunks.
    const line = out
      .split('\n')
      .slice(0, -1)
      .find((l) => l.startsWith('{"url"'))
    if (line) resolve(JSON.parse(line) as Ready)
  })
  child.once('exit', (code) => reject(new Error(`bench server exited (${code})`)))
})
try {
  // One prebuilt request per profile, in turn (as /healthz's one request), sent by bench/lib's lean
  // client: autocannon rebuilt a request per send and decoded every body to a string, costing it
  // more CPU than the server spent answering (it, not the server, was the limit on home pages).
  const home = (encoding: Record<string, string> = BROWSER, duration = DURATION_S) =>
    withCpu(child.pid ?? 0, () =>
      leanLoad(
        url,
        viewers.map((v) => ({
          path: `/api/v1/profiles/${v.profileId}/home`,
          headers: { ...encoding, authorization: `Bearer ${v.token}` },
        })),
        CONNECTIONS,
        duration,
      ),
    )
  const health = () =>
    withCpu(child.pid ?? 0, () =>
      leanLoad(url, [{ path: '/healthz', headers: BROWSER }], CONNECTIONS, DURATION_S),
    )
  await home() // warm caches and JIT
  // /healthz and home pages in turn, ROUNDS times: this machine's speed drifts over a minute, so a
  // ratio is taken from runs side by side, and the round with the median ratio is reported.
  const rounds: { healthz: Awaited<ReturnType<typeof health>>; pages: Awaited<ReturnType<typeof home>> }[] =
    []
  for (let r = 0; r < ROUNDS; r++) {
    const healthz = await health()
    // Each home run follows a short one of its own: every run starts with the pages in memory that
    // a server answering a steady stream of home pages has (the run before it was /healthz).
    await home(BROWSER, WARM_S)
    const pages = await home()
    if (pages.non2xx > 0) throw new Error(`${pages.non2xx} home pages answered non-2xx`)
    rounds.push({ healthz, pages })
  }
  const shareOf = (r: (typeof rounds)[number]) => ratio(r.pages.requests.average, r.healthz.requests.average)
  const sorted = [...rounds].sort((a, b) => shareOf(a) - shareOf(b))
  const { healthz, pages } = sorted[Math.floor(sorted.length / 2)] as (typeof rounds)[number]
  // The same pages to a client that takes no compression (a bare HTTP library): every byte on the wire.
  await home({}, WARM_S)
  const identity = await home({})
  if (identity.non2xx > 0) throw new Error(`${identity.non2xx} home pages answered non-2xx`)
  // A second baseline: a cached catalog page of about the same size (what ~18 KB of JSON costs here).
  const listPath = `/api/v1/titles?limit=${LIST_LIMIT}`
  const auth = { ...BROWSER, authorization: `Bearer ${viewers[0]?.token ?? ''}` }
  const listAnswer = await fetch(`${url}${listPath}`, { headers: auth })
  if (listAnswer.status !== 200) throw new Error(`${listPath} answered ${listAnswer.status}`)
  const listBytes = (await listAnswer.text()).length
  const gzipAnswer = await autocannon({
    url: `${url}/api/v1/profiles/${viewers[0]?.profileId}/home`,
    headers: { ...BROWSER, authorization: `Bearer ${viewers[0]?.token}` },
    amount: 1,
    connections: 1,
  })
  const wireBytes = gzipAnswer.throughput.total
  const list = await withCpu(child.pid ?? 0, () =>
    leanLoad(url, [{ path: listPath, headers: auth }], CONNECTIONS, DURATION_S),
  )
  if (list.non2xx > 0) throw new Error(`${list.non2xx} catalog pages answered non-2xx`)
  const sample = (await (
    await fetch(`${url}/api/v1/profiles/${viewers[0]?.profileId}/home`, {
      headers: { authorization: `Bearer ${viewers[0]?.token}` },
    })
  ).json()) as { rows: { kind: string; items: unknown[] }[]; fallback?: boolean }
  const share = ratio(pages.requests.average, healthz.requests.average)
  console.log(
    `reco serving: ${DURATION_S} s per measurement, ${CONNECTIONS} connections, ${viewers.length} profiles; trained on ${report.interactions} interactions of ${report.profiles} profiles × ${report.titles} titles`,
  )
  console.log(
    `  a page: ${JSON.stringify(sample).length} bytes, ${sample.rows.length} rows (${sample.rows.map((r) => `${r.kind}:${r.items.length}`).join(' ')})${sample.fallback ? ' FALLBACK' : ''}`,
  )
  console.log(
    `  GET /healthz                   ${healthz.requests.average.toFixed(0).padStart(7)} /s  p99 ${healthz.latency.p99} ms  (${healthz.cpu})`,
  )
  console.log(
    `  GET /api/v1/profiles/:id/home  ${pages.requests.average.toFixed(0).padStart(7)} /s  p99 ${pages.latency.p99} ms  (Accept-Encoding as Chromium sends it; ~${wireBytes} bytes on the wire with headers; ${pages.cpu})`,
  )
  console.log(
    `  the same, no Accept-Encoding   ${identity.requests.average.toFixed(0).padStart(7)} /s  p99 ${identity.latency.p99} ms  (${ratio(identity.requests.average, healthz.requests.average).toFixed(2)} of /healthz; ${identity.cpu})`,
  )
  console.log(
    `  GET ${listPath.padEnd(27)}${list.requests.average.toFixed(0).padStart(7)} /s  p99 ${list.latency.p99} ms  (a cached catalog page, ${listBytes} bytes; ${list.cpu})`,
  )
  console.log(
    `  home = ${share.toFixed(2)} of /healthz, the median of ${ROUNDS} rounds side by side (${rounds.map((r) => `${r.pages.requests.average.toFixed(0)}/${r.healthz.requests.average.toFixed(0)} = ${shareOf(r).toFixed(2)}`).join(', ')}) (target ≥ 0.50: ${verdict(share, 0.5)})`,
  )
  console.log(
    `  home = ${ratio(pages.requests.average, list.requests.average).toFixed(2)} of the cached catalog page`,
  )
  console.log(
    `  home p99 ${pages.latency.p99} ms (target ≤ 10 ms: ${verdict(pages.latency.p99, 10, 'lower')})`,
  )
  // How many pages went out as memoized (and gzip-compressed once) over the whole run.
  const metrics = await (await fetch(`${url}/metrics`)).text()
  const total = (name: string) =>
    metrics
      .split('\n')
      .filter((line) => line.startsWith(name))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
  console.log(
    `  pages sent from the page memo: ${total('reco_home_page_memo_hits_total')} of ${total('reco_home_pages_total')}`,
  )
} finally {
  child.kill('SIGTERM')
  await once(child, 'exit')
}

// Training.
const runs: TrainLine[] = []
for (const algorithm of ALGORITHMS) runs.push(await train(algorithm))
const base = runs[0]
if (!base) process.exit(0)
console.log(
  `reco training: ${base.profiles} profiles × ${base.titles} titles, ${base.interactions} interactions (each run a fresh process; the first is the baseline)`,
)
for (const r of runs)
  console.log(
    `  ${r.algorithm.padEnd(10)} ${(r.ms / 1000).toFixed(1).padStart(6)} s (model ${(r.modelMs / 1000).toFixed(1)} s in its worker, content neighbours ${(r.contentMs / 1000).toFixed(1)} s in theirs)  ${ratio(r.ms, base.ms).toFixed(2)}× ${base.algorithm}  peak RSS ${mb(r.maxRssBytes)} (${mb(r.rssBeforeBytes)} before)  event loop: worst stall ${r.loopMaxMs.toFixed(0)} ms, p99 ${r.loopP99Ms.toFixed(0)} ms`,
  )
console.log(
  `  load average while measured: ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
)
