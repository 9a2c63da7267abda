import type { Cache } from '../../platform/cache/cache.js'
import {
  type CountRow,
  DAY,
  decayWeights,
  GRAINS,
  type Grain,
  HOUR,
  MINUTE,
  SUBJECT_KINDS,
  type SubjectKind,
  WINDOWS,
  type WindowName,
  windowBuckets,
} from './rules.js'
import type { TrendsStore } from './store.js'

/**
 * Window counters in the Cache: per region, grain, bucket and kind, one sorted set of plays and one
 * of watched ms (member: the subject id). Sets hold running totals copied from the DB after each
 * commit, raised with ZADD GT, so writers in any order converge on the DB's numbers. A set that
 * holds every DB counter of its bucket carries the marker member '', which goes when the cache
 * loses the set (flush, eviction, a node gone): a bucket without it is reloaded from the DB.
 */

type Metric = 'p' | 'w'
const MARKER = ''

/** How long after its end a bucket stays cached: the window it belongs to and the one before it (rank changes). */
const RETENTION: Partial<Record<Grain, number>> = { '5m': 3 * HOUR, '1h': 15 * DAY }
/** The grains kept in the cache (daily counters are read from the DB). */
export const CACHED_GRAINS: readonly Grain[] = ['5m', '1h']
/** A bucket reloaded after its retention still stays this long. */
const MIN_TTL_MS = 10 * MINUTE

/** The region is the hash tag: one region's sets share a node, so a window is one union on one node. */
export function counterKey(
  region: string,
  grain: Grain,
  bucket: number,
  kind: SubjectKind,
  metric: Metric,
): string {
  return `trends:{${region}}:${grain}:${bucket}:${kind}:${metric}`
}

export interface Ranked {
  kind: SubjectKind
  id: string
  /** Time-decayed plays: the trending score. */
  score: number
  /** Plays started in the window. */
  plays: number
  /** Media time watched in the window. */
  watchedMs: number
}

export class WindowCounters {
  constructor(
    private readonly cache: Cache,
    private readonly store: TrendsStore,
    private readonly now: () => number,
  ) {}

  private ttl(grain: Grain, bucket: number): number {
    const retention = RETENTION[grain] ?? 0
    return Math.max(MIN_TTL_MS, bucket + GRAINS[grain] + retention - this.now())
  }

  /** Raises the cached counters to these totals (read back from the DB in the commit that made them). */
  async raise(totals: readonly CountRow[]): Promise<void> {
    const sets = new Map<string, { grain: Grain; bucket: number; entries: [string, number][] }>()
    const add = (key: string, row: CountRow, score: number) => {
      const set = sets.get(key)
      if (set) set.entries.push([row.subjectId, score])
      else sets.set(key, { grain: row.grain, bucket: row.bucket, entries: [[row.subjectId, score]] })
    }
    for (const row of totals) {
      if (!CACHED_GRAINS.includes(row.grain)) continue
      if (row.plays > 0) add(counterKey(row.region, row.grain, row.bucket, row.kind, 'p'), row, row.plays)
      if (row.watchedMs > 0)
        add(counterKey(row.region, row.grain, row.bucket, row.kind, 'w'), row, row.watchedMs)
    }
    await Promise.all(
      [...sets].map(([key, set]) => this.cache.zraise(key, set.entries, this.ttl(set.grain, set.bucket))),
    )
  }

  /**
   * Makes every bucket's sets whole, reloading from the DB those without the marker; false when the
   * cache cannot be reached (the caller then reads the DB).
   */
  async ensure(
    region: string,
    grain: Grain,
    kinds: readonly SubjectKind[],
    buckets: readonly number[],
  ): Promise<boolean> {
    const keys: { key: string; bucket: number }[] = []
    for (const bucket of buckets)
      for (const kind of kinds)
        for (const metric of ['p', 'w'] as const)
          keys.push({ key: counterKey(region, grain, bucket, kind, metric), bucket })
    const markers = await this.cache.zmscore(
      keys.map((k) => k.key),
      [MARKER],
    )
    if (!markers) return false
    const missing = [...new Set(keys.filter((_, i) => markers[i]?.[0] === undefined).map((k) => k.bucket))]
    if (missing.length === 0) return true
    const rows = await this.store.counts(grain, region, kinds, missing)
    const sets = new Map<string, [string, number][]>()
    for (const bucket of missing)
      for (const kind of kinds)
        for (const metric of ['p', 'w'] as const)
          sets.set(counterKey(region, grain, bucket, kind, metric), [[MARKER, 1]])
    for (const row of rows) {
      if (row.plays > 0)
        sets.get(counterKey(region, grain, row.bucket, row.kind, 'p'))?.push([row.subjectId, row.plays])
      if (row.watchedMs > 0)
        sets.get(counterKey(region, grain, row.bucket, row.kind, 'w'))?.push([row.subjectId, row.watchedMs])
    }
    await Promise.all(
      [...sets].map(([key, entries]) => {
        const bucket = Number(key.split(':')[3])
        return this.cache.zraise(key, entries, this.ttl(grain, bucket))
      }),
    )
    return true
  }

  /** Whether the cache keeps this counter's bucket now. */
  isCached(row: CountRow): boolean {
    const retention = RETENTION[row.grain]
    return retention !== undefined && row.bucket + GRAINS[row.grain] + retention > this.now()
  }

  /** Trending score (time-decayed plays) of each subject id, of any kind, in a window ending at `end`. */
  async scores(
    region: string,
    window: WindowName,
    ids: readonly string[],
    end: number,
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    if (ids.length === 0) return out
    const { grain } = WINDOWS[window]
    const buckets = windowBuckets(window, end)
    const weights = decayWeights(window, buckets, end)
    if (await this.ensure(region, grain, SUBJECT_KINDS, buckets)) {
      const keys: string[] = []
      const keyWeights: number[] = []
      for (const kind of SUBJECT_KINDS)
        buckets.forEach((bucket, i) => {
          keys.push(counterKey(region, grain, bucket, kind, 'p'))
          keyWeights.push(weights[i] ?? 0)
        })
      const matrix = await this.cache.zmscore(keys, ids)
      if (matrix) {
        matrix.forEach((row, k) => {
          row.forEach((score, i) => {
            const id = ids[i]
            if (id !== undefined && score !== undefined)
              out.set(id, (out.get(id) ?? 0) + score * (keyWeights[k] ?? 0))
          })
        })
        return out
      }
    }
    const wanted = new Set(ids)
    const weightOf = new Map(buckets.map((b, i) => [b, weights[i] ?? 0]))
    for (const row of await this.store.counts(grain, region, SUBJECT_KINDS, buckets))
      if (wanted.has(row.subjectId))
        out.set(row.subjectId, (out.get(row.subjectId) ?? 0) + row.plays * (weightOf.get(row.bucket) ?? 0))
    return out
  }

  /**
   * The `limit` subjects of highest trending score in a window ending at `end`, with their plays and
   * watched time in it: from the cache, or from the DB when the cache cannot be reached.
   */
  async top(
    region: string,
    window: WindowName,
    kinds: readonly SubjectKind[],
    end: number,
    limit: number,
  ): Promise<Ranked[]> {
    const { grain } = WINDOWS[window]
    const buckets = windowBuckets(window, end)
    const weights = decayWeights(window, buckets, end)
    const fromCache = (await this.ensure(region, grain, kinds, buckets))
      ? await this.topFromCache(region, grain, kinds, buckets, weights, limit)
      : undefined
    return fromCache ?? this.topFromDb(region, grain, kinds, buckets, weights, limit)
  }

  private async topFromCache(
    region: string,
    grain: Grain,
    kinds: readonly SubjectKind[],
    buckets: readonly number[],
    weights: readonly number[],
    limit: number,
  ): Promise<Ranked[] | undefined> {
    const ranked: Ranked[] = []
    for (const kind of kinds) {
      const plays = buckets.map((b) => counterKey(region, grain, b, kind, 'p'))
      const watched = buckets.map((b) => counterKey(region, grain, b, kind, 'w'))
      const top = await this.cache.zunionTop(plays, weights, limit + 1)
      if (!top) return undefined
      const ids = top.map(([id]) => id).filter((id) => id !== MARKER)
      if (ids.length === 0) continue
      const [playScores, watchedScores] = await Promise.all([
        this.cache.zmscore(plays, ids),
        this.cache.zmscore(watched, ids),
      ])
      if (!playScores || !watchedScores) return undefined
      const scoreOf = new Map(top)
      ids.forEach((id, i) => {
        ranked.push({
          kind,
          id,
          score: scoreOf.get(id) ?? 0,
          plays: sumColumn(playScores, i),
          watchedMs: sumColumn(watchedScores, i),
        })
      })
    }
    return sortRanked(ranked).slice(0, limit)
  }

  private async topFromDb(
    region: string,
    grain: Grain,
    kinds: readonly SubjectKind[],
    buckets: readonly number[],
    weights: readonly number[],
    limit: number,
  ): Promise<Ranked[]> {
    const weightOf = new Map(buckets.map((b, i) => [b, weights[i] ?? 0]))
    const bySubject = new Map<string, Ranked>()
    for (const row of await this.store.counts(grain, region, kinds, buckets)) {
      const key = `${row.kind}|${row.subjectId}`
      const ranked = bySubject.get(key) ?? {
        kind: row.kind,
        id: row.subjectId,
        score: 0,
        plays: 0,
        watchedMs: 0,
      }
      ranked.score += row.plays * (weightOf.get(row.bucket) ?? 0)
      ranked.plays += row.plays
      ranked.watchedMs += row.watchedMs
      bySubject.set(key, ranked)
    }
    return sortRanked([...bySubject.values()].filter((r) => r.score > 0)).slice(0, limit)
  }
}

function sumColumn(matrix: readonly (number | undefined)[][], column: number): number {
  let sum = 0
  for (const row of matrix) sum += row[column] ?? 0
  return sum
}

/** Highest score first; ties by plays, then id, so every reader ranks alike. */
export function sortRanked(ranked: Ranked[]): Ranked[] {
  return ranked.sort(
    (a, b) => b.score - a.score || b.plays - a.plays || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  )
}
