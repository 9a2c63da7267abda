import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Type } from '@sinclair/typebox'
import { accountsModule } from '../services/accounts/index.js'
import { billingModule } from '../services/billing/index.js'
import { catalogModule } from '../services/catalog/index.js'
import { cdnModule } from '../services/cdn/index.js'
import { gatewayModule } from '../services/gateway/index.js'
import { mediaModule } from '../services/media/index.js'
import { playbackModule } from '../services/playback/index.js'
import { recoModule } from '../services/reco/index.js'
import { searchModule } from '../services/search/index.js'
import { trendsModule } from '../services/trends/index.js'
import { Authenticator } from './auth.js'
import { type Blobs, createBlobs } from './blobs/index.js'
import { type Bus, busMigrations, createBus } from './bus/index.js'
import { type Cache, createCache } from './cache/index.js'
import { type Config, portKinds } from './config.js'
import { createDb, type Db, type ReelMigration } from './db/db.js'
import { errorMessage } from './errors.js'
import { createHttp, type Http } from './http/server.js'
import { createLogger, type Logger } from './log.js'
import { registry } from './metrics.js'
import {
  type Hook,
  type ModuleContext,
  SERVICE_NAMES,
  type ServiceApis,
  type ServiceModule,
  type ServiceName,
} from './modules.js'
import { lowerHelperThreads } from './priority.js'
import { secretsMigrations } from './secrets.js'

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string })
  .version

export const ALL_MODULES: readonly ServiceModule[] = [
  accountsModule,
  billingModule,
  catalogModule,
  mediaModule,
  playbackModule,
  cdnModule,
  searchModule,
  trendsModule,
  recoModule,
  gatewayModule,
]

/** Every table of every service plus the platform's own: the schema is whole in every process. */
export function allMigrations(): Record<string, ReelMigration> {
  const out: Record<string, ReelMigration> = { ...busMigrations, ...secretsMigrations }
  for (const m of ALL_MODULES) Object.assign(out, m.migrations ?? {})
  return out
}

export interface Ports {
  db: Db
  cache: Cache
  bus: Bus
  blobs: Blobs
}

export interface Reel {
  readonly config: Config
  readonly log: Logger
  readonly http: Http
  readonly ports: Ports
  readonly roles: readonly ServiceName[]
  /** A service's in-process API (for the CLI and tests). */
  use: ModuleContext['use']
  /** Listens on config.host:config.port and starts consumers and jobs; returns the base URL. */
  start(): Promise<string>
  /** Graceful: stops accepting, lets in-flight requests finish, stops jobs, closes the engines. */
  stop(): Promise<void>
}

export interface ReelOptions {
  config: Config
  roles?: readonly ServiceName[]
  log?: Logger
  /** The clock services read (default: Date.now); tests move it to reach billing dates. */
  clock?: () => number
  /** The service modules to choose from (default: every service of reel). */
  modules?: readonly ServiceModule[]
}

const READY_TIMEOUT_MS = 2000
/** The events pruned: the bulk of the log (heartbeats), archived by trends; others are replayed. */
const RETAINED_FOR_DAYS_ONLY = 'playback.'

/** Opens the ports, migrates, and registers the modules of the given roles (default: all). */
export async function createReel(options: ReelOptions): Promise<Reel> {
  const { config } = options
  const roles = options.roles ?? SERVICE_NAMES
  const log = options.log ?? createLogger(config.logLevel)
  const ports = await openPorts(config, log)
  const http = await createHttp({ log, bodyLimit: config.bodyLimit, version: VERSION })
  const auth = await Authenticator.create(config, ports.db, ports.cache)
  const apis = new Map<keyof ServiceApis, unknown>()
  const modules = options.modules ?? ALL_MODULES
  const startHooks: Hook[] = []
  const stopHooks: Hook[] = []
  const ctx: ModuleContext = {
    config,
    log,
    http,
    auth,
    now: options.clock ?? Date.now,
    ...ports,
    use: (name) => {
      if (!apis.has(name)) {
        const module = modules.find((m) => m.name === name)
        if (!module?.api) throw new Error(`no service "${String(name)}" offers an in-process API`)
        apis.set(name, module.api(ctx))
      }
      return apis.get(name) as ServiceApis[typeof name]
    },
    onStart: (hook) => startHooks.push(hook),
    onStop: (hook) => stopHooks.push(hook),
    every: (name, intervalMs, job) => {
      let timer: NodeJS.Timeout | undefined
      let running: Promise<void> | undefined
      startHooks.push(() => {
        timer = setInterval(() => {
          if (running) return
          running = job()
            .catch((e) => log.error({ job: name, err: e }, 'scheduled job failed'))
            .finally(() => {
              running = undefined
            })
        }, intervalMs)
        timer.unref()
      })
      stopHooks.push(async () => {
        clearInterval(timer)
        await running
      })
    },
  }
  registerPlatformRoutes(http, ports, roles, config)
  if (config.busRetentionDays > 0)
    ctx.every('bus-retention', config.busRetentionIntervalS * 1000, async () => {
      const before = ctx.now() - config.busRetentionDays * 24 * 3600_000
      const pruned = await ports.bus.prune(RETAINED_FOR_DAYS_ONLY, before)
      if (pruned > 0)
        log.info({ pruned, before: new Date(before).toISOString() }, 'pruned old playback events')
    })
  for (const module of modules) {
    if (roles.includes(module.name)) await module.register(ctx)
  }
  await http.ready()

  let stopping: Promise<void> | undefined
  return {
    config,
    log,
    http,
    ports,
    roles,
    use: ctx.use,
    async start() {
      const address = await http.listen({ port: config.port, host: config.host })
      // The event loop first: every other thread (V8's collector helpers, libuv's pool, which this
      // file system call has started if nothing had, SQLite's writer) yields the CPU to it.
      await fs.promises.access(config.dataDir).catch(() => {})
      const backgroundThreads = lowerHelperThreads()
      for (const hook of startHooks) await hook()
      log.info(
        { address, roles, adapters: portKinds(config), version: VERSION, backgroundThreads },
        'reel is listening',
      )
      return address
    },
    stop() {
      stopping ??= (async () => {
        await http.close()
        for (const hook of [...stopHooks].reverse()) {
          try {
            await hook()
          } catch (e) {
            log.error({ err: e }, 'stop hook failed')
          }
        }
        await closePorts(ports, log)
        log.info('reel stopped')
        log.flush()
      })()
      return stopping
    },
  }
}

async function openPorts(config: Config, log: Logger): Promise<Ports> {
  const db = createDb({
    databaseUrl: config.databaseUrl,
    schema: config.databaseSchema,
    sqliteFile: path.join(config.dataDir, 'reel.db'),
  })
  const cache = createCache({
    redisUrls: config.redisUrls,
    prefix: config.cachePrefix,
    maxEntries: config.cacheMaxEntries,
    log,
  })
  const blobs = createBlobs(
    config.s3Bucket
      ? {
          s3: {
            bucket: config.s3Bucket,
            endpoint: config.s3Endpoint,
            region: config.s3Region,
            accessKeyId: config.s3AccessKeyId,
            secretAccessKey: config.s3SecretAccessKey,
            forcePathStyle: config.s3ForcePathStyle,
          },
        }
      : { dir: path.join(config.dataDir, 'blobs') },
  )
  try {
    // Every table at once (the in-process bus keeps its log in the DB, so before the bus opens):
    // the migrator refuses a list that lacks migrations it applied before.
    const applied = await db.migrate(allMigrations())
    if (applied.length > 0) log.info({ applied }, 'database migrated')
    const bus = await createBus({ natsUrl: config.natsUrl, prefix: config.natsPrefix, db, log })
    return { db, cache, bus, blobs }
  } catch (e) {
    await Promise.allSettled([cache.close(), blobs.close(), db.close()])
    throw e
  }
}

async function closePorts(ports: Ports, log: Logger): Promise<void> {
  for (const [name, port] of [
    ['bus', ports.bus],
    ['cache', ports.cache],
    ['blobs', ports.blobs],
    ['db', ports.db],
  ] as const) {
    try {
      await port.close()
    } catch (e) {
      log.warn({ port: name, err: errorMessage(e) }, 'closing port failed')
    }
  }
}

/** Answers with the first settled of the check and a timeout, so /readyz never hangs. */
async function check(ping: () => Promise<void>): Promise<string> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS)
  })
  try {
    return await Promise.race([ping().then(() => 'ok'), timeout])
  } catch (e) {
    return `error: ${errorMessage(e)}`
  } finally {
    clearTimeout(timer)
  }
}

const Health = Type.Object({ status: Type.String() })
const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Record(Type.String(), Type.String()),
})
const SystemInfo = Type.Object({
  version: Type.String(),
  roles: Type.Array(Type.String()),
  adapters: Type.Object({
    db: Type.String(),
    cache: Type.String(),
    bus: Type.String(),
    blobs: Type.String(),
  }),
})

function registerPlatformRoutes(
  http: Http,
  ports: Ports,
  roles: readonly ServiceName[],
  config: Config,
): void {
  http.get(
    '/healthz',
    { schema: { tags: ['platform'], summary: 'The process is alive', response: { 200: Health } } },
    async () => ({ status: 'ok' }),
  )
  http.get(
    '/readyz',
    {
      schema: {
        tags: ['platform'],
        summary: 'The engines this process needs answer (a cache outage only degrades)',
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_req, reply) => {
      const [db, cache, bus, blobs] = await Promise.all([
        check(() => ports.db.ping()),
        check(() => ports.cache.ping()),
        check(() => ports.bus.ping()),
        check(() => ports.blobs.ping()),
      ])
      // The cache is never the source of truth: without it reel is slower, not unable to serve.
      const checks = { db, cache: cache === 'ok' ? cache : `degraded (${cache})`, bus, blobs }
      const ok = [db, bus, blobs].every((c) => c === 'ok')
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks })
    },
  )
  http.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  )
  http.get(
    '/api/v1/system',
    {
      schema: {
        tags: ['platform'],
        summary: 'Version, the services this process runs and the engine behind each port',
        response: { 200: SystemInfo },
      },
    },
    async () => ({ version: VERSION, roles: [...roles], adapters: portKinds(config) }),
  )
}
