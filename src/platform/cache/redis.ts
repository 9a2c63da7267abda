import { createHash, randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { errorMessage } from '../errors.js'
import { HashRing } from '../hash-ring.js'
import type { Logger } from '../log.js'
import {
  type Cache,
  CacheUnavailableError,
  checkIncrement,
  checkScores,
  checkTtl,
  checkUnion,
  hashTagOf,
} from './cache.js'
import { cacheErrors, cacheNodeUp, cacheRequests, countCacheRead } from './metrics.js'

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

// ZADD GT raises scores only; the TTL starts when the set is created, as with INCR_SCRIPT.
const ZRAISE_SCRIPT = `redis.call('ZADD', KEYS[1], 'GT', unpack(ARGV, 2))
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`

// Weighted union into a scratch key on the same node, its top members, and the scratch key gone.
const ZUNION_TOP_SCRIPT = `local args = {KEYS[1], #KEYS - 1}
for i = 2, #KEYS do args[#args + 1] = KEYS[i] end
args[#args + 1] = 'WEIGHTS'
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('ZUNIONSTORE', unpack(args))
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
redis.call('DEL', KEYS[1])
return top`

const ZMSCORE_SCRIPT = `local out = {}
for i = 1, #KEYS do out[i] = redis.call('ZMSCORE', KEYS[i], unpack(ARGV)) end
return out`

/** Lua's unpack() has a stack limit near 8 000: longer argument lists go in several calls. */
const SCRIPT_ARGS_CHUNK = 1000

interface Script {
  source: string
  sha: string
}
const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') })
const INCR = script(INCR_SCRIPT)
const ZRAISE = script(ZRAISE_SCRIPT)
const ZUNION_TOP = script(ZUNION_TOP_SCRIPT)
const ZMSCORE = script(ZMSCORE_SCRIPT)

/**
 * The scaled Cache: Redis nodes (6.2 or later) on a client-side consistent-hash ring (EVCache-style).
 * A key's node follows its hash tag (`{…}`) when it has one, so related keys can share a node. A node that
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
      countCacheRead(value)
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
    const result = await this.#run(node, 'incr', (c) => evalScript(c, INCR, [this.#prefix + key], [by, ttl]))
    if (typeof result !== 'number') throw new Error(`unexpected reply to incr: ${String(result)}`)
    return result
  }

  async zraise(key: string, entries: ReadonlyArray<readonly [string, number]>, ttlMs: number): Promise<void> {
    const ttl = checkTtl(ttlMs)
    checkScores(entries)
    const node = this.#nodeFor(key)
    for (let i = 0; i < entries.length; i += SCRIPT_ARGS_CHUNK) {
      const args: (string | number)[] = [ttl]
      for (const [member, score] of entries.slice(i, i + SCRIPT_ARGS_CHUNK)) args.push(score, member)
      try {
        await this.#run(node, 'zraise', (c) => evalScript(c, ZRAISE, [this.#prefix + key], args))
      } catch (e) {
        if (!(e instanceof CacheUnavailableError)) throw e
        return
      }
    }
  }

  async zunionTop(
    keys: readonly string[],
    weights: readonly number[],
    limit: number,
  ): Promise<[string, number][] | undefined> {
    checkUnion(keys, weights, limit)
    if (keys.length === 0 || limit === 0) return []
    const node = this.#nodeOfAll(keys)
    const scratch = `${this.#prefix}${keys[0]}:union:${randomUUID()}`
    try {
      const reply = await this.#run(node, 'zunion', (c) =>
        evalScript(
          c,
          ZUNION_TOP,
          [scratch, ...keys.map((k) => this.#prefix + k)],
          [limit, ...weights.map((w) => String(w))],
        ),
      )
      if (!Array.isArray(reply)) throw new Error(`unexpected reply to zunionTop: ${String(reply)}`)
      const top: [string, number][] = []
      for (let i = 0; i + 1 < reply.length; i += 2) top.push([String(reply[i]), Number(reply[i + 1])])
      return top
    } catch (e) {
      if (e instanceof CacheUnavailableError) return undefined
      throw e
    }
  }

  async zmscore(
    keys: readonly string[],
    members: readonly string[],
  ): Promise<(number | undefined)[][] | undefined> {
    if (keys.length === 0) return []
    if (members.length === 0) return keys.map(() => [])
    const node = this.#nodeOfAll(keys)
    const out: (number | undefined)[][] = keys.map(() => [])
    try {
      for (let i = 0; i < members.length; i += SCRIPT_ARGS_CHUNK) {
        const chunk = members.slice(i, i + SCRIPT_ARGS_CHUNK)
        const reply = await this.#run(node, 'zmscore', (c) =>
          evalScript(
            c,
            ZMSCORE,
            keys.map((k) => this.#prefix + k),
            chunk,
          ),
        )
        if (!Array.isArray(reply)) throw new Error(`unexpected reply to zmscore: ${String(reply)}`)
        reply.forEach((scores: unknown, k) => {
          const row = out[k]
          if (!row || !Array.isArray(scores)) return
          for (const score of scores)
            row.push(score === null || score === undefined ? undefined : Number(score))
        })
      }
      return out
    } catch (e) {
      if (e instanceof CacheUnavailableError) return undefined
      throw e
    }
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
    const node = this.#nodes.get(this.#ring.nodeFor(hashTagOf(key)) ?? '')
    if (!node) throw new Error('the cache ring is empty')
    return node
  }

  /** The one node that holds every key; keys spread over several nodes are a bug in the caller. */
  #nodeOfAll(keys: readonly string[]): RedisNode {
    const nodes = new Set(keys.map((k) => this.#nodeFor(k)))
    const [node] = nodes
    if (!node || nodes.size > 1)
      throw new RangeError(
        `keys of one sorted-set call must share a hash tag ({…}), got ${keys.slice(0, 3).join(', ')}…`,
      )
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

/** Runs a Lua script by its SHA, sending the source only when the node does not know it yet. */
async function evalScript(
  client: Redis,
  { sha, source }: Script,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await client.evalsha(sha, keys.length, ...keys, ...args)
  } catch (e) {
    if (!errorMessage(e).startsWith('NOSCRIPT')) throw e
    return client.eval(source, keys.length, ...keys, ...args)
  }
}
