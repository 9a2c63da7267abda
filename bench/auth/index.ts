// Accounts under load, against baselines measured in the same run:
//  - logins/s through POST /api/v1/sessions (argon2id at reel's cost) vs the bare argon2id verify
//    rate of this machine (same parameters, same concurrency);
//  - an authenticated, cached GET /api/v1/account vs GET /healthz (target: ≥ 0.7 of it), with p99.
import { once } from 'node:events'
import { hash, verify } from '@node-rs/argon2'
import autocannon from 'autocannon'
import { ratio, startServer, verdict } from '../lib.js'

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8)
const CONNECTIONS = 20
const ARGON2 = { algorithm: 2 as const, memoryCost: 19_456, timeCost: 2, parallelism: 1 }

async function bareVerifyRate(): Promise<number> {
  const stored = await hash('correct horse battery', ARGON2)
  const until = Date.now() + DURATION_S * 1000
  let done = 0
  // As many verifications in flight as the server sees logins (libuv's pool runs 4 at once).
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < until) {
        await verify(stored, 'correct horse battery')
        done++
      }
    }),
  )
  return done / DURATION_S
}

const { url, child } = await startServer('platform', { REEL_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '1000000' })
try {
  const email = `bench.${Date.now()}@example.com`
  const signUp = await fetch(`${url}/api/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: 'correct horse battery', plan: 'premium' }),
  })
  if (signUp.status !== 201) throw new Error(`sign-up failed: ${await signUp.text()}`)
  const { tokens } = (await signUp.json()) as { tokens: { accessToken: string } }

  const bare = await bareVerifyRate()
  const logins = await autocannon({
    url: `${url}/api/v1/sessions`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: 'correct horse battery' }),
    connections: CONNECTIONS,
    duration: DURATION_S,
  })
  if (logins.non2xx > 0) throw new Error(`${logins.non2xx} logins failed`)

  const load = (path: string, headers: Record<string, string> = {}) =>
    autocannon({ url: `${url}${path}`, headers, connections: 50, duration: DURATION_S })
  await load('/api/v1/account', { authorization: `Bearer ${tokens.accessToken}` }) // warm caches and JIT
  const health = await load('/healthz')
  const account = await load('/api/v1/account', { authorization: `Bearer ${tokens.accessToken}` })
  if (account.non2xx > 0) throw new Error(`${account.non2xx} account reads failed`)

  const loginRatio = ratio(logins.requests.average, bare)
  const readRatio = ratio(account.requests.average, health.requests.average)
  console.log(`auth: ${DURATION_S} s per measurement`)
  console.log(`  argon2id verify, bare           ${bare.toFixed(1).padStart(8)} /s  (m=19 MiB, t=2, p=1)`)
  console.log(
    `  POST /api/v1/sessions (login)   ${logins.requests.average.toFixed(1).padStart(8)} /s  p99 ${logins.latency.p99} ms  = ${loginRatio.toFixed(2)} of bare`,
  )
  console.log(
    `  GET /healthz                    ${health.requests.average.toFixed(0).padStart(8)} /s  p99 ${health.latency.p99} ms`,
  )
  console.log(
    `  GET /api/v1/account (cached)    ${account.requests.average.toFixed(0).padStart(8)} /s  p99 ${account.latency.p99} ms`,
  )
  console.log(
    `  account read = ${readRatio.toFixed(2)} of /healthz (target ≥ 0.70: ${verdict(readRatio, 0.7)})`,
  )
} finally {
  child.kill('SIGTERM')
  await once(child, 'exit')
}
