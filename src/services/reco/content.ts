import { Worker } from 'node:worker_threads'
import type { ItemFeatures } from './model/types.js'
import { workerScript } from './model/worker.js'

/**
 * The model's contentNeighbours over the whole catalog, in a worker thread: for 5,000 titles it
 * computes for about a second, which on the event loop would stall every request meanwhile.
 * Returns k neighbour indices per item, row-major, -1 where fewer exist.
 */
export function contentInWorker(features: readonly ItemFeatures[], k: number): Promise<Int32Array> {
  return new Promise((resolve, reject) => {
    let settled = false
    const { script, eval: isCode } = workerScript(import.meta.url, 'content-worker')
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
