import { describe, expect, it } from 'vitest'
import { HashRing } from './hash-ring.js'

const keys = Array.from({ length: 10_000 }, (_, i) => `title:${i}:manifest`)
const assign = (ring: HashRing) => new Map(keys.map((k) => [k, ring.nodeFor(k)]))

function shares(ring: HashRing): Map<string, number> {
  const counts = new Map<string, number>()
  for (const k of keys) {
    const node = ring.nodeFor(k) ?? 'none'
    counts.set(node, (counts.get(node) ?? 0) + 1)
  }
  return new Map([...counts].map(([node, n]) => [node, n / keys.length]))
}

describe('HashRing', () => {
  it('is empty until a node is added', () => {
    const ring = new HashRing()
    expect(ring.nodeFor('k')).toBeUndefined()
    expect(ring.nodesFor('k', 3)).toEqual([])
    ring.add('a')
    expect(ring.nodeFor('k')).toBe('a')
  })

  it('is deterministic and independent of the order nodes were added', () => {
    const a = new HashRing(['n1', 'n2', 'n3', 'n4'])
    const b = new HashRing(['n4', 'n2', 'n1', 'n3'])
    const c = new HashRing().add('n3').add('n1').add('n4').add('n2')
    expect([...assign(a)]).toEqual([...assign(b)])
    expect([...assign(a)]).toEqual([...assign(c)])
    // Pinned values: a change here re-shards every deployed cache.
    expect(['a', 'b', 'c', 'user:42'].map((k) => a.nodeFor(k))).toEqual(['n4', 'n3', 'n2', 'n4'])
  })

  it('spreads keys evenly over the nodes', () => {
    const ring = new HashRing(['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379', '10.0.0.4:6379'])
    const s = shares(ring)
    expect(s.size).toBe(4)
    for (const share of s.values()) expect(Math.abs(share - 0.25)).toBeLessThan(0.25 * 0.2)
  })

  it('moves only about 1/(N+1) of the keys, all to the new node, when a node is added', () => {
    const ring = new HashRing(['n1', 'n2', 'n3', 'n4'])
    const before = assign(ring)
    ring.add('n5')
    const after = assign(ring)
    const moved = keys.filter((k) => before.get(k) !== after.get(k))
    expect(moved.every((k) => after.get(k) === 'n5')).toBe(true)
    expect(Math.abs(moved.length / keys.length - 1 / 5)).toBeLessThan(0.05)

    ring.remove('n5')
    expect([...assign(ring)]).toEqual([...before])
  })

  it('moves only the removed node’s keys when a node is removed', () => {
    const ring = new HashRing(['n1', 'n2', 'n3', 'n4', 'n5'])
    const before = assign(ring)
    ring.remove('n3')
    const after = assign(ring)
    for (const k of keys) {
      if (before.get(k) !== 'n3') expect(after.get(k)).toBe(before.get(k))
      else expect(after.get(k)).not.toBe('n3')
    }
  })

  it('gives a node of weight 2 about twice the keys', () => {
    const ring = new HashRing(['a', 'b']).add('c', 2)
    const s = shares(ring)
    expect(Math.abs((s.get('c') ?? 0) - 0.5)).toBeLessThan(0.06)
  })

  it('lists distinct fallback nodes, the owner first', () => {
    const ring = new HashRing(['n1', 'n2', 'n3'])
    for (const k of keys.slice(0, 200)) {
      const nodes = ring.nodesFor(k, 2)
      expect(nodes).toHaveLength(2)
      expect(nodes[0]).toBe(ring.nodeFor(k))
      expect(new Set(nodes).size).toBe(2)
      // The fallback is where the key goes if its owner leaves.
      const without = new HashRing(ring.nodes.filter((n) => n !== nodes[0]))
      expect(without.nodeFor(k)).toBe(nodes[1])
    }
    expect(ring.nodesFor('k', 10).sort()).toEqual(['n1', 'n2', 'n3'])
  })
})
