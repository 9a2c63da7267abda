import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { engines, hasRedis, uniqueName } from '../../../test/engines.js'
import type { Logger } from '../log.js'
import { registry } from '../metrics.js'
import { type Cache, CacheUnavailableError, readThrough } from './cache.js'
import { MemoryCache } from './memory.js'
import { cacheNodeUp } from './metrics.js'
import { RedisCache } from './redis.js'

interface LogLine {
  level: number
  msg: string
  node?: string
}

/** A logger whose lines the test can read. */
function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) })
  return { log, lines }
}

const PINO_WARN = 40

/** Two Redis nodes for the tests: the configured URLs, or one URL and the next database number. */
function twoRedisUrls(): [string, string] {
  const [first = 'redis://127.0.0.1:6379/1', second] = engines.redisUrls
  if (second) return [first, second]
  const u = new URL(first)
  u.pathname = `/${Number(u.pathname.slice(1) || '0') + 1}`
  return [first, u.toString()]
}

/** Deletes every key under prefix on each URL: the Redis is shared, so never FLUSHDB. */
async function deleteKeys(urls: string[], prefix: string): Promise<void> {
  for (const url of urls) {
    const redis = new Redis(url, { lazyConnect: true })
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    await redis.quit()
  }
}

interface TestCache {
  cache: Cache
  cleanup: () => Promise<void>
}

function cacheContract(kind: 'memory' | 'redis', skip: boolean, open: () => Promise<TestCache>) {
  describe.skipIf(skip)(`Cache contract: ${kind}`, () => {
    let cache: Cache
    let cleanup: () => Promise<void>
    beforeAll(async () => {
      ;({ cache, cleanup } = await open())
    })
    afterAll(async () => {
      await cleanup?.()
    })

    it('is the expected adapter and answers ping', async () => {
      expect(cache.kind).toBe(kind)
      await cache.ping()
    })

    it('gets what was set, misses what was not, overwrites, deletes', async () => {
      expect(await cache.get('basic:missing')).toBeUndefined()
      await cache.set('basic:a', 'one', 10_000)
      expect(await cache.get('basic:a')).toBe('one')
      await cache.set('basic:a', 'two', 10_000)
      expect(await cache.get('basic:a')).toBe('two')
      await cache.set('basic:b', '', 10_000)
      expect(await cache.get('basic:b')).toBe('')
      await cache.del('basic:a', 'basic:b', 'basic:never-set')
      expect(await cache.get('basic:a')).toBeUndefined()
      expect(await cache.get('basic:b')).toBeUndefined()
      await cache.del()
    })

    it('keeps many keys (spread over every node) apart', async () => {
      const keys = Array.from({ length: 100 }, (_, i) => `many:${i}`)
      await Promise.all(keys.map((k, i) => cache.set(k, `v${i}`, 10_000)))
      expect(await Promise.all(keys.map((k) => cache.get(k)))).toEqual(keys.map((_, i) => `v${i}`))
      await cache.del(...keys)
      expect(await Promise.all(keys.map((k) => cache.get(k)))).toEqual(keys.map(() => undefined))
    })

    it('reports the remaining TTL and forgets a key when it expires', async () => {
      expect(await cache.ttl('ttl:missing')).toBeUndefined()
      await cache.set('ttl:long', 'x', 10_000)
      const ttl = await cache.ttl('ttl:long')
      expect(ttl).toBeGreaterThan(9_000)
      expect(ttl).toBeLessThanOrEqual(10_000)

      await cache.set('ttl:short', 'x', 60)
      expect(await cache.get('ttl:short')).toBe('x')
      await sleep(120)
      expect(await cache.get('ttl:short')).toBeUndefined()
      expect(await cache.ttl('ttl:short')).toBeUndefined()
    })

    it('rejects a TTL that is not positive as a bug', async () => {
      await expect(cache.set('bad-ttl', 'x', 0)).rejects.toThrow(RangeError)
      await expect(cache.incr('bad-ttl', -1)).rejects.toThrow(RangeError)
      await expect(cache.incr('bad-ttl', 1000, 1.5)).rejects.toThrow(RangeError)
    })

    it('counts with incr, starting the TTL when the counter is created and not on later increments', async () => {
      expect(await cache.incr('incr:a', 1_000)).toBe(1)
      const first = await cache.ttl('incr:a')
      expect(first).toBeGreaterThan(900)
      await sleep(80)
      expect(await cache.incr('incr:a', 1_000, 5)).toBe(6)
      expect(await cache.ttl('incr:a')).toBeLessThanOrEqual(1_000 - 70)
      expect(await cache.get('incr:a')).toBe('6')
      expect(await cache.incr('incr:a', 1_000, -2)).toBe(4)

      expect(await cache.incr('incr:short', 60)).toBe(1)
      await sleep(120)
      expect(await cache.incr('incr:short', 60)).toBe(1)
    })

    it('increments atomically under concurrency', async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => cache.incr('incr:concurrent', 10_000)),
      )
      expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    })

    it('refuses to incr a value that is not a counter, without calling the cache unavailable', async () => {
      await cache.set('incr:text', 'hello', 10_000)
      const error = await cache.incr('incr:text', 10_000).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(Error)
      expect(error).not.toBeInstanceOf(CacheUnavailableError)
      await cache.set('incr:float', '1.5', 10_000)
      await expect(cache.incr('incr:float', 10_000)).rejects.toThrow()
      expect(await cache.get('incr:float')).toBe('1.5')
    })

    it('counts on from a number set as text, and a set replaces a counter', async () => {
      await cache.set('incr:from-text', '41', 10_000)
      expect(await cache.incr('incr:from-text', 10_000)).toBe(42)
      expect(await cache.get('incr:from-text')).toBe('42')
      await cache.set('incr:from-text', 'done', 10_000)
      expect(await cache.get('incr:from-text')).toBe('done')
      await expect(cache.incr('incr:from-text', 10_000)).rejects.toThrow()
      expect(await cache.incr('incr:counter-as-set', 10_000)).toBe(1)
      await expect(cache.zraise('incr:counter-as-set', [['a', 1]], 10_000)).rejects.toThrow()
      await cache.del('incr:counter-as-set')
      expect(await cache.get('incr:counter-as-set')).toBeUndefined()
    })

    it('keeps unicode keys and values intact', async () => {
      const key = 'uni:🎬 título/日本語:ключ'
      const value = 'Amélie — 天気の子 👩‍👩‍👧 \n\t"quoted" \\ \u0000 end'
      await cache.set(key, value, 10_000)
      expect(await cache.get(key)).toBe(value)
      expect(await cache.get('uni:🎬 título/日本語:ключ2')).toBeUndefined()
      expect(await cache.incr('uni:compteur·✓', 10_000)).toBe(1)
    })

    describe('sorted sets (window counters)', () => {
      it('raises scores and adds members, never lowers them', async () => {
        await cache.zraise(
          '{zs}:raise',
          [
            ['a', 3],
            ['b', 1.5],
          ],
          10_000,
        )
        await cache.zraise(
          '{zs}:raise',
          [
            ['a', 2],
            ['b', 4],
            ['c', 0],
          ],
          10_000,
        )
        expect(await cache.zmscore(['{zs}:raise'], ['a', 'b', 'c', 'missing'])).toEqual([
          [3, 4, 0, undefined],
        ])
      })

      it('starts the TTL when the set is created, not on later raises', async () => {
        await cache.zraise('{zs}:ttl', [['a', 1]], 1_000)
        await sleep(80)
        await cache.zraise('{zs}:ttl', [['a', 2]], 1_000)
        expect(await cache.ttl('{zs}:ttl')).toBeLessThanOrEqual(1_000 - 70)
        await cache.zraise('{zs}:short', [['a', 1]], 60)
        await sleep(120)
        expect(await cache.zmscore(['{zs}:short'], ['a'])).toEqual([[undefined]])
      })

      it('reads scores of several sets at once, a missing set having none', async () => {
        await cache.zraise(
          '{zs}:m1',
          [
            ['x', 1],
            ['y', 2],
          ],
          10_000,
        )
        await cache.zraise('{zs}:m2', [['y', 5]], 10_000)
        expect(await cache.zmscore(['{zs}:m1', '{zs}:m2', '{zs}:none'], ['x', 'y'])).toEqual([
          [1, 2],
          [undefined, 5],
          [undefined, undefined],
        ])
        expect(await cache.zmscore(['{zs}:m1'], [])).toEqual([[]])
        expect(await cache.zmscore([], ['x'])).toEqual([])
      })

      it('keeps many members and unicode members intact', async () => {
        const entries = Array.from({ length: 2_500 }, (_, i) => [`t-${i}·🎬`, i] as const)
        await cache.zraise('{zs}:many', entries, 10_000)
        const [scores] = (await cache.zmscore(['{zs}:many'], ['t-0·🎬', 't-2499·🎬'])) ?? []
        expect(scores).toEqual([0, 2499])
        expect(await cache.zunionTop(['{zs}:many'], [1], 2)).toEqual([
          ['t-2499·🎬', 2499],
          ['t-2498·🎬', 2498],
        ])
      })

      it('unions with weights: highest first, limited, ties in reverse member order', async () => {
        await cache.zraise(
          '{zs}:u1',
          [
            ['a', 1],
            ['b', 2],
            ['c', 3],
          ],
          10_000,
        )
        await cache.zraise(
          '{zs}:u2',
          [
            ['a', 10],
            ['d', 1],
          ],
          10_000,
        )
        expect(await cache.zunionTop(['{zs}:u1', '{zs}:u2', '{zs}:u-missing'], [1, 0.5, 7], 10)).toEqual([
          ['a', 6],
          ['c', 3],
          ['b', 2],
          ['d', 0.5],
        ])
        expect(await cache.zunionTop(['{zs}:u1', '{zs}:u2'], [2, 1], 2)).toEqual([
          ['a', 12],
          ['c', 6],
        ])
        await cache.zraise(
          '{zs}:tie',
          [
            ['m1', 1],
            ['m3', 1],
            ['m2', 1],
          ],
          10_000,
        )
        expect(await cache.zunionTop(['{zs}:tie'], [1], 2)).toEqual([
          ['m3', 1],
          ['m2', 1],
        ])
        expect(await cache.zunionTop(['{zs}:u1'], [1], 0)).toEqual([])
        expect(await cache.zunionTop([], [], 5)).toEqual([])
      })

      it('rejects bad scores, weights and limits as bugs', async () => {
        await expect(cache.zraise('{zs}:bad', [['a', Number.NaN]], 1_000)).rejects.toThrow(RangeError)
        await expect(cache.zraise('{zs}:bad', [['a', 1]], 0)).rejects.toThrow(RangeError)
        await expect(cache.zunionTop(['{zs}:u1'], [], 5)).rejects.toThrow(RangeError)
        await expect(cache.zunionTop(['{zs}:u1'], [1], -1)).rejects.toThrow(RangeError)
      })

      it('refuses a sorted-set operation on a plain value, without calling the cache unavailable', async () => {
        await cache.set('{zs}:text', 'hello', 10_000)
        const error = await cache.zraise('{zs}:text', [['a', 1]], 10_000).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(Error)
        expect(error).not.toBeInstanceOf(CacheUnavailableError)
      })
    })

    describe('readThrough', () => {
      it('loads once, then serves the cached copy', async () => {
        const load = vi.fn(async () => ({ id: 't1', title: 'Léon', tags: ['a'] }))
        expect(await readThrough(cache, 'rt:title', 10_000, load)).toEqual({
          id: 't1',
          title: 'Léon',
          tags: ['a'],
        })
        expect(await readThrough(cache, 'rt:title', 10_000, load)).toEqual({
          id: 't1',
          title: 'Léon',
          tags: ['a'],
        })
        expect(load).toHaveBeenCalledTimes(1)
        expect(JSON.parse((await cache.get('rt:title')) ?? 'null')).toEqual({
          id: 't1',
          title: 'Léon',
          tags: ['a'],
        })
      })

      it('parses an entry once while it holds the same JSON, and shares the value frozen', async () => {
        const load = vi.fn(async () => ({ id: 't2', tags: ['a'] }))
        await readThrough(cache, 'rt:shared', 10_000, load)
        const first = await readThrough<{ id: string; tags: string[] }>(cache, 'rt:shared', 10_000, load)
        const second = await readThrough<{ id: string; tags: string[] }>(cache, 'rt:shared', 10_000, load)
        expect(second).toBe(first)
        expect(Object.isFrozen(first) && Object.isFrozen(first?.tags)).toBe(true)
        expect(() => first?.tags.push('b')).toThrow(TypeError)
        // Another writer changes the entry: the next read parses the new JSON.
        await cache.set('rt:shared', '{"id":"t2","tags":["c"]}', 10_000)
        expect(await readThrough(cache, 'rt:shared', 10_000, load)).toEqual({ id: 't2', tags: ['c'] })
        // Gone from the cache: loaded again, not served from the parsed copy.
        await cache.del('rt:shared')
        expect(await readThrough(cache, 'rt:shared', 10_000, load)).toEqual({ id: 't2', tags: ['a'] })
        expect(load).toHaveBeenCalledTimes(2)
      })

      it('does not cache undefined (a missing row is asked again)', async () => {
        const load = vi.fn(async () => undefined)
        expect(await readThrough(cache, 'rt:missing', 10_000, load)).toBeUndefined()
        expect(await readThrough(cache, 'rt:missing', 10_000, load)).toBeUndefined()
        expect(load).toHaveBeenCalledTimes(2)
        expect(await cache.get('rt:missing')).toBeUndefined()
      })

      it('caches falsy values that are not undefined', async () => {
        const load = vi.fn(async () => 0)
        expect(await readThrough(cache, 'rt:zero', 10_000, load)).toBe(0)
        expect(await readThrough(cache, 'rt:zero', 10_000, load)).toBe(0)
        expect(load).toHaveBeenCalledTimes(1)
      })

      it('survives corrupt JSON by reloading and replacing it', async () => {
        await cache.set('rt:corrupt', '{"half', 10_000)
        const load = vi.fn(async () => ({ ok: true }))
        expect(await readThrough(cache, 'rt:corrupt', 10_000, load)).toEqual({ ok: true })
        expect(load).toHaveBeenCalledTimes(1)
        expect(await cache.get('rt:corrupt')).toBe('{"ok":true}')
      })

      it('lets the loader’s error through and caches nothing', async () => {
        const load = vi.fn(async () => {
          throw new Error('db down')
        })
        await expect(readThrough(cache, 'rt:error', 10_000, load)).rejects.toThrow('db down')
        expect(await cache.get('rt:error')).toBeUndefined()
      })
    })
  })
}

cacheContract('memory', false, async () => {
  const cache = new MemoryCache({ maxEntries: 10_000 })
  return { cache, cleanup: () => cache.close() }
})

const redisAvailable = hasRedis()

cacheContract('redis', !redisAvailable, async () => {
  const urls = twoRedisUrls()
  const prefix = `${uniqueName('reel-test')}:`
  const cache = new RedisCache({ urls, prefix, log: pino({ level: 'silent' }) })
  return {
    cache,
    cleanup: async () => {
      await cache.close()
      await deleteKeys(urls, prefix)
    },
  }
})

describe('MemoryCache', () => {
  it('evicts the least recently used entry beyond maxEntries', async () => {
    const cache = new MemoryCache({ maxEntries: 2 })
    await cache.set('a', '1', 10_000)
    await cache.set('b', '2', 10_000)
    await cache.get('a')
    await cache.set('c', '3', 10_000)
    expect(await cache.get('a')).toBe('1')
    expect(await cache.get('b')).toBeUndefined()
    expect(await cache.get('c')).toBe('3')
  })

  it('drops sorted sets and counters once expired, without waiting to be read or pushed out', async () => {
    const cache = new MemoryCache({ maxEntries: 1000, sweepMs: 20 })
    try {
      for (let i = 0; i < 50; i++) await cache.zraise(`window:${i}`, [['s:1', 1]], 30)
      await cache.incr('requests', 30)
      await cache.set('kept', 'v', 60_000)
      // Expired, then made again with a longer TTL: the sweep of its first window must leave it.
      await cache.zraise('again', [['s:1', 1]], 30)
      await new Promise((r) => setTimeout(r, 60))
      await cache.zraise('again', [['s:2', 2]], 60_000)
      expect(cache.size).toBe(53)
      const deadline = Date.now() + 5000
      while (cache.size > 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      expect(cache.size).toBe(2)
      await new Promise((r) => setTimeout(r, 50))
      expect((await registry.getSingleMetric('reel_cache_entries')?.get())?.values[0]?.value).toBe(2)
      expect(await cache.get('kept')).toBe('v')
      expect(await cache.zmscore(['again'], ['s:1', 's:2'])).toEqual([[undefined, 2]])
    } finally {
      await cache.close()
    }
  })
})

/** A TCP proxy in front of the shared Redis, so that a test can take "a node" down without stopping Redis. */
class TcpProxy {
  port = 0
  #server: net.Server | undefined
  readonly #sockets = new Set<net.Socket>()

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost)
      this.#sockets.add(client).add(upstream)
      const drop = () => {
        client.destroy()
        upstream.destroy()
        this.#sockets.delete(client)
        this.#sockets.delete(upstream)
      }
      client.on('error', drop).on('close', drop)
      upstream.on('error', drop).on('close', drop)
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address')
    this.port = address.port
    this.#server = server
  }

  /** Stops listening and cuts every open connection, like a node that died. */
  async stop(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await sleep(50)
  }
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now()
  const value = await run()
  return { value, ms: performance.now() - start }
}

async function nodeUp(node: string): Promise<number | undefined> {
  return (await cacheNodeUp.get()).values.find((v) => v.labels.node === node)?.value
}

describe.skipIf(!redisAvailable)('RedisCache on a ring of nodes', () => {
  const [directUrl, proxiedUrl] = twoRedisUrls()
  const prefix = `${uniqueName('reel-test')}:`
  const proxyTarget = new URL(proxiedUrl)
  const proxy = new TcpProxy(proxyTarget.hostname, Number(proxyTarget.port || '6379'))
  const { log, lines } = capturingLogger()
  let cache: RedisCache
  let viaProxy: string

  beforeAll(async () => {
    await proxy.start()
    const u = new URL(proxiedUrl)
    u.hostname = '127.0.0.1'
    u.port = String(proxy.port)
    viaProxy = u.toString()
    cache = new RedisCache({ urls: [directUrl, viaProxy], prefix, log, maxReconnectDelayMs: 100 })
    await eventually(
      () =>
        cache.ping().then(
          () => true,
          () => false,
        ),
      3_000,
    )
  })

  afterAll(async () => {
    await cache?.close()
    await proxy.stop()
    await deleteKeys([directUrl, proxiedUrl], prefix)
  })

  it('stores each key on the node the ring names, using both nodes', async () => {
    const keys = Array.from({ length: 200 }, (_, i) => `spread:${i}`)
    await Promise.all(keys.map((k) => cache.set(k, k, 10_000)))
    const nodes = new Set(keys.map((k) => cache.nodeFor(k)))
    expect(nodes.size).toBe(2)
    const direct = new Redis(directUrl)
    const proxied = new Redis(proxiedUrl)
    try {
      for (const key of keys) {
        const [here, there] = isProxied(key) ? [proxied, direct] : [direct, proxied]
        expect(await here.get(prefix + key)).toBe(key)
        expect(await there.exists(prefix + key)).toBe(0)
      }
    } finally {
      direct.disconnect()
      proxied.disconnect()
    }
  })

  it('keeps keys of one hash tag on one node, and refuses a union over several nodes', async () => {
    const tags = Array.from({ length: 20 }, (_, i) => `tag${i}`)
    for (const tag of tags) {
      const nodes = new Set(Array.from({ length: 10 }, (_, i) => cache.nodeFor(`w:{${tag}}:bucket:${i}`)))
      expect(nodes.size).toBe(1)
      expect(cache.nodeFor(`other:{${tag}}`)).toBe(cache.nodeFor(tag))
    }
    const spread = Array.from({ length: 50 }, (_, i) => `nospread:${i}`)
    await expect(
      cache.zunionTop(
        spread,
        spread.map(() => 1),
        5,
      ),
    ).rejects.toThrow(RangeError)
    await expect(cache.zmscore(spread, ['a'])).rejects.toThrow(RangeError)
  })

  function isProxied(key: string): boolean {
    return cache.nodeFor(key).startsWith(`127.0.0.1:${proxy.port}/`)
  }

  it('turns a node that dies into fast misses, keeps the other node serving, and uses it again when it is back', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `down:${i}`)
    const lost = keys.find(isProxied)
    const kept = keys.find((k) => !isProxied(k))
    if (lost === undefined || kept === undefined) throw new Error('expected keys on both nodes')
    const lostNode = cache.nodeFor(lost)
    await cache.set(lost, 'lost-value', 30_000)
    await cache.set(kept, 'kept-value', 30_000)
    expect(await cache.get(lost)).toBe('lost-value')
    expect(await nodeUp(lostNode)).toBe(1)

    await proxy.stop()

    const read = await timed(() => cache.get(lost))
    expect(read.value).toBeUndefined()
    expect(read.ms).toBeLessThan(1_000)

    const load = vi.fn(async () => ({ from: 'db' }))
    const through = await timed(() => readThrough(cache, lost, 30_000, load))
    expect(through.value).toEqual({ from: 'db' })
    expect(load).toHaveBeenCalledTimes(1)
    expect(through.ms).toBeLessThan(1_000)

    // Window counters on the lost node: reads answer "unknown" (undefined), writes are dropped.
    const lostSet = `${lost}:{${lost}}:zset`
    await expect(cache.zraise(lostSet, [['a', 1]], 30_000)).resolves.toBeUndefined()
    expect(await cache.zunionTop([lostSet], [1], 5)).toBeUndefined()
    expect(await cache.zmscore([lostSet], ['a'])).toBeUndefined()

    expect(await cache.get(kept)).toBe('kept-value')
    const writes = await timed(async () => {
      await cache.set(lost, 'dropped', 30_000)
      await cache.del(lost, kept)
      return cache.ttl(lost)
    })
    expect(writes.value).toBeUndefined()
    expect(writes.ms).toBeLessThan(1_000)
    expect(await cache.get(kept)).toBeUndefined()

    await expect(cache.incr(lost, 1_000)).rejects.toBeInstanceOf(CacheUnavailableError)
    await expect(cache.ping()).rejects.toBeInstanceOf(CacheUnavailableError)
    expect(await nodeUp(lostNode)).toBe(0)
    for (let i = 0; i < 5; i++) await cache.get(lost)
    const warnings = lines.filter((l) => l.level === PINO_WARN && l.node === lostNode)
    expect(warnings).toHaveLength(1)

    await proxy.start()
    await eventually(
      () =>
        cache.ping().then(
          () => true,
          () => false,
        ),
      5_000,
    )
    // The write dropped during the outage never reached the node, so it still holds the old value.
    expect(await cache.get(lost)).toBe('lost-value')
    await cache.set(lost, 'after', 30_000)
    expect(await cache.get(lost)).toBe('after')
    expect(await cache.incr(`${lost}:n`, 10_000)).toBe(1)
    expect(await nodeUp(lostNode)).toBe(1)
    expect(lines.some((l) => l.node === lostNode && l.msg.includes('reachable again'))).toBe(true)
  })
})
