import { Type } from '@sinclair/typebox'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import {
  EpisodeChangesSchema,
  EpisodeInputSchema,
  EpisodeOutSchema,
  GenreSchema,
  ImportOutcomeSchema,
  PersonSchema,
  SeasonChangesSchema,
  SeasonInputSchema,
  SeasonSchema,
  TitleChangesSchema,
  TitleDetailSchema,
  TitleInputSchema,
  TitleSummarySchema,
  TitleTypeSchema,
} from './schemas.js'
import type { CatalogService } from './service.js'

const security = [{ bearer: [] }]
const tags = ['catalog']
const adminTags = ['catalog admin']

const Id = Type.String({ minLength: 1, maxLength: 64 })
const ProfileId = Type.Optional(
  Type.String({
    minLength: 1,
    maxLength: 64,
    description: 'Apply this profile’s maturity limit (must be yours)',
  }),
)
/** Records per import request: the CLI sends a feed in batches of this size. */
export const IMPORT_BATCH_MAX = 500

export function catalogRoutes(ctx: ModuleContext, catalog: CatalogService): void {
  const { http } = ctx

  http.get(
    '/api/v1/genres',
    {
      schema: {
        tags,
        security,
        summary: 'Every genre a title can have',
        response: { 200: Type.Object({ genres: Type.Array(GenreSchema) }), ...errorResponses(401) },
      },
    },
    async (req) => {
      await ctx.auth.authenticate(req)
      return { genres: await catalog.genres() }
    },
  )

  http.get(
    '/api/v1/titles',
    {
      schema: {
        tags,
        security,
        summary: 'Browse the titles available in your country, filtered, a page at a time',
        querystring: Type.Object(
          {
            genre: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 20 })),
            yearFrom: Type.Optional(Type.Integer({ minimum: 0, maximum: 9999 })),
            yearTo: Type.Optional(Type.Integer({ minimum: 0, maximum: 9999 })),
            language: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 20 })),
            type: Type.Optional(Type.Array(TitleTypeSchema, { maxItems: 2 })),
            sort: Type.Optional(
              Type.Union([Type.Literal('popularity'), Type.Literal('title'), Type.Literal('newest')]),
            ),
            limit: Type.Optional(
              Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'At most 100' }),
            ),
            cursor: Type.Optional(
              Type.String({ maxLength: 1000, description: 'nextCursor of the previous page' }),
            ),
            profileId: ProfileId,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(TitleSummarySchema),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => {
      const { profileId, ...input } = req.query
      const viewer = await catalog.viewer(await ctx.auth.authenticate(req), profileId)
      return catalog.list(viewer, input)
    },
  )

  http.get(
    '/api/v1/titles/:id',
    {
      schema: {
        tags,
        security,
        summary: 'A title with its seasons, episodes, people and media status',
        params: Type.Object({ id: Id }),
        querystring: Type.Object({ profileId: ProfileId }, { additionalProperties: false }),
        response: { 200: TitleDetailSchema, ...errorResponses(401, 404) },
      },
    },
    async (req) => {
      const viewer = await catalog.viewer(await ctx.auth.authenticate(req), req.query.profileId)
      return catalog.title(req.params.id, viewer)
    },
  )

  http.get(
    '/api/v1/people/:id',
    {
      schema: {
        tags,
        security,
        summary: 'A person and the titles of theirs you can watch',
        params: Type.Object({ id: Id }),
        querystring: Type.Object({ profileId: ProfileId }, { additionalProperties: false }),
        response: { 200: PersonSchema, ...errorResponses(401, 404) },
      },
    },
    async (req) => {
      const viewer = await catalog.viewer(await ctx.auth.authenticate(req), req.query.profileId)
      return catalog.person(req.params.id, viewer)
    },
  )

  http.post(
    '/api/v1/admin/titles',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Add a movie or a series (with seasons and episodes if given)',
        body: TitleInputSchema,
        response: { 201: TitleDetailSchema, ...errorResponses(401, 403, 409) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      return reply.code(201).send(await catalog.create(req.body))
    },
  )

  http.post(
    '/api/v1/admin/titles/import',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Create or update titles by externalId; each record is accepted or rejected on its own',
        description: `At most ${IMPORT_BATCH_MAX} records per request; \`reel catalog import FILE\` sends a feed in batches.`,
        body: Type.Object(
          { records: Type.Array(Type.Unknown(), { maxItems: IMPORT_BATCH_MAX }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ outcomes: Type.Array(ImportOutcomeSchema) }),
          ...errorResponses(401, 403),
        },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return { outcomes: await catalog.importTitles(req.body.records) }
    },
  )

  http.get(
    '/api/v1/admin/titles/:id',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'A title whatever its availability',
        params: Type.Object({ id: Id }),
        response: { 200: TitleDetailSchema, ...errorResponses(401, 403, 404) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return catalog.adminTitle(req.params.id)
    },
  )

  http.patch(
    '/api/v1/admin/titles/:id',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Change a title (lists given replace the old ones)',
        params: Type.Object({ id: Id }),
        body: TitleChangesSchema,
        response: { 200: TitleDetailSchema, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return catalog.update(req.params.id, req.body)
    },
  )

  http.delete(
    '/api/v1/admin/titles/:id',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Delete a title with its seasons and episodes',
        params: Type.Object({ id: Id }),
        response: { 204: Type.Null(), ...errorResponses(401, 403, 404) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      await catalog.remove(req.params.id)
      return reply.code(204).send(null)
    },
  )

  http.post(
    '/api/v1/admin/titles/:id/seasons',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Add a season (and its episodes) to a series',
        params: Type.Object({ id: Id }),
        body: SeasonInputSchema,
        response: { 201: SeasonSchema, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      return reply.code(201).send(await catalog.addSeason(req.params.id, req.body))
    },
  )

  http.patch(
    '/api/v1/admin/titles/:id/seasons/:seasonId',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Change a season',
        params: Type.Object({ id: Id, seasonId: Id }),
        body: SeasonChangesSchema,
        response: { 200: SeasonSchema, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return catalog.updateSeason(req.params.id, req.params.seasonId, req.body)
    },
  )

  http.delete(
    '/api/v1/admin/titles/:id/seasons/:seasonId',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Delete a season with its episodes',
        params: Type.Object({ id: Id, seasonId: Id }),
        response: { 204: Type.Null(), ...errorResponses(401, 403, 404) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      await catalog.removeSeason(req.params.id, req.params.seasonId)
      return reply.code(204).send(null)
    },
  )

  http.post(
    '/api/v1/admin/titles/:id/seasons/:seasonId/episodes',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Add an episode to a season',
        params: Type.Object({ id: Id, seasonId: Id }),
        body: EpisodeInputSchema,
        response: { 201: EpisodeOutSchema, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      return reply.code(201).send(await catalog.addEpisode(req.params.id, req.params.seasonId, req.body))
    },
  )

  http.patch(
    '/api/v1/admin/titles/:id/episodes/:episodeId',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Change an episode',
        params: Type.Object({ id: Id, episodeId: Id }),
        body: EpisodeChangesSchema,
        response: { 200: EpisodeOutSchema, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return catalog.updateEpisode(req.params.id, req.params.episodeId, req.body)
    },
  )

  http.delete(
    '/api/v1/admin/titles/:id/episodes/:episodeId',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Delete an episode',
        params: Type.Object({ id: Id, episodeId: Id }),
        response: { 204: Type.Null(), ...errorResponses(401, 403, 404) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      await catalog.removeEpisode(req.params.id, req.params.episodeId)
      return reply.code(204).send(null)
    },
  )
}
