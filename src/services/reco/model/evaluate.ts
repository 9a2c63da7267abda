import { seededRandom, shuffleInPlace } from './random.js'
import type { TrainedModel, TrainingData } from './types.js'

/** Interactions as parallel arrays (user, item); the split keeps whatever else by position. */
export interface Interactions {
  nUsers: number
  nItems: number
  users: Int32Array
  items: Int32Array
}

/** Positions (indices into the interaction arrays) of the train and the test part. */
export interface Split {
  train: Int32Array
  test: Int32Array
}

/** Python's round(): halves go to the even neighbour, as numpy/pandas split sizes do. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/**
 * Microsoft Recommenders' python_stratified_split(filter_by="item"): shuffle every interaction
 * with a seeded generator, then give each item's first round(ratio·count) to train and the rest to
 * test. numpy's generator cannot be reproduced here, so the same seed draws a different (equally
 * random) partition; the per-item sizes are exactly those of the Python split.
 */
export function stratifiedSplit(data: Interactions, ratio: number, seed: number): Split {
  if (!(ratio > 0 && ratio < 1)) throw new RangeError(`ratio must lie strictly between 0 and 1, not ${ratio}`)
  const m = data.items.length
  const order = new Int32Array(m)
  for (let p = 0; p < m; p++) order[p] = p
  shuffleInPlace(order, seededRandom(seed))
  const count = new Int32Array(data.nItems)
  for (let p = 0; p < m; p++) count[data.items[p] as number] = (count[data.items[p] as number] as number) + 1
  const quota = count.map((c) => roundHalfEven(ratio * c))
  const train: number[] = []
  const test: number[] = []
  for (const p of order) {
    const i = data.items[p] as number
    if ((quota[i] as number) > 0) {
      quota[i] = (quota[i] as number) - 1
      train.push(p)
    } else test.push(p)
  }
  return { train: Int32Array.from(train).sort(), test: Int32Array.from(test).sort() }
}

export interface RankingMetrics {
  /** Mean average precision: Σ over hits of (hits so far / rank), over all of the user's test items. */
  map: number
  ndcg: number
  precision: number
  recall: number
  /** Users in both the test set and the predictions: the denominator of every mean. */
  users: number
}

/**
 * Top-k ranking metrics as Microsoft Recommenders computes them (relevancy "top_k", binary
 * relevance, natural-log discount): averaged over the users present in both `truth` and
 * `predicted`; a user's relevant items are all their test interactions. MAP divides by the number
 * of relevant items, as the `map` of recommenders (and its `map_at_k` before 1.2) does, which is
 * what the published comparison table used.
 */
export function rankingMetrics(
  truth: Map<number, Set<number>>,
  predicted: Map<number, number[]>,
  k: number,
): RankingMetrics {
  let users = 0
  let map = 0
  let ndcg = 0
  let precision = 0
  let recall = 0
  for (const [user, relevant] of truth) {
    const list = predicted.get(user)
    if (!list || list.length === 0 || relevant.size === 0) continue
    users++
    let hits = 0
    let dcg = 0
    let ap = 0
    const top = Math.min(k, list.length)
    for (let r = 0; r < top; r++) {
      if (!relevant.has(list[r] as number)) continue
      hits++
      ap += hits / (r + 1)
      dcg += 1 / Math.log(r + 2)
    }
    let idcg = 0
    for (let r = 0; r < Math.min(relevant.size, k); r++) idcg += 1 / Math.log(r + 2)
    map += ap / relevant.size
    ndcg += dcg / idcg
    precision += hits / k
    recall += hits / relevant.size
  }
  if (users === 0) return { map: 0, ndcg: 0, precision: 0, recall: 0, users: 0 }
  return { map: map / users, ndcg: ndcg / users, precision: precision / users, recall: recall / users, users }
}

/** The model's lists as user → items, skipping the -1 padding. */
export function predictionsOf(model: TrainedModel, users: Iterable<number>): Map<number, number[]> {
  const out = new Map<number, number[]>()
  for (const u of users) {
    const list: number[] = []
    for (let r = 0; r < model.topN; r++) {
      const i = model.perUser[u * model.topN + r] as number
      if (i >= 0) list.push(i)
    }
    if (list.length > 0) out.set(u, list)
  }
  return out
}

/** The train part of a split as training data, each interaction weighing 1 (implicit feedback). */
export function trainingPart(data: Interactions, split: Split): TrainingData {
  return {
    nUsers: data.nUsers,
    nItems: data.nItems,
    users: split.train.map((p) => data.users[p] as number),
    items: split.train.map((p) => data.items[p] as number),
    weights: new Float32Array(split.train.length).fill(1),
  }
}

/** Scores a model trained on the train part (topN ≥ k) against the test part of the same split. */
export function scoreSplit(model: TrainedModel, data: Interactions, split: Split, k: number): RankingMetrics {
  const truth = new Map<number, Set<number>>()
  for (const p of split.test) {
    const u = data.users[p] as number
    const set = truth.get(u) ?? new Set<number>()
    set.add(data.items[p] as number)
    truth.set(u, set)
  }
  const trainUsers = new Set<number>()
  for (const p of split.train) trainUsers.add(data.users[p] as number)
  return rankingMetrics(truth, predictionsOf(model, trainUsers), k)
}
