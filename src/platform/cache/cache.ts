/**
 * The Cache port: a fast copy of data whose truth lives in the DB. Reads that fail (a Redis node
 * going away) behave as misses and writes that fail are dropped, so a broken cache costs speed,
 * never correctness or availability.
 */
export interface Cache {
  readonly kind: 'memory' | 'redis'
  /** The value, or undefined on a miss or when the cache cannot be reached. */
  get(key: string): Promise<string | undefined>
  /** Stores value for ttlMs milliseconds. Never throws when the cache cannot be reached (the write is dropped). */
  set(key: string, value: string, ttlMs: number): Promise<void>
  /** Removes keys. Never throws. */
  del(...keys: string[]): Promise<void>
  /** Remaining time to live in ms; undefined when the key is absent (or the cache unreachable). */
  ttl(key: string): Promise<number | undefined>
  /**
   * Atomically adds `by` to a counter, starting its TTL when the counter is created; returns the new
   * value. Throws CacheUnavailableError when the cache cannot be reached (callers choose to fail open).
   */
  incr(key: string, ttlMs: number, by?: number): Promise<number>
  /** Throws when the cache cannot be reached (for /readyz). */
  ping(): Promise<void>
  close(): Promise<void>
}

export class CacheUnavailableError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CacheUnavailableError'
  }
}

/** A TTL that is not a positive number is a bug in the caller, not a cache outage: it throws RangeError. */
export function checkTtl(ttlMs: number): number {
  if (!(ttlMs > 0) || !Number.isFinite(ttlMs))
    throw new RangeError(`ttlMs must be a positive number, got ${ttlMs}`)
  return Math.ceil(ttlMs)
}

export function checkIncrement(by: number): void {
  if (!Number.isSafeInteger(by)) throw new RangeError(`incr needs a whole number, got ${by}`)
}

/**
 * Read-through: the cached JSON for key, else load() from the source of truth, cached for ttlMs.
 * `undefined` from load() is not cached (a missing row is asked again next time).
 */
export async function readThrough<T>(
  cache: Cache,
  key: string,
  ttlMs: number,
  load: () => Promise<T | undefined>,
): Promise<T | undefined> {
  const hit = await cache.get(key)
  if (hit !== undefined) {
    try {
      return JSON.parse(hit) as T
    } catch {
      await cache.del(key)
    }
  }
  const value = await load()
  if (value !== undefined) await cache.set(key, JSON.stringify(value), ttlMs)
  return value
}
