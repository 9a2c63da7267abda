import os from 'node:os'
import path from 'node:path'
import type { LogLevel } from './log.js'

/** A configuration value that cannot be used; the process stops with this message. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`)
    this.name = 'ConfigError'
  }
}

type Parser<T> = (raw: string, name: string) => T

interface Variable<T> {
  readonly env: string
  readonly fallback: string
  readonly doc: string
  readonly parse: Parser<T>
}

const variable = <T>(env: string, fallback: string, parse: Parser<T>, doc: string): Variable<T> => ({
  env,
  fallback,
  parse,
  doc,
})

const integer =
  (min: number, max: number): Parser<number> =>
  (raw, name) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected a whole number, got "${raw}"`)
    const n = Number(raw)
    if (n < min || n > max) throw new ConfigError(name, `expected a number from ${min} to ${max}, got ${n}`)
    return n
  }

const bytes: Parser<number> = (raw, name) => {
  const m = /^(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(raw.trim())
  if (!m?.[1]) throw new ConfigError(name, `expected a size such as 1048576, 512kb or 10mb, got "${raw}"`)
  const unit = (m[2] ?? 'b').toLowerCase()
  const scale = unit.startsWith('k')
    ? 1024
    : unit.startsWith('m')
      ? 1024 ** 2
      : unit.startsWith('g')
        ? 1024 ** 3
        : 1
  return Number(m[1]) * scale
}

const boolean: Parser<boolean> = (raw, name) => {
  const v = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(v)) return true
  if (['0', 'false', 'no', 'off'].includes(v)) return false
  throw new ConfigError(name, `expected true or false, got "${raw}"`)
}

const text: Parser<string> = (raw) => raw.trim()

const optionalText: Parser<string | undefined> = (raw) => raw.trim() || undefined

const oneOf =
  <T extends string>(...values: T[]): Parser<T> =>
  (raw, name) => {
    const v = raw.trim() as T
    if (!values.includes(v)) throw new ConfigError(name, `expected one of ${values.join(', ')}, got "${raw}"`)
    return v
  }

const url =
  (...protocols: string[]): Parser<string | undefined> =>
  (raw, name) => {
    const v = raw.trim()
    if (!v) return undefined
    let parsed: URL
    try {
      parsed = new URL(v)
    } catch {
      throw new ConfigError(name, `expected a URL such as ${protocols[0]}//host:port, got "${raw}"`)
    }
    if (!protocols.includes(parsed.protocol))
      throw new ConfigError(name, `expected a ${protocols.join(' or ')} URL, got "${raw}"`)
    return v
  }

const urlList =
  (...protocols: string[]): Parser<string[]> =>
  (raw, name) =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => url(...protocols)(s, name) ?? s)

const identifier: Parser<string> = (raw, name) => {
  const v = raw.trim()
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(v))
    throw new ConfigError(
      name,
      `expected letters, digits and underscores (starting with a letter), got "${raw}"`,
    )
  return v
}

const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** Every REEL_* variable: the one place that names, documents, defaults and parses configuration. */
export const variables = {
  port: variable(
    'REEL_PORT',
    '8080',
    integer(0, 65535),
    'HTTP port of the web app and API (0 picks a free port).',
  ),
  host: variable('REEL_HOST', '0.0.0.0', text, 'Address to listen on.'),
  dataDir: variable(
    'REEL_DATA_DIR',
    './data',
    (raw) => path.resolve(raw.trim()),
    'Where the embedded adapters keep their files: SQLite database, blobs, generated keys.',
  ),
  logLevel: variable('REEL_LOG_LEVEL', 'info', oneOf(...LOG_LEVELS), `Log level: ${LOG_LEVELS.join(', ')}.`),
  bodyLimit: variable(
    'REEL_BODY_LIMIT',
    '1mb',
    bytes,
    'Largest JSON request body accepted (larger gets 413).',
  ),
  shutdownTimeoutMs: variable(
    'REEL_SHUTDOWN_TIMEOUT_MS',
    '10000',
    integer(100, 600_000),
    'On SIGTERM, how long in-flight work may take before the process exits anyway.',
  ),
  databaseUrl: variable(
    'REEL_DATABASE_URL',
    '',
    url('postgres:', 'postgresql:'),
    'PostgreSQL URL. Empty: SQLite in REEL_DATA_DIR.',
  ),
  databaseSchema: variable(
    'REEL_DATABASE_SCHEMA',
    'public',
    identifier,
    'PostgreSQL schema that holds reel’s tables (created if missing).',
  ),
  redisUrls: variable(
    'REEL_REDIS_URLS',
    '',
    urlList('redis:', 'rediss:'),
    'Comma-separated Redis nodes, keys spread over them by a consistent-hash ring. Empty: in-process LRU cache.',
  ),
  cachePrefix: variable(
    'REEL_CACHE_PREFIX',
    'reel:',
    text,
    'Prefix of every cache key (lets installs share Redis).',
  ),
  cacheMaxEntries: variable(
    'REEL_CACHE_MAX_ENTRIES',
    '100000',
    integer(100, 100_000_000),
    'Entries kept by the in-process LRU cache (expired sorted sets and counters are dropped each second).',
  ),
  natsUrl: variable(
    'REEL_NATS_URL',
    '',
    url('nats:', 'tls:'),
    'NATS server with JetStream for events and work queues. Empty: in-process bus persisted in the DB.',
  ),
  natsPrefix: variable(
    'REEL_NATS_PREFIX',
    'reel',
    identifier,
    'Prefix of JetStream stream and subject names (lets installs share a NATS server).',
  ),
  busRetentionDays: variable(
    'REEL_BUS_RETENTION_DAYS',
    '7',
    integer(0, 3650),
    'Embedded bus: playback events stored longer ago than this, once every durable consumer has read them, are deleted every REEL_BUS_RETENTION_INTERVAL_S (trends keeps them as NDJSON in the blob store); 0 keeps them. Catalog and account events stay (search replicas replay them). JetStream keeps its stream limits.',
  ),
  busRetentionIntervalS: variable(
    'REEL_BUS_RETENTION_INTERVAL_S',
    '3600',
    integer(1, 604_800),
    'How often the embedded bus deletes playback events older than REEL_BUS_RETENTION_DAYS.',
  ),
  s3Bucket: variable(
    'REEL_S3_BUCKET',
    '',
    optionalText,
    'S3 bucket for blobs. Empty: files under REEL_DATA_DIR/blobs.',
  ),
  s3Endpoint: variable(
    'REEL_S3_ENDPOINT',
    '',
    url('http:', 'https:'),
    'S3-compatible endpoint (MinIO, Ceph, R2…). Empty: AWS.',
  ),
  s3Region: variable('REEL_S3_REGION', 'us-east-1', text, 'S3 region.'),
  s3AccessKeyId: variable(
    'REEL_S3_ACCESS_KEY_ID',
    '',
    optionalText,
    'S3 access key (empty: the AWS default chain).',
  ),
  s3SecretAccessKey: variable('REEL_S3_SECRET_ACCESS_KEY', '', optionalText, 'S3 secret key.'),
  s3ForcePathStyle: variable(
    'REEL_S3_FORCE_PATH_STYLE',
    'true',
    boolean,
    'Address the bucket as a path (needed by most S3-compatible servers).',
  ),
  ffmpeg: variable(
    'REEL_FFMPEG',
    '',
    optionalText,
    'ffmpeg binary. Empty: `ffmpeg` on PATH, else the npm-shipped one.',
  ),
  ffprobe: variable(
    'REEL_FFPROBE',
    '',
    optionalText,
    'ffprobe binary. Empty: `ffprobe` on PATH, else the npm-shipped one.',
  ),
  mediaChunkSeconds: variable(
    'REEL_MEDIA_CHUNK_SECONDS',
    '60',
    (raw, name) => {
      const n = integer(6, 3600)(raw, name)
      if (n % 6 !== 0) throw new ConfigError(name, `expected a multiple of 6 (the HLS segment), got ${n}`)
      return n
    },
    'Seconds of source per transcode chunk (a multiple of the 6 s segment); chunks are encoded in parallel.',
  ),
  mediaLadder: variable(
    'REEL_MEDIA_LADDER',
    '1080p-6000k,720p-3000k,540p-2000k,360p-365k,234p-145k',
    (raw, name) => {
      const v = raw.replace(/\s+/g, '')
      if (!/^\d+p-\d+k(,\d+p-\d+k)*$/.test(v))
        throw new ConfigError(name, `expected rungs such as 1080p-6000k,720p-3000k, got "${raw}"`)
      return v
    },
    'Renditions to encode, from Apple’s H.264 ladder: 234p-145k 360p-365k 432p-730k 432p-1100k 540p-2000k 720p-3000k 720p-4500k 1080p-6000k 1080p-7800k (never above the source).',
  ),
  mediaMaxUpload: variable(
    'REEL_MEDIA_MAX_UPLOAD',
    '100gb',
    bytes,
    'Largest upload accepted (larger gets 413 too_large).',
  ),
  mediaMaxDurationS: variable(
    'REEL_MEDIA_MAX_DURATION_S',
    '43200',
    integer(1, 604_800),
    'Longest source accepted, in seconds (longer fails with too_long).',
  ),
  mediaWorkers: variable(
    'REEL_MEDIA_WORKERS',
    'auto',
    (raw, name) => (raw.trim() === 'auto' ? os.availableParallelism() : integer(0, 256)(raw, name)),
    'Transcode tasks this process runs at once: auto (one per core), or 0 for none (an API-only process of the scaled shape).',
  ),
  mediaPreset: variable(
    'REEL_MEDIA_PRESET',
    'veryfast',
    oneOf('superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'),
    'x264 preset of every encode (H.264 High, so not ultrafast): slower presets make smaller files for more CPU.',
  ),
  mediaRetryBackoffMs: variable(
    'REEL_MEDIA_RETRY_BACKOFF_MS',
    '2000,10000,30000',
    (raw, name) => {
      const waits = raw.split(',').map((w) => Number(w.trim()))
      if (waits.length === 0 || waits.some((w) => !Number.isInteger(w) || w < 0 || w > 86_400_000))
        throw new ConfigError(name, `expected milliseconds such as 2000,10000,30000, got "${raw}"`)
      return waits
    },
    'Waits between the attempts of a failed transcode task (the last repeats); a task fails its title after 5 attempts.',
  ),
  seed: variable(
    'REEL_SEED',
    '',
    (raw, name) => {
      const v = raw.trim()
      if (v === '') return undefined
      return oneOf('auto', 'off')(v, name)
    },
    'auto: fill a first, empty install with the demo catalog (`reel seed`) in the background once the server listens; off: never. Empty: auto for `reel start` (what `npm start` runs), off for every other command.',
  ),
  jwtSecret: variable(
    'REEL_JWT_SECRET',
    '',
    (raw, name) => {
      const v = raw.trim()
      if (v && v.length < 32) throw new ConfigError(name, 'expected at least 32 characters')
      return v || undefined
    },
    'Key that signs access tokens; every process of one install needs the same. Empty: generated once and kept in the PostgreSQL database for every process sharing it, else under REEL_DATA_DIR/keys (one machine).',
  ),
  accessTokenTtlS: variable(
    'REEL_ACCESS_TOKEN_TTL_S',
    '900',
    integer(30, 86_400),
    'Lifetime of an access token in seconds (a refresh token renews it).',
  ),
  refreshTokenTtlDays: variable(
    'REEL_REFRESH_TOKEN_TTL_DAYS',
    '30',
    integer(1, 365),
    'A device stays signed in this many days without use.',
  ),
  defaultCountry: variable(
    'REEL_DEFAULT_COUNTRY',
    'US',
    (raw, name) => {
      const v = raw.trim().toUpperCase()
      if (!/^[A-Z]{2}$/.test(v))
        throw new ConfigError(name, `expected an ISO 3166 alpha-2 code such as US, got "${raw}"`)
      return v
    },
    'Country of an account that signs up without one (ISO 3166 alpha-2).',
  ),
  trialDays: variable(
    'REEL_TRIAL_DAYS',
    '0',
    integer(0, 365),
    'Free days before the first charge of a new subscription.',
  ),
  loginMaxFailures: variable(
    'REEL_LOGIN_MAX_FAILURES',
    '10',
    integer(1, 10_000),
    'Failed logins per account per 15 minutes before 429.',
  ),
  loginMaxAttemptsPerAddress: variable(
    'REEL_LOGIN_MAX_ATTEMPTS_PER_ADDRESS',
    '100',
    integer(1, 1_000_000),
    'Login attempts per client address per 15 minutes before 429.',
  ),
  trendsGraceS: variable(
    'REEL_TRENDS_GRACE_S',
    '3600',
    integer(0, 7 * 86_400),
    'Playback events arriving up to this many seconds after their time still count in their own trends bucket; later ones reach only the archive and the next `reel trends rollup`.',
  ),
  trendsAnswerTtlMs: variable(
    'REEL_TRENDS_ANSWER_TTL_MS',
    '5000',
    integer(0, 3_600_000),
    'How long a computed trending or Top 10 ranking is served from the cache (0: computed for every request).',
  ),
  recoTrainIntervalS: variable(
    'REEL_RECO_TRAIN_INTERVAL_S',
    '21600',
    integer(0, 30 * 86_400),
    'How often recommendations are trained on a schedule, in seconds (0: only by `reel reco train` and REEL_RECO_TRAIN_AFTER_EVENTS).',
  ),
  recoTrainAfterEvents: variable(
    'REEL_RECO_TRAIN_AFTER_EVENTS',
    '5000',
    integer(0, 100_000_000),
    'Train again once this many new plays and ratings have arrived since the last run (0: never on events).',
  ),
  recoTrainCheckS: variable(
    'REEL_RECO_TRAIN_CHECK_S',
    '30',
    integer(1, 86_400),
    'How often each reco process adds its new plays and ratings to the shared count and checks whether training is due (REEL_RECO_TRAIN_INTERVAL_S, REEL_RECO_TRAIN_AFTER_EVENTS), in seconds.',
  ),
  recoAlgorithm: variable(
    'REEL_RECO_ALGORITHM',
    'itemknn',
    (raw, name) => {
      const v = raw.trim().toLowerCase()
      if (v !== 'ease' && v !== 'itemknn' && v !== 'popularity')
        throw new ConfigError(name, `expected ease, itemknn or popularity, got "${raw}"`)
      return v
    },
    'The collaborative model behind Top picks and Others who watched: itemknn (item-to-item cosine), ease (a closed-form linear model: better, its cost grows with the cube of the titles) or popularity.',
  ),
  recoModuleTtlS: variable(
    'REEL_RECO_MODULE_TTL_S',
    '3600',
    integer(1, 7 * 86_400),
    "How long a profile's precomputed recommendations stay in the cache (the DB keeps them; a play, a rating or training refreshes them).",
  ),
  playbackHeartbeatMs: variable(
    'REEL_PLAYBACK_HEARTBEAT_MS',
    '10000',
    integer(1000, 600_000),
    'How often players are asked to report their position (heartbeatIntervalMs of a started playback).',
  ),
  playbackStreamTimeoutMs: variable(
    'REEL_PLAYBACK_STREAM_TIMEOUT_MS',
    '60000',
    integer(1000, 3_600_000),
    "A play session without a heartbeat for this long no longer counts against the plan's concurrent streams.",
  ),
  playbackFlushMs: variable(
    'REEL_PLAYBACK_FLUSH_MS',
    '2000',
    integer(50, 60_000),
    'Resume positions, play-session rows and playback events reach the database and the Bus coalesced, at most this long after they happen (write-behind); stops and shutdown flush at once.',
  ),
  playbackFlushRows: variable(
    'REEL_PLAYBACK_FLUSH_ROWS',
    '500',
    integer(1, 100_000),
    'A write-behind flush starts before REEL_PLAYBACK_FLUSH_MS once this many resume positions and session rows wait: under a burst of plays, smaller flushes hold requests up less.',
  ),
  playbackTokenTtlS: variable(
    'REEL_PLAYBACK_TOKEN_TTL_S',
    '21600',
    integer(60, 7 * 86_400),
    'How long the signed media URLs of a play session stay valid.',
  ),
  cdnUrlKey: variable(
    'REEL_CDN_URL_KEY',
    '',
    optionalText,
    'Secret that signs media URLs and edge reports, shared by every API process and edge. Empty: API processes sharing a PostgreSQL database share one kept there, else one is generated under REEL_DATA_DIR; a separate `reel edge` needs this (or the same data dir) and refuses to start when the server rejects its key.',
  ),
  cdnRegionHeader: variable(
    'REEL_CDN_REGION_HEADER',
    '',
    (raw) => raw.trim().toLowerCase(),
    "A request header set by a trusted load balancer that carries the client's country (e.g. cf-ipcountry). Empty: not trusted.",
  ),
  cdnRegions: variable(
    'REEL_CDN_REGIONS',
    '',
    text,
    "Address→region table for steering: comma-separated CIDR=COUNTRY entries (e.g. 10.1.0.0/16=DE,10.2.0.0/16=FR). Unlisted addresses use the account's country.",
  ),
  cdnEdgeTimeoutMs: variable(
    'REEL_CDN_EDGE_TIMEOUT_MS',
    '15000',
    integer(1000, 3_600_000),
    'An edge that has not reported for this long is out of steering.',
  ),
  cdnEdgesPerTitle: variable(
    'REEL_CDN_EDGES_PER_TITLE',
    '2',
    integer(1, 16),
    'How many edges of a region a title is placed on by consistent hashing (the first serves, the others are fallbacks and are push-filled).',
  ),
  cdnBuiltinEdge: variable(
    'REEL_CDN_BUILTIN_EDGE',
    'true',
    boolean,
    'Run an edge inside the cdn role, at /edge on this server (the all-in-one shape).',
  ),
  cdnEdgeOrigins: variable(
    'REEL_CDN_EDGE_ORIGINS',
    '',
    urlList('http:', 'https:'),
    "Origins of the separate edges (comma-separated), allowed by the web app's Content-Security-Policy for media and connections.",
  ),
  edgeId: variable('REEL_EDGE_ID', '', optionalText, '`reel edge`: its name in steering. Empty: host:port.'),
  edgePort: variable('REEL_EDGE_PORT', '8090', integer(0, 65535), '`reel edge`: HTTP port it serves on.'),
  edgeRegion: variable(
    'REEL_EDGE_REGION',
    '*',
    (raw, name) => {
      const v = raw.trim().toUpperCase()
      if (v !== '*' && !/^[A-Z]{2}$/.test(v))
        throw new ConfigError(name, `expected a country code or *, got "${raw}"`)
      return v
    },
    '`reel edge`: the country it serves (ISO 3166 alpha-2), or * for any (used when a region has no edge).',
  ),
  edgeUrl: variable(
    'REEL_EDGE_URL',
    '',
    url('http:', 'https:'),
    '`reel edge`: the URL players reach it at. Empty: http://$REEL_HOST:$REEL_EDGE_PORT.',
  ),
  edgeOriginUrl: variable(
    'REEL_EDGE_ORIGIN_URL',
    '',
    url('http:', 'https:'),
    '`reel edge`: the reel server it fills from (its /origin) and reports to (steering). Empty: $REEL_URL, else http://localhost:$REEL_PORT.',
  ),
  edgeCacheBytes: variable(
    'REEL_EDGE_CACHE_BYTES',
    '10gb',
    bytes,
    "Byte budget of an edge's on-disk cache (least recently used objects are evicted).",
  ),
  edgeCacheDir: variable(
    'REEL_EDGE_CACHE_DIR',
    '',
    optionalText,
    'Where an edge keeps its cache. Empty: $REEL_DATA_DIR/edge-cache (the built-in edge) or $REEL_DATA_DIR/edge-<port>.',
  ),
  edgePollMs: variable(
    'REEL_EDGE_POLL_MS',
    '10000',
    integer(500, 3_600_000),
    '`reel edge` without REEL_NATS_URL: how often it asks the reel server for newly published titles to push-fill.',
  ),
  url: variable(
    'REEL_URL',
    '',
    url('http:', 'https:'),
    'Where CLI commands reach a running server. Empty: http://localhost:$REEL_PORT.',
  ),
  token: variable(
    'REEL_TOKEN',
    '',
    optionalText,
    'Access token CLI commands send. Empty: the one saved by `reel login`.',
  ),
} as const

type Variables = typeof variables
export type Config = { readonly [K in keyof Variables]: ReturnType<Variables[K]['parse']> }

/** Parses every REEL_* variable once; throws ConfigError naming the first bad one. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const entries = Object.entries(variables).map(([key, v]) => {
    const raw = env[v.env]
    return [key, v.parse(raw === undefined ? v.fallback : raw, v.env)]
  })
  const known = new Set(Object.values(variables).map((v) => v.env))
  const unknown = Object.keys(env).filter(
    (k) => k.startsWith('REEL_') && !k.startsWith('REEL_TEST_') && !known.has(k),
  )
  if (unknown.length > 0) {
    const first = unknown[0] ?? ''
    throw new ConfigError(first, `unknown variable; known ones are listed by \`reel config\``)
  }
  return { ...(Object.fromEntries(entries) as Config), ...overrides }
}

/** The configuration table of the README, generated from `variables`. */
export function configTable(): string {
  const rows = Object.values(variables).map(
    (v) => `| \`${v.env}\` | ${v.fallback === '' ? '(empty)' : `\`${v.fallback}\``} | ${v.doc} |`,
  )
  return ['| variable | default | what it does |', '|---|---|---|', ...rows].join('\n')
}

/** Which adapter each port uses under this configuration. */
export function portKinds(config: Config) {
  return {
    db: config.databaseUrl ? 'postgres' : 'sqlite',
    cache: config.redisUrls.length > 0 ? 'redis' : 'memory',
    bus: config.natsUrl ? 'jetstream' : 'memory',
    blobs: config.s3Bucket ? 's3' : 'local',
  } as const
}
