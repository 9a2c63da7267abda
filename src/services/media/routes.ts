import { type TSchema, Type } from '@sinclair/typebox'
import type { Server } from '@tus/server'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import type { MediaService } from './service.js'
import { UPLOADS_PATH } from './uploads.js'

const auth = [{ bearer: [] }]
const tags = ['media']
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])

const TitleId = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

const RenditionSchema = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal('video'), Type.Literal('audio')]),
  width: Nullable(Type.Integer()),
  height: Nullable(Type.Integer()),
  frameRate: Nullable(Type.Number()),
  codecs: Type.String(),
  bandwidth: Type.Integer(),
  averageBandwidth: Type.Integer(),
  playlistKey: Type.String(),
  initKey: Type.String(),
  parts: Type.Integer(),
  durationMs: Type.Integer(),
})

const TaskSchema = Type.Object({
  key: Type.String(),
  kind: Type.String(),
  rendition: Nullable(Type.String()),
  chunk: Nullable(Type.Integer()),
  state: Type.String({ description: 'queued, running, done or failed' }),
  attempts: Type.Integer(),
  percent: Type.Number(),
  error: Nullable(Type.String()),
  worker: Nullable(Type.String()),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
})

const TitleMediaSchema = Type.Object({
  titleId: Type.String(),
  title: Type.String(),
  year: Nullable(Type.Integer()),
  status: Type.String({ description: 'uploading, processing, available or failed' }),
  stage: Type.String({ description: 'uploading, probing, transcoding, packaging, available or failed' }),
  percent: Type.Number({ minimum: 0, maximum: 100 }),
  durationMs: Nullable(Type.Integer()),
  error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
  source: Type.Object({
    name: Nullable(Type.String()),
    bytes: Nullable(Type.Integer()),
    container: Nullable(Type.String()),
    width: Nullable(Type.Integer()),
    height: Nullable(Type.Integer()),
    frameRate: Nullable(Type.Number()),
    durationMs: Nullable(Type.Integer()),
    audio: Nullable(Type.Boolean()),
  }),
  tasks: Type.Array(TaskSchema),
  renditions: Type.Array(RenditionSchema),
  masterPlaylistKey: Nullable(Type.String()),
  posterKey: Nullable(Type.String()),
  thumbnailsKey: Nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
})

const PartSchema = Type.Object({
  partNo: Type.Integer(),
  blobKey: Type.String(),
  startMs: Type.Number(),
  durationMs: Type.Number(),
  bytes: Type.Integer(),
})

const TUS_METHODS = ['POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS'] as const

export function mediaRoutes(ctx: ModuleContext, media: MediaService, uploads: Server): void {
  const { http } = ctx

  // tus reads the request body itself: this scope passes upload bytes through unparsed.
  http.register(async (scope) => {
    scope.addContentTypeParser('application/offset+octet-stream', (_req, _payload, done) => done(null))
    for (const url of [UPLOADS_PATH, `${UPLOADS_PATH}/:id`]) {
      scope.route({
        method: [...TUS_METHODS],
        url,
        exposeHeadRoute: false,
        schema: {
          tags,
          summary:
            'Resumable upload of a source video (tus 1.0.0; Upload-Metadata: title, year, filename). The upload id is the title id.',
          security: auth,
        },
        handler: async (req, reply) => {
          if (req.method !== 'OPTIONS') await ctx.auth.requireAdmin(req)
          reply.hijack()
          await uploads.handle(req.raw, reply.raw)
        },
      })
    }
  })

  http.get(
    '/api/v1/admin/titles/:id/media',
    {
      schema: {
        tags,
        summary: 'A title’s media: status, percent done, every task, errors and the renditions made',
        security: auth,
        params: TitleId,
        response: { 200: TitleMediaSchema, ...errorResponses(401, 403, 404) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return media.titleMedia(req.params.id)
    },
  )

  http.get(
    '/api/v1/admin/titles/:id/media/parts',
    {
      schema: {
        tags,
        summary: 'The parts index of one rendition: part number → blob key, start, duration and bytes',
        security: auth,
        params: TitleId,
        querystring: Type.Object({ rendition: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: Type.Object({ parts: Type.Array(PartSchema) }), ...errorResponses(401, 403, 404) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return { parts: await media.parts(req.params.id, req.query.rendition) }
    },
  )
}
