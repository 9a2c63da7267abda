import { Readable } from 'node:stream'
import type { Auth } from '../../platform/auth.js'
import type { Blobs } from '../../platform/blobs/blobs.js'
import type { Bus, EventEnvelope } from '../../platform/bus/bus.js'
import { badRequest, errorMessage } from '../../platform/errors.js'
import type { Logger } from '../../platform/log.js'
import { normalizeLanguage, ratingRank } from '../accounts/rules.js'
import type { AccountsService } from '../accounts/service.js'
import {
  TITLE_REMOVED,
  TITLE_UPSERTED,
  type TitleDocument,
  type TitleRemoved,
  type TitleType,
  type TitleUpserted,
} from '../catalog/events.js'
import { genreIdOf } from '../catalog/genres.js'
import { type Filters, type IndexedTitle, TitleIndex } from './engine.js'
import type { SearchStore } from './store.js'
import { compileSynonyms, DEFAULT_SYNONYMS, type SynonymTable } from './synonyms.js'

/** Longer queries are refused (400 query_too_long): nobody types that, and each word costs. */
export const MAX_QUERY_CHARS = 256
export const LIMIT_DEFAULT = 20
export const LIMIT_MAX = 100
export const SUGGEST_DEFAULT = 8
export const SUGGEST_MAX = 20
/** Results beyond this position are not paged to (as in Meilisearch's maxTotalHits). */
export const MAX_OFFSET = 1000
export const SNAPSHOT_KEY = 'search/titles-index.json'
const SYNONYMS_SETTING = 'synonyms'
/** While replaying the event log, the event loop gets a turn at least this often. */
const REPLAY_SLICE_MS = 10
/** The index is warmed up (TitleIndex.warmUp) once no title has changed for this long: not during a replay. */
const WARM_QUIET_MS = 100
/** How long a replica with a snapshot waits for the log's first catalog event before taking the log for one without any. */
const LOG_PROBE_MS = 5000

/**
 * Which log positions are in: its first catalog event. A log that starts with another event (a
 * recreated NATS stream, a fresh database next to an old blob store) numbers other events alike.
 */
export interface LogStart {
  id: string
  position: number
}

/** What a snapshot records besides the index: the last log position it holds, on which bus, in which log. */
interface SnapshotMeta {
  bus?: string
  position?: number
  logStart?: LogStart
}

const isLogStart = (x: unknown): x is LogStart =>
  typeof x === 'object' &&
  x !== null &&
  typeof (x as LogStart).id === 'string' &&
  Number.isSafeInteger((x as LogStart).position)

/** The first catalog event of the bus's log, or undefined when none comes within `timeoutMs`. */
export async function firstCatalogEvent(bus: Bus, timeoutMs = LOG_PROBE_MS): Promise<LogStart | undefined> {
  let settle: (first: LogStart | undefined) => void = () => {}
  const first = new Promise<LogStart | undefined>((resolve) => {
    settle = resolve
  })
  const subscription = await bus.subscribe({
    name: 'search-log-probe',
    durability: 'ephemeral',
    types: [TITLE_UPSERTED, TITLE_REMOVED],
    startAt: 'all',
    // Only the first delivery counts (a promise settles once).
    handler: async (event, info) => settle({ id: event.id, position: info.position }),
  })
  const timer = setTimeout(() => settle(undefined), timeoutMs)
  try {
    return await first
  } finally {
    clearTimeout(timer)
    await subscription.stop()
  }
}

export interface SearchParams {
  q?: string
  profileId?: string
  genre?: string[]
  year?: string
  language?: string[]
  type?: TitleType[]
  limit?: number
  cursor?: string
}

export interface SearchHit {
  id: string
  type: TitleType
  title: string
  year: number | null
  genres: string[]
  /** Matched words wrapped in <mark>…</mark> (plain text with markers, not HTML), per field that matched. */
  highlight: Record<string, string>
  score: number
}

export interface SearchResponse {
  hits: SearchHit[]
  facets: { genre: Record<string, number>; year: Record<string, number>; language: Record<string, number> }
  total: number
  tookMs: number
  nextCursor: string | null
}

export interface Suggestion {
  id: string
  type: TitleType
  title: string
  year: number | null
  highlight: string
}

export interface SearchServiceOptions {
  store: SearchStore
  blobs: Blobs
  accounts: () => AccountsService
  log: Logger
  now?: () => number
  /** The Bus kind whose log positions this replica records in its snapshot (they mean nothing on another). */
  busKind?: string
}

/** A catalog title as the index keeps it. */
export function indexedTitle(t: TitleDocument): IndexedTitle {
  const instant = (iso: string | null) => (iso === null ? null : Date.parse(iso))
  return {
    id: t.id,
    type: t.type,
    title: t.title,
    year: t.year,
    genres: t.genres,
    language: t.originalLanguage,
    ratingRank: ratingRank(t.maturityRating),
    windows: t.availability.map((w) => [w.region, instant(w.startsAt), instant(w.endsAt)]),
    popularity: t.popularity,
    people: [...new Set(t.credits.map((c) => c.name))],
    tags: t.tags,
    synopsis: t.synopsis,
    version: t.version,
  }
}

function encodeCursor(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url')
}

function decodeCursor(raw: string): number {
  const text = /^[A-Za-z0-9_-]{1,40}$/.test(raw) ? Buffer.from(raw, 'base64url').toString('utf8') : ''
  const m = /^o:(\d{1,7})$/.exec(text)
  const offset = m ? Number(m[1]) : Number.NaN
  if (!Number.isSafeInteger(offset) || offset > MAX_OFFSET)
    throw badRequest('invalid_cursor', 'The cursor is not one this API returned; start again without it')
  return offset
}

function parseYears(raw: string | undefined): Pick<Filters, 'yearFrom' | 'yearTo'> {
  if (raw === undefined || raw.trim() === '') return {}
  const m = /^\s*(\d{4})\s*(?:(?:-|\.\.)\s*(\d{4})\s*)?$/.exec(raw)
  if (!m) throw badRequest('invalid_year', 'year is a year such as 1999 or a range such as 1990-1999')
  const from = Number(m[1])
  const to = m[2] === undefined ? from : Number(m[2])
  if (to < from) throw badRequest('invalid_year', 'A year range starts with the earlier year')
  return { yearFrom: from, yearTo: to }
}

async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Search-as-you-type over the titles the catalog publishes: one in-memory index per replica, fed
 * by catalog events, warm-started from a snapshot in the blob store.
 */
export class SearchService {
  private readonly o: SearchServiceOptions & { now: () => number }
  private index = new TitleIndex()
  private synonyms: SynonymTable = compileSynonyms(DEFAULT_SYNONYMS)
  private synonymGroups: string[][] = DEFAULT_SYNONYMS.map((g) => [...g])
  /** Changes since the last snapshot. */
  private changes = 0
  /** Log position of the last event applied. */
  private position: number | undefined
  /** Where the loaded snapshot had got to in the log. */
  private snapshotPosition: number | undefined
  /** The first event of the log this index was read from the start of (directly or through a snapshot). */
  private logStart: LogStart | undefined
  /** Set while a snapshot is being written: the index must not change, so events wait. */
  private snapshotting: Promise<void> | undefined
  private readonly heldBack: { event: EventEnvelope; position: number | undefined }[] = []
  private sliceStarted = performance.now()
  private warmTimer: NodeJS.Timeout | undefined
  private warming: Promise<void> | undefined
  private lastChange = 0
  private closed = false

  constructor(options: SearchServiceOptions) {
    this.o = { ...options, now: options.now ?? Date.now }
  }

  /** Titles in this replica's index. */
  get size(): number {
    return this.index.size
  }

  /** Prefixes whose completion lists the index has made (by warming up or by queries). */
  get completionLists(): number {
    return this.index.completionLists
  }

  /** The version of a title this replica has applied (removals included), or undefined. */
  indexedVersion(id: string): number | undefined {
    return this.index.version(id)
  }

  /**
   * Applies a catalog event (at `position` in the bus log); an event older than what the index has
   * is ignored, so replays are harmless. While a snapshot is being written it is held back until then.
   */
  apply(event: EventEnvelope, position?: number): void {
    if (this.snapshotting) {
      this.heldBack.push({ event, position })
      return
    }
    if (position !== undefined) {
      // Without a snapshot the reader starts at the start of the log (resumeAt()): this is its first event.
      this.logStart ??= { id: event.id, position }
      this.position = Math.max(this.position ?? 0, position)
    }
    let changed = false
    if (event.type === TITLE_UPSERTED)
      changed = this.index.upsert(indexedTitle((event.data as TitleUpserted).title))
    else if (event.type === TITLE_REMOVED) {
      const removed = event.data as TitleRemoved
      changed = this.index.remove(removed.id, removed.version)
    }
    if (changed) {
      this.changes++
      this.warmUpLater()
    }
  }

  /**
   * Warms the index up (completion lists, packed postings: see TitleIndex.warmSteps) once titles
   * stop changing for WARM_QUIET_MS, in slices, so that the first queries to need them do not pay.
   */
  private warmUpLater(): void {
    this.lastChange = performance.now()
    if (this.warmTimer || this.closed) return
    const fire = () => {
      this.warmTimer = undefined
      const quiet = performance.now() - this.lastChange
      if (this.closed) return
      if (quiet < WARM_QUIET_MS || this.warming) {
        this.warmTimer = setTimeout(fire, WARM_QUIET_MS - Math.min(quiet, WARM_QUIET_MS / 2)).unref()
        return
      }
      this.warming = this.index
        .warmUp()
        .catch((e) => this.o.log.warn({ err: errorMessage(e) }, 'warming the search index up failed'))
        .finally(() => {
          this.warming = undefined
        })
    }
    this.warmTimer = setTimeout(fire, WARM_QUIET_MS).unref()
  }

  /** Resolves when no warm-up is pending or running (for tests and benchmarks). */
  async warmedUp(): Promise<void> {
    while (this.warmTimer || this.warming) {
      if (this.warming) await this.warming
      else await new Promise((resolve) => setTimeout(resolve, WARM_QUIET_MS / 2))
    }
  }

  /** Stops warming up (at shutdown). */
  close(): void {
    this.closed = true
    clearTimeout(this.warmTimer)
    this.warmTimer = undefined
  }

  /** The bus handler: applies the event, and lets the event loop serve requests every few milliseconds of a replay. */
  async applyDelivered(event: EventEnvelope, position: number): Promise<void> {
    if (this.snapshotting) await this.snapshotting
    this.apply(event, position)
    if (performance.now() - this.sliceStarted > REPLAY_SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve))
      this.sliceStarted = performance.now()
    }
  }

  /** Where this replica's bus reader starts: after the loaded snapshot's position, or the start of the log. */
  resumeAt(): 'all' | { after: number } {
    return this.snapshotPosition === undefined || this.logStart === undefined
      ? 'all'
      : { after: this.snapshotPosition }
  }

  /**
   * Checks that the loaded snapshot's positions are in this bus's log: its first catalog event must
   * be the one the snapshot recorded. In another log (a recreated stream, a fresh database next to
   * an old blob store) the snapshot's titles and position mean nothing: the index starts empty and
   * is rebuilt from the start of the log. Call after loadSnapshot(), before reading the log.
   */
  async verifySnapshotLog(bus: Bus, timeoutMs = LOG_PROBE_MS): Promise<void> {
    const recorded = this.logStart
    if (this.snapshotPosition === undefined || recorded === undefined) return
    const first = await firstCatalogEvent(bus, timeoutMs)
    if (first && first.id === recorded.id && first.position === recorded.position) return
    this.o.log.warn(
      { snapshotLogStart: recorded, logStart: first ?? null, titles: this.index.size },
      'the search snapshot was made from another event log (its first catalog event differs); rebuilding the index from the start of this one',
    )
    this.resetIndex()
  }

  private resetIndex(): void {
    this.index = new TitleIndex()
    this.snapshotPosition = undefined
    this.position = undefined
    this.logStart = undefined
  }

  /**
   * GET /api/v1/search: a SearchResponse, as the JSON text the route sends. Answers are cached as
   * text (TitleIndex.rendered()): a repeated query costs a lookup and adds no objects to the heap.
   */
  async searchJson(auth: Auth, params: SearchParams): Promise<Buffer> {
    const started = performance.now()
    const q = this.checkQuery(params.q)
    const limit = Math.min(params.limit ?? LIMIT_DEFAULT, LIMIT_MAX)
    const offset = params.cursor === undefined ? 0 : decodeCursor(params.cursor)
    const filters: Filters = {
      genres: params.genre?.map((g) => {
        const id = genreIdOf(g)
        if (!id) throw badRequest('unknown_genre', `Unknown genre "${g}"; GET /api/v1/genres lists them`)
        return id
      }),
      languages: params.language?.map(normalizeLanguage),
      types: params.type,
      ...parseYears(params.year),
    }
    const audience = await this.audience(auth, params.profileId)
    const input = {
      q,
      filters,
      audience,
      offset,
      limit: Math.max(0, Math.min(limit, MAX_OFFSET - offset)),
      synonyms: this.synonyms,
    }
    const body = this.index.rendered(input, 'search', (result) => {
      const next = offset + limit
      const response: Omit<SearchResponse, 'tookMs'> = {
        hits: result.hits.map((h) => ({
          id: h.doc.id,
          type: h.doc.type,
          title: h.doc.title,
          year: h.doc.year,
          genres: h.doc.genres.map((g) => g.name),
          highlight: h.highlight,
          score: h.score,
        })),
        facets: result.facets,
        total: result.total,
        nextCursor: limit > 0 && next < Math.min(result.total, MAX_OFFSET) ? encodeCursor(next) : null,
      }
      return openJson(response)
    })
    return closeJson(body, 'tookMs', Math.round((performance.now() - started) * 100) / 100)
  }

  /** searchJson() as an object. */
  async search(auth: Auth, params: SearchParams): Promise<SearchResponse> {
    return JSON.parse((await this.searchJson(auth, params)).toString()) as SearchResponse
  }

  /**
   * GET /api/v1/search/suggest: titles for the search box, matched on titles and people, most
   * relevant first (an empty query gives the most popular), as the JSON text the route sends.
   */
  async suggestJson(auth: Auth, params: { q?: string; profileId?: string; limit?: number }): Promise<Buffer> {
    const started = performance.now()
    const q = this.checkQuery(params.q)
    const audience = await this.audience(auth, params.profileId)
    const input = {
      q,
      filters: {},
      audience,
      offset: 0,
      limit: Math.min(params.limit ?? SUGGEST_DEFAULT, SUGGEST_MAX),
      synonyms: this.synonyms,
      scope: 'titles' as const,
      facets: false,
    }
    const body = this.index.rendered(input, 'suggest', (result) => {
      const suggestions: Suggestion[] = result.hits.map((h) => ({
        id: h.doc.id,
        type: h.doc.type,
        title: h.doc.title,
        year: h.doc.year,
        highlight: h.highlight.title ?? h.doc.title,
      }))
      return openJson({ suggestions })
    })
    return closeJson(body, 'tookMs', Math.round((performance.now() - started) * 100) / 100)
  }

  synonymList(): string[][] {
    return this.synonymGroups.map((g) => [...g])
  }

  /** Replaces the synonym groups of every replica (each reloads them within a minute; this one at once). */
  async setSynonyms(groups: string[][]): Promise<string[][]> {
    const table = compileSynonyms(groups)
    await this.o.store.putSetting(SYNONYMS_SETTING, JSON.stringify(groups), this.o.now())
    this.synonyms = table
    this.synonymGroups = groups.map((g) => [...g])
    return this.synonymList()
  }

  async reloadSynonyms(): Promise<void> {
    const row = await this.o.store.setting(SYNONYMS_SETTING)
    if (!row) return
    try {
      const groups = JSON.parse(row.value) as string[][]
      this.synonyms = compileSynonyms(groups)
      this.synonymGroups = groups
    } catch (e) {
      this.o.log.warn({ err: errorMessage(e) }, 'stored synonyms are unusable; keeping the current ones')
    }
  }

  /** Loads the blob snapshot when this replica's index is empty; true when it did. */
  async loadSnapshot(): Promise<boolean> {
    if (this.index.size > 0) return false
    const started = Date.now()
    try {
      if (!(await this.o.blobs.head(SNAPSHOT_KEY))) return false
      const loaded = TitleIndex.fromSnapshot(await readAll((await this.o.blobs.get(SNAPSHOT_KEY)).body))
      if (!loaded) {
        this.o.log.warn('the search snapshot is not one this version reads; rebuilding from catalog events')
        return false
      }
      const meta = (loaded.snapshotMeta ?? {}) as SnapshotMeta
      const sameBus = meta.bus !== undefined && meta.bus === this.o.busKind
      if (sameBus && Number.isSafeInteger(meta.position) && !isLogStart(meta.logStart)) {
        // Written before snapshots said which log they were made from: it may be another log's.
        this.o.log.warn(
          'the search snapshot does not say which event log it was made from; rebuilding from catalog events',
        )
        return false
      }
      this.index = loaded
      this.warmUpLater()
      if (sameBus && Number.isSafeInteger(meta.position) && isLogStart(meta.logStart)) {
        this.snapshotPosition = meta.position
        this.position = meta.position
        this.logStart = meta.logStart
      }
      this.o.log.info(
        { titles: loaded.size, ms: Date.now() - started, position: this.snapshotPosition },
        'search index loaded from snapshot',
      )
      return true
    } catch (e) {
      this.o.log.warn(
        { err: errorMessage(e) },
        'loading the search snapshot failed; rebuilding from catalog events',
      )
      return false
    }
  }

  /**
   * Writes the index to the blob store when it changed since the last time; true when it wrote.
   * The text is made in slices (the event loop keeps serving searches); events wait meanwhile, so
   * the snapshot is the index at one log position.
   */
  async saveSnapshot(): Promise<boolean> {
    if (this.changes === 0 || this.snapshotting) return false
    const changes = this.changes
    let done = () => {}
    this.snapshotting = new Promise<void>((resolve) => {
      done = resolve
    })
    let chunks: string[]
    try {
      const meta: SnapshotMeta = { bus: this.o.busKind, position: this.position, logStart: this.logStart }
      chunks = await this.index.snapshotChunks(meta)
    } finally {
      this.snapshotting = undefined
      done()
      for (const { event, position } of this.heldBack.splice(0)) this.apply(event, position)
    }
    // Encoded a chunk at a time as the blob store reads them, not all at once.
    const encoded = function* () {
      for (const chunk of chunks) yield Buffer.from(chunk)
    }
    await this.o.blobs.put(SNAPSHOT_KEY, Readable.from(encoded()), { contentType: 'application/json' })
    this.changes -= changes
    return true
  }

  private checkQuery(raw: string | undefined): string {
    const q = (raw ?? '').normalize('NFC')
    if ([...q].length > MAX_QUERY_CHARS)
      throw badRequest('query_too_long', `A search query has at most ${MAX_QUERY_CHARS} characters`)
    return q
  }

  private async audience(auth: Auth, profileId: string | undefined) {
    const now = this.o.now()
    if (profileId === undefined) return { country: auth.country, now }
    const profile = await this.o.accounts().profile(auth.accountId, profileId)
    return { country: auth.country, now, maxRatingRank: ratingRank(profile.maturityLimit) }
  }
}

/**
 * A JSON object's bytes, for closeJson() to add one last field to. Bytes, not a string: a Buffer's
 * contents are outside the JavaScript heap, so a cache of them costs young-generation collections
 * one small object per answer instead of copying every answer's text.
 */
function openJson(value: object): Buffer {
  return Buffer.from(JSON.stringify(value))
}

/** openJson()'s object with one more field (the per-request part of a cached answer) as bytes. */
function closeJson(open: Buffer, name: string, value: number): Buffer {
  const field = `${JSON.stringify(name)}:${JSON.stringify(value)}}`
  // `{` + `}` is an empty object: no comma before the new field.
  return Buffer.concat([
    open.subarray(0, open.length - 1),
    Buffer.from(open.length > 2 ? `,${field}` : field),
  ])
}
