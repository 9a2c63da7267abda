import { createHash } from 'node:crypto'

/** Points per node: enough that each node's share of the keys stays within a few percent of 1/N. */
export const DEFAULT_VIRTUAL_NODES = 160

/**
 * A consistent-hash ring (ketama-style): each node owns many points on a 32-bit circle and a key
 * belongs to the first point clockwise from its hash. Adding or removing a node moves only the keys
 * of that node's points, about 1/N of them. The ring depends only on the set of nodes (and weights),
 * not on the order they were added, so every process given the same nodes routes keys the same way.
 */
export class HashRing {
  readonly #virtualNodes: number
  readonly #weights = new Map<string, number>()
  #points = new Uint32Array(0)
  #owners: string[] = []

  constructor(nodes: Iterable<string> = [], options: { virtualNodes?: number } = {}) {
    const virtualNodes = options.virtualNodes ?? DEFAULT_VIRTUAL_NODES
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1) {
      throw new RangeError(`virtualNodes must be a positive integer, got ${virtualNodes}`)
    }
    this.#virtualNodes = virtualNodes
    for (const node of nodes) this.#weights.set(node, 1)
    this.#rebuild()
  }

  /** The nodes on the ring, sorted. */
  get nodes(): string[] {
    return [...this.#weights.keys()].sort()
  }

  get size(): number {
    return this.#weights.size
  }

  has(node: string): boolean {
    return this.#weights.has(node)
  }

  /** Adds a node (or changes its weight); a node of weight 2 gets twice the points, so about twice the keys. */
  add(node: string, weight = 1): this {
    if (!(weight > 0) || !Number.isFinite(weight))
      throw new RangeError(`weight must be positive, got ${weight}`)
    if (this.#weights.get(node) === weight) return this
    this.#weights.set(node, weight)
    this.#rebuild()
    return this
  }

  remove(node: string): this {
    if (this.#weights.delete(node)) this.#rebuild()
    return this
  }

  /** The node that owns key, or undefined when the ring is empty. */
  nodeFor(key: string): string | undefined {
    if (this.#owners.length === 0) return undefined
    return this.#owners[this.#firstPointAtOrAfter(hashKey(key))]
  }

  /** Up to n distinct nodes for key: its owner first, then the next distinct nodes clockwise (fallbacks). */
  nodesFor(key: string, n: number): string[] {
    const want = Math.min(n, this.#weights.size)
    const found: string[] = []
    if (want <= 0) return found
    const start = this.#firstPointAtOrAfter(hashKey(key))
    for (let i = 0; i < this.#owners.length && found.length < want; i++) {
      const owner = this.#owners[(start + i) % this.#owners.length]
      if (owner !== undefined && !found.includes(owner)) found.push(owner)
    }
    return found
  }

  #firstPointAtOrAfter(hash: number): number {
    const points = this.#points
    let lo = 0
    let hi = points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((points[mid] ?? 0) < hash) lo = mid + 1
      else hi = mid
    }
    return lo === points.length ? 0 : lo
  }

  #rebuild(): void {
    const entries: { point: number; node: string }[] = []
    for (const [node, weight] of this.#weights) {
      const count = Math.max(1, Math.round(this.#virtualNodes * weight))
      for (let digestIndex = 0; digestIndex * 4 < count; digestIndex++) {
        const digest = createHash('md5').update(`${node}-${digestIndex}`).digest()
        for (let part = 0; part < 4 && digestIndex * 4 + part < count; part++) {
          entries.push({ point: digest.readUInt32LE(part * 4), node })
        }
      }
    }
    // Ties broken by node name so that the ring does not depend on insertion order.
    entries.sort((a, b) => a.point - b.point || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0))
    this.#points = Uint32Array.from(entries, (e) => e.point)
    this.#owners = entries.map((e) => e.node)
  }
}

/** The key's position on the ring: the first 32 bits of its MD5, as ketama clients compute it. */
export function hashKey(key: string): number {
  return createHash('md5').update(key).digest().readUInt32LE(0)
}
