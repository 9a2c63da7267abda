// Playback under load, against GET /healthz of the same server in the same run:
//  - play start: POST /api/v1/playback from an audience of BENCH_AUDIENCE accounts (default 2000),
//    each request from the next account in turn, as many people pressing play: throughput, then
//    p99 at half that rate, in BENCH_ROUNDS rounds (default 3) each with its own /healthz run (the
//    median ratio; the p99 of all rounds' paced starts together). Sessions end as a closed app's
//    do, by going silent (the server runs with a stream timeout of 1 s, so an account's 4 screens
//    free up within a second); a start the plan refuses is counted apart and never as throughput;
//  - start+stop pairs, for comparison: BENCH_ACCOUNTS accounts (default 10) × 2 screens, each
//    stopping its session before the next start (a pair is two requests and a flush);
//  - heartbeats: POST /api/v1/playback/:id/heartbeat over live sessions, and the same heartbeats as
//    frames on one WebSocket per session (…/ws, the cheap path players keep open) (target ≥ 10,000/s).
// Each measurement begins once the server has gone quiet after the last (see settle).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import autocannon from 'autocannon'
import { WebSocket } from 'ws'
import { median, pacedLoad, percentiles, ratio, SERVER_FLAGS, untilIdle, verdict, withCpu } from '../lib.js'

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8)
/** Rounds of /healthz, starts and half-rate starts (see below). */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
if (!Number.isSafeInteger(ROUNDS) || ROUNDS < 1) throw new Error('BENCH_ROUNDS must be a whole number ≥ 1')
const ACCOUNTS = Number(process.env.BENCH_ACCOUNTS ?? 10)
/** Accounts pressing play in the start runs: enough that none has its 4 screens busy (1 s each). */
const AUDIENCE = Number(process.env.BENCH_AUDIENCE ?? 2000)
/** Connections per account in the start/stop runs (each one a screen). */
const SCREENS_USED = 2
/** A session cut off by the end of a run (started, never stopped) stops counting after this. */
const STREAM_TIMEOUT_MS = 1000
type Context = { viewer?: { token: string; profileId: string }; sessionId?: string }
/** The longest wait, after a phase, for the server to go quiet (see settle). */
let longestQuietWaitMs = 0
const SCREENS = 4 // premium
/** Heartbeat frames outstanding on each WebSocket. */
const WS_IN_FLIGHT = 4

// BENCH_PROFILE=<dir>: the server writes a V8 CPU profile there (open it in Chrome DevTools).
const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []
const child = spawn(
  process.execPath,
  [...SERVER_FLAGS, ...profile, '--import', 'tsx', 'bench/playback/server.ts'],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      REEL_LOG_LEVEL: 'warn',
      REEL_PLAYBACK_STREAM_TIMEOUT_MS: String(STREAM_TIMEOUT_MS),
    },
  },
)
/**
 * Between phases: a stream slot frees up after STREAM_TIMEOUT_MS, and the server's work left from
 * the last phase (its event consumers catching up on a burst of starts, write-behind flushes) ends
 * before the next measurement begins, which would otherwise pay for it.
 */
const settle = async () => {
  const started = performance.now()
  await new Promise((r) => setTimeout(r, STREAM_TIMEOUT_MS + 500))
  await untilIdle(child.pid ?? 0)
  longestQuietWaitMs = Math.max(longestQuietWaitMs, performance.now() - started)
}
/** The server's `{"window":…}` lines (see server.ts), as they come. */
const windows: ServerWindow[] = []
let windowArrived: () => void = () => {}
const ready = await new Promise<{ url: string; titleId: string }>((resolve, reject) => {
  let out = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    out += String(chunk)
    const lines = out.split('\n')
    out = lines.pop() ?? ''
    for (const line of lines) {
      if (line.startsWith('{"url"')) resolve(JSON.parse(line) as { url: string; titleId: string })
      else if (line.startsWith('{"window"')) {
        windows.push((JSON.parse(line) as { window: ServerWindow }).window)
        windowArrived()
      }
    }
  })
  child.once('exit', (code) => reject(new Error(`bench server exited (${code})`)))
})
const { url, titleId } = ready

type Viewer = { token: string; profileId: string }
interface ServerWindow {
  stallP99Ms: number
  stallMaxMs: number
  minorGcs: number
  minorGcMaxMs: number
  majorGcs: number
  majorGcMaxMs: number
}

/** Runs `run` inside a window of the server's (SIGUSR2 before and after): what its event loop and GC did meanwhile. */
async function withServerWindow<T>(run: () => Promise<T>): Promise<T & { server: ServerWindow }> {
  child.kill('SIGUSR2')
  const result = await run()
  const arrived = new Promise<void>((resolve) => {
    windowArrived = resolve
  })
  child.kill('SIGUSR2')
  // The server dying instead of answering must end the bench, not hang it.
  const exited = once(child, 'exit').then(() => {
    throw new Error('bench server exited during a measurement')
  })
  await Promise.race([arrived, exited])
  exited.catch(() => {})
  const server = windows.shift() as ServerWindow
  return Object.assign(result as T & object, { server }) as T & { server: ServerWindow }
}
/** A premium account with its first profile (a sign-up hashes a password: ~50 ms; 8 at a time). */
async function signUp(i: number): Promise<Viewer> {
  const res = await fetch(`${url}/api/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      email: `bench.${Date.now()}.${i}@example.com`,
      password: 'correct horse battery',
      plan: 'premium',
    }),
  })
  if (res.status !== 201) throw new Error(`sign-up failed: ${await res.text()}`)
  const token = ((await res.json()) as { tokens: { accessToken: string } }).tokens.accessToken
  const profiles = (await (
    await fetch(`${url}/api/v1/profiles`, { headers: { authorization: `Bearer ${token}` } })
  ).json()) as {
    profiles: { id: string }[]
  }
  return { token, profileId: profiles.profiles[0]?.id ?? '' }
}

try {
  const viewers: Viewer[] = []
  for (let i = 0; i < ACCOUNTS; i++) viewers.push(await signUp(i))
  const audience: Viewer[] = []
  for (let i = 0; i < AUDIENCE; i += 8)
    audience.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(8, AUDIENCE - i) }, (_, k) => signUp(ACCOUNTS + i + k)),
      )),
    )

  /** Starts answered otherwise than 201 in the start runs, by status. */
  const refused = new Map<number, number>()
  let next = 0
  // Each start from the next account of the audience: people pressing play, nobody twice in a row.
  const nextStart = () => {
    const viewer = audience[next++ % audience.length] as Viewer
    return {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${viewer.token}` },
      body: JSON.stringify({ profileId: viewer.profileId, titleId }),
    }
  }
  const countRefused = (status: number) => {
    if (status !== 201) refused.set(status, (refused.get(status) ?? 0) + 1)
  }
  const startsOnly = (overallRate?: number) =>
    withCpu(child.pid ?? 0, () =>
      autocannon({
        url,
        connections: ACCOUNTS * SCREENS_USED,
        duration: DURATION_S,
        ...(overallRate ? { overallRate } : {}),
        requests: [
          {
            method: 'POST',
            path: '/api/v1/playback',
            setupRequest: (req) => ({ ...req, ...nextStart() }),
            onResponse: countRefused,
          },
        ],
      }),
    )

  const connections = ACCOUNTS * SCREENS_USED
  /** Starts answered otherwise than 201, by status (and the stop that follows each fails too). */
  const refusals = new Map<number, number>()
  let connection = 0
  // Each connection is one screen of one account: start, then stop, again and again.
  const startStop = (overallRate?: number) =>
    autocannon({
      url,
      connections,
      duration: DURATION_S,
      ...(overallRate ? { overallRate } : {}),
      requests: [
        {
          method: 'POST',
          path: '/api/v1/playback',
          setupRequest: (req, ctx) => {
            const context = ctx as Context
            context.viewer ??= viewers[connection++ % ACCOUNTS]
            const viewer = context.viewer as { token: string; profileId: string }
            return {
              ...req,
              headers: { 'content-type': 'application/json', authorization: `Bearer ${viewer.token}` },
              body: JSON.stringify({ profileId: viewer.profileId, titleId }),
            }
          },
          onResponse: (status, body, context) => {
            if (status !== 201) refusals.set(status, (refusals.get(status) ?? 0) + 1)
            ;(context as Context).sessionId = (JSON.parse(body) as { sessionId?: string }).sessionId
          },
        },
        {
          method: 'DELETE',
          setupRequest: (req, ctx) => {
            const context = ctx as Context
            return {
              ...req,
              path: `/api/v1/playback/${String(context.sessionId)}`,
              headers: { authorization: `Bearer ${context.viewer?.token ?? ''}` },
            }
          },
        },
      ],
    })

  const health = () =>
    withCpu(child.pid ?? 0, () => autocannon({ url: `${url}/healthz`, connections, duration: DURATION_S }))
  await startStop() // warm caches and JIT
  await settle()
  await startsOnly()
  await settle()
  refused.clear()
  // ROUNDS rounds of /healthz, starts, and starts at half that rate, one after the other: the VM's
  // speed drifts within minutes, so each ratio compares runs seconds apart, and the figures are the
  // median ratio and the p99 of all the rounds' paced starts together.
  const rounds = []
  for (let round = 0; round < ROUNDS; round++) {
    const healthz = await health()
    await settle()
    const starts = await startsOnly()
    const startRate = (starts.requests.total - starts.non2xx) / DURATION_S
    await settle()
    // Evenly paced (autocannon's rate limit would send each second's starts at once).
    const half = await withServerWindow(() =>
      pacedLoad(
        url,
        startRate / 2,
        DURATION_S,
        () => ({ method: 'POST', path: '/api/v1/playback', ...nextStart() }),
        countRefused,
      ),
    )
    await settle()
    rounds.push({ healthz, starts, startRate, ratio: ratio(startRate, healthz.requests.average), half })
  }
  const healthzRate = median(rounds.map((r) => r.healthz.requests.average))
  const startRatio = median(rounds.map((r) => r.ratio))
  const paced = percentiles(rounds.flatMap((r) => [...r.half.latencies]))
  if (refused.size > 0)
    console.log(`  (starts refused, by status, not counted: ${JSON.stringify(Object.fromEntries(refused))})`)
  const pairs = await startStop()
  if (pairs.non2xx > 0)
    console.log(
      `  (${pairs.non2xx} start/stop requests answered non-2xx; starts by status: ${JSON.stringify(Object.fromEntries(refusals))})`,
    )

  // Heartbeats over live sessions: every screen of every account playing.
  await settle()
  const sessions: { token: string; sessionId: string }[] = []
  for (const v of viewers)
    for (let s = 0; s < SCREENS; s++) {
      const res = await fetch(`${url}/api/v1/playback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${v.token}` },
        body: JSON.stringify({ profileId: v.profileId, titleId }),
      })
      if (res.status !== 201) throw new Error(`start failed: ${await res.text()}`)
      sessions.push({ token: v.token, sessionId: ((await res.json()) as { sessionId: string }).sessionId })
    }
  // Built once, so that the load generator spends its core on sending, as for /healthz (making each
  // request in setupRequest cost it ~65 % of a core against ~40 %): every session in turn, each
  // time at another position.
  const beats = Array.from({ length: sessions.length * 8 }, (_, k) => {
    const s = sessions[k % sessions.length] as { token: string; sessionId: string }
    return {
      method: 'POST' as const,
      path: `/api/v1/playback/${s.sessionId}/heartbeat`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${s.token}` },
      body: JSON.stringify({
        positionMs: (k * 37) % 3000,
        state: 'playing',
        bitrate: 365000,
        bufferMs: 12000,
      }),
    }
  })
  const heartbeats = await withCpu(child.pid ?? 0, () =>
    autocannon({ url, connections: 50, duration: DURATION_S, requests: beats }),
  )
  if (heartbeats.non2xx > 0) throw new Error(`${heartbeats.non2xx} heartbeats failed`)
  const overWs = await withCpu(child.pid ?? 0, () => websocketHeartbeats(url, sessions))

  const pairRate = pairs.requests.average / 2
  console.log(
    `playback: ${DURATION_S} s per measurement, ${connections} connections (starts: ${AUDIENCE} accounts in turn; pairs: ${ACCOUNTS} accounts × ${SCREENS_USED} screens; heartbeats: ${sessions.length} sessions)`,
  )
  console.log(
    `  (between phases the bench waits for the server to go quiet, below 10 % of a core: the longest wait was ${(longestQuietWaitMs / 1000).toFixed(1)} s, of which ${((STREAM_TIMEOUT_MS + 500) / 1000).toFixed(1)} s fixed)`,
  )
  rounds.forEach((r, i) => {
    const w = r.half.server
    console.log(
      `  round ${i + 1}: GET /healthz ${r.healthz.requests.average.toFixed(0)}/s p99 ${r.healthz.latency.p99} ms (${r.healthz.cpu}); POST /api/v1/playback ${r.startRate.toFixed(0)}/s p99 ${r.starts.latency.p99} ms (${r.starts.non2xx} refused; ${r.starts.cpu}): ${r.ratio.toFixed(2)} of /healthz`,
    )
    console.log(
      `    at half that rate (${(r.half.sent / DURATION_S).toFixed(0)} starts/s evenly paced, latency from when each was due): p50 ${r.half.p50.toFixed(1)} ms  p99 ${r.half.p99.toFixed(1)} ms  max ${r.half.max.toFixed(1)} ms`,
    )
    console.log(
      `    meanwhile the server's event-loop stalls p99 ${w.stallP99Ms} ms, max ${w.stallMaxMs} ms; ${w.minorGcs} young collections (longest ${w.minorGcMaxMs} ms), ${w.majorGcs} full (longest ${w.majorGcMaxMs} ms); the client's own delay in sending (part of the latency) p99 ${r.half.lateP99.toFixed(1)} ms, max ${r.half.lateMax.toFixed(1)} ms`,
    )
  })
  console.log(
    `  start = ${startRatio.toFixed(2)} of /healthz (the median of ${ROUNDS} rounds' ratios; target ≥ 0.30: ${verdict(startRatio, 0.3)})`,
  )
  if (rounds.some((r) => r.starts.non2xx > r.starts.requests.total / 100))
    console.log(
      `  (more than 1% of starts refused: the audience is too small for this rate and the figure means little; raise BENCH_AUDIENCE)`,
    )
  console.log(
    `  at half the start rate: p99 ${paced(0.99).toFixed(1)} ms over the ${rounds.reduce((n, r) => n + r.half.answered, 0)} paced starts of all rounds, max ${paced(1).toFixed(1)} ms (target p99 < 20 ms: ${verdict(paced(0.99), 20, 'lower')})`,
  )
  console.log(
    `  start+stop pairs                     ${pairRate.toFixed(0).padStart(7)} /s  p99 ${pairs.latency.p99} ms  (${ratio(pairRate, healthzRate).toFixed(2)} of /healthz's median; a pair is a start, a stop and its flush)`,
  )
  console.log(
    `  POST …/heartbeat                     ${heartbeats.requests.average.toFixed(0).padStart(7)} /s  p99 ${heartbeats.latency.p99} ms  (target ≥ 10,000/s: ${verdict(heartbeats.requests.average, 10_000)}; ${heartbeats.cpu})`,
  )
  console.log(
    `  heartbeats over WebSocket (…/ws)     ${overWs.rate.toFixed(0).padStart(7)} /s  p99 ${overWs.p99.toFixed(1)} ms  (${overWs.sockets} sockets, ${WS_IN_FLIGHT} in flight each; target ≥ 10,000/s: ${verdict(overWs.rate, 10_000)}; ${overWs.cpu})`,
  )
} finally {
  child.kill('SIGTERM')
  await once(child, 'exit')
}

/**
 * Heartbeats over one WebSocket per live session, WS_IN_FLIGHT frames outstanding on each (a frame
 * is answered in order), for DURATION_S: answers per second and the p99 from send to answer.
 */
async function websocketHeartbeats(
  base: string,
  live: { token: string; sessionId: string }[],
): Promise<{ rate: number; p99: number; sockets: number }> {
  const latencies: number[] = []
  let answered = 0
  let failed = 0
  let running = true
  const sockets = await Promise.all(
    live.map(async (s) => {
      const socket = new WebSocket(
        `${base.replace(/^http/, 'ws')}/api/v1/playback/${s.sessionId}/ws?access_token=${s.token}`,
      )
      await once(socket, 'open')
      const sentAt: number[] = []
      let position = 0
      const send = () => {
        position = (position + 37) % 3000
        sentAt.push(performance.now())
        socket.send(
          JSON.stringify({ positionMs: position, state: 'playing', bitrate: 365000, bufferMs: 12000 }),
        )
      }
      socket.on('message', (data: Buffer) => {
        const started = sentAt.shift() ?? performance.now()
        if (!running) return
        latencies.push(performance.now() - started)
        if (String(data).includes('"error"')) failed++
        else answered++
        send()
      })
      return { socket, send }
    }),
  )
  const began = performance.now()
  for (const s of sockets) for (let i = 0; i < WS_IN_FLIGHT; i++) s.send()
  await new Promise((r) => setTimeout(r, DURATION_S * 1000))
  running = false
  const elapsed = (performance.now() - began) / 1000
  for (const s of sockets) s.socket.close()
  if (failed > 0) throw new Error(`${failed} WebSocket heartbeats failed`)
  latencies.sort((a, b) => a - b)
  return {
    rate: answered / elapsed,
    p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
    sockets: sockets.length,
  }
}
