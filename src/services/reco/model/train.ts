import { unprocessable } from '../../../platform/errors.js'
import { byUser, gram, type UserRows } from './interactions.js'
import { invertSpdInPlace } from './linalg.js'
import { TopK } from './topk.js'
import type { Algorithm, TrainedModel, TrainingData, TrainOptions } from './types.js'

export const ALGORITHMS: readonly Algorithm[] = ['ease', 'itemknn', 'popularity']

/** Defaults tuned on MovieLens-100K under the eval protocol (`reel reco eval`). */
export const DEFAULT_LAMBDA = 500
export const DEFAULT_NEIGHBOURS = 200

/**
 * EASE inverts a dense n × n matrix: n³/2 multiply-adds and 8n² bytes. Measured CPU time of a
 * whole training (10,000 synthetic profiles, 50 titles each) on this 2-core machine: 3,000 titles
 * 8.8 s (peak RSS 193 MB), 5,000 titles 39.5 s (peak RSS 305 MB); MovieLens-100K's 1,682 titles
 * 1.3 s. Past about 3,000 titles a run passes 10 s of CPU time and grows as n³, while item-kNN
 * takes 2.7 s at 5,000 titles (peak RSS 283 MB) and trails EASE by 4 points of nDCG@10 on
 * MovieLens-100K.
 */
export const EASE_MAX_ITEMS = 3000

/** The collaborative model to train for a catalog of `nItems`: EASE while it is affordable, else item-kNN. */
export function algorithmFor(nItems: number): Algorithm {
  return nItems <= EASE_MAX_ITEMS ? 'ease' : 'itemknn'
}

/**
 * Both collaborative models hold a dense n × n matrix (EASE 8n² bytes, item-kNN 4n²): 16,384 items
 * is 2 GiB for EASE. A larger catalog would need a sparse item-kNN; until then it is refused.
 */
export const MAX_DENSE_ITEMS = 16_384

/** The longest top lists a caller may ask for: enough for every home row, small enough to keep. */
export const MAX_LIST = 1000

const badOptions = (message: string) => unprocessable('invalid_train_options', message)

function checkOptions(options: TrainOptions): Required<TrainOptions> {
  const { algorithm, topN, topSimilar } = options
  if (!ALGORITHMS.includes(algorithm))
    throw badOptions(`algorithm must be one of ${ALGORITHMS.join(', ')}, not ${String(algorithm)}`)
  for (const [name, value, min] of [
    ['topN', topN, 1],
    ['topSimilar', topSimilar, 0],
  ] as const)
    if (!Number.isInteger(value) || value < min || value > MAX_LIST)
      throw badOptions(`${name} must be an integer in ${min}..${MAX_LIST}, not ${value}`)
  const lambda = options.lambda ?? DEFAULT_LAMBDA
  if (!(lambda > 0) || !Number.isFinite(lambda))
    throw badOptions(`lambda must be a positive number, not ${lambda}`)
  const neighbours = options.neighbours ?? DEFAULT_NEIGHBOURS
  if (!Number.isInteger(neighbours) || neighbours < 1)
    throw badOptions(`neighbours must be a positive integer, not ${neighbours}`)
  return { algorithm, topN, topSimilar, lambda, neighbours }
}

/**
 * Trains one model and returns every user's top-N (items the user already has removed) and every
 * item's top neighbours. Synchronous and CPU-bound: the service calls trainInWorker instead.
 */
export function trainModel(data: TrainingData, options: TrainOptions): TrainedModel {
  const opts = checkOptions(options)
  if (opts.algorithm !== 'popularity' && data.nItems > MAX_DENSE_ITEMS)
    throw unprocessable(
      'catalog_too_large',
      `${opts.algorithm} holds an items × items matrix: ${data.nItems} items is more than ${MAX_DENSE_ITEMS}; use popularity`,
    )
  const started = performance.now()
  const rows = byUser(data)
  const lists = {
    perUser: new Int32Array(rows.nUsers * opts.topN),
    perUserScores: new Float32Array(rows.nUsers * opts.topN),
    similar: new Int32Array(rows.nItems * opts.topSimilar),
    similarScores: new Float32Array(rows.nItems * opts.topSimilar),
  }
  if (opts.algorithm === 'popularity') popularity(rows, opts, lists)
  else if (opts.algorithm === 'itemknn') itemKnn(rows, opts, lists)
  else ease(rows, opts, lists)
  return {
    algorithm: opts.algorithm,
    nUsers: rows.nUsers,
    nItems: rows.nItems,
    topN: opts.topN,
    topSimilar: opts.topSimilar,
    ...lists,
    trainMs: performance.now() - started,
  }
}

type Lists = Pick<TrainedModel, 'perUser' | 'perUserScores' | 'similar' | 'similarScores'>

/**
 * Ranks every user's unseen items by a dense score vector the scorer fills for that user. A score of
 * exactly 0 means no evidence (nobody watched it, no neighbour of it watched): such items are left
 * out, and a user without history gets an empty (-1) list for the service's own fallback.
 */
function rankUsers(
  rows: UserRows,
  topN: number,
  lists: Lists,
  scoreUser: (u: number, scores: Float64Array) => void,
) {
  const scores = new Float64Array(rows.nItems)
  const seen = new Uint8Array(rows.nItems)
  const top = new TopK(topN)
  const { start, items } = rows
  for (let u = 0; u < rows.nUsers; u++) {
    const from = start[u] as number
    const to = start[u + 1] as number
    top.reset()
    if (from === to) {
      top.writeTo(u, lists.perUser, lists.perUserScores)
      continue
    }
    scores.fill(0)
    scoreUser(u, scores)
    for (let p = from; p < to; p++) seen[items[p] as number] = 1
    for (let i = 0; i < rows.nItems; i++) {
      const score = scores[i] as number
      if (seen[i] === 0 && score !== 0) top.offer(i, score)
    }
    for (let p = from; p < to; p++) seen[items[p] as number] = 0
    top.writeTo(u, lists.perUser, lists.perUserScores)
  }
}

/** Popularity: how many users have each item; an item's "similar" items are simply the most popular others. */
function popularity(rows: UserRows, opts: Required<TrainOptions>, lists: Lists): void {
  const count = new Float64Array(rows.nItems)
  for (let p = 0; p < rows.items.length; p++)
    count[rows.items[p] as number] = (count[rows.items[p] as number] as number) + 1
  rankUsers(rows, opts.topN, lists, (_u, scores) => scores.set(count))
  // The top topSimilar+1 overall serve every item: drop the item itself from its own list.
  const overall = new TopK(Math.min(rows.nItems, opts.topSimilar + 1))
  for (let i = 0; i < rows.nItems; i++) if ((count[i] as number) > 0) overall.offer(i, count[i] as number)
  const top = new TopK(opts.topSimilar)
  for (let i = 0; i < rows.nItems; i++) {
    top.reset()
    for (let r = 0; r < overall.size; r++) {
      const j = overall.ids[r] as number
      if (j !== i) top.offer(j, overall.scores[r] as number)
    }
    top.writeTo(i, lists.similar, lists.similarScores)
  }
}

/**
 * Item-kNN: cosine similarity between item columns of the (weighted) user × item matrix, each item
 * keeping its `neighbours` most similar; a user's score for i sums the similarities of i to those
 * of its neighbours the user has (Sarwar et al. 2001, Deshpande & Karypis 2004).
 */
function itemKnn(rows: UserRows, opts: Required<TrainOptions>, lists: Lists): void {
  const n = rows.nItems
  // Float32 is enough for cosines and halves the largest buffer (4n² bytes).
  const g = gram(rows, false, new Float32Array(n * n))
  const norm = new Float64Array(n)
  for (let i = 0; i < n; i++) norm[i] = Math.sqrt(g[i * n + i] as number)
  const k = Math.min(opts.neighbours, n - 1)
  const nbrIds = new Int32Array(n * k)
  const nbrSims = new Float32Array(n * k)
  const hood = new TopK(k)
  const similar = new TopK(opts.topSimilar)
  for (let i = 0; i < n; i++) {
    hood.reset()
    similar.reset()
    const ni = norm[i] as number
    if (ni > 0) {
      const row = i * n
      for (let j = 0; j < n; j++) {
        const c = g[row + j] as number
        if (j === i || c === 0) continue
        const sim = c / (ni * (norm[j] as number))
        hood.offer(j, sim)
        similar.offer(j, sim)
      }
    }
    hood.writeTo(i, nbrIds, nbrSims)
    similar.writeTo(i, lists.similar, lists.similarScores)
  }
  // A user's score for i sums sim(i, j) over the items j they have among i's neighbours: turn
  // "i keeps j" around into "j counts towards i" so each history item walks one list.
  const offsets = new Int32Array(n + 1)
  for (let e = 0; e < n * k; e++) {
    const j = nbrIds[e] as number
    if (j >= 0) offsets[j + 1] = (offsets[j + 1] as number) + 1
  }
  for (let j = 0; j < n; j++) offsets[j + 1] = (offsets[j + 1] as number) + (offsets[j] as number)
  const fill = offsets.slice(0, n)
  const counts = new Int32Array(offsets[n] as number)
  const countSims = new Float32Array(offsets[n] as number)
  for (let i = 0; i < n; i++)
    for (let r = 0; r < k; r++) {
      const j = nbrIds[i * k + r] as number
      if (j < 0) break
      const at = fill[j] as number
      fill[j] = at + 1
      counts[at] = i
      countSims[at] = nbrSims[i * k + r] as number
    }
  const { start, items, weights } = rows
  rankUsers(rows, opts.topN, lists, (u, scores) => {
    for (let p = start[u] as number; p < (start[u + 1] as number); p++) {
      const j = items[p] as number
      const w = weights[p] as number
      for (let e = offsets[j] as number; e < (offsets[j + 1] as number); e++) {
        const i = counts[e] as number
        scores[i] = (scores[i] as number) + w * (countSims[e] as number)
      }
    }
  })
}

/**
 * EASE (Steck 2019): B = I − P·diag(1/diag P) with P = (XᵀX + λI)⁻¹, its diagonal forced to zero;
 * a user's scores are their row of X times B. One dense n × n Float64Array (8n² bytes) is the
 * whole working set: the Gram matrix is inverted and turned into B in place.
 */
function ease(rows: UserRows, opts: Required<TrainOptions>, lists: Lists): void {
  const n = rows.nItems
  const b = gram(rows, true, new Float64Array(n * n))
  for (let i = 0; i < n; i++) b[i * n + i] = (b[i * n + i] as number) + opts.lambda
  invertSpdInPlace(b, n)
  const scale = new Float64Array(n)
  for (let i = 0; i < n; i++) scale[i] = -1 / (b[i * n + i] as number)
  for (let j = 0; j < n; j++) {
    const row = j * n
    for (let i = 0; i < n; i++) b[row + i] = (b[row + i] as number) * (scale[i] as number)
    b[row + j] = 0
  }
  const similar = new TopK(opts.topSimilar)
  for (let i = 0; i < n; i++) {
    similar.reset()
    const row = i * n
    for (let j = 0; j < n; j++) {
      const weight = b[row + j] as number
      if (j !== i && weight !== 0) similar.offer(j, weight)
    }
    similar.writeTo(i, lists.similar, lists.similarScores)
  }
  const { start, items, weights } = rows
  rankUsers(rows, opts.topN, lists, (u, scores) => {
    const to = start[u + 1] as number
    let p = start[u] as number
    // Four rows of B per pass over the scores: a quarter of the loads and stores.
    for (; p + 3 < to; p += 4) {
      const q0 = (items[p] as number) * n
      const q1 = (items[p + 1] as number) * n
      const q2 = (items[p + 2] as number) * n
      const q3 = (items[p + 3] as number) * n
      const w0 = weights[p] as number
      const w1 = weights[p + 1] as number
      const w2 = weights[p + 2] as number
      const w3 = weights[p + 3] as number
      for (let i = 0; i < n; i++)
        scores[i] =
          (scores[i] as number) +
          w0 * (b[q0 + i] as number) +
          w1 * (b[q1 + i] as number) +
          w2 * (b[q2 + i] as number) +
          w3 * (b[q3 + i] as number)
    }
    for (; p < to; p++) {
      const q = (items[p] as number) * n
      const w = weights[p] as number
      for (let i = 0; i < n; i++) scores[i] = (scores[i] as number) + w * (b[q + i] as number)
    }
  })
}
