import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { ItemFeatures } from './model/types.js'

// Started the way model/worker.ts starts the training worker: from the TypeScript sources (tsx,
// vitest) the entry is a .ts file that must register tsx's loader in its own thread first; from
// dist/ it is plain JavaScript next to this file.
function workerScript(): { script: string | URL; eval: boolean } {
  if (!import.meta.url.endsWith('.ts'))
    return { script: new URL('./content-worker.js', import.meta.url), eval: false }
  const tsx =
    typeof import.meta.resolve === 'function'
      ? import.meta.resolve('tsx/esm/api')
      : pathToFileURL(
          path.join(
            path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')),
            'dist/esm/api/index.mjs',
          ),
        ).href
  const entry = new URL('./content-worker.ts', import.meta.url).href
  return {
    script: `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })`,
    eval: true,
  }
}

/**
 * The model's contentNeighbours over the whole catalog, in a worker thread: for 5,000 titles it
 * computes for about a second, which on the event loop would stall every request meanwhile.
 * Returns k neighbour indices per item, row-major, -1 where fewer exist.
 */
export function contentInWorker(features: readonly ItemFeatures[], k: number): Promise<Int32Array> {
  return new Promise((resolve, reject) => {
    let settled = false
    const { script, eval: isCode } = workerScript()
    const worker = new Worker(script, { eval: isCode, workerData: { features, k } })
    worker.once('message', (reply: { ids: Int32Array } | { error: string }) => {
      settled = true
      if ('ids' in reply) resolve(reply.ids)
      else reject(new Error(reply.error))
    })
    worker.once('error', (e) => {
      if (!settled) reject(e)
      settled = true
    })
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`the content worker exited (code ${code}) without neighbours`))
      settled = true
    })
  })
}
