import { Type } from '@sinclair/typebox'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import type { HomePage } from './service.js'

export const HomeRowSchema = Type.Object({
  id: Type.String(),
  kind: Type.String({ description: 'continue_watching, new, genre, trending, because_you_watched, …' }),
  title: Type.String(),
  reason: Type.Optional(Type.String()),
  items: Type.Array(
    Type.Object({
      titleId: Type.String(),
      title: Type.String(),
      artwork: Type.Optional(Type.String()),
      progress: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    }),
  ),
})

export function recoRoutes(ctx: ModuleContext, home: HomePage): void {
  ctx.http.get(
    '/api/v1/profiles/:id/home',
    {
      schema: {
        tags: ['reco'],
        security: [{ bearer: [] }],
        summary: "The rows of a profile's home page",
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: Type.Object({ rows: Type.Array(HomeRowSchema) }), ...errorResponses(401, 404) },
      },
    },
    async (req) => {
      const auth = await ctx.auth.authenticate(req)
      const profile = await ctx.use('accounts').profile(auth.accountId, req.params.id)
      return { rows: await home.rows(auth, profile) }
    },
  )
}
