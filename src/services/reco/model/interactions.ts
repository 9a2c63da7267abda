import { unprocessable } from '../../../platform/errors.js'
import type { TrainingData } from './types.js'

/** Interactions by user: items of user u are items[start[u] .. start[u+1]), sorted, with their summed weights. */
export interface UserRows {
  nUsers: number
  nItems: number
  start: Int32Array
  items: Int32Array
  weights: Float64Array
}

const invalid = (message: string) => unprocessable('invalid_training_data', message)

/** Checks the shape of training data and throws a 422 invalid_training_data naming the first problem. */
export function checkTrainingData(data: TrainingData): void {
  const { nUsers, nItems, users, items, weights } = data
  if (!Number.isInteger(nUsers) || nUsers < 1 || nUsers > 2 ** 31 - 1)
    throw invalid(`nUsers must be a positive integer, not ${nUsers}`)
  if (!Number.isInteger(nItems) || nItems < 1 || nItems > 2 ** 31 - 1)
    throw invalid(`nItems must be a positive integer, not ${nItems}`)
  if (!(users instanceof Int32Array) || !(items instanceof Int32Array) || !(weights instanceof Float32Array))
    throw invalid('users and items must be Int32Arrays and weights a Float32Array')
  if (users.length !== items.length || users.length !== weights.length)
    throw invalid(
      `users (${users.length}), items (${items.length}) and weights (${weights.length}) differ in length`,
    )
  if (users.length === 0) throw invalid('no interactions to train on')
  for (let e = 0; e < users.length; e++) {
    const u = users[e] as number
    const i = items[e] as number
    const w = weights[e] as number
    if (u < 0 || u >= nUsers) throw invalid(`interaction ${e}: user ${u} is outside 0..${nUsers - 1}`)
    if (i < 0 || i >= nItems) throw invalid(`interaction ${e}: item ${i} is outside 0..${nItems - 1}`)
    if (!(w > 0) || !Number.isFinite(w))
      throw invalid(`interaction ${e}: weight ${w} is not a positive number`)
  }
}

/** Groups interactions by user (counting sort), items sorted within a user, repeated pairs summed. */
export function byUser(data: TrainingData): UserRows {
  checkTrainingData(data)
  const { nUsers, nItems, users, items, weights } = data
  const count = new Int32Array(nUsers + 1)
  for (let e = 0; e < users.length; e++) {
    const at = (users[e] as number) + 1
    count[at] = (count[at] as number) + 1
  }
  for (let u = 0; u < nUsers; u++) count[u + 1] = (count[u + 1] as number) + (count[u] as number)
  const fill = count.slice(0, nUsers)
  const rawItems = new Int32Array(users.length)
  const rawWeights = new Float64Array(users.length)
  for (let e = 0; e < users.length; e++) {
    const u = users[e] as number
    const at = fill[u] as number
    fill[u] = at + 1
    rawItems[at] = items[e] as number
    rawWeights[at] = weights[e] as number
  }
  // Sort each user's items and merge repeats; most users hold few items, so a pair sort is cheap.
  const start = new Int32Array(nUsers + 1)
  const outItems = new Int32Array(users.length)
  const outWeights = new Float64Array(users.length)
  let out = 0
  const order: number[] = []
  for (let u = 0; u < nUsers; u++) {
    const from = count[u] as number
    const to = count[u + 1] as number
    start[u] = out
    order.length = 0
    for (let p = from; p < to; p++) order.push(p)
    order.sort((x, y) => (rawItems[x] as number) - (rawItems[y] as number))
    for (const p of order) {
      const i = rawItems[p] as number
      if (out > (start[u] as number) && outItems[out - 1] === i)
        outWeights[out - 1] = (outWeights[out - 1] as number) + (rawWeights[p] as number)
      else {
        outItems[out] = i
        outWeights[out] = rawWeights[p] as number
        out++
      }
    }
  }
  start[nUsers] = out
  return { nUsers, nItems, start, items: outItems.slice(0, out), weights: outWeights.slice(0, out) }
}

/**
 * Xᵀ X as a dense row-major nItems × nItems matrix (lower triangle only when `lowerOnly`), written
 * into `into` (zeroed, n² long). Costs Σᵤ |items of u|², fine for watch histories, which are short
 * next to the catalog.
 */
export function gram<M extends Float64Array | Float32Array>(rows: UserRows, lowerOnly: boolean, into: M): M {
  const n = rows.nItems
  const g = into
  if (g.length !== n * n) throw new RangeError(`a Gram matrix of ${n} items needs ${n * n} values`)
  const { start, items, weights } = rows
  for (let u = 0; u < rows.nUsers; u++) {
    const from = start[u] as number
    const to = start[u + 1] as number
    for (let p = from; p < to; p++) {
      const row = (items[p] as number) * n
      const w = weights[p] as number
      // Items are sorted within a user, so q ≤ p is the lower triangle.
      const end = lowerOnly ? p + 1 : to
      for (let q = from; q < end; q++) {
        const at = row + (items[q] as number)
        g[at] = (g[at] as number) + w * (weights[q] as number)
      }
    }
  }
  return g
}
