import { LRUCache } from 'lru-cache'
import { type Cache, checkIncrement, checkTtl } from './cache.js'
import { cacheRequests } from './metrics.js'

/** The embedded Cache: an in-process LRU with a TTL per entry. */
export class MemoryCache implements Cache {
  readonly kind = 'memory'
  readonly #lru: LRUCache<string, string>

  constructor(options: { maxEntries: number }) {
    // ttlResolution 0: lru-cache's cached clock can otherwise report a remaining TTL above the one set.
    this.#lru = new LRUCache<string, string>({ max: options.maxEntries, ttlResolution: 0 })
  }

  async get(key: string): Promise<string | undefined> {
    const value = this.#lru.get(key)
    cacheRequests.inc({ result: value === undefined ? 'miss' : 'hit' })
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
    const current = this.#lru.has(key) ? this.#lru.get(key) : undefined
    if (current === undefined) {
      this.#lru.set(key, String(by), { ttl })
      return by
    }
    const n = Number(current)
    if (!Number.isSafeInteger(n)) throw new TypeError(`cache value at "${key}" is not a counter`)
    // noUpdateTTL: the counter's window started when it was created, as with Redis PEXPIRE … NX.
    this.#lru.set(key, String(n + by), { noUpdateTTL: true })
    return n + by
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#lru.clear()
  }
}
