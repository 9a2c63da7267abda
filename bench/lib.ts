import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { transferable, workerScript } from '../src/services/reco/model/worker.js'

/** Starts bench/server.ts in a child process and resolves with its URL. */
export function startServer(
  mode: 'bare' | 'platform',
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess }> {
  return startScript('bench/server.ts', [mode], env)
}

/**
 * The V8 flags reel's servers start with (`npm run bench` passes package.json's, as `npm start`
 * does): benches hand them to the servers they start in child processes.
 */
export const SERVER_FLAGS = process.execArgv.filter((a) => a.startsWith('--max-semi-space-size'))

/** Runs a TypeScript server script that prints its URL once listening; resolves with that URL. */
export function startScript(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...SERVER_FLAGS, '--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, REEL_LOG_LEVEL: 'warn', ...env },
  })
  let out = ''
  let listening = false
  return new Promise((resolve, reject) => {
    // Keep reading stdout after the URL: a full pipe would stall the server's log writes.
    child.stdout?.on('data', (chunk: Buffer) => {
      if (listening) return
      out += String(chunk)
      const url = /(http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(out)?.[1]
      if (url) {
        listening = true
        resolve({ url, child })
      }
    })
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before listening`)))
  })
}

/** CPU seconds a process has used so far (Linux: /proc/<pid>/stat, user + system; 100 ticks a second). */
function cpuSecondsOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/**
 * Waits until a process has gone quiet: below `idleShare` of a core over `windowMs` (its event
 * consumers caught up, its flushes done), so that the next measurement does not pay for the last
 * one's leftovers. Gives up after `maxMs`. Resolves with the milliseconds it waited.
 */
export async function untilIdle(
  pid: number,
  { idleShare = 0.1, windowMs = 500, maxMs = 60_000 } = {},
): Promise<number> {
  const started = performance.now()
  for (;;) {
    const before = cpuSecondsOf(pid)
    const from = performance.now()
    await new Promise((resolve) => setTimeout(resolve, windowMs))
    const share = (cpuSecondsOf(pid) - before) / ((performance.now() - from) / 1000)
    const waited = performance.now() - started
    if (share < idleShare || waited >= maxMs) return waited
  }
}

/**
 * Runs a measurement and says how busy the server process and this load-generating process were
 * meanwhile, as shares of one core: on a 2-core machine a single-threaded client at ~100 % is the
 * limit, not the server.
 */
export async function withCpu<T extends object>(
  serverPid: number,
  run: () => Promise<T>,
): Promise<T & { cpu: string }> {
  const started = performance.now()
  const server = cpuSecondsOf(serverPid)
  const client = process.cpuUsage()
  const result = await run()
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(client)
  const share = (cpuS: number) => `${Math.round((100 * cpuS) / seconds)} %`
  return Object.assign(result, {
    cpu: `server ${share(cpuSecondsOf(serverPid) - server)}, client ${share((used.user + used.system) / 1e6)} of a core`,
  })
}

/**
 * Event-loop stalls, from perf_hooks' monitorEventLoopDelay: it records the time between two ticks
 * of its timer, the timer's own interval included (an idle loop shows about `resolutionMs`), so
 * that interval is taken off here: the figures are how much later than due the loop came back.
 */
export function loopStalls(resolutionMs = 10) {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs })
  const stall = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs)
  return {
    enable: () => histogram.enable(),
    disable: () => histogram.disable(),
    reset: () => histogram.reset(),
    p99Ms: () => stall(histogram.percentile(99)),
    maxMs: () => stall(histogram.max),
  }
}

export const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b)

export function verdict(value: number, target: number, better: 'higher' | 'lower' = 'higher'): string {
  const met = better === 'higher' ? value >= target : value <= target
  return met ? 'met' : 'NOT met'
}

export interface PacedRequest {
  method: string
  path: string
  headers?: Record<string, string>
  body?: string
}

export interface PacedResult {
  sent: number
  answered: number
  /** Latency from when each request was due to its answer, ms. */
  p50: number
  p99: number
  max: number
  /**
   * How late the client itself wrote requests (ms after due), p99 and max: it shares the machine
   * with the server, and this part of the latency is its own.
   */
  lateP99: number
  lateMax: number
  /** Every request's latency, ms, sorted (to pool runs: see percentiles()). */
  latencies: Float64Array
}

/**
 * Open-loop load at an even pace: request i is due at start + i / rate, sent then whether or not
 * earlier ones were answered, and its latency is counted from when it was due, so a stall delays
 * every request due during it (no coordinated omission). autocannon's rate limit sends each
 * second's quota at once at the start of the second, so its latencies at a rate are those of
 * bursts at full load.
 *
 * Like a client's connection pool, it keeps `sockets` keep-alive connections (opened before the
 * clock starts): a request due while all are busy waits for one, and that wait counts. It writes
 * each request as one buffer and reads only status lines and Content-Length (see leanLoad): Node's
 * http client took about twice the CPU here (17-20 % vs 8-11 % of a core at 2,500 GET/s), on a
 * machine whose 2 cores the server shares with it.
 *
 * Every request is built before the clock starts, into one buffer, and the load runs in a worker
 * thread (bench/paced-worker.ts) with a heap of its own: built as they fell due, in the bench's
 * heap, the client's own garbage collections paused it for up to 10 ms during a run, and those
 * pauses counted as latency.
 */
export async function pacedLoad(
  baseUrl: string,
  rate: number,
  durationS: number,
  next: () => PacedRequest,
  onStatus: (status: number) => void = () => {},
  sockets = 32,
): Promise<PacedResult> {
  const url = new URL(baseUrl)
  const total = Math.floor(rate * durationS)
  const built = Array.from({ length: total }, () => {
    const r = next()
    const body = r.body ?? ''
    const headers = Object.entries(r.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')
    return Buffer.from(
      `${r.method} ${r.path} HTTP/1.1\r\nhost: ${url.host}\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    )
  })
  const bounds = new Float64Array(total + 1)
  built.forEach((b, i) => {
    bounds[i + 1] = (bounds[i] ?? 0) + b.length
  })
  const job: PacedJob = {
    host: url.hostname,
    port: Number(url.port),
    rate,
    total,
    sockets,
    requests: new Uint8Array(Buffer.concat(built)),
    bounds,
  }
  const { script, eval: isCode } = workerScript(import.meta.url, 'paced-worker')
  const worker = new Worker(script, {
    eval: isCode,
    workerData: job,
    transferList: transferable([job.requests, bounds]),
  })
  const ran = await firstMessage<PacedRun | { error: string }>(worker)
  await worker.terminate()
  if ('error' in ran) throw new Error(ran.error)
  for (const [status, count] of ran.statuses) for (let i = 0; i < count; i++) onStatus(status)
  const at = percentiles(ran.latencies)
  const late = percentiles(ran.lateness)
  return {
    sent: ran.sent,
    answered: ran.latencies.length,
    p50: at(0.5),
    p99: at(0.99),
    max: at(1),
    lateP99: late(0.99),
    lateMax: late(1),
    latencies: ran.latencies,
  }
}

/** What pacedLoad hands its worker: `total` requests, request i at bytes bounds[i]…bounds[i + 1]. */
export interface PacedJob {
  host: string
  port: number
  rate: number
  total: number
  sockets: number
  requests: Uint8Array
  bounds: Float64Array
}

/** What the worker sends back: each request's latency and the client's delay in reaching it, ms. */
export interface PacedRun {
  sent: number
  latencies: Float64Array
  lateness: Float64Array
  statuses: [number, number][]
}

/**
 * A worker's first message; rejects on its error, and when it exits without sending one (killed,
 * process.exit), so a run never waits for a worker that is gone.
 */
export function firstMessage<T>(worker: Worker): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
    worker.once('exit', (code) =>
      reject(new Error(`the worker exited (${code}) without sending its figures`)),
    )
  })
}

/** The paced load itself (see pacedLoad), run in its worker. */
export async function runPaced(job: PacedJob): Promise<PacedRun> {
  const { rate, total } = job
  const requests = Buffer.from(job.requests.buffer, job.requests.byteOffset, job.requests.byteLength)
  const latencies = new Float64Array(total)
  /** How long after its due time the client's timer came to each request (its own delay). */
  const lateness = new Float64Array(total)
  const statuses = new Map<number, number>()
  let sent = 0
  let written = 0
  let answered = 0
  let failed: Error | undefined
  let settle: () => void = () => {}
  const finished = new Promise<void>((resolve) => {
    settle = resolve
  })
  const done = () => {
    if ((sent === total && answered === total) || failed) settle()
  }
  /** Due times of requests waiting for a free connection, oldest first. */
  const waiting: number[] = []
  const idle: Connection[] = []
  const all: Connection[] = []
  let ending = false
  interface Connection {
    socket: net.Socket
    due: number
  }
  const send = (c: Connection, due: number) => {
    const i = written++
    c.due = due
    c.socket.write(requests.subarray(job.bounds[i], job.bounds[i + 1]))
  }
  const open = () =>
    new Promise<Connection>((resolve, reject) => {
      const socket = net.connect(job.port, job.host)
      socket.setNoDelay(true)
      const c: Connection = { socket, due: 0 }
      readResponses(
        socket,
        (status) => {
          latencies[answered++] = performance.now() - c.due
          statuses.set(status, (statuses.get(status) ?? 0) + 1)
          const due = waiting.shift()
          if (due === undefined) idle.push(c)
          else send(c, due)
          done()
        },
        (e) => {
          failed ??= e
          done()
        },
      )
      socket.once('error', (e) => {
        failed ??= e
        done()
      })
      // A request on a connection the server closed would never be answered: fail, never hang.
      socket.once('close', () => {
        if (ending) return
        failed ??= new Error('the server closed a connection during the run')
        done()
      })
      socket.once('connect', () => resolve(c))
      socket.once('error', reject)
      all.push(c)
    })
  idle.push(...(await Promise.all(Array.from({ length: job.sockets }, open))))
  if (total > 0) {
    const start = performance.now()
    const timer = setInterval(() => {
      const now = performance.now()
      while (sent < total && start + (sent * 1000) / rate <= now) {
        const due = start + (sent * 1000) / rate
        lateness[sent++] = now - due
        const c = idle.pop()
        if (c) send(c, due)
        else waiting.push(due)
      }
      if (sent === total) clearInterval(timer)
    }, 1)
    await finished
    clearInterval(timer)
  }
  ending = true
  for (const c of all) c.socket.destroy()
  if (failed) throw failed
  return { sent, latencies, lateness, statuses: [...statuses] }
}

/** The middle value (the mean of the two middle ones for an even count); 0 for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

/** Sorts `values` in place; returns the value at a fraction (0-1) of them. */
export function percentiles(values: number[] | Float64Array): (fraction: number) => number {
  if (values instanceof Float64Array) values.sort()
  else values.sort((a, b) => a - b)
  return (p) => values[Math.min(values.length - 1, Math.floor(p * values.length))] ?? 0
}

/**
 * Reads HTTP/1.1 responses on a socket, one at a time (nothing pipelined): calls `complete(status)`
 * as each ends. It reads the status line and Content-Length and skips the body; a response without
 * Content-Length, or bytes after a complete one, destroy the socket and go to `fail`.
 */
function readResponses(
  socket: net.Socket,
  complete: (status: number) => void,
  fail: (e: Error) => void,
): void {
  const read = responses(complete)
  socket.on('data', (chunk: Buffer) => {
    try {
      read(chunk)
    } catch (e) {
      socket.destroy()
      fail(e as Error)
    }
  })
}

/** The `data` listener of readResponses (throws on what it cannot read). */
function responses(complete: (status: number) => void): (chunk: Buffer) => void {
  let head: Buffer = Buffer.alloc(0)
  let bodyLeft = -1
  let status = 0
  return (chunk) => {
    let data: Buffer = chunk
    while (data.length > 0) {
      if (bodyLeft < 0) {
        head = head.length === 0 ? data : Buffer.concat([head, data])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        const text = head.subarray(0, end).toString('latin1')
        status = Number(text.slice(9, 12))
        const length = /\r\ncontent-length: *(\d+)/i.exec(text)?.[1]
        if (length === undefined)
          throw new Error(`a response without Content-Length: ${text.split('\r\n')[0]}`)
        bodyLeft = Number(length)
        data = head.subarray(end + 4)
        head = Buffer.alloc(0)
      }
      const take = Math.min(bodyLeft, data.length)
      bodyLeft -= take
      data = data.subarray(take)
      if (bodyLeft === 0) {
        bodyLeft = -1
        if (data.length > 0) throw new Error('bytes after a complete response (nothing was pipelined)')
        complete(status)
      }
    }
  }
}

export interface LeanRequest {
  method?: string
  path: string
  headers?: Record<string, string>
}

export interface LeanResult {
  requests: { average: number; total: number }
  latency: { p99: number }
  non2xx: number
}

/**
 * Closed-loop load over keep-alive connections, each sending the next of `requests` (prebuilt
 * once, in turn) as soon as its last answer is complete. It reads a response's status line and
 * Content-Length and skips the body: autocannon appends every body to a string, and decoding a
 * gzip body's binary bytes as UTF-8 made it, not the server, the limit on compressed pages.
 * Responses must carry a Content-Length (every reel JSON answer does); anything else throws.
 */
export async function leanLoad(
  baseUrl: string,
  requests: readonly LeanRequest[],
  connections: number,
  durationS: number,
): Promise<LeanResult> {
  const url = new URL(baseUrl)
  const built = requests.map((r) =>
    Buffer.from(
      `${r.method ?? 'GET'} ${r.path} HTTP/1.1\r\nhost: ${url.host}\r\n${Object.entries(r.headers ?? {})
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`,
    ),
  )
  const latencies: number[] = []
  let non2xx = 0
  const ends = performance.now() + durationS * 1000
  const connection = (offset: number) =>
    new Promise<void>((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname)
      socket.setNoDelay(true)
      let next = offset
      let sentAt = 0
      const send = () => {
        if (performance.now() >= ends) {
          socket.end()
          resolve()
          return
        }
        sentAt = performance.now()
        socket.write(built[next++ % built.length] as Buffer)
      }
      readResponses(
        socket,
        (status) => {
          if (status < 200 || status > 299) non2xx++
          latencies.push(performance.now() - sentAt)
          send()
        },
        reject,
      )
      socket.once('error', reject)
      socket.once('connect', send)
    })
  const started = performance.now()
  // Each connection starts at its own place in the list (connections do not move in step).
  await Promise.all(
    Array.from({ length: connections }, (_, i) => connection(Math.floor((i * built.length) / connections))),
  )
  const seconds = (performance.now() - started) / 1000
  const p99 = percentiles(latencies)(0.99)
  return {
    requests: { average: latencies.length / seconds, total: latencies.length },
    latency: { p99: Math.round(p99 * 10) / 10 },
    non2xx,
  }
}
