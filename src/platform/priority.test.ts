import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { BACKGROUND_NICE } from './priority.js'

describe.runIf(process.platform === 'linux')('lowerThreadPriority', () => {
  it('lowers the worker thread that calls it, and no other thread of the process', async () => {
    // The worker loads this module from its TypeScript source (tsx registered in its own thread).
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
        .then((m) => parentPort.postMessage({ lowered: m.lowerThreadPriority(), nice: os.getPriority(tid) }))`,
      { eval: true },
    )
    const [reply] = (await new Promise((resolve, reject) => {
      worker.once('message', (m) => resolve([m]))
      worker.once('error', reject)
    })) as [{ lowered: boolean; nice: number }]
    await worker.terminate()
    expect(reply).toEqual({ lowered: true, nice: BACKGROUND_NICE })
    expect(os.getPriority(process.pid)).toBeLessThan(BACKGROUND_NICE)
  })
})
