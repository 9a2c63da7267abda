import { counter, gauge, tally } from '../metrics.js'

export const cacheRequests = counter('reel_cache_requests_total', 'Cache reads by result.', [
  'result',
] as const)

/** Hits and misses are counted on every cache read: kept as plain numbers until /metrics is read. */
const cacheHits = tally(cacheRequests, { result: 'hit' })
const cacheMisses = tally(cacheRequests, { result: 'miss' })

/** Counts a cache read that found `value` (undefined: a miss). */
export function countCacheRead(value: string | undefined): void {
  if (value === undefined) cacheMisses.inc()
  else cacheHits.inc()
}

export const cacheErrors = counter(
  'reel_cache_errors_total',
  'Cache operations that failed because a node could not be reached (reads count as misses, writes are dropped).',
  ['node', 'op'] as const,
)

export const cacheNodeUp = gauge(
  'reel_cache_node_up',
  '1 while a cache node answers, 0 while it is unreachable.',
  ['node'] as const,
)

export const cacheEntries = gauge(
  'reel_cache_entries',
  'Entries held by the in-process cache (set at each sweep of expired window counters, every second).',
)
