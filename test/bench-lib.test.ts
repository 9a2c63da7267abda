import { type ChildProcess, spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'
import { firstMessage, loopStalls, median, pacedLoad, untilIdle } from '../bench/lib.js'

// The benches' own instruments: a figure they get wrong is a target wrongly met or missed.

const servers: http.Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))))
})

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

describe('pacedLoad', () => {
  it('sends every request it was given, in order, and reports each answer', async () => {
    const seen: string[] = []
    const url = await serve((req, res) => {
      let body = ''
      req.on('data', (chunk) => {
        body += chunk
      })
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers['x-n']} ${body}`)
        res.writeHead(seen.length % 10 === 0 ? 409 : 201, {
          'content-type': 'text/plain',
          'content-length': 2,
        })
        res.end('ok')
      })
    })
    let n = 0
    const statuses: number[] = []
    const result = await pacedLoad(
      url,
      200,
      0.5,
      () => {
        n++
        return { method: 'POST', path: `/r/${n}`, headers: { 'x-n': String(n) }, body: `{"n":${n}}` }
      },
      (status) => statuses.push(status),
      // One connection: over several, two requests sent together may reach the server in either
      // order (a loaded CI machine did so), and this test is about the order they are sent in.
      1,
    )
    expect(result.sent).toBe(100)
    expect(result.answered).toBe(100)
    expect(result.latencies).toHaveLength(100)
    expect(seen).toHaveLength(100)
    expect(seen[0]).toBe('POST /r/1 1 {"n":1}')
    expect(seen[99]).toBe('POST /r/100 100 {"n":100}')
    expect(statuses.filter((s) => s === 409)).toHaveLength(10)
    expect(statuses.filter((s) => s === 201)).toHaveLength(90)
    expect(result.p50).toBeGreaterThan(0)
    expect(result.max).toBeGreaterThanOrEqual(result.p99)
  })

  it('counts from when a request was due, so a server stall delays the requests due during it', async () => {
    // One connection, and the server holds the first answer 300 ms: the requests due meanwhile
    // wait for the connection, and that wait is theirs (no coordinated omission).
    let first = true
    const url = await serve((req, res) => {
      req.resume()
      req.on('end', () => {
        const hold = first ? 300 : 0
        first = false
        setTimeout(() => res.end('ok'), hold)
      })
    })
    const result = await pacedLoad(url, 100, 0.5, () => ({ method: 'GET', path: '/' }), undefined, 1)
    expect(result.answered).toBe(50)
    expect(result.max).toBeGreaterThanOrEqual(300)
    // Requests 2-30 fell due during the stall: each waited for it to end.
    expect(result.p50).toBeGreaterThan(20)
  })

  it('fails, rather than hangs, when the server closes a connection during the run', async () => {
    let answered = 0
    const url = await serve((req, res) => {
      req.resume()
      if (++answered === 5) req.socket.destroy()
      else res.end('ok')
    })
    await expect(
      pacedLoad(url, 100, 0.5, () => ({ method: 'GET', path: '/' }), undefined, 2),
    ).rejects.toThrow(/closed a connection/)
  })
})

describe('firstMessage (how pacedLoad waits for its worker)', () => {
  it("resolves with the worker's first message", async () => {
    const worker = new Worker("require('node:worker_threads').parentPort.postMessage({ n: 7 })", {
      eval: true,
    })
    await expect(firstMessage(worker)).resolves.toEqual({ n: 7 })
    await worker.terminate()
  })

  it('fails, rather than hangs, when the worker exits without sending anything', async () => {
    const worker = new Worker('process.exit(3)', { eval: true })
    await expect(firstMessage(worker)).rejects.toThrow(/exited \(3\) without sending/)
  })

  it('fails when the worker throws', async () => {
    const worker = new Worker("throw new Error('broken client')", { eval: true })
    await expect(firstMessage(worker)).rejects.toThrow('broken client')
  })
})

describe('loopStalls', () => {
  it('reports an event loop blocked for 80 ms as a stall of about that length', async () => {
    const stalls = loopStalls(10)
    stalls.enable()
    await new Promise((r) => setTimeout(r, 50))
    const until = performance.now() + 80
    while (performance.now() < until) {
      // the loop blocked for 80 ms
    }
    await new Promise((r) => setTimeout(r, 30))
    stalls.disable()
    // The histogram recorded ≥ 80 ms between two ticks, less its 10 ms interval.
    expect(stalls.maxMs()).toBeGreaterThanOrEqual(65)
    expect(stalls.p99Ms()).toBeGreaterThanOrEqual(0)
  })
})

describe('untilIdle (how bench/playback waits between phases)', () => {
  const children: ChildProcess[] = []
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL')
  })
  /** A node process that keeps a core busy for busyMs, then sits idle. */
  const busyProcess = async (busyMs: number) => {
    const child = spawn(
      process.execPath,
      ['-e', `const end = Date.now() + ${busyMs}; while (Date.now() < end); setTimeout(() => {}, 60000)`],
      { stdio: 'ignore' },
    )
    children.push(child)
    await new Promise((resolve) => child.once('spawn', resolve))
    return child.pid ?? 0
  }

  it('waits while the process is busy and returns once it is quiet', async () => {
    const pid = await busyProcess(1500)
    const waited = await untilIdle(pid, { windowMs: 200 })
    expect(waited).toBeGreaterThanOrEqual(1200)
    expect(waited).toBeLessThan(4000)
  })

  it('returns after one window for a process that is quiet already', async () => {
    const pid = await busyProcess(0)
    await new Promise((resolve) => setTimeout(resolve, 300)) // its start-up
    expect(await untilIdle(pid, { windowMs: 200 })).toBeLessThan(600)
  })

  it('gives up after maxMs', async () => {
    const pid = await busyProcess(10_000)
    const waited = await untilIdle(pid, { windowMs: 200, maxMs: 700 })
    expect(waited).toBeGreaterThanOrEqual(700)
    expect(waited).toBeLessThan(1500)
  })
})

describe('median (the ratio bench/playback reports over its rounds)', () => {
  it('takes the middle value, the mean of the middle two for an even count, and leaves its input as it was', () => {
    const ratios = [0.31, 0.22, 0.25]
    expect(median(ratios)).toBe(0.25)
    expect(ratios).toEqual([0.31, 0.22, 0.25])
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([])).toBe(0)
  })
})
