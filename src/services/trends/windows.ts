import type { Cache } from '../../platform/cache/cache.js'
import {
  type CountRow,
  DAY,
  GRAINS,
  type Grain,
  HOUR,
  MINUTE,
  type Slice,
  type SubjectKind,
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
const METRICS: readonly Metric[] = ['p', 'w']
const MARKER = ''
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
  /** How long after its end a bucket stays cached: the windows it serves and those before them (rank changes). */
  private readonly retention: Partial<Record<Grain, number>>

  constructor(
    private readonly cache: Cache,
    private readonly store: TrendsStore,
    private readonly now: () => number,
    graceMs: number,
  ) {
    // 5-minute buckets also stand in for hours not sealed yet (up to the grace after the hour's end).
    this.retention = { '5m': graceMs + 3 * HOUR, '1h': 15 * DAY }
  }

  /** Whether the cache keeps this counter's bucket now. */
  isCached(row: CountRow): boolean {
    const retention = this.retention[row.grain]
    return retention !== undefined && row.bucket + GRAINS[row.grain] + retention > this.now()
  }

  private ttl(grain: Grain, bucket: number): number {
    return Math.max(MIN_TTL_MS, bucket + GRAINS[grain] + (this.retention[grain] ?? 0) - this.now())
  }

  /** Raises the cached counters to these totals (read back from the DB in the commit that made them). */
  async raise(totals: readonly CountRow[]): Promise<void> {
    const sets = new Map<string, { grain: Grain; bucket: number; entries: [string, number][] }>()
    const add = (row: CountRow, metric: Metric, score: number) => {
      const key = counterKey(row.region, row.grain, row.bucket, row.kind, metric)
      const set = sets.get(key)
      if (set) set.entries.push([row.subjectId, score])
      else sets.set(key, { grain: row.grain, bucket: row.bucket, entries: [[row.subjectId, score]] })
    }
    for (const row of totals) {
      if (this.retention[row.grain] === undefined) continue
      if (row.plays > 0) add(row, 'p', row.plays)
      if (row.watchedMs > 0) add(row, 'w', row.watchedMs)
    }
    await Promise.all(
      [...sets].map(([key, set]) => this.cache.zraise(key, set.entries, this.ttl(set.grain, set.bucket))),
    )
  }

  /**
   * Makes the sets of every slice whole, reloading from the DB those without the marker; false when
   * the cache cannot be reached (the caller then reads the DB).
   */
  private async ensure(
    region: string,
    kinds: readonly SubjectKind[],
    slices: readonly Slice[],
  ): Promise<boolean> {
    const keys: { key: string; grain: Grain; bucket: number }[] = []
    for (const { grain, bucket } of slices)
      for (const kind of kinds)
        for (const metric of METRICS)
          keys.push({ key: counterKey(region, grain, bucket, kind, metric), grain, bucket })
    const markers = await this.cache.zmscore(
      keys.map((k) => k.key),
      [MARKER],
    )
    if (!markers) return false
    const missing = new Map<Grain, Set<number>>()
    keys.forEach((k, i) => {
      if (markers[i]?.[0] !== undefined) return
      const buckets = missing.get(k.grain) ?? new Set()
      missing.set(k.grain, buckets.add(k.bucket))
    })
    for (const [grain, buckets] of missing) {
      const sets = new Map<string, { bucket: number; entries: [string, number][] }>()
      for (const bucket of buckets)
        for (const kind of kinds)
          for (const metric of METRICS)
            sets.set(counterKey(region, grain, bucket, kind, metric), { bucket, entries: [[MARKER, 1]] })
      for (const row of await this.store.counts(grain, region, kinds, [...buckets])) {
        if (row.plays > 0)
          sets
            .get(counterKey(region, grain, row.bucket, row.kind, 'p'))
            ?.entries.push([row.subjectId, row.plays])
        if (row.watchedMs > 0)
          sets
            .get(counterKey(region, grain, row.bucket, row.kind, 'w'))
            ?.entries.push([row.subjectId, row.watchedMs])
      }
      await Promise.all(
        [...sets].map(([key, set]) => this.cache.zraise(key, set.entries, this.ttl(grain, set.bucket))),
      )
    }
    return true
  }

  /**
   * The `limit` subjects of highest trending score over the slices of a window, with their plays and
   * watched time in it: from the cache, or from the DB when the cache cannot be reached.
   */
  async top(
    region: string,
    kinds: readonly SubjectKind[],
    slices: readonly Slice[],
    limit: number,
  ): Promise<Ranked[]> {
    const fromCache = (await this.ensure(region, kinds, slices))
      ? await this.topFromCache(region, kinds, slices, limit)
      : undefined
    return fromCache ?? this.topFromDb(region, kinds, slices, limit)
  }

  /** Trending score (time-decayed plays) of each subject id, of any of kinds, over the slices of a window. */
  async scores(
    region: string,
    kinds: readonly SubjectKind[],
    slices: readonly Slice[],
    ids: readonly string[],
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    if (ids.length === 0) return out
    if (await this.ensure(region, kinds, slices)) {
      const keys: string[] = []
      const weights: number[] = []
      for (const kind of kinds)
        for (const { grain, bucket, weight } of slices) {
          keys.push(counterKey(region, grain, bucket, kind, 'p'))
          weights.push(weight)
        }
      const matrix = await this.cache.zmscore(keys, ids)
      if (matrix) {
        matrix.forEach((row, k) => {
          row.forEach((score, i) => {
            const id = ids[i]
            if (id !== undefined && score !== undefined)
              out.set(id, (out.get(id) ?? 0) + score * (weights[k] ?? 0))
          })
        })
        return out
      }
    }
    const wanted = new Set(ids)
    for (const r of await this.fromDb(region, kinds, slices))
      if (wanted.has(r.id)) out.set(r.id, (out.get(r.id) ?? 0) + r.score)
    return out
  }

  private async topFromCache(
    region: string,
    kinds: readonly SubjectKind[],
    slices: readonly Slice[],
    limit: number,
  ): Promise<Ranked[] | undefined> {
    const ranked: Ranked[] = []
    const weights = slices.map((s) => s.weight)
    for (const [i, kind] of kinds.entries()) {
      if (i > 0) await yieldToRequests()
      const plays = slices.map((s) => counterKey(region, s.grain, s.bucket, kind, 'p'))
      const watched = slices.map((s) => counterKey(region, s.grain, s.bucket, kind, 'w'))
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
    kinds: readonly SubjectKind[],
    slices: readonly Slice[],
    limit: number,
  ): Promise<Ranked[]> {
    return sortRanked((await this.fromDb(region, kinds, slices)).filter((r) => r.score > 0)).slice(0, limit)
  }

  private async fromDb(
    region: string,
    kinds: readonly SubjectKind[],
    slices: readonly Slice[],
  ): Promise<Ranked[]> {
    const bySubject = new Map<string, Ranked>()
    const grains = new Map<Grain, Map<number, number>>()
    for (const { grain, bucket, weight } of slices)
      grains.set(grain, (grains.get(grain) ?? new Map()).set(bucket, weight))
    for (const [grain, weightOf] of grains)
      for (const row of await this.store.counts(grain, region, kinds, [...weightOf.keys()])) {
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
    return [...bySubject.values()]
  }
}

/** Lets the event loop take other work (requests) between steps of a long in-process computation. */
export function yieldToRequests(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
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
