// The platform's overhead: reel's /healthz (request ids, metrics, logging hooks, error handling)
// against a bare Fastify route, each server in its own process, driven by autocannon in this one.
// Runs the pair twice in alternating order and reports the better run of each. Target: ≥ 0.8 of bare.
import { once } from 'node:events'
import autocannon from 'autocannon'
import { startServer } from '../lib.js'

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8)
const CONNECTIONS = 50

async function measure(mode: 'bare' | 'platform') {
  const { url, child } = await startServer(mode, { REEL_LOG_LEVEL: 'info' })
  try {
    await autocannon({ url: `${url}/healthz`, connections: CONNECTIONS, duration: 2 }) // warm-up
    const r = await autocannon({ url: `${url}/healthz`, connections: CONNECTIONS, duration: DURATION_S })
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${mode}: ${r.non2xx} non-2xx, ${r.errors} errors`)
    return { rps: r.requests.average, p99: r.latency.p99 }
  } finally {
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
}

const runs = { bare: [] as { rps: number; p99: number }[], platform: [] as { rps: number; p99: number }[] }
for (const order of [
  ['bare', 'platform'],
  ['platform', 'bare'],
] as const) {
  for (const mode of order) runs[mode].push(await measure(mode))
}
const best = (xs: { rps: number; p99: number }[]) => xs.reduce((a, b) => (b.rps > a.rps ? b : a))
const bare = best(runs.bare)
const platform = best(runs.platform)
const ratio = platform.rps / bare.rps
console.log(`http-floor: GET /healthz, ${CONNECTIONS} connections, ${DURATION_S} s per run, best of 2`)
console.log(`  bare Fastify     ${bare.rps.toFixed(0).padStart(7)} req/s   p99 ${bare.p99} ms`)
console.log(`  reel platform    ${platform.rps.toFixed(0).padStart(7)} req/s   p99 ${platform.p99} ms`)
console.log(
  `  ratio            ${ratio.toFixed(2)} of bare (target ≥ 0.80: ${ratio >= 0.8 ? 'met' : 'NOT met'})`,
)
