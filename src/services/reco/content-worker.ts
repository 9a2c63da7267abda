/** Entry of the content-neighbours worker thread: computes on workerData and posts the ids back, transferred. */
import { parentPort, workerData } from 'node:worker_threads'
import { lowerThreadPriority } from '../../platform/priority.js'
import { contentNeighbours } from './model/content.js'
import type { ItemFeatures } from './model/types.js'

// Background work: the threads answering requests get the CPU first.
lowerThreadPriority()
const { features, k } = workerData as { features: ItemFeatures[]; k: number }
try {
  const { ids } = contentNeighbours(features, k)
  parentPort?.postMessage({ ids }, [ids.buffer as ArrayBuffer])
} catch (e) {
  parentPort?.postMessage({ error: e instanceof Error ? e.message : String(e) })
}
