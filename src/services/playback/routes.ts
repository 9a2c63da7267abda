import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { AppError, errorMessage, unauthorized } from '../../platform/errors.js'
import { toErrorResponse } from '../../platform/http/errors.js'
import { endOfTurn, errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import type { PlaybackService } from './service.js'

const auth = [{ bearer: [] }]
const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' })
/** Ten days of media: far beyond any title, small enough to stay a safe integer. */
const MAX_POSITION_MS = 864_000_000

const StartBody = Type.Object(
  {
    profileId: Id,
    titleId: Id,
    episodeId: Type.Optional(Id),
    device: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
)
const Started = Type.Object({
  sessionId: Type.String(),
  titleId: Type.String(),
  episodeId: Type.Union([Type.String(), Type.Null()]),
  manifestUrl: Type.String(),
  fallbackUrls: Type.Array(Type.String()),
  resumeAtMs: Type.Integer(),
  durationMs: Type.Integer(),
  maxHeight: Type.Integer(),
  heartbeatIntervalMs: Type.Integer(),
  region: Type.String(),
})
const HeartbeatBody = Type.Object(
  {
    positionMs: Type.Integer({ minimum: 0, maximum: MAX_POSITION_MS }),
    state: Type.Union([
      Type.Literal('playing'),
      Type.Literal('paused'),
      Type.Literal('buffering'),
      Type.Literal('seeking'),
    ]),
    bitrate: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000 })),
    bufferMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
    rebuffers: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
)
const heartbeatFrame = TypeCompiler.Compile(HeartbeatBody)
const Progress = Type.Object({
  titleId: Type.String(),
  episodeId: Type.Union([Type.String(), Type.Null()]),
  type: Type.Union([Type.Literal('movie'), Type.Literal('episode')]),
  seriesId: Type.Union([Type.String(), Type.Null()]),
  positionMs: Type.Integer(),
  durationMs: Type.Integer(),
  completed: Type.Boolean(),
  updatedAt: Type.String(),
})
const Limit = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }) })

export function playbackRoutes(ctx: ModuleContext, playback: PlaybackService): void {
  const { http } = ctx
  const tags = ['playback']

  http.post(
    '/api/v1/playback',
    {
      schema: {
        tags,
        security: auth,
        summary:
          'Press play: checks plan, profile, availability, maturity and free screens; answers with signed manifest URLs (edges, then the origin) and where to resume',
        body: StartBody,
        response: { 201: Started, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req)
      const started = await playback.start(caller, req.body, {
        headers: req.headers,
        address: req.ip,
        userAgent: req.headers['user-agent'],
      })
      return reply.code(201).send(started)
    },
  )

  http.post(
    '/api/v1/playback/:sessionId/heartbeat',
    {
      schema: {
        tags,
        security: auth,
        summary:
          'Position and quality report, every heartbeatIntervalMs. A negative position is a 400; one past the runtime is clamped to it',
        params: Type.Object({ sessionId: Id }),
        body: HeartbeatBody,
        response: { 200: Type.Object({ positionMs: Type.Integer() }), ...errorResponses(401, 404) },
      },
    },
    async (req) => {
      const accepted = await playback.heartbeat(
        await ctx.auth.authenticate(req),
        req.params.sessionId,
        req.body,
      )
      // Answered with the turn's other requests (the report is already taken: only the answer waits).
      await endOfTurn()
      return accepted
    },
  )

  http.get(
    '/api/v1/playback/:sessionId/ws',
    {
      websocket: true,
      schema: {
        tags,
        summary:
          'The heartbeats over one open connection: send the heartbeat body as JSON text frames, receive {positionMs} or the error shape for each. Browsers pass the access token as ?access_token=',
        params: Type.Object({ sessionId: Id }),
        querystring: Type.Object({ access_token: Type.Optional(Type.String({ maxLength: 4096 })) }),
      },
    },
    async (socket, req) => {
      const reply = (body: unknown) => socket.send(JSON.stringify(body))
      const fail = (e: unknown) => {
        const { body, internal } = toErrorResponse(e)
        if (internal) req.log.error({ err: errorMessage(e) }, 'websocket heartbeat failed')
        reply(body)
      }
      // The caller, or undefined once the socket was refused. The message listener below is attached
      // before this resolves: frames a client sends right after opening (while the token is checked,
      // a Cache round trip) would otherwise be emitted to no one and lost.
      const authorized = (async () => {
        try {
          const header = req.headers.authorization
          const token =
            req.query.access_token ?? (header?.startsWith('Bearer ') ? header.slice(7) : undefined)
          if (!token) throw unauthorized('missing_token', 'Pass ?access_token= or an Authorization header')
          return await ctx.auth.verify(token)
        } catch (e) {
          fail(e)
          socket.close(4401, 'unauthorized')
          return undefined
        }
      })()
      // Heartbeats of one connection are handled in order.
      let queue: Promise<unknown> = authorized
      socket.on('message', (data: Buffer) => {
        queue = queue.then(async () => {
          const caller = await authorized
          if (!caller) return
          try {
            let body: unknown
            try {
              body = JSON.parse(data.toString('utf8'))
            } catch {
              throw new AppError(400, 'malformed_json', 'Each frame is one JSON heartbeat')
            }
            if (!heartbeatFrame.Check(body)) {
              const first = heartbeatFrame.Errors(body).First()
              throw new AppError(
                400,
                'invalid_request',
                `heartbeat${first?.path ?? ''} ${first?.message ?? 'is invalid'}`,
              )
            }
            reply(await playback.heartbeat(caller, req.params.sessionId, body))
          } catch (e) {
            fail(e)
          }
        })
      })
    },
  )

  http.delete(
    '/api/v1/playback/:sessionId',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Stop: frees the screen and saves the final position (default: the last reported one)',
        params: Type.Object({ sessionId: Id }),
        querystring: Type.Object({
          positionMs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_POSITION_MS })),
        }),
        response: {
          200: Type.Object({ positionMs: Type.Integer(), completed: Type.Boolean() }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) =>
      playback.stop(await ctx.auth.authenticate(req), req.params.sessionId, req.query.positionMs),
  )

  http.get(
    '/api/v1/profiles/:id/continue-watching',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Titles in progress, most recent first (a finished episode offers the next one)',
        params: Type.Object({ id: Id }),
        querystring: Limit,
        response: { 200: Type.Object({ items: Type.Array(Progress) }), ...errorResponses(401, 404) },
      },
    },
    async (req) => ({
      items: await playback.continueWatching(
        await ctx.auth.authenticate(req),
        req.params.id,
        req.query.limit,
      ),
    }),
  )

  http.get(
    '/api/v1/profiles/:id/history',
    {
      schema: {
        tags,
        security: auth,
        summary: 'What the profile watched, most recent first',
        params: Type.Object({ id: Id }),
        querystring: Limit,
        response: { 200: Type.Object({ items: Type.Array(Progress) }), ...errorResponses(401, 404) },
      },
    },
    async (req) => ({
      items: await playback.history(await ctx.auth.authenticate(req), req.params.id, req.query.limit),
    }),
  )
}
