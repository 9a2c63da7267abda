// CPU per play start, per start+stop, per heartbeat and per /healthz, in one process without sockets
// (inject), and the SQL statements run per start+stop: what the autocannon bench cannot separate on a
// shared, loaded machine. CPU is the process's (process.cpuUsage), so other processes do not count,
// and for starts also the main thread's alone (the event loop, which bounds the throughput).
// Starts come from CPU_AUDIENCE accounts in turn (default 3000; their sessions go silent, as in
// bench/playback): caches as large as the autocannon bench's, where a lookup costs more.
//   npx tsx bench/playback/cpu.ts            all-in-one (every consumer of playback events too)
//   CPU_ROLES=accounts,billing,catalog,media,playback,cdn npx tsx bench/playback/cpu.ts   API roles
import fs from 'node:fs'
import inspector from 'node:inspector/promises'
import os from 'node:os'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import type { ServiceName } from '../../src/platform/modules.js'
import { untilIdle } from '../lib.js'
import { benchTitle } from './title.js'

const PAIRS = Number(process.env.CPU_PAIRS ?? 4000)
const ACCOUNTS = 10
const AUDIENCE = Number(process.env.CPU_AUDIENCE ?? 3000)
const STARTS = Number(process.env.CPU_STARTS ?? 20_000)

// Statements run, by SQL text (better-sqlite3's statement methods, whoever prepared them).
const statements = new Map<string, number>()
let counting = false
{
  const probe = new SQLite(':memory:')
  const proto = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, unknown>
  for (const method of ['run', 'all', 'get', 'iterate']) {
    const original = proto[method] as (...args: unknown[]) => unknown
    proto[method] = function (this: { source: string }, ...args: unknown[]) {
      if (counting) {
        const sql = this.source.replace(/\s+/g, ' ').slice(0, 120)
        statements.set(sql, (statements.get(sql) ?? 0) + 1)
      }
      return original.apply(this, args)
    }
  }
  probe.close()
}

/**
 * Before each measurement: the stream slots of the last one free up (1 s), and the work it left
 * behind ends (write-behind flushes, event consumers, reco recomputations after first plays), which
 * would otherwise be counted in the next one (/healthz measured 0.047-0.113 ms a request without).
 */
const quiet = async () => {
  await new Promise((r) => setTimeout(r, 1500))
  await untilIdle(process.pid)
}

/** CPU_PROFILE=<file>: a V8 CPU profile of the measured starts (summarise it with cpuprofile.ts). */
async function profileTo(file: string | undefined): Promise<{ stop: () => Promise<void> }> {
  if (!file) return { stop: async () => {} }
  const session = new inspector.Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return {
    stop: async () => {
      const { profile } = await session.post('Profiler.stop')
      fs.writeFileSync(file, JSON.stringify(profile))
      session.disconnect()
    },
  }
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-cpu-'))
const roles = process.env.CPU_ROLES ? (process.env.CPU_ROLES.split(',') as ServiceName[]) : undefined
const reel = await createReel({
  ...(roles ? { roles } : {}),
  config: loadConfig({
    REEL_LOG_LEVEL: 'warn',
    REEL_DATA_DIR: dataDir,
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
    REEL_MEDIA_LADDER: '360p-365k,234p-145k',
    REEL_MEDIA_PRESET: 'superfast',
    REEL_MEDIA_WORKERS: '1',
    REEL_PLAYBACK_STREAM_TIMEOUT_MS: '1000',
  }),
})
try {
  await reel.start()
  const titleId = await benchTitle(reel, dataDir)

  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, token?: string, payload?: object) => {
    const res = await reel.http.inject({
      method,
      url,
      headers: token ? { authorization: `Bearer ${token}` } : {},
      ...(payload ? { payload } : {}),
    })
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
    return res.json() as Record<string, unknown>
  }
  const viewers: { token: string; profileId: string }[] = []
  for (let i = 0; i < ACCOUNTS; i++) {
    const body = await call('POST', '/api/v1/accounts', undefined, {
      email: `cpu.${Date.now()}.${i}@example.com`,
      password: 'correct horse battery',
      plan: 'premium',
    })
    const token = (body.tokens as { accessToken: string }).accessToken
    const profiles = (await call('GET', '/api/v1/profiles', token)).profiles as { id: string }[]
    viewers.push({ token, profileId: profiles[0]?.id ?? '' })
  }
  const play = async (v: { token: string; profileId: string }) =>
    (await call('POST', '/api/v1/playback', v.token, { profileId: v.profileId, titleId })).sessionId as string
  const startStop = async (v: { token: string; profileId: string }) =>
    call('DELETE', `/api/v1/playback/${await play(v)}`, v.token)
  // Two screens per account, as in the autocannon bench.
  const pairs = async () => {
    for (let i = 0; i < PAIRS / (2 * ACCOUNTS); i++)
      await Promise.all(viewers.flatMap((v) => [startStop(v), startStop(v)]))
  }
  const cpuMs = async (run: () => Promise<unknown>) => {
    const before = process.cpuUsage()
    await run()
    const used = process.cpuUsage(before)
    return (used.user + used.system) / 1000
  }
  // The main thread's CPU (ns, from the scheduler's own account: /proc/<pid>/task/<pid>/schedstat).
  const mainThreadNs = () =>
    Number(fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'utf8').split(' ')[0])

  // Play starts from an audience, 20 at a time, each from the next account in turn.
  const audience: { token: string; profileId: string }[] = []
  for (let i = 0; i < AUDIENCE; i += 20)
    audience.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(20, AUDIENCE - i) }, async (_, j) => {
          const body = await call('POST', '/api/v1/accounts', undefined, {
            email: `cpu.audience.${Date.now()}.${i + j}@example.com`,
            password: 'correct horse battery',
            plan: 'premium',
          })
          const token = (body.tokens as { accessToken: string }).accessToken
          const profiles = (await call('GET', '/api/v1/profiles', token)).profiles as { id: string }[]
          return { token, profileId: profiles[0]?.id ?? '' }
        }),
      )),
    )
  let next = 0
  const nextViewer = () => {
    const viewer = audience[next++ % audience.length]
    if (!viewer) throw new Error('CPU_AUDIENCE must be at least 1')
    return viewer
  }
  const starts = async (n: number) => {
    for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: 20 }, () => play(nextViewer())))
  }
  await starts(STARTS) // warm-up: every account has played (first plays cost more: see reco)
  await quiet()
  const mainBefore = mainThreadNs()
  const profiling = await profileTo(process.env.CPU_PROFILE)
  const startMs = (await cpuMs(() => starts(STARTS))) / STARTS
  const startMainMs = (mainThreadNs() - mainBefore) / 1e6 / STARTS
  await profiling.stop()
  await quiet()

  await pairs() // warm-up
  await quiet()
  counting = true
  const pairMs = (await cpuMs(pairs)) / PAIRS
  counting = false
  await quiet()
  const live = await Promise.all(viewers.map(async (v) => ({ token: v.token, id: await play(v) })))
  const beats = (from: number) => async () => {
    for (let i = 0; i < PAIRS / ACCOUNTS; i++)
      await Promise.all(
        live.map((s) =>
          call('POST', `/api/v1/playback/${s.id}/heartbeat`, s.token, {
            positionMs: from + i,
            state: 'playing',
          }),
        ),
      )
  }
  await beats(0)()
  const beatMs = (await cpuMs(beats(1000))) / PAIRS
  const health = async () => {
    for (let i = 0; i < PAIRS / ACCOUNTS; i++) await Promise.all(live.map(() => call('GET', '/healthz')))
  }
  await health()
  await quiet()
  const healthMainBefore = mainThreadNs()
  const healthMs = (await cpuMs(health)) / PAIRS
  const healthMainMs = (mainThreadNs() - healthMainBefore) / 1e6 / PAIRS

  console.log(`playback CPU in one process (${roles ? roles.join(',') : 'all-in-one'}; inject, no sockets):`)
  console.log(
    `  start            ${startMs.toFixed(3)} ms  (${(startMs / healthMs).toFixed(1)} × /healthz; main thread ${startMainMs.toFixed(3)} ms; ${AUDIENCE} accounts in turn)`,
  )
  console.log(`  start+stop pair  ${pairMs.toFixed(3)} ms  (${(pairMs / healthMs).toFixed(1)} × /healthz)`)
  console.log(`  heartbeat        ${beatMs.toFixed(3)} ms  (${(beatMs / healthMs).toFixed(1)} × /healthz)`)
  console.log(`  GET /healthz     ${healthMs.toFixed(3)} ms  (main thread ${healthMainMs.toFixed(3)} ms)`)
  console.log(`  main-thread time of /healthz over a start's: ${(healthMainMs / startMainMs).toFixed(2)}`)
  console.log('  SQL statements per start+stop pair:')
  for (const [sql, n] of [...statements].sort((a, b) => b[1] - a[1]).slice(0, 15))
    if (n / PAIRS >= 0.01) console.log(`    ${(n / PAIRS).toFixed(2)}  ${sql}`)
} finally {
  await reel.stop()
  fs.rmSync(dataDir, { recursive: true, force: true })
}
