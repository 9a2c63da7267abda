import { Type } from '@sinclair/typebox'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import type { TrendsService } from './service.js'

const tags = ['trends']
const security = [{ bearer: [] }]

const Region = Type.Optional(
  Type.String({
    maxLength: 64,
    description:
      'ISO 3166 alpha-2 country, or `world`; default the caller’s country. A region nothing is counted in answers an empty list.',
  }),
)
const Profile = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'The profile watching: titles above its maturity limit never appear',
})
const TypeFilter = Type.Optional(
  Type.Union([Type.Literal('all'), Type.Literal('movie'), Type.Literal('series'), Type.Literal('season')], {
    description: '`all` (movies and series, the default), `movie`, `series` or `season`',
  }),
)

const ranked = {
  rank: Type.Integer({ minimum: 1 }),
  titleId: Type.String({ description: 'The movie or series (for a season, its series)' }),
  seasonId: Type.Union([Type.String(), Type.Null()], { description: 'The season, for a season; else null' }),
  type: Type.Union([Type.Literal('movie'), Type.Literal('series'), Type.Literal('season')]),
  plays: Type.Integer({ description: 'Plays started in the period' }),
  hoursViewed: Type.Number(),
  views: Type.Number({ description: 'Hours viewed ÷ runtime' }),
  previousRank: Type.Union([Type.Integer(), Type.Null()], {
    description: 'Rank in the period before, among what this viewer may see; null when not ranked then',
  }),
  rankChange: Type.Union([Type.Integer(), Type.Null()], {
    description: 'previousRank − rank: positive moved up, null when new',
  }),
}

export function trendsRoutes(ctx: ModuleContext, trends: TrendsService): void {
  const { http } = ctx

  http.get(
    '/api/v1/trending',
    {
      schema: {
        tags,
        security,
        summary: 'Trending now: titles by time-decayed plays over the last hour, day or week',
        querystring: Type.Object({
          profile: Profile,
          region: Region,
          window: Type.Optional(
            Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('week')], {
              description: 'hour (sliding, 5-minute buckets), day (the default) or week',
            }),
          ),
          type: TypeFilter,
          limit: Type.Optional(
            Type.Integer({ minimum: 1, description: 'Titles to return (default 20, at most 50)' }),
          ),
        }),
        response: {
          200: Type.Object({
            region: Type.String(),
            window: Type.String(),
            type: Type.String(),
            from: Type.String({ format: 'date-time' }),
            to: Type.String({ format: 'date-time' }),
            items: Type.Array(
              Type.Object({ ...ranked, score: Type.Number({ description: 'Time-decayed plays' }) }),
            ),
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => {
      const viewer = await trends.viewer(await ctx.auth.authenticate(req), req.query.profile)
      return trends.trending(viewer, { ...req.query, window: req.query.window ?? 'day' })
    },
  )

  http.get(
    '/api/v1/top10',
    {
      schema: {
        tags,
        security,
        summary: 'Top 10 of a calendar week (Monday–Sunday, UTC) by views, with rank changes',
        querystring: Type.Object({
          profile: Profile,
          region: Region,
          type: TypeFilter,
          week: Type.Optional(
            Type.String({
              maxLength: 10,
              description: 'ISO week (2026-W48) or a date in it (2026-11-26); default the current week',
            }),
          ),
        }),
        response: {
          200: Type.Object({
            region: Type.String(),
            type: Type.String(),
            week: Type.String(),
            from: Type.String({ format: 'date-time' }),
            to: Type.String({ format: 'date-time' }),
            items: Type.Array(Type.Object(ranked)),
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => {
      const viewer = await trends.viewer(await ctx.auth.authenticate(req), req.query.profile)
      return trends.top10(viewer, req.query)
    },
  )
}
