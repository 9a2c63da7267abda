import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Blobs } from '../../platform/blobs/blobs.js'
import { contentTypeFor } from '../../platform/blobs/content-type.js'
import { forbidden, isAppError } from '../../platform/errors.js'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import { type Edge, parseRange, parseTarget } from './edge.js'
import type { CdnService } from './service.js'

const EdgeReportBody = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 500 }),
    region: Type.String({ minLength: 1, maxLength: 2 }),
    capacityBytes: Type.Integer({ minimum: 0 }),
    usedBytes: Type.Integer({ minimum: 0 }),
    healthy: Type.Boolean(),
  },
  { additionalProperties: false },
)
const EdgeSchema = Type.Object({
  id: Type.String(),
  url: Type.String(),
  region: Type.String(),
  capacityBytes: Type.Integer(),
  usedBytes: Type.Integer(),
  healthy: Type.Boolean(),
  reportedAt: Type.String(),
  live: Type.Boolean(),
})
const EdgeId = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9._:-]+$' }),
})

async function edgeCaller(cdn: CdnService, req: FastifyRequest): Promise<string> {
  await cdn.ready()
  const header = req.headers.authorization ?? ''
  const edgeId = header.startsWith('Bearer ') ? cdn.edgeOf(header.slice(7)) : undefined
  if (!edgeId)
    throw forbidden('invalid_edge_token', 'Edges authenticate with a token signed by REEL_CDN_URL_KEY')
  return edgeId
}

export function cdnRoutes(ctx: ModuleContext, cdn: CdnService, edge: Edge | undefined): void {
  const { http } = ctx
  const tags = ['cdn']

  http.post(
    '/api/v1/cdn/edges/:id/report',
    {
      schema: {
        tags,
        summary:
          'An edge reports its address, region, capacity and health (a silent edge drops out of steering)',
        params: EdgeId,
        body: EdgeReportBody,
        response: { 204: Type.Null(), ...errorResponses(403) },
      },
    },
    async (req, reply) => {
      if ((await edgeCaller(cdn, req)) !== req.params.id)
        throw forbidden('invalid_edge_token', 'The token is for another edge')
      await cdn.report({ id: req.params.id, ...req.body })
      return reply.code(204).send(null)
    },
  )

  http.get(
    '/api/v1/cdn/edges/:id/assigned/:titleId',
    {
      schema: {
        tags,
        summary: 'Whether steering places a title on this edge (what it push-fills)',
        params: Type.Object({ ...EdgeId.properties, titleId: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: Type.Object({ assigned: Type.Boolean() }), ...errorResponses(403) },
      },
    },
    async (req) => {
      if ((await edgeCaller(cdn, req)) !== req.params.id)
        throw forbidden('invalid_edge_token', 'The token is for another edge')
      return { assigned: await cdn.assigned(req.params.id, req.params.titleId) }
    },
  )

  http.get(
    '/api/v1/cdn/edges/:id/published',
    {
      schema: {
        tags,
        summary:
          'For an edge without the event bus: the titles published after a cursor that steering places on it (no cursor, or one past the last: those of the last day), to push-fill, and the next cursor',
        params: EdgeId,
        querystring: Type.Object({
          after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
        }),
        response: {
          200: Type.Object({
            titles: Type.Array(Type.Unknown(), {
              description: 'media.title.published payloads (titleId, prefix, renditions, playlist keys)',
            }),
            eventIds: Type.Array(Type.String(), {
              description:
                'the event id of each title (aligned): titles just below the cursor come again, an edge skips the ids it has had',
            }),
            cursor: Type.Integer(),
          }),
          ...errorResponses(403),
        },
      },
    },
    async (req) => {
      if ((await edgeCaller(cdn, req)) !== req.params.id)
        throw forbidden('invalid_edge_token', 'The token is for another edge')
      return cdn.publishedFor(req.params.id, req.query.after, req.query.limit)
    },
  )

  http.get(
    '/api/v1/cdn/edges',
    {
      schema: {
        tags,
        security: [{ bearer: [] }],
        summary: 'The edges steering knows, live or not',
        response: { 200: Type.Object({ edges: Type.Array(EdgeSchema) }), ...errorResponses(401, 403) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return { edges: await cdn.edges() }
    },
  )

  // The origin: the blob store itself behind the same signed URLs, the last entry of every fallback list.
  http.route({
    method: ['GET', 'HEAD'],
    url: '/origin/*',
    schema: { hide: true },
    handler: async (req, reply) => {
      await cdn.ready()
      return originAnswer(ctx.blobs, cdn, ctx.now(), req, reply)
    },
  })

  if (edge) {
    http.get('/edge/stats', { schema: { hide: true } }, async () => edge.stats)
    http.route({
      method: ['GET', 'HEAD', 'OPTIONS'],
      url: '/edge/*',
      schema: { hide: true },
      handler: async (req, reply) => {
        reply.hijack()
        await edge.serve(req.raw, reply.raw, (req.raw.url ?? '').slice('/edge'.length))
      },
    })
  }
}

async function originAnswer(
  blobs: Blobs,
  cdn: CdnService,
  now: number,
  req: FastifyRequest,
  reply: import('fastify').FastifyReply,
) {
  const target = parseTarget((req.raw.url ?? '').slice('/origin'.length))
  const error = (status: number, code: string, message: string) =>
    reply.code(status).header('cache-control', 'no-store').send({ error: { code, message } })
  if (!target.ok) return error(target.status, target.code, target.message)
  const checked = cdn.signer.check(target.token, now)
  if (!checked.ok)
    return error(
      403,
      checked.reason === 'expired' ? 'token_expired' : 'invalid_token',
      'This media URL is not valid',
    )
  if (!target.key.startsWith(checked.grant.prefix))
    return error(403, 'token_scope', 'This media URL is for another title')
  const info = await blobs.head(target.key)
  if (!info) return error(404, 'not_found', `No object at ${target.key}`)
  const range = parseRange(req.headers.range, info.size)
  if (range === 'invalid') return error(416, 'range_not_satisfiable', `The object has ${info.size} bytes`)
  try {
    const read = await blobs.get(target.key, range ? { start: range[0], end: range[1] } : undefined)
    reply
      .code(range ? 206 : 200)
      .header('content-type', contentTypeFor(target.key))
      .header('content-length', read.end - read.start + 1)
      .header('accept-ranges', 'bytes')
      .header('etag', `"${info.etag.replace(/"/g, '')}"`)
      .header('access-control-allow-origin', '*')
      .header('cache-control', 'private, max-age=60')
    if (range) reply.header('content-range', `bytes ${read.start}-${read.end}/${info.size}`)
    if (req.method === 'HEAD') {
      read.body.destroy()
      return reply.send()
    }
    return reply.send(read.body)
  } catch (e) {
    if (isAppError(e) && e.status === 404) return error(404, 'not_found', `No object at ${target.key}`)
    throw e
  }
}
