import { describe, expect, it } from 'vitest'
import { isAppError } from '../../../platform/errors.js'
import { plantedHistory } from './synthetic.js'
import { algorithmFor, EASE_MAX_ITEMS, trainModel } from './train.js'
import type { Algorithm, TrainedModel, TrainingData } from './types.js'

const planted = plantedHistory({ nUsers: 240, nItems: 120, clusters: 4, perUser: 12, noise: 0.1, seed: 3 })

function listOf(model: TrainedModel, u: number): number[] {
  return [...model.perUser.subarray(u * model.topN, (u + 1) * model.topN)].filter((i) => i >= 0)
}

/** Share of the users' recommendations that fall in their own planted cluster. */
function inCluster(model: TrainedModel): number {
  let hits = 0
  let total = 0
  for (let u = 0; u < model.nUsers; u++)
    for (const i of listOf(model, u)) {
      total++
      if (planted.itemCluster[i] === planted.userCluster[u]) hits++
    }
  return hits / total
}

function seenSets(data: TrainingData): Set<number>[] {
  const seen = Array.from({ length: data.nUsers }, () => new Set<number>())
  for (let e = 0; e < data.users.length; e++) seen[data.users[e] as number]?.add(data.items[e] as number)
  return seen
}

const expectCode = (run: () => unknown, code: string, message: RegExp) => {
  try {
    run()
  } catch (e) {
    expect(isAppError(e) && e.code).toBe(code)
    expect((e as Error).message).toMatch(message)
    return
  }
  throw new Error('expected an error')
}

describe('trainModel', () => {
  it.each(['ease', 'itemknn'] as const)(
    '%s recovers planted taste clusters (random would be 1 in 4)',
    (algorithm) => {
      const model = trainModel(planted.data, { algorithm, topN: 10, topSimilar: 5 })
      expect(model.perUser).toHaveLength(240 * 10)
      expect(inCluster(model)).toBeGreaterThan(0.9)
      // Every user gets a full list, and an item's neighbours come from its own cluster too.
      for (let u = 0; u < model.nUsers; u++) expect(listOf(model, u)).toHaveLength(10)
      let same = 0
      for (let i = 0; i < model.nItems; i++)
        for (let r = 0; r < 5; r++) {
          const j = model.similar[i * 5 + r] as number
          if (j >= 0 && planted.itemCluster[j] === planted.itemCluster[i]) same++
        }
      expect(same / (model.nItems * 5)).toBeGreaterThan(0.8)
    },
  )

  it('popularity cannot see the clusters and ranks by how many users have an item', () => {
    const model = trainModel(planted.data, { algorithm: 'popularity', topN: 10, topSimilar: 3 })
    expect(inCluster(model)).toBeLessThan(0.5)
    const count = new Map<number, number>()
    for (const i of planted.data.items) count.set(i, (count.get(i) ?? 0) + 1)
    for (let u = 0; u < 20; u++) {
      const list = listOf(model, u)
      for (let r = 1; r < list.length; r++)
        expect(count.get(list[r - 1] as number) ?? 0).toBeGreaterThanOrEqual(
          count.get(list[r] as number) ?? 0,
        )
      expect(model.perUserScores[u * 10]).toBe(count.get(list[0] as number))
    }
    // Item 0's similar items are the most popular others, itself left out.
    const top = [...count.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([i]) => i)
    const expected = top.filter((i) => i !== top[0]).slice(0, 3)
    expect([...model.similar.subarray((top[0] as number) * 3, (top[0] as number) * 3 + 3)]).toEqual(expected)
  })

  it.each(['ease', 'itemknn', 'popularity'] as const)(
    '%s never recommends what a user already has',
    (algorithm: Algorithm) => {
      const model = trainModel(planted.data, { algorithm, topN: 40, topSimilar: 0 })
      const seen = seenSets(planted.data)
      for (let u = 0; u < model.nUsers; u++) {
        const list = listOf(model, u)
        expect(new Set(list).size).toBe(list.length)
        for (const i of list) expect(seen[u]?.has(i)).toBe(false)
      }
    },
  )

  it('scores are in descending order; short lists end in -1; users without history get none', () => {
    // 3 users, 4 items; user 2 has nothing; item 3 is linked to nothing.
    const data: TrainingData = {
      nUsers: 3,
      nItems: 4,
      users: Int32Array.from([0, 0, 1, 1, 1]),
      items: Int32Array.from([0, 1, 0, 1, 2]),
      weights: Float32Array.from([1, 1, 1, 1, 1]),
    }
    for (const algorithm of ['ease', 'itemknn'] as const) {
      const model = trainModel(data, { algorithm, topN: 3, topSimilar: 3 })
      expect([...model.perUser.subarray(0, 3)]).toEqual([2, -1, -1])
      expect([...model.perUser.subarray(3, 6)]).toEqual([-1, -1, -1])
      expect([...model.perUser.subarray(6, 9)]).toEqual([-1, -1, -1])
      expect([...model.similar.subarray(9, 12)]).toEqual([-1, -1, -1])
    }
    const model = trainModel(planted.data, { algorithm: 'ease', topN: 20, topSimilar: 20 })
    for (let u = 0; u < model.nUsers; u++)
      for (let r = 1; r < 20; r++)
        expect(model.perUserScores[u * 20 + r - 1]).toBeGreaterThanOrEqual(
          model.perUserScores[u * 20 + r] as number,
        )
  })

  it('sums repeated (user, item) pairs instead of counting them twice as items', () => {
    const once = trainModel(
      {
        nUsers: 2,
        nItems: 3,
        users: Int32Array.from([0, 0, 1]),
        items: Int32Array.from([0, 1, 0]),
        weights: Float32Array.from([2, 1, 1]),
      },
      { algorithm: 'itemknn', topN: 2, topSimilar: 2 },
    )
    const split = trainModel(
      {
        nUsers: 2,
        nItems: 3,
        users: Int32Array.from([0, 1, 0, 0]),
        items: Int32Array.from([0, 0, 1, 0]),
        weights: Float32Array.from([1, 1, 1, 1]),
      },
      { algorithm: 'itemknn', topN: 2, topSimilar: 2 },
    )
    expect(split.perUser).toEqual(once.perUser)
    expect(split.similarScores).toEqual(once.similarScores)
  })

  it('refuses bad data and options with a clear invalid_* error', () => {
    const good = planted.data
    const train =
      (data: Partial<TrainingData>, options = {}) =>
      () =>
        trainModel({ ...good, ...data }, { algorithm: 'ease', topN: 10, topSimilar: 5, ...options })
    const empty = { users: new Int32Array(0), items: new Int32Array(0), weights: new Float32Array(0) }
    expectCode(train(empty), 'invalid_training_data', /no interactions/)
    expectCode(train({ nItems: 0 }), 'invalid_training_data', /nItems must be a positive integer/)
    expectCode(train({ nUsers: 1.5 }), 'invalid_training_data', /nUsers/)
    expectCode(train({ users: Int32Array.from([0, 1]) }), 'invalid_training_data', /differ in length/)
    const one = (u: number, i: number, w: number) => ({
      nUsers: 2,
      nItems: 2,
      users: Int32Array.from([u]),
      items: Int32Array.from([i]),
      weights: Float32Array.from([w]),
    })
    expectCode(train(one(2, 0, 1)), 'invalid_training_data', /user 2 is outside 0\.\.1/)
    expectCode(train(one(-1, 0, 1)), 'invalid_training_data', /user -1 is outside/)
    expectCode(train(one(0, 5, 1)), 'invalid_training_data', /item 5 is outside 0\.\.1/)
    expectCode(train(one(0, 0, 0)), 'invalid_training_data', /weight 0 is not a positive number/)
    expectCode(train(one(0, 0, Number.NaN)), 'invalid_training_data', /weight NaN/)
    expectCode(train({ users: [0] as unknown as Int32Array }), 'invalid_training_data', /Int32Arrays/)
    expectCode(
      train({}, { algorithm: 'svd' }),
      'invalid_train_options',
      /algorithm must be one of ease, itemknn, popularity/,
    )
    expectCode(train({}, { topN: 0 }), 'invalid_train_options', /topN must be an integer in 1\.\.1000/)
    expectCode(train({}, { topSimilar: 2.5 }), 'invalid_train_options', /topSimilar/)
    expectCode(train({}, { lambda: -1 }), 'invalid_train_options', /lambda/)
    expectCode(train({}, { algorithm: 'itemknn', neighbours: 0 }), 'invalid_train_options', /neighbours/)
    expectCode(
      train({ nItems: 20_000 }, { algorithm: 'itemknn' }),
      'catalog_too_large',
      /20000 items is more than 16384/,
    )
  })

  it('picks EASE up to the catalog size where it stays affordable, item-kNN past it', () => {
    expect(algorithmFor(1682)).toBe('ease')
    expect(algorithmFor(EASE_MAX_ITEMS)).toBe('ease')
    expect(algorithmFor(EASE_MAX_ITEMS + 1)).toBe('itemknn')
  })
})
