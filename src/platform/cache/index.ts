import type { Logger } from '../log.js'
import type { Cache } from './cache.js'
import { MemoryCache } from './memory.js'
import { RedisCache } from './redis.js'

export { type Cache, CacheUnavailableError, readThrough } from './cache.js'
export { MemoryCache } from './memory.js'
export { RedisCache, type RedisCacheOptions } from './redis.js'

/** Redis nodes on a hash ring when redisUrls are given, else the in-process LRU. */
export function createCache(options: {
  redisUrls: string[]
  prefix: string
  maxEntries: number
  log: Logger
}): Cache {
  if (options.redisUrls.length === 0) return new MemoryCache({ maxEntries: options.maxEntries })
  return new RedisCache({ urls: options.redisUrls, prefix: options.prefix, log: options.log })
}
