import { describe, expect, it } from 'vitest'
import { rankingMetrics, roundHalfEven, scoreSplit, stratifiedSplit, trainingPart } from './evaluate.js'
import { plantedHistory } from './synthetic.js'
import { trainModel } from './train.js'

describe('rankingMetrics', () => {
  it('matches a hand computation (binary relevance, log discount, users in both sets)', () => {
    const truth = new Map([
      [1, new Set([1, 2, 3])],
      [2, new Set([5])],
      [3, new Set([4])], // no predictions: left out
    ])
    const predicted = new Map([
      [1, [1, 9, 2]], // hits at ranks 1 and 3
      [2, [7, 8, 6]], // no hit
      [4, [1, 2, 3]], // not in the test set: left out
    ])
    const m = rankingMetrics(truth, predicted, 3)
    expect(m.users).toBe(2)
    expect(m.precision).toBeCloseTo(2 / 3 / 2, 12)
    expect(m.recall).toBeCloseTo(2 / 3 / 2, 12)
    // AP of user 1: (1/1 + 2/3) over its 3 relevant items.
    expect(m.map).toBeCloseTo((1 + 2 / 3) / 3 / 2, 12)
    const dcg = 1 / Math.log(2) + 1 / Math.log(4)
    const idcg = 1 / Math.log(2) + 1 / Math.log(3) + 1 / Math.log(4)
    expect(m.ndcg).toBeCloseTo(dcg / idcg / 2, 12)
  })

  it('divides precision by k even for short lists; the ideal DCG stops at k', () => {
    const short = rankingMetrics(new Map([[1, new Set([1])]]), new Map([[1, [1]]]), 3)
    expect(short).toEqual({ map: 1, ndcg: 1, precision: 1 / 3, recall: 1, users: 1 })
    // 12 relevant items, the 10 recommended all relevant: perfect nDCG@10, recall 10/12, MAP 10/12.
    const many = rankingMetrics(
      new Map([[1, new Set(Array.from({ length: 12 }, (_, i) => i))]]),
      new Map([[1, Array.from({ length: 10 }, (_, i) => i)]]),
      10,
    )
    expect(many.ndcg).toBeCloseTo(1, 12)
    expect(many.precision).toBe(1)
    expect(many.recall).toBeCloseTo(10 / 12, 12)
    expect(many.map).toBeCloseTo(10 / 12, 12)
    expect(rankingMetrics(new Map(), new Map(), 10)).toEqual({
      map: 0,
      ndcg: 0,
      precision: 0,
      recall: 0,
      users: 0,
    })
  })
})

describe('stratifiedSplit', () => {
  const { data } = plantedHistory({ nUsers: 150, nItems: 60, clusters: 3, perUser: 10, noise: 0.2, seed: 11 })

  it('gives each item round-half-even(75%) of its interactions for training, the rest for test', () => {
    const split = stratifiedSplit(data, 0.75, 42)
    expect(split.train.length + split.test.length).toBe(data.items.length)
    expect(new Set([...split.train, ...split.test]).size).toBe(data.items.length)
    const total = new Map<number, number>()
    const train = new Map<number, number>()
    for (const i of data.items) total.set(i, (total.get(i) ?? 0) + 1)
    for (const p of split.train)
      train.set(data.items[p] as number, (train.get(data.items[p] as number) ?? 0) + 1)
    for (const [item, count] of total) expect(train.get(item) ?? 0).toBe(roundHalfEven(0.75 * count))
  })

  it('is fixed by its seed and changes with it', () => {
    const a = stratifiedSplit(data, 0.75, 42)
    expect(stratifiedSplit(data, 0.75, 42)).toEqual(a)
    expect(stratifiedSplit(data, 0.75, 43).test).not.toEqual(a.test)
    expect(() => stratifiedSplit(data, 1, 42)).toThrow(/ratio must lie strictly between 0 and 1/)
  })

  it("rounds halves to even like Python's round()", () => {
    expect([0.5, 1.5, 2.5, 3.5, 0.75, 3.75, 4.25, 4.5, 7].map(roundHalfEven)).toEqual([
      0, 2, 2, 4, 1, 4, 4, 4, 7,
    ])
  })

  it('scores a model on the held-out part: EASE far above popularity on planted clusters', () => {
    const split = stratifiedSplit(data, 0.75, 42)
    const score = (algorithm: 'ease' | 'popularity') =>
      scoreSplit(
        trainModel(trainingPart(data, split), { algorithm, topN: 10, topSimilar: 0 }),
        data,
        split,
        10,
      )
    const ease = score('ease')
    const popularity = score('popularity')
    // The users with something on both sides of the split.
    const inTest = new Set([...split.test].map((p) => data.users[p] as number))
    const inTrain = new Set([...split.train].map((p) => data.users[p] as number))
    expect(ease.users).toBe([...inTest].filter((u) => inTrain.has(u)).length)
    expect(ease.users).toBeGreaterThan(100)
    expect(ease.ndcg).toBeGreaterThan(popularity.ndcg * 1.5)
    expect(ease.precision).toBeGreaterThan(popularity.precision * 1.5)
  })
})
