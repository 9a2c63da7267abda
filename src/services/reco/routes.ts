import { type Static, Type } from '@sinclair/typebox'
import { sendJsonBytes } from '../../platform/http/encoding.js'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import { MATURITY_RATINGS } from '../accounts/rules.js'
import type { CampaignInput } from './campaigns.js'
import type { RecoService } from './service.js'
import type { Trainer } from './training.js'

export const HomeRowSchema = Type.Object({
  id: Type.String(),
  kind: Type.String({
    description:
      'continue_watching, top_picks, because_you_watched, others_also_watched, more_with_person, from_director, trending, top10, sponsored, new, genre, popular',
  }),
  title: Type.String(),
  reason: Type.Optional(
    Type.String({ description: 'Why the row is there, for a person ("Because you watched Heat")' }),
  ),
  sponsored: Type.Optional(Type.Boolean({ description: 'A paid placement: show a Sponsored label' })),
  campaignId: Type.Optional(Type.String()),
  items: Type.Array(
    Type.Object({
      titleId: Type.String(),
      title: Type.String(),
      artwork: Type.Optional(Type.String()),
      progress: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    }),
  ),
})

const HomePageSchema = Type.Object({
  rows: Type.Array(HomeRowSchema),
  fallback: Type.Optional(
    Type.Boolean({ description: 'Some rows come from the static fallback page because a source failed' }),
  ),
})

const ProfileParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
const RatingParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64 }),
  titleId: Type.String({ minLength: 1, maxLength: 64 }),
})
const RatingValue = Type.Union([Type.Literal('up'), Type.Literal('down')])
const RatingSchema = Type.Object({ titleId: Type.String(), rating: Type.Union([RatingValue, Type.Null()]) })
const RatingListSchema = Type.Object({
  ratings: Type.Array(Type.Object({ titleId: Type.String(), rating: RatingValue, updatedAt: Type.String() })),
})

const CountryOrAll = Type.String({
  pattern: '^([A-Z]{2}|\\*)$',
  description: 'ISO 3166 alpha-2, or * for all',
})
const SegmentSchema = Type.Object(
  {
    regions: Type.Array(CountryOrAll, { maxItems: 300 }),
    maturityLimits: Type.Optional(
      Type.Array(Type.Union(MATURITY_RATINGS.map((r) => Type.Literal(r))), { maxItems: 5 }),
    ),
    genres: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50 })),
  },
  { additionalProperties: false },
)
const CampaignInputSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    advertiser: Type.String({ minLength: 1, maxLength: 200 }),
    titleId: Type.String({ minLength: 1, maxLength: 64 }),
    segment: SegmentSchema,
    budget: Type.Integer({
      minimum: 0,
      maximum: 1_000_000_000,
      description: 'Impressions bought (at least 1)',
    }),
    startsAt: Type.String({ format: 'date-time' }),
    endsAt: Type.String({ format: 'date-time' }),
    pacing: Type.Optional(Type.Union([Type.Literal('even'), Type.Literal('asap')])),
    frequencyCap: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: 'Impressions per profile per UTC day' }),
    ),
    minAffinity: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
)
const CampaignSchema = Type.Composite([
  Type.Object({
    id: Type.String(),
    impressions: Type.Integer(),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  }),
  Type.Required(Type.Omit(CampaignInputSchema, [])),
])
const CampaignParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

const TrainReportSchema = Type.Object({
  runId: Type.String(),
  algorithm: Type.String(),
  profiles: Type.Integer(),
  titles: Type.Integer(),
  interactions: Type.Integer(),
  ms: Type.Number(),
  modelMs: Type.Number(),
  contentMs: Type.Number(),
  rssBytes: Type.Number(),
})

const tags = ['reco']
const adminTags = ['reco admin']
const security = [{ bearer: [] }]

export function recoRoutes(ctx: ModuleContext, reco: RecoService, trainer: Trainer): void {
  const http = ctx.http
  http.get(
    '/api/v1/profiles/:id/home',
    {
      schema: {
        tags,
        security,
        summary: "The rows of a profile's home page",
        params: ProfileParams,
        response: { 200: HomePageSchema, ...errorResponses(401, 404) },
      },
    },
    // Bytes assembled by reco (a memoized page with the sponsored row spliced in): no serializer pass,
    // and gzip compressed once per memoized page for clients that take it. The schema above still
    // documents them.
    async (req, reply) => {
      const bytes = await reco.homeJson(await ctx.auth.authenticate(req), req.params.id)
      return sendJsonBytes(req, reply, bytes)
    },
  )

  http.get(
    '/api/v1/profiles/:id/ratings',
    {
      schema: {
        tags,
        security,
        summary: "The profile's thumbs ratings, newest first",
        params: ProfileParams,
        response: { 200: RatingListSchema, ...errorResponses(401, 404) },
      },
    },
    async (req) => ({ ratings: await reco.ratings(await ctx.auth.authenticate(req), req.params.id) }),
  )

  http.get(
    '/api/v1/profiles/:id/ratings/:titleId',
    {
      schema: {
        tags,
        security,
        summary: "The profile's rating of a title (null when it has none)",
        params: RatingParams,
        response: { 200: RatingSchema, ...errorResponses(401, 404) },
      },
    },
    async (req) => reco.rating(await ctx.auth.authenticate(req), req.params.id, req.params.titleId),
  )

  http.put(
    '/api/v1/profiles/:id/ratings/:titleId',
    {
      schema: {
        tags,
        security,
        summary: 'Thumbs up or down: a down-rated title and its close neighbours leave the rows',
        params: RatingParams,
        body: Type.Object({ rating: RatingValue }, { additionalProperties: false }),
        response: { 200: RatingSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) =>
      reco.rate(await ctx.auth.authenticate(req), req.params.id, req.params.titleId, req.body.rating),
  )

  http.delete(
    '/api/v1/profiles/:id/ratings/:titleId',
    {
      schema: {
        tags,
        security,
        summary: 'Remove a rating',
        params: RatingParams,
        response: { 204: Type.Null(), ...errorResponses(401, 404) },
      },
    },
    async (req, reply) => {
      await reco.unrate(await ctx.auth.authenticate(req), req.params.id, req.params.titleId)
      return reply.code(204).send(null)
    },
  )

  http.get(
    '/api/v1/admin/campaigns',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Sponsored campaigns with their impressions so far',
        response: {
          200: Type.Object({ campaigns: Type.Array(CampaignSchema) }),
          ...errorResponses(401, 403),
        },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return { campaigns: await reco.campaigns.list() }
    },
  )

  http.post(
    '/api/v1/admin/campaigns',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Start a sponsored campaign for a title, targeted at a segment',
        body: CampaignInputSchema,
        response: { 201: CampaignSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      return reply.code(201).send(await reco.campaigns.create(req.body as CampaignInput))
    },
  )

  http.get(
    '/api/v1/admin/campaigns/:id',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'A campaign',
        params: CampaignParams,
        response: { 200: CampaignSchema, ...errorResponses(401, 403, 404) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return reco.campaigns.get(req.params.id)
    },
  )

  http.put(
    '/api/v1/admin/campaigns/:id',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Change a campaign (its impressions so far are kept)',
        params: CampaignParams,
        body: CampaignInputSchema,
        response: { 200: CampaignSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return reco.campaigns.update(req.params.id, req.body as CampaignInput)
    },
  )

  http.delete(
    '/api/v1/admin/campaigns/:id',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'End and remove a campaign',
        params: CampaignParams,
        response: { 204: Type.Null(), ...errorResponses(401, 403, 404) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      await reco.campaigns.remove(req.params.id)
      return reply.code(204).send(null)
    },
  )

  http.post(
    '/api/v1/admin/reco/train',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Train recommendations now and wait for the run (409 when one is running)',
        response: { 200: TrainReportSchema, ...errorResponses(401, 403, 409) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      const report = await trainer.runOrConflict()
      await reco
        .saveFallback()
        .catch((e) => ctx.log.warn({ err: e }, 'saving the reco fallback page after training failed'))
      return report
    },
  )

  http.get(
    '/api/v1/reco/status',
    {
      schema: {
        tags,
        summary: 'When recommendations were last trained, and on what',
        response: {
          200: Type.Object({
            lastRun: Type.Union([
              Type.Object({ finishedAt: Type.String(), report: Type.Record(Type.String(), Type.Unknown()) }),
              Type.Null(),
            ]),
            training: Type.Boolean(),
            titles: Type.Integer(),
          }),
        },
      },
    },
    async () => {
      const last = await reco.lastRun()
      return { lastRun: last ?? null, training: trainer.busy, titles: reco.titles.size }
    },
  )
}

export type CampaignBody = Static<typeof CampaignInputSchema>
