import type { Authenticator } from './auth.js'
import type { Blobs } from './blobs/blobs.js'
import type { Bus } from './bus/bus.js'
import type { Cache } from './cache/cache.js'
import type { Config } from './config.js'
import type { Db, ReelMigration } from './db/db.js'
import type { Http } from './http/server.js'
import type { Logger } from './log.js'

/** The services of ARCHITECTURE.md; each is a module that a process may run or not (`--roles`). */
export const SERVICE_NAMES = [
  'accounts',
  'billing',
  'catalog',
  'media',
  'playback',
  'cdn',
  'search',
  'trends',
  'reco',
  'gateway',
] as const
export type ServiceName = (typeof SERVICE_NAMES)[number]

export const isServiceName = (s: string): s is ServiceName => (SERVICE_NAMES as readonly string[]).includes(s)

export type Hook = () => Promise<void> | void

/**
 * What services offer each other in-process, keyed by service. Each service adds its entry by
 * declaration merging (`declare module '…/platform/modules.js' { interface ServiceApis { … } }`).
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each service
export interface ServiceApis {}

/** What a service module is handed: the ports, the HTTP server and its lifecycle. */
export interface ModuleContext {
  readonly config: Config
  readonly log: Logger
  readonly db: Db
  readonly cache: Cache
  readonly bus: Bus
  readonly blobs: Blobs
  readonly http: Http
  readonly auth: Authenticator
  /** The time in epoch ms; services take it from here so tests can move it. */
  readonly now: () => number
  /**
   * A service's in-process API (one instance per process), built over the ports even when that
   * service's role does not run here: a process then runs its code, not its routes, consumers or jobs.
   */
  use<K extends keyof ServiceApis>(name: K): ServiceApis[K]
  /** Runs once the server is listening: subscribe consumers, start workers. */
  onStart(hook: Hook): void
  /** Runs at shutdown, in reverse order of registration, before the ports close. */
  onStop(hook: Hook): void
  /** Runs job every intervalMs while the process runs; a run never overlaps the previous one. */
  every(name: string, intervalMs: number, job: () => Promise<void>): void
}

/**
 * A service: its tables (migrations, applied in every process so the schema is always whole) and
 * what it registers when its role runs in this process (routes, consumers, jobs).
 */
export interface ServiceModule {
  readonly name: ServiceName
  readonly migrations?: Record<string, ReelMigration>
  /** Builds the API other services call in-process (see ModuleContext.use). */
  api?(ctx: ModuleContext): unknown
  register(ctx: ModuleContext): Promise<void> | void
}
