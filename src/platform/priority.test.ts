import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { BACKGROUND_NICE, lowerHelperThreads } from './priority.js'

/**
 * A worker thread that loads this module from its TypeScript source (tsx registered in its own
 * thread), calls `call` (an expression over the module `m`) and posts `{ tid, nice, result }`; it
 * stays up until terminated.
 */
async function askWorker<T>(
  call: string,
): Promise<{ worker: Worker; reply: { tid: number; nice: number; result: T } }> {
  const tsx = pathToFileURL(
    path.join(
      path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')),
      'dist/esm/api/index.mjs',
    ),
  ).href
  const entry = new URL('./priority.ts', import.meta.url).href
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads')
    const os = require('node:os')
    const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop())
    import(${JSON.stringify(tsx)})
      .then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })
      .then((m) => { const result = ${call}; parentPort.postMessage({ tid, nice: os.getPriority(tid), result }) })
    setInterval(() => {}, 1000)`,
    { eval: true },
  )
  const reply = (await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })) as { tid: number; nice: number; result: T }
  return { worker, reply }
}

describe.runIf(process.platform === 'linux')('lowerThreadPriority', () => {
  it('lowers the worker thread that calls it, and no other thread of the process', async () => {
    const { worker, reply } = await askWorker<boolean>('m.lowerThreadPriority()')
    await worker.terminate()
    expect(reply).toMatchObject({ result: true, nice: BACKGROUND_NICE })
    expect(os.getPriority(process.pid)).toBeLessThan(BACKGROUND_NICE)
  })
})

describe.runIf(process.platform === 'linux')('lowerHelperThreads', () => {
  it('lowers every thread of the process but the main one (a worker thread included), and does nothing from a worker', async () => {
    // Asked from a worker thread it refuses (0): it would lower the main thread.
    const { worker, reply } = await askWorker<number>('m.lowerHelperThreads()')
    try {
      expect(reply.result).toBe(0)
      const mainBefore = os.getPriority(process.pid)
      expect(os.getPriority(reply.tid)).toBe(mainBefore)

      const others = fs
        .readdirSync('/proc/self/task')
        .map(Number)
        .filter((tid) => tid !== process.pid)
      expect(lowerHelperThreads()).toBeGreaterThanOrEqual(others.length - 1)
      expect(os.getPriority(reply.tid)).toBe(BACKGROUND_NICE)
      for (const tid of others)
        if (fs.existsSync(`/proc/self/task/${tid}`)) expect(os.getPriority(tid)).toBe(BACKGROUND_NICE)
      expect(os.getPriority(process.pid)).toBe(mainBefore)
    } finally {
      await worker.terminate()
    }
  })

  it('leaves a process started below the background priority as it is', () => {
    const entry = JSON.stringify(new URL('./priority.ts', import.meta.url).href)
    const node = [
      process.execPath,
      '--import',
      'tsx',
      '-e',
      `import(${entry}).then((m) => console.log(m.lowerHelperThreads()))`,
    ]
    const run = (command: string[]) =>
      execFileSync(command[0] ?? '', command.slice(1), { encoding: 'utf8' }).trim()
    expect(Number(run(node))).toBeGreaterThan(0)
    expect(run(['nice', '-n', String(BACKGROUND_NICE + 2), ...node])).toBe('0')
  })
})
