import { Type } from '@sinclair/typebox'
import { sendJsonText } from '../../platform/http/encoding.js'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import { TitleTypeSchema } from '../catalog/schemas.js'
import type { SearchService } from './service.js'
import { MAX_GROUPS, MAX_PHRASES } from './synonyms.js'

const security = [{ bearer: [] }]
const tags = ['search']

const ProfileId = Type.Optional(
  Type.String({
    minLength: 1,
    maxLength: 64,
    description: 'Apply this profile’s maturity limit (must be yours)',
  }),
)
// Long enough for the service to answer a too-long query with its own code; URL limits bound the rest.
const Q = Type.Optional(
  Type.String({
    maxLength: 100_000,
    description: 'What is typed; at most 256 characters. Empty: the most popular titles (with facets).',
  }),
)
const Counts = Type.Record(Type.String(), Type.Integer())

export function searchRoutes(ctx: ModuleContext, search: SearchService): void {
  const { http } = ctx

  http.get(
    '/api/v1/search',
    {
      schema: {
        tags,
        security,
        summary:
          'Search titles as you type: prefix on the last word, typos forgiven, filters and facet counts',
        description:
          'Titles not available in your country, or above the given profile’s maturity limit, never appear. ' +
          'An empty q lists the most popular titles. limit=0 answers total and facets only; more than 100 gives 100.',
        querystring: Type.Object(
          {
            q: Q,
            profileId: ProfileId,
            genre: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 20 })),
            year: Type.Optional(Type.String({ maxLength: 20, description: '1999 or 1990-1999' })),
            language: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 20 })),
            type: Type.Optional(Type.Array(TitleTypeSchema, { maxItems: 2 })),
            limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
            cursor: Type.Optional(Type.String({ maxLength: 1000 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            hits: Type.Array(
              Type.Object({
                id: Type.String(),
                type: TitleTypeSchema,
                title: Type.String(),
                year: Type.Union([Type.Integer(), Type.Null()]),
                genres: Type.Array(Type.String()),
                highlight: Type.Record(Type.String(), Type.String(), {
                  description: 'Matched words wrapped in <mark>…</mark>: plain text with markers, not HTML',
                }),
                score: Type.Number(),
              }),
            ),
            facets: Type.Object({ genre: Counts, year: Counts, language: Counts }),
            total: Type.Integer(),
            tookMs: Type.Number(),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    // The service writes exactly the documented shape as JSON text (cached per answer): a string
    // with a JSON content type is sent as it is, where the compiled serializer's record fields
    // (highlight, facets) made ~35 KB of garbage a search (bench/search).
    async (req, reply) =>
      sendJsonText(reply, await search.searchJson(await ctx.auth.authenticate(req), req.query)),
  )

  http.get(
    '/api/v1/search/suggest',
    {
      schema: {
        tags,
        security,
        summary: 'Titles for the search box as you type (titles and people only); empty q: the most popular',
        querystring: Type.Object(
          {
            q: Q,
            profileId: ProfileId,
            limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'At most 20' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            suggestions: Type.Array(
              Type.Object({
                id: Type.String(),
                type: TitleTypeSchema,
                title: Type.String(),
                year: Type.Union([Type.Integer(), Type.Null()]),
                highlight: Type.String(),
              }),
            ),
            tookMs: Type.Number(),
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req, reply) =>
      sendJsonText(reply, await search.suggestJson(await ctx.auth.authenticate(req), req.query)),
  )

  const Groups = Type.Array(Type.Array(Type.String({ maxLength: 1000 }), { maxItems: MAX_PHRASES * 10 }), {
    maxItems: MAX_GROUPS * 10,
  })

  http.get(
    '/api/v1/admin/search/synonyms',
    {
      schema: {
        tags,
        security,
        summary: 'The synonym groups queries are expanded with',
        response: { 200: Type.Object({ groups: Groups }), ...errorResponses(401, 403) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return { groups: search.synonymList() }
    },
  )

  http.put(
    '/api/v1/admin/search/synonyms',
    {
      schema: {
        tags,
        security,
        summary:
          'Replace the synonym groups (e.g. [["sci-fi", "science fiction"]]); every replica applies them within a minute',
        body: Type.Object({ groups: Groups }, { additionalProperties: false }),
        response: { 200: Type.Object({ groups: Groups }), ...errorResponses(401, 403) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return { groups: await search.setSynonyms(req.body.groups) }
    },
  )

  http.get(
    '/api/v1/admin/search/status',
    {
      schema: {
        tags,
        security,
        summary: 'How many titles this replica’s index holds',
        response: { 200: Type.Object({ titles: Type.Integer() }), ...errorResponses(401, 403) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return { titles: search.size }
    },
  )
}
