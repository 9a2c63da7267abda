import cookie from '@fastify/cookie'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import websocket from '@fastify/websocket'
import { Ajv } from 'ajv'
import formats from 'ajv-formats'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  LogController,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify'
import helmet from 'helmet'
import type { Bindings, ChildLoggerOptions } from 'pino'
import { newId } from '../ids.js'
import type { Logger } from '../log.js'
import { counter, histogram } from '../metrics.js'
import { ErrorBody, toErrorResponse } from './errors.js'

export type Http = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>

export interface HttpOptions {
  log: Logger
  bodyLimit: number
  version: string
}

// ajv-formats is CommonJS whose default export is the function itself.
const addFormats = formats as unknown as typeof formats.default

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** Probes and scrapes arrive every few seconds; logging each would drown the real traffic. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics'])

const requestsTotal = counter('reel_http_requests_total', 'HTTP requests answered', [
  'method',
  'route',
  'status',
])
const requestSeconds = histogram('reel_http_request_duration_seconds', 'HTTP request latency', [
  'method',
  'route',
])

type LogMethod = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type PinoLike = FastifyBaseLogger & { isLevelEnabled(level: string): boolean }

/**
 * A request's logger, made from the server's when the request first logs at an enabled level:
 * Fastify would otherwise make a pino child for every request (its bindings go through the
 * redaction), ~3.7 % of the CPU of bench/playback's heartbeat phase in a profile, and most
 * requests log nothing.
 */
class RequestLogger implements FastifyBaseLogger {
  #child: FastifyBaseLogger | undefined
  constructor(
    private readonly parent: PinoLike,
    private readonly bindings: Bindings,
  ) {}
  #made(): FastifyBaseLogger {
    this.#child ??= this.parent.child(this.bindings)
    return this.#child
  }
  #write(level: LogMethod, args: unknown[]): void {
    if (this.#child) (this.#child[level] as (...a: unknown[]) => void)(...args)
    else if (this.parent.isLevelEnabled(level)) (this.#made()[level] as (...a: unknown[]) => void)(...args)
  }
  get level(): string {
    return this.#child ? this.#child.level : this.parent.level
  }
  set level(level: string) {
    this.#made().level = level
  }
  fatal(...args: unknown[]): void {
    this.#write('fatal', args)
  }
  error(...args: unknown[]): void {
    this.#write('error', args)
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args)
  }
  info(...args: unknown[]): void {
    this.#write('info', args)
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args)
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args)
  }
  silent(): void {}
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#made().child(bindings, options)
  }
}

/** Fastify's childLoggerFactory: a RequestLogger, or pino's own child where options ask for more (a route's level). */
export function requestLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  const pinoLike = parent as Partial<PinoLike>
  if (Object.keys(options).length > 0 || typeof pinoLike.isLevelEnabled !== 'function')
    return parent.child(bindings, options)
  return new RequestLogger(parent as PinoLike, bindings)
}

/** A Fastify instance with reel's conventions: request ids, error shape, metrics, logs, OpenAPI. */
export async function createHttp(options: HttpOptions): Promise<Http> {
  const app = Fastify({
    loggerInstance: options.log as FastifyBaseLogger,
    bodyLimit: options.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newId()
    },
    childLoggerFactory: requestLogger,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Query strings and path params arrive as text and are coerced to their schema's types; a JSON
  // body is not: `{"count": "7"}` for an integer is a client bug that deserves a 400.
  const coercing = addFormats(
    new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: false, allErrors: false }),
  )
  const strict = addFormats(
    new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false }),
  )
  for (const ajv of [coercing, strict]) ajv.addKeyword('kind').addKeyword('modifier')
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema),
  )

  app.addSchema(ErrorBody)
  // Security headers on every response (no sniffing, no framing, strict referrers); the web app's
  // Content-Security-Policy is set by the gateway on the pages it serves. helmet's middleware is
  // made once: @fastify/helmet made it again for every request, in two hooks, one of them async.
  const securityHeaders = helmet({ contentSecurityPolicy: false, crossOriginEmbedderPolicy: false })

  // Callback-style hooks on the hot path: no promise per request.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    securityHeaders(req.raw, reply.raw, done as (err?: unknown) => void)
  })

  // Node's server.close() only drops connections idle at that moment; a keep-alive connection whose
  // request was in flight would hold shutdown open, so keep dropping idle ones until close ends.
  app.addHook('preClose', async () => {
    const timer = setInterval(() => app.server.closeIdleConnections(), 25)
    app.server.once('close', () => clearInterval(timer))
    timer.unref()
  })

  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched'
    const seconds = reply.elapsedTime / 1000
    requestsTotal.inc({ method: req.method, route, status: reply.statusCode })
    requestSeconds.observe({ method: req.method, route }, seconds)
    const level = QUIET_ROUTES.has(route) ? 'debug' : 'info'
    if (options.log.isLevelEnabled(level)) {
      const line = {
        method: req.method,
        url: req.url,
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      }
      req.log[level](line, 'request')
    }
    done()
  })

  app.setErrorHandler((error, req, reply) => {
    const { status, body, internal } = toErrorResponse(error)
    if (internal) req.log.error({ err: error }, 'unhandled error')
    else req.log.debug({ code: body.error.code, status }, 'request failed')
    const retryAfter = body.error.details?.retryAfterSeconds
    if (status === 429 && typeof retryAfter === 'number')
      reply.header('retry-after', String(Math.ceil(retryAfter)))
    return reply.code(status).send(body)
  })

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({
      error: { code: 'route_not_found', message: `No route for ${req.method} ${req.url.split('?')[0]}` },
    }),
  )

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'reel API', version: options.version, description: 'Self-hostable streaming platform' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => String(json.$id ?? `def-${i}`) },
  })
  await app.register(swaggerUi, { routePrefix: '/api/docs' })
  await app.register(cookie)
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } })
  return app
}

let turnEnd: Promise<void> | undefined
/**
 * Resolves at the end of this turn of the event loop (its check phase), once for every caller of
 * the turn. A hot route that awaits it before answering answers together with the other requests
 * read in the same turn, instead of one by one as each is read. Measured in bench/playback: HTTP
 * heartbeats that await it, 15,700-16,400 a second instead of 10,000-10,800 (A-B-B-A); play starts,
 * which wait for their turn's end the same way to sign their URL tokens together
 * (UrlSigner.signSoon), ~24 % less user CPU each in the server (250 → 189 µs, one run each).
 */
export function endOfTurn(): Promise<void> {
  turnEnd ??= new Promise((resolve) =>
    setImmediate(() => {
      turnEnd = undefined
      resolve()
    }),
  )
  return turnEnd
}

/** Reference to the shared error schema, for route `response` maps. */
export const errorRef = { $ref: 'ErrorBody#' } as const

/** Response schemas for the usual failures of a route. */
export function errorResponses(...statuses: number[]): Record<number, typeof errorRef> {
  return Object.fromEntries([400, 500, ...statuses].map((s) => [s, errorRef]))
}
