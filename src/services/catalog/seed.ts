import fs from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from '@sinclair/typebox'
import type { Blobs } from '../../platform/blobs/blobs.js'
import { conflict, errorMessage, isAppError } from '../../platform/errors.js'
import { errorResponses } from '../../platform/http/server.js'
import type { Logger } from '../../platform/log.js'
import { counter, gauge } from '../../platform/metrics.js'
import type { ModuleContext } from '../../platform/modules.js'
import { makeDemoClip } from '../media/democlip.js'
import type { MediaService } from '../media/service.js'
import type { MediaTools } from '../media/tools.js'
import { DEMO_EXTERNAL_ID_PREFIX, DEMO_TITLES, type DemoTitle, demoRecord } from './demo.js'
import type { CatalogService, TitleDetail } from './service.js'

/**
 * The demo seed: the catalog of demo.ts, each movie and episode with a generated clip sent through
 * the real media pipeline (ingest → transcode → HLS → available). It runs inside a server (started
 * by `POST /api/v1/admin/seed`, which `reel seed` calls, or by `reel start` on an empty install) and
 * is idempotent: titles are found again by their external ids, media already available is kept, media
 * in progress is waited for, and failed media is made again.
 */

export const SEED_CLIP_SECONDS = { min: 2, max: 60, default: 12 }
export const SEED_CLIP_HEIGHTS = [144, 240, 360, 480, 540, 720] as const
const DEFAULT_CLIP_HEIGHT = 720
/** Written once a seed has finished: `reel start` seeds a first start only, not an install emptied later. */
export const SEED_MARKER_KEY = 'system/demo-seed.json'
const POLL_MS = 1000

const seedRunning = gauge('reel_seed_running', '1 while this process seeds the demo catalog')
const seedClips = counter(
  'reel_seed_clips_total',
  'Demo clips: made (generated and handed to the media pipeline) or kept (their media was there or on its way)',
  ['outcome'],
)

export interface SeedOptions {
  /** Seed even though the catalog has titles of its own (the demo titles are added beside them). */
  force?: boolean
  /** Only the first n titles of the demo catalog (tests keep it small). */
  titles?: number
  clipSeconds?: number
  clipHeight?: (typeof SEED_CLIP_HEIGHTS)[number]
}

export type SeedItemState = 'missing' | 'generating' | 'pending' | 'processing' | 'available' | 'failed'

export interface SeedItem {
  externalId: string
  /** The title, and for an episode `S1 E2 · name`. */
  label: string
  titleId: string | null
  episodeId: string | null
  state: SeedItemState
  percent: number
  error: { code: string; message: string } | null
}

export interface SeedStatus {
  running: boolean
  startedAt: string | null
  finishedAt: string | null
  /** Why the last run in this process stopped early, if it did. */
  error: string | null
  titles: number
  items: SeedItem[]
  available: number
  failed: number
  percent: number
  /** Titles in the catalog that are not the demo's. */
  otherTitles: number
}

interface Playable {
  demo: DemoTitle
  externalId: string
  label: string
  titleId: string
  episodeId: string | null
  /** Whose media it is: the movie's id or the episode's. */
  mediaId: string
  season?: number
  episode?: { number: number; name: string; synopsis: string }
}

interface Run {
  options: Required<Omit<SeedOptions, 'force'>>
  startedAt: number
  finishedAt: number | null
  error: string | null
  abort: AbortController
  generating: Set<string>
  done: Promise<void>
}

export interface SeederDeps {
  catalog: () => CatalogService
  media: () => MediaService
  tools: MediaTools
  blobs: Blobs
  log: Logger
  /** Scratch space for the generated clips (each is deleted once the pipeline has it). */
  workDir: string
}

export class DemoSeeder {
  private run: Run | undefined

  constructor(private readonly deps: SeederDeps) {}

  /**
   * Starts seeding in the background; 409 `catalog_not_empty` when the catalog has titles of its
   * own (unless force), 409 `seed_running` while a seed runs in this process.
   */
  async start(input: SeedOptions = {}): Promise<SeedStatus> {
    if (this.run && this.run.finishedAt === null)
      throw conflict('seed_running', 'The demo catalog is being seeded; GET /api/v1/admin/seed follows it')
    const others = await this.deps.catalog().countTitlesOutside(DEMO_EXTERNAL_ID_PREFIX)
    if (others > 0 && !input.force)
      throw conflict(
        'catalog_not_empty',
        `The catalog has ${others} title(s) of its own; seed with force (reel seed --force) to add the demo titles beside them`,
      )
    const options = {
      titles: Math.min(input.titles ?? DEMO_TITLES.length, DEMO_TITLES.length),
      clipSeconds: input.clipSeconds ?? SEED_CLIP_SECONDS.default,
      clipHeight: input.clipHeight ?? DEFAULT_CLIP_HEIGHT,
    }
    const run: Run = {
      options,
      startedAt: Date.now(),
      finishedAt: null,
      error: null,
      abort: new AbortController(),
      generating: new Set(),
      done: Promise.resolve(),
    }
    this.run = run
    seedRunning.set(1)
    run.done = this.seed(run)
      .catch((e: unknown) => {
        if (run.abort.signal.aborted) {
          run.error = 'stopped before it finished'
          this.deps.log.info('demo seed stopped; it resumes on the next start (or reel seed)')
          return
        }
        run.error = errorMessage(e)
        this.deps.log.error({ err: run.error }, 'demo seed failed')
      })
      .finally(() => {
        run.finishedAt = Date.now()
        seedRunning.set(0)
      })
    return this.status()
  }

  /**
   * `reel start` on a first start: seeds when no seed has finished on this install and the catalog
   * has no titles of its own. Never throws (a failed seed is logged).
   */
  async seedIfFirstStart(): Promise<void> {
    const { blobs, catalog, log } = this.deps
    try {
      if (await blobs.head(SEED_MARKER_KEY)) return
      const others = await catalog().countTitlesOutside(DEMO_EXTERNAL_ID_PREFIX)
      if (others > 0) {
        log.info({ titles: others }, 'the catalog has titles: no demo seed (reel seed --force adds it)')
        return
      }
      log.info(
        'no titles of its own and no finished demo seed: seeding the demo catalog in the background (REEL_SEED=off turns this off)',
      )
      await this.start()
    } catch (e) {
      log.error({ err: errorMessage(e) }, 'the demo seed could not start')
    }
  }

  /** Resolves when the current run (if any) has ended. */
  async settled(): Promise<void> {
    await this.run?.done
  }

  /** Stops a running seed (at shutdown): clip generation is cut short, media already queued goes on. */
  async stop(): Promise<void> {
    this.run?.abort.abort()
    await this.run?.done
  }

  /** Where each demo title and episode is, from the catalog and the media pipeline. */
  async status(): Promise<SeedStatus> {
    const run = this.run
    const count = run?.options.titles ?? DEMO_TITLES.length
    const items: SeedItem[] = []
    for (const demo of DEMO_TITLES.slice(0, count)) {
      const externalId = `${DEMO_EXTERNAL_ID_PREFIX}${demo.slug}`
      const detail = await this.deps.catalog().titleByExternalId(externalId)
      if (!detail) {
        for (const label of labelsOf(demo))
          items.push({
            externalId,
            label,
            titleId: null,
            episodeId: null,
            state: 'missing',
            percent: 0,
            error: null,
          })
        continue
      }
      for (const p of playablesOf(demo, detail)) {
        const generating = run?.finishedAt === null && run.generating.has(p.mediaId)
        items.push({
          externalId,
          label: p.label,
          titleId: p.titleId,
          episodeId: p.episodeId,
          ...(generating
            ? { state: 'generating' as const, percent: 0, error: null }
            : await this.mediaState(p.mediaId)),
        })
      }
    }
    const available = items.filter((i) => i.state === 'available').length
    return {
      running: run !== undefined && run.finishedAt === null,
      startedAt: run ? new Date(run.startedAt).toISOString() : null,
      finishedAt: run?.finishedAt ? new Date(run.finishedAt).toISOString() : null,
      error: run?.error ?? null,
      titles: count,
      items,
      available,
      failed: items.filter((i) => i.state === 'failed').length,
      percent:
        items.length === 0
          ? 0
          : Math.round((items.reduce((sum, i) => sum + i.percent, 0) / items.length) * 10) / 10,
      otherTitles: await this.deps.catalog().countTitlesOutside(DEMO_EXTERNAL_ID_PREFIX),
    }
  }

  private async mediaState(mediaId: string): Promise<Pick<SeedItem, 'state' | 'percent' | 'error'>> {
    try {
      const view = await this.deps.media().titleMedia(mediaId)
      const state: SeedItemState =
        view.status === 'uploading'
          ? 'pending'
          : view.status === 'available' || view.status === 'failed'
            ? view.status
            : 'processing'
      return { state, percent: view.percent, error: view.error }
    } catch (e) {
      if (isAppError(e) && e.status === 404) return { state: 'missing', percent: 0, error: null }
      throw e
    }
  }

  private async seed(run: Run): Promise<void> {
    const { log } = this.deps
    const signal = run.abort.signal
    const demos = DEMO_TITLES.slice(0, run.options.titles)
    await this.importCatalog(demos)
    let playables = await this.playables(demos)
    log.info(
      { clips: playables.length, ...run.options },
      'seeding the demo catalog: a clip per movie and episode, through the media pipeline',
    )
    for (const [i, p] of playables.entries()) {
      signal.throwIfAborted()
      const current = await this.mediaState(p.mediaId)
      if (current.state === 'available' || current.state === 'processing') {
        seedClips.inc({ outcome: 'kept' })
        continue
      }
      if (current.state === 'failed') {
        log.warn({ item: p.label, error: current.error }, 'demo media failed before: making it again')
        await this.replace(p)
        playables = await this.playables(demos)
      }
      const target = playables[i] ?? p
      run.generating.add(target.mediaId)
      try {
        log.info({ item: target.label, n: i + 1, of: playables.length }, 'demo seed: making a clip')
        await this.ingestClip(target, run, signal)
        seedClips.inc({ outcome: 'made' })
      } finally {
        run.generating.delete(target.mediaId)
      }
    }
    // The pipeline works through the queue; wait for every item to end.
    for (;;) {
      signal.throwIfAborted()
      const states = await Promise.all(playables.map((p) => this.mediaState(p.mediaId)))
      if (states.every((s) => s.state === 'available' || s.state === 'failed')) {
        const failed = states.filter((s) => s.state === 'failed').length
        if (failed > 0) {
          log.error(
            { failed, of: states.length },
            'demo seed finished with failed media; run reel seed again',
          )
          run.error = `${failed} of ${states.length} clips failed in the media pipeline`
          return
        }
        await this.deps.blobs.put(
          SEED_MARKER_KEY,
          Buffer.from(JSON.stringify({ finishedAt: new Date().toISOString(), titles: demos.length })),
          { contentType: 'application/json' },
        )
        log.info(
          { titles: demos.length, clips: states.length },
          'demo seed finished: every demo title is available',
        )
        return
      }
      await sleep(POLL_MS, undefined, { signal })
    }
  }

  private async importCatalog(demos: readonly DemoTitle[]): Promise<void> {
    const outcomes = await this.deps.catalog().importTitles(demos.map(demoRecord))
    const rejected = outcomes.find((o) => o.status === 'rejected')
    if (rejected)
      throw new Error(`demo title ${rejected.externalId} rejected: ${rejected.code}: ${rejected.reason}`)
  }

  /** Every movie and episode, first episodes first: each title becomes playable as early as it can. */
  private async playables(demos: readonly DemoTitle[]): Promise<Playable[]> {
    const out: { p: Playable; rank: number }[] = []
    for (const demo of demos) {
      const detail = await this.deps.catalog().titleByExternalId(`${DEMO_EXTERNAL_ID_PREFIX}${demo.slug}`)
      if (!detail) throw new Error(`demo title ${demo.slug} is not in the catalog after its import`)
      out.push(...playablesOf(demo, detail).map((p, rank) => ({ p, rank })))
    }
    // A stable sort keeps the catalog's order within each rank.
    return out.sort((a, b) => a.rank - b.rank).map((x) => x.p)
  }

  /** Failed media cannot be sent again under the same id: the movie or episode is made anew. */
  private async replace(p: Playable): Promise<void> {
    const catalog = this.deps.catalog()
    if (p.episodeId === null) {
      await catalog.remove(p.titleId)
      await this.importCatalog([p.demo])
      return
    }
    const detail = await catalog.adminTitle(p.titleId)
    const season = detail.seasons.find((s) => s.episodes.some((e) => e.id === p.episodeId))
    if (!season || !p.episode) return
    await catalog.removeEpisode(p.titleId, p.episodeId)
    await catalog.addEpisode(p.titleId, season.id, p.episode)
  }

  private async ingestClip(p: Playable, run: Run, signal: AbortSignal): Promise<void> {
    const { media, tools, workDir } = this.deps
    const file = path.join(workDir, `${p.mediaId}.mp4`)
    const demo = p.demo
    const shift = (p.season ?? 0) * 10 + (p.episode?.number ?? 0)
    try {
      const { withText } = await makeDemoClip(
        tools,
        {
          file,
          text: demo.title,
          subtitle:
            p.episode && p.season !== undefined
              ? `S${p.season} E${p.episode.number} · ${p.episode.name}`
              : `${demo.year} · ${demo.maturityRating}`,
          seconds: run.options.clipSeconds,
          height: run.options.clipHeight,
          pattern: demo.clip.pattern,
          colors: demo.clip.colors,
          tone: demo.clip.tone * 2 ** (shift / 12),
        },
        signal,
      )
      if (!withText) this.deps.log.warn('this ffmpeg cannot draw text: demo clips show the test pattern only')
      await media().ingestFile({ mediaId: p.mediaId, title: p.label, year: demo.year, file })
    } finally {
      await fs.rm(file, { force: true })
    }
  }
}

function labelsOf(demo: DemoTitle): string[] {
  if (!demo.seasons) return [demo.title]
  return demo.seasons.flatMap((s) =>
    s.episodes.map((e) => `${demo.title} · S${s.number} E${e.number} · ${e.name}`),
  )
}

function playablesOf(demo: DemoTitle, detail: TitleDetail): Playable[] {
  const externalId = `${DEMO_EXTERNAL_ID_PREFIX}${demo.slug}`
  if (detail.type !== 'series')
    return [{ demo, externalId, label: demo.title, titleId: detail.id, episodeId: null, mediaId: detail.id }]
  return [...detail.seasons]
    .sort((a, b) => a.number - b.number)
    .flatMap((s) =>
      [...s.episodes]
        .sort((a, b) => a.number - b.number)
        .map((e) => ({
          demo,
          externalId,
          label: `${demo.title} · S${s.number} E${e.number} · ${e.name}`,
          titleId: detail.id,
          episodeId: e.id,
          mediaId: e.id,
          season: s.number,
          episode: { number: e.number, name: e.name, synopsis: e.synopsis },
        })),
    )
}

const SeedItemSchema = Type.Object({
  externalId: Type.String(),
  label: Type.String(),
  titleId: Type.Union([Type.String(), Type.Null()]),
  episodeId: Type.Union([Type.String(), Type.Null()]),
  state: Type.Union(
    (['missing', 'generating', 'pending', 'processing', 'available', 'failed'] as const).map((s) =>
      Type.Literal(s),
    ),
  ),
  percent: Type.Number(),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
})

export const SeedStatusSchema = Type.Object({
  running: Type.Boolean(),
  startedAt: Type.Union([Type.String(), Type.Null()]),
  finishedAt: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  titles: Type.Integer(),
  items: Type.Array(SeedItemSchema),
  available: Type.Integer(),
  failed: Type.Integer(),
  percent: Type.Number(),
  otherTitles: Type.Integer(),
})

const SeedBody = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({ description: 'Seed even when the catalog has titles of its own (added beside them)' }),
    ),
    titles: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: DEMO_TITLES.length,
        description: 'Only the first n demo titles',
      }),
    ),
    clipSeconds: Type.Optional(
      Type.Integer({
        minimum: SEED_CLIP_SECONDS.min,
        maximum: SEED_CLIP_SECONDS.max,
        description: `Length of each clip (default ${SEED_CLIP_SECONDS.default})`,
      }),
    ),
    clipHeight: Type.Optional(
      Type.Union(
        SEED_CLIP_HEIGHTS.map((h) => Type.Literal(h)),
        {
          description: `Picture height of the clips (default ${DEFAULT_CLIP_HEIGHT}): the ladder stops there`,
        },
      ),
    ),
  },
  { additionalProperties: false },
)

/** `POST /api/v1/admin/seed` (start) and `GET /api/v1/admin/seed` (follow), for administrators. */
export function seedRoutes(ctx: ModuleContext, seeder: DemoSeeder): void {
  const tags = ['catalog admin']
  const security = [{ bearer: [] }]
  ctx.http.post(
    '/api/v1/admin/seed',
    {
      schema: {
        tags,
        security,
        summary: 'Seed the demo catalog: titles with generated clips sent through the media pipeline',
        description:
          'Runs in the background; idempotent (titles are found by their `reel-demo:` external ids, available media is kept). 409 `catalog_not_empty` when the catalog has titles of its own and force is not set; 409 `seed_running` while a seed runs.',
        body: SeedBody,
        response: { 202: SeedStatusSchema, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      return reply.code(202).send(await seeder.start(req.body))
    },
  )
  ctx.http.get(
    '/api/v1/admin/seed',
    {
      schema: {
        tags,
        security,
        summary: 'Where the demo seed is: every demo movie and episode with its media state',
        response: { 200: SeedStatusSchema, ...errorResponses(401, 403) },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return seeder.status()
    },
  )
}
