import { seededRandom } from './random.js'
import { trainModel } from './train.js'
import type { TrainedModel, TrainingData, TrainOptions } from './types.js'
import { trainInWorker } from './worker.js'

export interface PlantedHistory {
  data: TrainingData
  /** The taste cluster of each user and of each item: item i belongs to cluster i % clusters. */
  userCluster: Int32Array
  itemCluster: Int32Array
  clusters: number
}

export interface PlantedOptions {
  nUsers: number
  nItems: number
  clusters: number
  /** Distinct items each user has. */
  perUser: number
  /** Share of a user's items drawn from the whole catalog instead of their cluster. */
  noise: number
  seed: number
}

/**
 * Watch histories with planted taste clusters: user u likes cluster u % clusters, and takes most of
 * their items from it, favouring its first members (a popularity skew within every cluster, so
 * popularity alone cannot tell the clusters apart). A working model must find the clusters again.
 */
export function plantedHistory(options: PlantedOptions): PlantedHistory {
  const { nUsers, nItems, clusters, perUser, noise, seed } = options
  if (clusters < 1 || nItems < clusters || perUser > Math.floor(nItems / clusters))
    throw new RangeError('each cluster needs at least perUser items')
  const random = seededRandom(seed)
  const clusterSize = Math.floor(nItems / clusters)
  const users: number[] = []
  const items: number[] = []
  const userCluster = new Int32Array(nUsers)
  const itemCluster = new Int32Array(nItems)
  for (let i = 0; i < nItems; i++) itemCluster[i] = i % clusters
  const taken = new Set<number>()
  for (let u = 0; u < nUsers; u++) {
    const c = u % clusters
    userCluster[u] = c
    taken.clear()
    while (taken.size < perUser) {
      let item: number
      if (random() < noise) item = Math.floor(random() * nItems)
      else {
        // Squaring a uniform draw favours the cluster's first members (rank r drawn ∝ 1/√r).
        const rank = Math.floor(random() ** 2 * clusterSize)
        item = rank * clusters + c
      }
      if (taken.has(item)) continue
      taken.add(item)
      users.push(u)
      items.push(item)
    }
  }
  const weights = new Float32Array(users.length)
  for (let e = 0; e < weights.length; e++) weights[e] = 1 + Math.floor(random() * 3)
  return {
    data: { nUsers, nItems, users: Int32Array.from(users), items: Int32Array.from(items), weights },
    userCluster,
    itemCluster,
    clusters,
  }
}

export interface TrainingCost {
  model: TrainedModel
  /** Training time as the model reports it (inside the thread that trained it). */
  trainMs: number
  /** Wall time of the call, worker start and transfers included. */
  wallMs: number
  /** CPU time of the whole process during the call (user + system): the figure to trust on a busy machine. */
  cpuMs: number
  /** The process's peak resident set size after the run (a high-water mark since start). */
  maxRssBytes: number
  rssBeforeBytes: number
}

/**
 * Trains once and reports time and memory, for benchmarks: run it in a fresh process per
 * algorithm, since the peak RSS is the process's high-water mark, not this call's alone.
 */
export async function measureTraining(
  data: TrainingData,
  options: TrainOptions,
  where: 'worker' | 'thread' = 'worker',
): Promise<TrainingCost> {
  const rssBeforeBytes = process.memoryUsage().rss
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  const model = where === 'worker' ? await trainInWorker(data, options) : trainModel(data, options)
  const wallMs = performance.now() - started
  const cpu = process.cpuUsage(cpuBefore)
  return {
    model,
    trainMs: model.trainMs,
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    rssBeforeBytes,
  }
}
