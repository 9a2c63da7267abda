import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import { errorMessage } from '../errors.js'
import { HashRing } from '../hash-ring.js'
import type { Logger } from '../log.js'
import { type Cache, CacheUnavailableError, checkIncrement, checkTtl } from './cache.js'
import { cacheErrors, cacheNodeUp, cacheRequests } from './metrics.js'

export interface RedisCacheOptions {
  /** One URL per node, e.g. redis://10.0.0.1:6379/0; keys are spread over them by a hash ring. */
  urls: string[]
  /** Prepended to every key, so that installs (and tests) can share one Redis. */
  prefix: string
  log: Logger
  /** A command not answered in this time fails (the node counts as down for that call). */
  commandTimeoutMs?: number
  connectTimeoutMs?: number
  /** Upper bound of the pause between reconnection attempts to a node that is down. */
  maxReconnectDelayMs?: number
}

interface RedisNode {
  /** host:port/db, without credentials: the node's name on the ring, in logs and in metrics. */
  readonly id: string
  readonly client: Redis
  /** Settles once the first connection attempt has succeeded or failed. */
  readonly started: Promise<void>
  failing: boolean
}

// Starts the TTL only when the counter has none, i.e. when INCRBY just created it.
const INCR_SCRIPT = `local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n`
const INCR_SHA = createHash('sha1').update(INCR_SCRIPT).digest('hex')

/**
 * The scaled Cache: Redis nodes on a client-side consistent-hash ring (EVCache-style). A node that
 * is down costs its share of the keys, never an error or a wait: with no offline queue and no
 * retries a command to it fails at once, reads count as misses and writes are dropped, while
 * ioredis keeps reconnecting in the background. Keys are not moved to another node meanwhile,
 * which would leave stale copies behind when the node comes back.
 */
export class RedisCache implements Cache {
  readonly kind = 'redis'
  readonly #nodes = new Map<string, RedisNode>()
  readonly #ring: HashRing
  readonly #prefix: string
  readonly #log: Logger
  #closing = false

  constructor(options: RedisCacheOptions) {
    if (options.urls.length === 0) throw new Error('RedisCache needs at least one Redis URL')
    this.#prefix = options.prefix
    this.#log = options.log
    const connectTimeout = options.connectTimeoutMs ?? 1000
    const maxReconnectDelay = options.maxReconnectDelayMs ?? 2000
    for (const url of options.urls) {
      const id = nodeId(url)
      if (this.#nodes.has(id)) throw new Error(`Redis node ${id} is listed twice`)
      const client = new Redis(url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: options.commandTimeoutMs ?? 500,
        connectTimeout,
        retryStrategy: (attempt) => Math.min(attempt * 100, maxReconnectDelay),
      })
      const node: RedisNode = { id, client, started: settled(client, connectTimeout), failing: false }
      client.on('ready', () => this.#recovered(node))
      client.on('error', (e: unknown) => this.#failed(node, e))
      client.on('close', () => {
        if (!node.failing) this.#failed(node, new Error('connection closed'))
      })
      this.#nodes.set(id, node)
      cacheNodeUp.set({ node: id }, 0)
    }
    this.#ring = new HashRing(this.#nodes.keys())
  }

  /** The node (host:port/db) that holds key. */
  nodeFor(key: string): string {
    return this.#nodeFor(key).id
  }

  async get(key: string): Promise<string | undefined> {
    const node = this.#nodeFor(key)
    try {
      const value = (await this.#run(node, 'get', (c) => c.get(this.#prefix + key))) ?? undefined
      cacheRequests.inc({ result: value === undefined ? 'miss' : 'hit' })
      return value
    } catch {
      cacheRequests.inc({ result: 'error' })
      return undefined
    }
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    const ttl = checkTtl(ttlMs)
    const write = (c: Redis) => c.set(this.#prefix + key, value, 'PX', ttl)
    await this.#run(this.#nodeFor(key), 'set', write).catch(ignore)
  }

  async del(...keys: string[]): Promise<void> {
    const byNode = new Map<RedisNode, string[]>()
    for (const key of keys) {
      const node = this.#nodeFor(key)
      byNode.set(node, [...(byNode.get(node) ?? []), this.#prefix + key])
    }
    await Promise.all(
      [...byNode].map(([node, nodeKeys]) => this.#run(node, 'del', (c) => c.del(...nodeKeys)).catch(ignore)),
    )
  }

  async ttl(key: string): Promise<number | undefined> {
    try {
      const ms = await this.#run(this.#nodeFor(key), 'ttl', (c) => c.pttl(this.#prefix + key))
      if (ms === -2) return undefined
      return ms === -1 ? Number.POSITIVE_INFINITY : ms
    } catch {
      return undefined
    }
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number> {
    const ttl = checkTtl(ttlMs)
    checkIncrement(by)
    const node = this.#nodeFor(key)
    const args = [1, this.#prefix + key, by, ttl] as const
    const result = await this.#run(node, 'incr', async (c) => {
      try {
        return await c.evalsha(INCR_SHA, ...args)
      } catch (e) {
        if (!errorMessage(e).startsWith('NOSCRIPT')) throw e
        return c.eval(INCR_SCRIPT, ...args)
      }
    })
    if (typeof result !== 'number') throw new Error(`unexpected reply to incr: ${String(result)}`)
    return result
  }

  async ping(): Promise<void> {
    const results = await Promise.allSettled(
      [...this.#nodes.values()].map((n) => this.#run(n, 'ping', (c) => c.ping())),
    )
    const down = [...this.#nodes.keys()].filter((_, i) => results[i]?.status === 'rejected')
    if (down.length > 0) throw new CacheUnavailableError(`cache node(s) unreachable: ${down.join(', ')}`)
  }

  async close(): Promise<void> {
    this.#closing = true
    await Promise.all(
      [...this.#nodes.values()].map(async ({ client }) => {
        if (client.status !== 'ready') return client.disconnect()
        await client.quit().catch(() => client.disconnect())
      }),
    )
  }

  #nodeFor(key: string): RedisNode {
    const node = this.#nodes.get(this.#ring.nodeFor(key) ?? '')
    if (!node) throw new Error('the cache ring is empty')
    return node
  }

  /** Runs a command on node; an unreachable node becomes CacheUnavailableError, a Redis error reply passes through. */
  async #run<T>(node: RedisNode, op: string, command: (client: Redis) => Promise<T>): Promise<T> {
    if (node.client.status !== 'ready') await node.started
    try {
      const result = await command(node.client)
      this.#recovered(node)
      return result
    } catch (e) {
      if (e instanceof Error && e.name === 'ReplyError') throw e
      cacheErrors.inc({ node: node.id, op })
      this.#failed(node, e)
      throw new CacheUnavailableError(`cache node ${node.id} is unreachable: ${errorMessage(e)}`)
    }
  }

  #failed(node: RedisNode, e: unknown): void {
    cacheNodeUp.set({ node: node.id }, 0)
    if (node.failing || this.#closing) return
    node.failing = true
    this.#log.warn(
      { node: node.id, err: errorMessage(e) },
      'cache node unreachable: its reads miss and its writes are dropped until it is back',
    )
  }

  #recovered(node: RedisNode): void {
    cacheNodeUp.set({ node: node.id }, 1)
    if (!node.failing) return
    node.failing = false
    this.#log.info({ node: node.id }, 'cache node reachable again')
  }
}

function nodeId(url: string): string {
  const u = new URL(url)
  const db = Number(u.pathname.slice(1) || '0')
  return `${u.hostname}:${u.port || '6379'}/${db}`
}

/** Resolves on the client's first ready, error or end (or after timeoutMs), so that start-up calls wait for it. */
function settled(client: Redis, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      client.off('ready', done).off('error', done).off('end', done)
      resolve()
    }
    const timer = setTimeout(done, timeoutMs).unref()
    client.on('ready', done).on('error', done).on('end', done)
  })
}

function ignore(): void {}
