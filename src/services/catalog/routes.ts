import { PassThrough } from 'node:stream'
import { Type } from '@sinclair/typebox'
import { AppError, errorMessage, unprocessable } from '../../platform/errors.js'
import { toErrorResponse } from '../../platform/http/errors.js'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import { FEED_FORMATS, type FeedItem, importFeedItems, parseFeed, UnreadableFeed } from './feed.js'
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
/** Largest feed file the admin page may send (the IMDb-5000 CSV is 1.5 MB). */
export const IMPORT_FILE_MAX_BYTES = 32 * 1024 * 1024
/** Rows imported between two progress lines of a file import. */
const IMPORT_FILE_BATCH = 100

class ImportAbandoned extends Error {}

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
    '/api/v1/admin/titles',
    {
      schema: {
        tags: adminTags,
        security,
        summary: 'Every title, shown anywhere or not, newest first; q keeps those whose title contains it',
        querystring: Type.Object(
          {
            q: Type.Optional(
              Type.String({ maxLength: 200, description: 'Part of the title (case and accents aside)' }),
            ),
            limit: Type.Optional(
              Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'At most 100' }),
            ),
            cursor: Type.Optional(
              Type.String({ minLength: 1, maxLength: 64, description: 'nextCursor of the previous page' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(TitleSummarySchema),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses(401, 403),
        },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return catalog.adminList(req.query)
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

  http.post(
    '/api/v1/admin/catalog/imports',
    {
      // Only an administrator's request body is read at all.
      onRequest: async (req) => {
        await ctx.auth.requireAdmin(req)
      },
      bodyLimit: IMPORT_FILE_MAX_BYTES + 1024 * 1024,
      schema: {
        tags: adminTags,
        security,
        summary: 'Import a catalog file (CSV or JSON) sent whole; answers with progress as it goes',
        description:
          'Reads the file by the rules of `reel catalog import` (IMDb-5000 CSV columns understood), then ' +
          'creates or updates titles by externalId; each row is accepted or rejected on its own. The answer ' +
          'is NDJSON: `{"type":"started","rows":N}`, a `{"type":"progress",…}` line per batch of ' +
          `${IMPORT_FILE_BATCH} rows, and \`{"type":"done","report":{created,updated,unchanged,rejected:[{line,externalId,code,reason}],repeated}}\` ` +
          '(or `{"type":"error","error":{code,message}}` when the import stops part-way; the rows before stay imported). ' +
          'A file that cannot be read at all is refused with 422 before anything is imported.',
        body: Type.Object(
          {
            format: Type.Union(
              FEED_FORMATS.map((f) => Type.Literal(f)),
              { description: 'csv, json (an array or {"titles":[…]}) or ndjson' },
            ),
            content: Type.String({ maxLength: IMPORT_FILE_MAX_BYTES, description: 'The file’s text' }),
            regions: Type.Optional(
              Type.Array(Type.String({ pattern: '^(\\*|[A-Za-z]{2})$' }), {
                minItems: 1,
                maxItems: 300,
                description: 'Where rows without availability are shown: country codes or * (the default)',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Unknown({
            description: 'NDJSON (application/x-ndjson): progress lines, then the report',
          }),
          ...errorResponses(401, 403, 413, 422),
        },
      },
    },
    async (req, reply) => {
      const { format, content } = req.body
      if (content.trim() === '') throw unprocessable('empty_feed', 'The file is empty')
      const regions = (req.body.regions ?? ['*']).map((r) => r.toUpperCase())
      let items: FeedItem[]
      try {
        items = parseFeed(content, format, { regions })
      } catch (e) {
        if (e instanceof UnreadableFeed)
          throw unprocessable(
            'unreadable_feed',
            `This ${format.toUpperCase()} file cannot be read: ${e.message}`,
          )
        throw e
      }
      if (items.length === 0) throw unprocessable('empty_feed', 'The file has no rows to import')

      const out = new PassThrough()
      const line = (value: unknown) => out.write(`${JSON.stringify(value)}\n`)
      let gone = false
      reply.raw.once('close', () => {
        gone = !reply.raw.writableFinished
      })
      line({ type: 'started', rows: items.length })
      const started = Date.now()
      importFeedItems(
        items,
        async (records) => {
          // Nobody is reading any more: stop between batches (what is imported stays imported).
          if (gone) throw new ImportAbandoned()
          return { outcomes: await catalog.importTitles(records) }
        },
        {
          batch: IMPORT_FILE_BATCH,
          onBatch: (rows, report) => {
            line({
              type: 'progress',
              rows,
              of: items.length,
              created: report.created,
              updated: report.updated,
              unchanged: report.unchanged,
              rejected: report.rejected.length,
            })
          },
        },
      )
        .then((report) => {
          req.log.info(
            {
              rows: items.length,
              created: report.created,
              updated: report.updated,
              unchanged: report.unchanged,
              rejected: report.rejected.length,
              ms: Date.now() - started,
            },
            'catalog file imported',
          )
          out.end(`${JSON.stringify({ type: 'done', report })}\n`)
        })
        .catch((e: unknown) => {
          if (e instanceof ImportAbandoned)
            req.log.warn({ rows: items.length }, 'catalog import abandoned by its client')
          else if (!(e instanceof AppError)) req.log.error({ err: errorMessage(e) }, 'catalog import failed')
          out.end(`${JSON.stringify({ type: 'error', error: toErrorResponse(e).body.error })}\n`)
        })
      return reply
        .type('application/x-ndjson; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-accel-buffering', 'no')
        .send(out)
    },
  )
}
