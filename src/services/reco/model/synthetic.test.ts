import { describe, expect, it } from 'vitest'
import { measureTraining, plantedHistory } from './synthetic.js'

describe('plantedHistory', () => {
  const options = { nUsers: 50, nItems: 40, clusters: 4, perUser: 8, noise: 0.25, seed: 2 }

  it('gives every user perUser distinct items, mostly from their own cluster, the same for the same seed', () => {
    const h = plantedHistory(options)
    expect(h.data.users).toHaveLength(50 * 8)
    const byUser = new Map<number, Set<number>>()
    let own = 0
    for (let e = 0; e < h.data.users.length; e++) {
      const u = h.data.users[e] as number
      const i = h.data.items[e] as number
      const set = byUser.get(u) ?? new Set<number>()
      set.add(i)
      byUser.set(u, set)
      if (h.itemCluster[i] === h.userCluster[u]) own++
    }
    for (const set of byUser.values()) expect(set.size).toBe(8)
    // A random history would have a quarter in the own cluster.
    expect(own / h.data.users.length).toBeGreaterThan(0.5)
    for (const w of h.data.weights) expect(w).toBeGreaterThan(0)
    expect(plantedHistory(options).data).toEqual(h.data)
    expect(plantedHistory({ ...options, seed: 3 }).data.items).not.toEqual(h.data.items)
  })

  it('refuses clusters too small for the history asked', () => {
    expect(() => plantedHistory({ ...options, perUser: 11 })).toThrow(/at least perUser items/)
  })
})

describe('measureTraining', () => {
  it('reports the model with its time and the process memory', async () => {
    const { data } = plantedHistory({ nUsers: 60, nItems: 40, clusters: 4, perUser: 6, noise: 0.1, seed: 4 })
    const cost = await measureTraining(data, { algorithm: 'itemknn', topN: 5, topSimilar: 5 }, 'thread')
    expect(cost.model.algorithm).toBe('itemknn')
    expect(cost.trainMs).toBe(cost.model.trainMs)
    expect(cost.wallMs).toBeGreaterThanOrEqual(cost.trainMs)
    expect(cost.maxRssBytes).toBeGreaterThan(0)
    expect(cost.maxRssBytes).toBeGreaterThanOrEqual(cost.rssBeforeBytes * 0.5)
  })
})
