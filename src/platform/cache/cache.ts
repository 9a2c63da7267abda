import { LRUCache } from 'lru-cache'

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
  /**
   * Sorted sets, for window counters. Raises each member's score to at least the given one (a
   * member absent is added), starting the TTL when the set is created. Scores that only grow (a
   * running total) make this converge whatever order writers arrive in. Never throws when the cache
   * cannot be reached (the write is dropped).
   */
  zraise(
    key: string,
    entries: ReadonlyArray<readonly [member: string, score: number]>,
    ttlMs: number,
  ): Promise<void>
  /**
   * The `limit` members of highest Σ weight × score over keys (a missing key is empty), highest
   * first, ties by member in reverse byte order; undefined when the cache cannot be reached. Keys of
   * one call must share a hash tag (`{…}`) so that one node holds them all.
   */
  zunionTop(
    keys: readonly string[],
    weights: readonly number[],
    limit: number,
  ): Promise<[string, number][] | undefined>
  /**
   * For each key, each member's score (undefined where absent); undefined when the cache cannot be
   * reached. Keys of one call must share a hash tag.
   */
  zmscore(keys: readonly string[], members: readonly string[]): Promise<(number | undefined)[][] | undefined>
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

/**
 * The part of a key that places it on a node: the text inside its first `{…}` when that is not
 * empty (as Redis Cluster's hash tags), else the whole key.
 */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{')
  if (open < 0) return key
  const close = key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

export function checkScores(entries: ReadonlyArray<readonly [string, number]>): void {
  for (const [, score] of entries)
    if (!Number.isFinite(score))
      throw new RangeError(`a sorted-set score must be a finite number, got ${score}`)
}

export function checkUnion(keys: readonly string[], weights: readonly number[], limit: number): void {
  if (keys.length !== weights.length)
    throw new RangeError(`zunionTop needs one weight per key, got ${weights.length} for ${keys.length}`)
  if (weights.some((w) => !Number.isFinite(w)))
    throw new RangeError('zunionTop weights must be finite numbers')
  if (!Number.isSafeInteger(limit) || limit < 0)
    throw new RangeError(`limit must be a whole number, got ${limit}`)
}

export function checkIncrement(by: number): void {
  if (!Number.isSafeInteger(by)) throw new RangeError(`incr needs a whole number, got ${by}`)
}

/** What the values parsed from cache entries may take of memory, per cache (JSON characters × 4). */
const PARSED_BUDGET = 64 * 2 ** 20

/**
 * Values parsed from cache entries, per cache: a hit whose JSON is the one parsed before (the same
 * string, or the same text from Redis) is not parsed again. The values are frozen: callers share them.
 */
const parsedOf = new WeakMap<Cache, LRUCache<string, { json: string; value: unknown }>>()

/** Freezes a value parsed from JSON and everything in it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

/**
 * Read-through: the cached JSON for key, else load() from the source of truth, cached for ttlMs.
 * `undefined` from load() is not cached (a missing row is asked again next time). A value read
 * from the cache is frozen and may be shared with other callers (copy it to change it).
 */
export async function readThrough<T>(
  cache: Cache,
  key: string,
  ttlMs: number,
  load: () => Promise<T | undefined>,
): Promise<T | undefined> {
  const hit = await cache.get(key)
  if (hit !== undefined) {
    let parsed = parsedOf.get(cache)
    const known = parsed?.get(key)
    if (known?.json === hit) return known.value as T
    try {
      const value = deepFreeze(JSON.parse(hit) as T)
      if (!parsed) {
        parsed = new LRUCache({
          maxSize: PARSED_BUDGET,
          sizeCalculation: (e) => Math.max(1, 4 * e.json.length),
        })
        parsedOf.set(cache, parsed)
      }
      parsed.set(key, { json: hit, value })
      return value
    } catch {
      await cache.del(key)
    }
  }
  const value = await load()
  if (value !== undefined) await cache.set(key, JSON.stringify(value), ttlMs)
  return value
}
