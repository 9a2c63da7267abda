import { createHash } from 'node:crypto'
import type { Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Auth } from '../../platform/auth.js'
import type { Bus } from '../../platform/bus/bus.js'
import { type Cache, readThrough } from '../../platform/cache/cache.js'
import { AppError, badRequest, conflict, errorMessage, notFound } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import type { Logger } from '../../platform/log.js'
import { counter } from '../../platform/metrics.js'
import { MATURITY_RATINGS, type MaturityRating, normalizeLanguage, ratingRank } from '../accounts/rules.js'
import type { AccountsService } from '../accounts/service.js'
import {
  type Artwork,
  type CreditRole,
  catalogEventId,
  type GenreRef,
  isAvailable,
  type MediaStatus,
  TITLE_REMOVED,
  TITLE_UPSERTED,
  type TitleDocument,
  type TitleRemoved,
  type TitleType,
  type TitleUpserted,
} from './events.js'
import {
  checkEpisodeNumber,
  checkExternalId,
  checkName,
  checkPopularity,
  checkRuntime,
  checkSeasonNumber,
  checkSynopsis,
  checkTitleText,
  checkYear,
  contentHash,
  type EpisodeInput,
  iso,
  MAX_EPISODES,
  type NormalizedTitle,
  nameKey,
  normalizeTitle,
  type SeasonInput,
  seriesMediaStatus,
  sortKey,
  type TitleChanges,
  type TitleInput,
  windowsOf,
} from './rules.js'
import { TitleInputSchema } from './schemas.js'
import type { CatalogStore, EpisodeRow, ListSort, SeasonRow, TitleRow } from './store.js'

const DETAIL_TTL_MS = 10 * 60_000
const LIST_TTL_MS = 60_000
const GENRES_TTL_MS = 60 * 60_000
const GENERATION_KEY = 'catalog:generation'
const GENERATION_TTL_MS = 30 * 24 * 3600_000
export const LIST_LIMIT_DEFAULT = 20
export const LIST_LIMIT_MAX = 100
/** Events older than this still in the outbox were not published after their commit: the relay sends them. */
const OUTBOX_GRACE_MS = 5_000

/** Who is looking: the country decides availability, a profile's limit decides maturity. */
export interface Viewer {
  country: string
  maturityLimit?: MaturityRating
}

export interface TitleSummary {
  id: string
  type: TitleType
  title: string
  year: number | null
  genres: GenreRef[]
  maturityRating: MaturityRating
  runtimeMin: number | null
  originalLanguage: string | null
  artwork: Artwork
  popularity: number
  mediaStatus: MediaStatus
}

export interface Episode {
  id: string
  seasonId: string
  number: number
  name: string
  synopsis: string
  runtimeMin: number | null
  mediaStatus: MediaStatus
  durationMs: number | null
}

export interface Season {
  id: string
  number: number
  name: string
  synopsis: string
  year: number | null
  episodes: Episode[]
}

export interface TitleDetail extends TitleDocument {
  seasons: Season[]
}

export interface PersonView {
  id: string
  name: string
  credits: { role: CreditRole; character: string | null; title: TitleSummary }[]
}

export interface ListInput {
  genre?: string[]
  yearFrom?: number
  yearTo?: number
  language?: string[]
  type?: TitleType[]
  sort?: ListSort
  limit?: number
  cursor?: string
}

export interface Page<T> {
  items: T[]
  nextCursor: string | null
}

export type ImportStatus = 'created' | 'updated' | 'unchanged' | 'rejected'

export interface ImportOutcome {
  index: number
  externalId: string | null
  status: ImportStatus
  id?: string
  code?: string
  reason?: string
}

/**
 * What the media pipeline tells the catalog. Without titleId, `newTitle` is created first (found
 * again by its externalId when given, so a retried upload does not create a second title).
 */
export interface MediaUpdate {
  titleId?: string
  /** The episode whose media this is; absent: the title's own (a movie's). */
  episodeId?: string
  newTitle?: {
    id?: string
    title: string
    year?: number
    externalId?: string
    maturityRating?: MaturityRating
  }
  status: MediaStatus
  /** Length of the playable media; null or absent leaves it unknown. */
  durationMs?: number | null
}

export interface MediaTarget {
  titleId: string
  episodeId: string | null
  status: MediaStatus
  durationMs: number | null
}

export interface CatalogOptions {
  store: CatalogStore
  cache: Cache
  bus: Bus
  accounts: () => AccountsService
  log: Logger
  now?: () => number
}

type TitleInputRecord = Static<typeof TitleInputSchema>
const titleInputCheck = TypeCompiler.Compile(TitleInputSchema)
const importedRecords = counter(
  'reel_catalog_import_records_total',
  'Catalog records imported (reel catalog import, the admin page), by outcome: created, updated, unchanged, rejected',
  ['outcome'],
)

/**
 * Why a record is not a title, for the person reading the import report: the field, what it should
 * be (each alternative of a union, not "Expected union value") and what it was.
 */
function recordProblem(record: unknown): string {
  const first = titleInputCheck.Errors(record).First()
  if (!first) return 'The record is not a title'
  const alternatives = first.errors.flatMap((e) => e.First()?.message ?? [])
  const expected =
    alternatives.length > 0
      ? [...new Set(alternatives)].join(' or ').replace(/ or Expected /g, ' or ')
      : first.message
  const given = first.value === undefined ? '' : `, got ${JSON.stringify(first.value)?.slice(0, 60)}`
  return `${first.path || 'record'}: ${expected}${given}`
}

const parseJson = <T>(text: string, fallback: T): T => {
  try {
    return JSON.parse(text) as T
  } catch {
    return fallback
  }
}

const digest = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('base64url')

interface Cursor {
  sort: ListSort
  value: number | string
  id: string
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.sort, c.value, c.id])).toString('base64url')
}

function decodeCursor(raw: string, sort: ListSort): Cursor {
  const invalid = () =>
    badRequest('invalid_cursor', 'The cursor is not one this API returned; start again without it')
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(raw)) throw invalid()
  const parsed = parseJson<unknown>(Buffer.from(raw, 'base64url').toString('utf8'), undefined)
  if (!Array.isArray(parsed) || parsed.length !== 3) throw invalid()
  const [s, value, id] = parsed as unknown[]
  if (s !== sort || typeof id !== 'string') throw invalid()
  if (
    sort === 'popularity' ? typeof value !== 'number' || !Number.isFinite(value) : typeof value !== 'string'
  )
    throw invalid()
  return { sort, value: value as number | string, id }
}

/** Ratings a viewer may see: those at or below its profile's limit; undefined means any. */
export function allowedRatings(limit: MaturityRating | undefined): MaturityRating[] | undefined {
  if (limit === undefined) return undefined
  return MATURITY_RATINGS.filter((r) => ratingRank(r) <= ratingRank(limit))
}

/** Titles, series with their seasons and episodes, people, genres and where each may be shown. */
export class CatalogService {
  private readonly o: CatalogOptions & { now: () => number }

  constructor(options: CatalogOptions) {
    this.o = { ...options, now: options.now ?? Date.now }
  }

  private get store() {
    return this.o.store
  }

  /** The viewer a caller is: its country, and the limit of its profile when it names one (404 for another account's). */
  async viewer(auth: Auth, profileId?: string): Promise<Viewer> {
    if (profileId === undefined) return { country: auth.country }
    const profile = await this.o.accounts().profile(auth.accountId, profileId)
    return { country: auth.country, maturityLimit: profile.maturityLimit }
  }

  /** True when the viewer may see the title now. */
  visibleTo(title: Pick<TitleDocument, 'availability' | 'maturityRating'>, viewer: Viewer): boolean {
    if (!isAvailable(title.availability, viewer.country, this.o.now())) return false
    return (
      viewer.maturityLimit === undefined ||
      ratingRank(title.maturityRating) <= ratingRank(viewer.maturityLimit)
    )
  }

  async genres(): Promise<GenreRef[]> {
    return (await readThrough(this.o.cache, 'catalog:genres', GENRES_TTL_MS, () => this.store.genres())) ?? []
  }

  /** A page of the titles the viewer may see, filtered, in popularity or title order. */
  async list(viewer: Viewer, input: ListInput): Promise<Page<TitleSummary>> {
    const sort = input.sort ?? 'popularity'
    if (input.limit !== undefined && input.limit < 1)
      throw badRequest(
        'invalid_limit',
        `limit is a whole number from 1 (more than ${LIST_LIMIT_MAX} gives ${LIST_LIMIT_MAX})`,
      )
    const limit = Math.min(input.limit ?? LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)
    const after = input.cursor === undefined ? undefined : decodeCursor(input.cursor, sort)
    const genres = await this.checkGenreFilter(input.genre)
    const languages = input.language?.map(normalizeLanguage)
    const now = this.o.now()
    const query = {
      genres,
      yearFrom: input.yearFrom,
      yearTo: input.yearTo,
      languages,
      types: input.type,
      country: viewer.country,
      ratings: allowedRatings(viewer.maturityLimit),
      sort,
      after: after && { value: after.value, id: after.id },
      limit,
    }
    // Pages are cached per catalog generation (bumped by every change) and per minute (windows open and close).
    const key = `catalog:list:${await this.generation()}:${Math.floor(now / 60_000)}:${digest(query)}`
    const page = await readThrough(this.o.cache, key, LIST_TTL_MS, async () => {
      const rows = await this.store.listTitles({ ...query, now })
      const items = await this.summaries(rows.slice(0, limit))
      const last = rows.length > limit ? rows[limit - 1] : undefined
      const nextCursor = last
        ? encodeCursor({
            sort,
            value: sort === 'popularity' ? last.popularity : sort === 'newest' ? last.id : last.sort_title,
            id: last.id,
          })
        : null
      return { items, nextCursor }
    })
    return page ?? { items: [], nextCursor: null }
  }

  /** A title with its seasons and episodes, as the viewer may see it (404 otherwise). */
  async title(id: string, viewer: Viewer): Promise<TitleDetail> {
    const title = await this.detail(id)
    if (!title || !this.visibleTo(title, viewer)) throw titleNotFound(id)
    return title
  }

  /**
   * Titles whatever their availability and rating (for administrators), newest first, those whose
   * title contains `q` (case, accents and punctuation aside); the cursor is the last id of a page.
   */
  async adminList(input: { q?: string; limit?: number; cursor?: string }): Promise<Page<TitleSummary>> {
    if (input.limit !== undefined && input.limit < 1)
      throw badRequest(
        'invalid_limit',
        `limit is a whole number from 1 (more than ${LIST_LIMIT_MAX} gives ${LIST_LIMIT_MAX})`,
      )
    const limit = Math.min(input.limit ?? LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)
    const text = input.q === undefined ? undefined : sortKey(input.q)
    const rows = await this.store.adminTitles({ text: text || undefined, beforeId: input.cursor, limit })
    const items = await this.summaries(rows.slice(0, limit))
    return { items, nextCursor: rows.length > limit ? (rows[limit - 1]?.id ?? null) : null }
  }

  /** A title whatever its availability (for administrators). */
  async adminTitle(id: string): Promise<TitleDetail> {
    const title = await this.detail(id)
    if (!title) throw titleNotFound(id)
    return title
  }

  /** A person and the titles the viewer may see them in. */
  async person(id: string, viewer: Viewer): Promise<PersonView> {
    const key = `catalog:person:${await this.generation()}:${id}`
    const person = await readThrough(this.o.cache, key, LIST_TTL_MS, async () => {
      const row = await this.store.person(id)
      if (!row) return undefined
      const credits = await this.store.creditsOfPerson(id)
      const titles = await this.store.titles([...new Set(credits.map((c) => c.title_id))])
      const summaries = new Map((await this.summaries(titles)).map((s) => [s.id, s]))
      const windows = await this.store.availabilityOf(titles.map((t) => t.id))
      return {
        id: row.id,
        name: row.name,
        credits: credits.flatMap((c) => {
          const title = summaries.get(c.title_id)
          if (!title) return []
          const availability = windowsOf(
            windows
              .filter((w) => w.title_id === c.title_id)
              .map((w) => ({ region: w.region, startsAt: w.starts_at, endsAt: w.ends_at })),
          )
          return [{ role: c.role as CreditRole, character: c.character, title, availability }]
        }),
      }
    })
    if (!person) throw notFound('person_not_found', `No person ${id}`)
    return {
      id: person.id,
      name: person.name,
      credits: person.credits
        .filter((c) =>
          this.visibleTo({ availability: c.availability, maturityRating: c.title.maturityRating }, viewer),
        )
        .sort((a, b) => b.title.popularity - a.title.popularity || a.title.id.localeCompare(b.title.id))
        .map(({ role, character, title }) => ({ role, character, title })),
    }
  }

  async create(input: TitleInput): Promise<TitleDetail> {
    const title = normalizeTitle(input, this.o.now())
    const seasons = this.checkSeasons(input.type, input.seasons)
    await this.checkReferences(title)
    if (title.externalId && (await this.store.titleByExternalId(title.externalId)))
      throw conflict(
        'external_id_taken',
        `A title with external id "${title.externalId}" exists; change it instead`,
      )
    const id = newId()
    await this.commit(id, async (tx) => {
      await this.insertTitle(tx, id, title, contentHash(title, input.seasons))
      await this.writeSeasons(tx, id, seasons)
    })
    return this.adminTitle(id)
  }

  async update(id: string, changes: TitleChanges): Promise<TitleDetail> {
    const current = await this.adminTitle(id)
    const merged: TitleInput = { ...inputOf(current), ...changes }
    const title = normalizeTitle(merged, this.o.now())
    await this.checkReferences(title)
    if (title.externalId && title.externalId !== current.externalId) {
      const holder = await this.store.titleByExternalId(title.externalId)
      if (holder && holder.id !== id)
        throw conflict('external_id_taken', `Another title has external id "${title.externalId}"`)
    }
    await this.commit(id, (tx) => this.rewriteTitle(tx, id, title, contentHash(title, undefined)))
    return this.adminTitle(id)
  }

  async remove(id: string): Promise<void> {
    const now = this.o.now()
    const event = await this.store.transaction(async (tx) => {
      const row = await tx.title(id)
      if (!row) throw titleNotFound(id)
      await tx.deleteTitle(id)
      const data: TitleRemoved = { id, version: row.version + 1 }
      const outbox = {
        id: catalogEventId(id, data.version),
        type: TITLE_REMOVED,
        key: id,
        data: JSON.stringify(data),
        created_at: now,
      }
      await tx.addOutbox(outbox)
      return outbox
    })
    await this.published([event], id)
  }

  /** Sets the score that orders lists and breaks ties in search (trends and views feed it). */
  async setPopularity(titleId: string, score: number): Promise<void> {
    const popularity = checkPopularity(score)
    await this.commit(titleId, (tx) => tx.updateTitle(titleId, { popularity }))
  }

  async addSeason(titleId: string, input: SeasonInput): Promise<Season> {
    const title = await this.adminTitle(titleId)
    const [season] = this.checkSeasons(title.type, [input])
    if (!season) throw badRequest('invalid_season', 'No season given')
    if (title.seasons.some((s) => s.number === season.number))
      throw conflict('season_exists', `Season ${season.number} exists; change it instead`)
    let seasonId = ''
    await this.commit(titleId, async (tx) => {
      seasonId = (await this.writeSeasons(tx, titleId, [season]))[0] ?? ''
    })
    return this.findSeason(await this.adminTitle(titleId), seasonId)
  }

  async updateSeason(titleId: string, seasonId: string, changes: Partial<Omit<SeasonInput, 'episodes'>>) {
    const title = await this.adminTitle(titleId)
    const season = this.findSeason(title, seasonId)
    const number = changes.number === undefined ? season.number : checkSeasonNumber(changes.number)
    if (number !== season.number && title.seasons.some((s) => s.number === number))
      throw conflict('season_exists', `Season ${number} exists`)
    const next = {
      number,
      name: changes.name === undefined ? season.name : checkName(changes.name, season.name),
      synopsis: changes.synopsis === undefined ? season.synopsis : checkSynopsis(changes.synopsis),
      year: changes.year === undefined ? season.year : checkYear(changes.year, this.o.now()),
      updated_at: this.o.now(),
    }
    await this.commit(titleId, (tx) => tx.updateSeason(seasonId, next))
    return this.findSeason(await this.adminTitle(titleId), seasonId)
  }

  async removeSeason(titleId: string, seasonId: string): Promise<void> {
    this.findSeason(await this.adminTitle(titleId), seasonId)
    await this.commit(titleId, (tx) => tx.deleteSeason(seasonId))
  }

  async addEpisode(titleId: string, seasonId: string, input: EpisodeInput): Promise<Episode> {
    const season = this.findSeason(await this.adminTitle(titleId), seasonId)
    const episode = checkEpisode(input)
    if (season.episodes.some((e) => e.number === episode.number))
      throw conflict('episode_exists', `Episode ${episode.number} of season ${season.number} exists`)
    if (season.episodes.length >= MAX_EPISODES)
      throw conflict('too_many_episodes', `A season has at most ${MAX_EPISODES} episodes`)
    const id = newId()
    const now = this.o.now()
    await this.commit(titleId, (tx) => tx.insertEpisode(episodeRow(id, titleId, seasonId, episode, now)))
    return this.findEpisode(await this.adminTitle(titleId), id)
  }

  async updateEpisode(titleId: string, episodeId: string, changes: Partial<EpisodeInput>): Promise<Episode> {
    const title = await this.adminTitle(titleId)
    const episode = this.findEpisode(title, episodeId)
    const number = changes.number === undefined ? episode.number : checkEpisodeNumber(changes.number)
    const season = this.findSeason(title, episode.seasonId)
    if (number !== episode.number && season.episodes.some((e) => e.number === number))
      throw conflict('episode_exists', `Episode ${number} of season ${season.number} exists`)
    const next = {
      number,
      name: changes.name === undefined ? episode.name : checkName(changes.name, episode.name),
      synopsis: changes.synopsis === undefined ? episode.synopsis : checkSynopsis(changes.synopsis),
      runtime_min: changes.runtimeMin === undefined ? episode.runtimeMin : checkRuntime(changes.runtimeMin),
      updated_at: this.o.now(),
    }
    await this.commit(titleId, (tx) => tx.updateEpisode(episodeId, next))
    return this.findEpisode(await this.adminTitle(titleId), episodeId)
  }

  async removeEpisode(titleId: string, episodeId: string): Promise<void> {
    this.findEpisode(await this.adminTitle(titleId), episodeId)
    await this.commit(titleId, (tx) => tx.deleteEpisode(episodeId))
  }

  /**
   * The media pipeline's one entry point into the catalog: records the status (`pending`,
   * `processing`, `available`, `failed`) and duration of a title's own media (a movie) or of one
   * episode's, creating a minimal title first when it has no titleId yet (`newTitle`: type movie,
   * rated NC-17 and shown nowhere until an administrator completes it). Publishes
   * `catalog.title.upserted` like every change. 404 `title_not_found` / `episode_not_found`.
   */
  async upsertMedia(update: MediaUpdate): Promise<MediaTarget> {
    if (update.durationMs !== undefined && update.durationMs !== null) {
      if (!Number.isSafeInteger(update.durationMs) || update.durationMs < 0)
        throw badRequest('invalid_duration', 'durationMs is a whole number of milliseconds from 0')
    }
    let titleId = update.titleId
    if (titleId === undefined) {
      if (!update.newTitle)
        throw badRequest('invalid_media_update', 'Give titleId, or newTitle to create one')
      titleId = await this.createMinimal(update.newTitle)
    }
    const title = await this.adminTitle(titleId)
    const durationMs = update.durationMs ?? null
    const episodeId = update.episodeId
    const now = this.o.now()
    if (episodeId === undefined) {
      await this.commit(title.id, (tx) =>
        tx.updateTitle(title.id, { media_status: update.status, duration_ms: durationMs }),
      )
    } else {
      this.findEpisode(title, episodeId)
      await this.commit(title.id, (tx) =>
        tx.updateEpisode(episodeId, {
          media_status: update.status,
          duration_ms: durationMs,
          updated_at: now,
        }),
      )
    }
    return { titleId: title.id, episodeId: episodeId ?? null, status: update.status, durationMs }
  }

  /**
   * What a media id belongs to: a title (a movie's own media) or one episode of a series; undefined
   * when the catalog has neither (an upload that starts a title of its own).
   */
  async mediaTarget(mediaId: string): Promise<{ titleId: string; episodeId?: string } | undefined> {
    if (await this.store.title(mediaId)) return { titleId: mediaId }
    const episode = await this.store.episode(mediaId)
    return episode ? { titleId: episode.title_id, episodeId: episode.id } : undefined
  }

  /** Titles whose external id does not start with `prefix` (the demo seed asks how many others there are). */
  countTitlesOutside(prefix: string): Promise<number> {
    return this.store.countTitlesOutside(prefix)
  }

  /** The title with this external id, if any (whatever its availability). */
  async titleByExternalId(externalId: string): Promise<TitleDetail | undefined> {
    const row = await this.store.titleByExternalId(externalId)
    return row ? this.detail(row.id) : undefined
  }

  /** Titles by id (those that exist), with seasons and episodes, whatever their availability: for other services. */
  async titlesById(ids: readonly string[]): Promise<Map<string, TitleDetail>> {
    const out = new Map<string, TitleDetail>()
    for (const id of new Set(ids)) {
      const title = await this.detail(id)
      if (title) out.set(id, title)
    }
    return out
  }

  /**
   * Creates or updates titles by their external id, each on its own: a bad record is reported (with
   * the reason) and the others are kept. A record equal to what is stored changes nothing.
   */
  async importTitles(records: unknown[]): Promise<ImportOutcome[]> {
    const outcomes: ImportOutcome[] = []
    for (const [index, record] of records.entries()) {
      const externalId = externalIdOf(record)
      try {
        outcomes.push({ index, externalId, ...(await this.importOne(record)) })
      } catch (e) {
        if (!(e instanceof AppError) || e.status >= 500) {
          this.o.log.error({ err: e, index, externalId }, 'importing a catalog record failed')
          outcomes.push({
            index,
            externalId,
            status: 'rejected',
            code: 'import_failed',
            reason: errorMessage(e),
          })
        } else outcomes.push({ index, externalId, status: 'rejected', code: e.code, reason: e.message })
      }
    }
    for (const outcome of outcomes) importedRecords.inc({ outcome: outcome.status })
    return outcomes
  }

  /** Publishes events whose publication after commit did not happen (the process stopped in between). */
  async relayOutbox(): Promise<number> {
    const pending = await this.store.pendingOutbox(this.o.now() - OUTBOX_GRACE_MS, 500)
    for (const row of pending) await this.publish(row)
    await this.store.deleteOutbox(pending.map((r) => r.id))
    return pending.length
  }

  private async importOne(record: unknown): Promise<{ status: ImportStatus; id: string }> {
    if (!titleInputCheck.Check(record)) {
      throw badRequest('invalid_record', recordProblem(record))
    }
    const input: TitleInputRecord = record
    const title = normalizeTitle(input, this.o.now())
    if (!title.externalId) throw badRequest('missing_external_id', 'An imported title needs an externalId')
    const seasons = this.checkSeasons(input.type, input.seasons)
    await this.checkReferences(title)
    const hash = contentHash(title, input.seasons)
    const existing = await this.store.titleByExternalId(title.externalId)
    if (!existing) {
      const id = newId()
      await this.commit(id, async (tx) => {
        await this.insertTitle(tx, id, title, hash)
        await this.writeSeasons(tx, id, seasons)
      })
      return { status: 'created', id }
    }
    if (existing.content_hash === hash) return { status: 'unchanged', id: existing.id }
    if (existing.type !== title.type)
      throw conflict('type_mismatch', `Title ${existing.id} is a ${existing.type}; a feed cannot change that`)
    await this.commit(existing.id, async (tx) => {
      await this.rewriteTitle(tx, existing.id, title, hash)
      await this.writeSeasons(tx, existing.id, seasons)
    })
    return { status: 'updated', id: existing.id }
  }

  /** The minimal title the media pipeline starts from; an id or externalId already known is reused. */
  private async createMinimal(input: NonNullable<MediaUpdate['newTitle']>): Promise<string> {
    if (input.id !== undefined && (await this.store.title(input.id))) return input.id
    const externalId = checkExternalId(input.externalId)
    const existing = externalId === null ? undefined : await this.store.titleByExternalId(externalId)
    if (existing) return existing.id
    const title = normalizeTitle(
      {
        type: 'movie',
        title: input.title,
        year: input.year,
        externalId,
        maturityRating: input.maturityRating ?? 'NC-17',
      },
      this.o.now(),
    )
    const id = input.id ?? newId()
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id))
      throw badRequest('invalid_id', 'A title id has 1 to 64 letters, digits, _ or -')
    await this.commit(id, (tx) => this.insertTitle(tx, id, title, contentHash(title, undefined)))
    return id
  }

  private async detail(id: string): Promise<TitleDetail | undefined> {
    return readThrough(this.o.cache, titleKey(id), DETAIL_TTL_MS, async () => {
      const row = await this.store.title(id)
      if (!row) return undefined
      const document = await documentOf(this.store, row)
      return { ...document, seasons: await seasonsOf(this.store, row.id) }
    })
  }

  private async summaries(rows: TitleRow[]): Promise<TitleSummary[]> {
    const ids = rows.map((r) => r.id)
    const [genres, statuses] = await Promise.all([this.store.genresOf(ids), this.store.episodeStatuses(ids)])
    return rows.map((row) => ({
      id: row.id,
      type: row.type as TitleType,
      title: row.title,
      year: row.year,
      genres: genres.filter((g) => g.title_id === row.id).map((g) => ({ id: g.id, name: g.name })),
      maturityRating: row.maturity_rating as MaturityRating,
      runtimeMin: row.runtime_min,
      originalLanguage: row.original_language,
      artwork: parseJson<Artwork>(row.artwork, {}),
      popularity: row.popularity,
      mediaStatus: mediaStatusOf(
        row,
        statuses.filter((s) => s.title_id === row.id).map((s) => s.media_status as MediaStatus),
      ),
    }))
  }

  private async checkGenreFilter(genres: string[] | undefined): Promise<string[] | undefined> {
    if (!genres || genres.length === 0) return undefined
    const known = new Set((await this.genres()).map((g) => g.id))
    const unknown = genres.filter((g) => !known.has(g))
    if (unknown.length > 0)
      throw badRequest('unknown_genre', `Unknown genre "${unknown[0]}"; GET /api/v1/genres lists them`)
    return genres
  }

  private async checkReferences(title: NormalizedTitle): Promise<void> {
    const genres = await this.store.existingGenres(title.genres)
    const unknownGenre = title.genres.find((g) => !genres.has(g))
    if (unknownGenre !== undefined)
      throw badRequest('unknown_genre', `Unknown genre "${unknownGenre}"; GET /api/v1/genres lists them`)
    const personIds = title.credits.flatMap((c) => (c.personId === undefined ? [] : [c.personId]))
    const people = await this.store.existingPeople(personIds)
    const unknownPerson = personIds.find((p) => !people.has(p))
    if (unknownPerson !== undefined) throw badRequest('unknown_person', `No person ${unknownPerson}`)
  }

  private checkSeasons(type: TitleType, seasons: SeasonInput[] | undefined): SeasonInput[] {
    if (!seasons || seasons.length === 0) return []
    if (type !== 'series') throw badRequest('not_a_series', 'Only a series has seasons')
    const now = this.o.now()
    const numbers = new Set<number>()
    return seasons.map((s) => {
      const number = checkSeasonNumber(s.number)
      if (numbers.has(number)) throw badRequest('duplicate_season', `Season ${number} is given twice`)
      numbers.add(number)
      const episodeNumbers = new Set<number>()
      const episodes = (s.episodes ?? []).map((e) => {
        const episode = checkEpisode(e)
        if (episodeNumbers.has(episode.number))
          throw badRequest(
            'duplicate_episode',
            `Episode ${episode.number} of season ${number} is given twice`,
          )
        episodeNumbers.add(episode.number)
        return episode
      })
      return {
        number,
        name: checkName(s.name, `Season ${number}`),
        synopsis: checkSynopsis(s.synopsis),
        year: checkYear(s.year, now),
        episodes,
      }
    })
  }

  /** Upserts seasons and their episodes by number (what is not named stays); returns the season ids. */
  private async writeSeasons(tx: CatalogStore, titleId: string, seasons: SeasonInput[]): Promise<string[]> {
    const now = this.o.now()
    const ids: string[] = []
    for (const s of seasons) {
      const existing = await tx.seasonByNumber(titleId, s.number)
      const seasonId = existing?.id ?? newId()
      const fields = { name: s.name ?? '', synopsis: s.synopsis ?? '', year: s.year ?? null, updated_at: now }
      if (existing) await tx.updateSeason(seasonId, fields)
      else
        await tx.insertSeason({
          id: seasonId,
          title_id: titleId,
          number: s.number,
          created_at: now,
          ...fields,
        })
      for (const e of s.episodes ?? []) {
        const episode = checkEpisode(e)
        const current = existing ? await tx.episodeByNumber(seasonId, episode.number) : undefined
        if (current)
          await tx.updateEpisode(current.id, {
            name: episode.name,
            synopsis: episode.synopsis,
            runtime_min: episode.runtimeMin,
            updated_at: now,
          })
        else await tx.insertEpisode(episodeRow(newId(), titleId, seasonId, episode, now))
      }
      ids.push(seasonId)
    }
    return ids
  }

  private async insertTitle(
    tx: CatalogStore,
    id: string,
    title: NormalizedTitle,
    hash: string,
  ): Promise<void> {
    const now = this.o.now()
    await tx.insertTitle({
      id,
      ...titleColumns(title),
      content_hash: hash,
      media_status: 'pending',
      duration_ms: null,
      version: 0,
      created_at: now,
      updated_at: now,
    })
    await this.writeReferences(tx, id, title)
  }

  private async rewriteTitle(
    tx: CatalogStore,
    id: string,
    title: NormalizedTitle,
    hash: string,
  ): Promise<void> {
    await tx.updateTitle(id, { ...titleColumns(title), content_hash: hash })
    await this.writeReferences(tx, id, title)
  }

  private async writeReferences(tx: CatalogStore, id: string, title: NormalizedTitle): Promise<void> {
    await tx.setGenres(id, title.genres)
    const named = title.credits.flatMap((c) => (c.name === undefined ? [] : [c.name]))
    const people = await this.personIds(tx, named)
    const roleOrder = new Map<string, number>()
    await tx.setCredits(
      id,
      title.credits.map((c, position) => {
        const order = roleOrder.get(c.role) ?? 0
        roleOrder.set(c.role, order + 1)
        const personId = c.personId ?? people.get(nameKey(c.name ?? '')) ?? ''
        return { title_id: id, person_id: personId, role: c.role, position, character: c.character }
      }),
    )
    await tx.setAvailability(
      id,
      title.availability.map((w, position) => ({
        title_id: id,
        position,
        region: w.region,
        starts_at: w.startsAt,
        ends_at: w.endsAt,
      })),
    )
  }

  /** People named by a feed, found by name (case- and accent-blind) or created. */
  private async personIds(tx: CatalogStore, names: string[]): Promise<Map<string, string>> {
    const byKey = new Map<string, string>()
    for (const name of names) byKey.set(nameKey(name), name)
    const ids = new Map<string, string>()
    for (const row of await tx.peopleByKeys([...byKey.keys()]))
      if (!ids.has(row.name_key)) ids.set(row.name_key, row.id)
    const now = this.o.now()
    const created = [...byKey]
      .filter(([key]) => !ids.has(key))
      .map(([key, name]) => ({ id: newId(), name, name_key: key, created_at: now }))
    await tx.insertPeople(created)
    for (const p of created) ids.set(p.name_key, p.id)
    return ids
  }

  /** Applies a change and bumps the title's version in one transaction, with the event in the outbox; then publishes. */
  private async commit(titleId: string, change: (tx: CatalogStore) => Promise<void>): Promise<void> {
    const now = this.o.now()
    const event = await this.store.transaction(async (tx) => {
      await change(tx)
      const version = await tx.bumpVersion(titleId, now)
      const row = version === undefined ? undefined : await tx.title(titleId)
      if (!row) throw titleNotFound(titleId)
      const data: TitleUpserted = { title: await documentOf(tx, row) }
      const outbox = {
        id: catalogEventId(titleId, row.version),
        type: TITLE_UPSERTED,
        key: titleId,
        data: JSON.stringify(data),
        created_at: now,
      }
      await tx.addOutbox(outbox)
      return outbox
    })
    await this.published([event], titleId)
  }

  private async published(
    events: { id: string; type: string; key: string; data: string }[],
    titleId: string,
  ) {
    await this.o.cache.del(titleKey(titleId))
    await this.o.cache.incr(GENERATION_KEY, GENERATION_TTL_MS).catch(() => undefined)
    try {
      for (const event of events) await this.publish(event)
      await this.store.deleteOutbox(events.map((e) => e.id))
    } catch (e) {
      // The change is committed; the relay job publishes the event later.
      this.o.log.warn(
        { err: errorMessage(e), titleId },
        'publishing a catalog event failed; the outbox relay retries',
      )
    }
  }

  private async publish(event: { id: string; type: string; key: string; data: string }): Promise<void> {
    await this.o.bus.publish({ id: event.id, type: event.type, key: event.key, data: JSON.parse(event.data) })
  }

  private async generation(): Promise<string> {
    return (await this.o.cache.get(GENERATION_KEY)) ?? '0'
  }

  private findSeason(title: TitleDetail, seasonId: string): Season {
    const season = title.seasons.find((s) => s.id === seasonId)
    if (!season) throw notFound('season_not_found', `Title ${title.id} has no season ${seasonId}`)
    return season
  }

  private findEpisode(title: TitleDetail, episodeId: string): Episode {
    for (const season of title.seasons) {
      const episode = season.episodes.find((e) => e.id === episodeId)
      if (episode) return episode
    }
    throw notFound('episode_not_found', `Title ${title.id} has no episode ${episodeId}`)
  }
}

const titleKey = (id: string) => `catalog:title:${id}`
const titleNotFound = (id: string) => notFound('title_not_found', `No title ${id}`)

function externalIdOf(record: unknown): string | null {
  if (typeof record !== 'object' || record === null) return null
  const value = (record as { externalId?: unknown }).externalId
  return typeof value === 'string' ? value.trim().slice(0, 100) : null
}

function checkEpisode(e: EpisodeInput): Required<EpisodeInput> & { name: string; synopsis: string } {
  const number = checkEpisodeNumber(e.number)
  return {
    number,
    name: e.name === undefined ? `Episode ${number}` : checkTitleText(e.name),
    synopsis: checkSynopsis(e.synopsis),
    runtimeMin: checkRuntime(e.runtimeMin),
  }
}

function episodeRow(
  id: string,
  titleId: string,
  seasonId: string,
  e: ReturnType<typeof checkEpisode>,
  now: number,
): EpisodeRow {
  return {
    id,
    title_id: titleId,
    season_id: seasonId,
    number: e.number,
    name: e.name,
    synopsis: e.synopsis,
    runtime_min: e.runtimeMin,
    media_status: 'pending',
    duration_ms: null,
    created_at: now,
    updated_at: now,
  }
}

function titleColumns(t: NormalizedTitle) {
  return {
    external_id: t.externalId,
    type: t.type,
    title: t.title,
    sort_title: t.sortTitle,
    synopsis: t.synopsis,
    year: t.year,
    runtime_min: t.runtimeMin,
    maturity_rating: t.maturityRating,
    original_language: t.originalLanguage,
    countries: JSON.stringify(t.countries),
    tags: JSON.stringify(t.tags),
    artwork: JSON.stringify(t.artwork),
    popularity: t.popularity,
  }
}

/** A stored title as the input that would produce it (so a change can be applied to the whole and checked again). */
function inputOf(t: TitleDetail): TitleInput {
  return {
    externalId: t.externalId,
    type: t.type,
    title: t.title,
    synopsis: t.synopsis,
    year: t.year,
    runtimeMin: t.runtimeMin,
    maturityRating: t.maturityRating,
    originalLanguage: t.originalLanguage,
    countries: t.countries,
    genres: t.genres.map((g) => g.id),
    tags: t.tags,
    artwork: t.artwork,
    credits: t.credits.map((c) => ({ personId: c.personId, role: c.role, character: c.character })),
    availability: t.availability,
    popularity: t.popularity,
  }
}

function mediaStatusOf(row: TitleRow, episodes: MediaStatus[]): MediaStatus {
  return row.type === 'series' ? seriesMediaStatus(episodes) : (row.media_status as MediaStatus)
}

async function documentOf(store: CatalogStore, row: TitleRow): Promise<TitleDocument> {
  const ids = [row.id]
  const [genres, credits, windows, seasons, episodes] = await Promise.all([
    store.genresOf(ids),
    store.creditsOf(ids),
    store.availabilityOf(ids),
    store.seasonCounts(ids),
    store.episodeStatuses(ids),
  ])
  return {
    id: row.id,
    externalId: row.external_id,
    type: row.type as TitleType,
    title: row.title,
    synopsis: row.synopsis,
    year: row.year,
    runtimeMin: row.runtime_min,
    maturityRating: row.maturity_rating as MaturityRating,
    originalLanguage: row.original_language,
    countries: parseJson<string[]>(row.countries, []),
    genres: genres.map((g) => ({ id: g.id, name: g.name })),
    tags: parseJson<string[]>(row.tags, []),
    artwork: parseJson<Artwork>(row.artwork, {}),
    credits: creditsWithOrder(credits),
    availability: windowsOf(
      windows.map((w) => ({ region: w.region, startsAt: w.starts_at, endsAt: w.ends_at })),
    ),
    popularity: row.popularity,
    mediaStatus: mediaStatusOf(
      row,
      episodes.map((e) => e.media_status as MediaStatus),
    ),
    durationMs: row.duration_ms === null ? null : Number(row.duration_ms),
    seasonCount: seasons.get(row.id) ?? 0,
    episodeCount: episodes.length,
    version: row.version,
    createdAt: iso(Number(row.created_at)),
    updatedAt: iso(Number(row.updated_at)),
  }
}

function creditsWithOrder(
  rows: { person_id: string; name: string; role: string; character: string | null }[],
) {
  const order = new Map<string, number>()
  return rows.map((c) => {
    const n = order.get(c.role) ?? 0
    order.set(c.role, n + 1)
    return {
      personId: c.person_id,
      name: c.name,
      role: c.role as CreditRole,
      character: c.character,
      order: n,
    }
  })
}

async function seasonsOf(store: CatalogStore, titleId: string): Promise<Season[]> {
  const [seasons, episodes] = await Promise.all([store.seasons(titleId), store.episodes(titleId)])
  return seasons.map((s: SeasonRow) => ({
    id: s.id,
    number: s.number,
    name: s.name,
    synopsis: s.synopsis,
    year: s.year,
    episodes: episodes
      .filter((e) => e.season_id === s.id)
      .sort((a, b) => a.number - b.number)
      .map((e) => ({
        id: e.id,
        seasonId: s.id,
        number: e.number,
        name: e.name,
        synopsis: e.synopsis,
        runtimeMin: e.runtime_min,
        mediaStatus: e.media_status as MediaStatus,
        durationMs: e.duration_ms === null ? null : Number(e.duration_ms),
      })),
  }))
}
