import { LRUCache } from 'lru-cache'
import { type Cache, checkIncrement, checkScores, checkTtl, checkUnion } from './cache.js'
import { countCacheRead } from './metrics.js'

/** A sorted set: member → score. */
type SortedSet = Map<string, number>
/** A counter (incr), changed in place: one lookup per increment. Read back as its decimal text. */
interface Counter {
  n: number
}
type Entry = string | SortedSet | Counter

/** The embedded Cache: an in-process LRU with a TTL per entry (a string, or a sorted set). */
export class MemoryCache implements Cache {
  readonly kind = 'memory'
  readonly #lru: LRUCache<string, Entry>

  constructor(options: { maxEntries: number }) {
    // ttlResolution 0: lru-cache's cached clock can otherwise report a remaining TTL above the one set.
    this.#lru = new LRUCache<string, Entry>({ max: options.maxEntries, ttlResolution: 0 })
  }

  async get(key: string): Promise<string | undefined> {
    const entry = this.#lru.get(key)
    const value = typeof entry === 'string' ? entry : isCounter(entry) ? String(entry.n) : undefined
    countCacheRead(value)
    return value
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#lru.set(key, value, { ttl: checkTtl(ttlMs) })
  }

  async del(...keys: string[]): Promise<void> {
    for (const key of keys) this.#lru.delete(key)
  }

  async ttl(key: string): Promise<number | undefined> {
    if (!this.#lru.has(key)) return undefined
    return Math.max(0, Math.round(this.#lru.getRemainingTTL(key)))
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number> {
    const ttl = checkTtl(ttlMs)
    checkIncrement(by)
    const current = this.#lru.get(key)
    if (current === undefined) {
      this.#lru.set(key, { n: by }, { ttl })
      return by
    }
    if (isCounter(current)) {
      // Changed in place: the counter's window started when it was created, as with Redis PEXPIRE … NX.
      current.n += by
      return current.n
    }
    const n = typeof current === 'string' && /^-?\d+$/.test(current) ? Number(current) : Number.NaN
    if (!Number.isSafeInteger(n)) throw new TypeError(`cache value at "${key}" is not a counter`)
    this.#lru.set(key, { n: n + by }, { noUpdateTTL: true })
    return n + by
  }

  async zraise(key: string, entries: ReadonlyArray<readonly [string, number]>, ttlMs: number): Promise<void> {
    const ttl = checkTtl(ttlMs)
    checkScores(entries)
    let set = this.#lru.get(key)
    if (typeof set === 'string' || isCounter(set))
      throw new TypeError(`cache value at "${key}" is not a sorted set`)
    if (set === undefined) {
      set = new Map()
      this.#lru.set(key, set, { ttl })
    }
    for (const [member, score] of entries) {
      const current = set.get(member)
      if (current === undefined || score > current) set.set(member, score)
    }
  }

  async zunionTop(
    keys: readonly string[],
    weights: readonly number[],
    limit: number,
  ): Promise<[string, number][] | undefined> {
    checkUnion(keys, weights, limit)
    const sums = new Map<string, number>()
    keys.forEach((key, i) => {
      const set = this.#sortedSet(key)
      const weight = weights[i] ?? 1
      if (set) for (const [member, score] of set) sums.set(member, (sums.get(member) ?? 0) + weight * score)
    })
    return [...sums].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0)).slice(0, limit)
  }

  async zmscore(keys: readonly string[], members: readonly string[]): Promise<(number | undefined)[][]> {
    return keys.map((key) => {
      const set = this.#sortedSet(key)
      return members.map((member) => set?.get(member))
    })
  }

  #sortedSet(key: string): SortedSet | undefined {
    const entry = this.#lru.get(key)
    if (typeof entry === 'string' || isCounter(entry))
      throw new TypeError(`cache value at "${key}" is not a sorted set`)
    return entry
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#lru.clear()
  }
}

function isCounter(entry: Entry | undefined): entry is Counter {
  return typeof entry === 'object' && !(entry instanceof Map)
}
