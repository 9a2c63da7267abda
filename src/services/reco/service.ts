import { text } from 'node:stream/consumers'
import { LRUCache } from 'lru-cache'
import type { Auth } from '../../platform/auth.js'
import type { Blobs } from '../../platform/blobs/blobs.js'
import type { EventEnvelope } from '../../platform/bus/bus.js'
import type { Cache } from '../../platform/cache/cache.js'
import { errorMessage, isAppError, notFound } from '../../platform/errors.js'
import type { Logger } from '../../platform/log.js'
import { counter, gauge, tally } from '../../platform/metrics.js'
import { KIDS_MAX_RATING } from '../accounts/rules.js'
import type { AccountsService, Profile } from '../accounts/service.js'
import { TITLE_REMOVED, TITLE_UPSERTED, type TitleRemoved, type TitleUpserted } from '../catalog/events.js'
import type { CatalogService, TitleSummary } from '../catalog/service.js'
import type { PlaybackEventBase, PlaybackStopped } from '../playback/events.js'
import { PLAYBACK_STOPPED } from '../playback/events.js'
import type { PlaybackService } from '../playback/service.js'
import type { TrendsService } from '../trends/service.js'
import type { Campaign, Campaigns, Candidates } from './campaigns.js'
import {
  emptyModule,
  historyRows,
  MAX_APPEARANCES,
  moduleKey,
  mostSimilar,
  NEIGHBOURS,
  type Neighbours,
  type ProfileFacts,
  type ProfileModule,
  type Rating,
  ROW_LENGTH,
} from './rules.js'
import { type HistoryRow, historyKey, type RecoStore } from './store.js'
import { type RecoTitle, recoTitleOf, type TitleIndex, type Viewer, visible } from './titles.js'

export interface HomeItem {
  titleId: string
  title: string
  artwork?: string
  progress?: number
}

export interface HomeRow {
  id: string
  kind: string
  title: string
  reason?: string
  sponsored?: boolean
  campaignId?: string
  items: HomeItem[]
}

export interface HomePage {
  rows: HomeRow[]
  /** Some or all rows come from the static fallback page (a source failed; the log says which). */
  fallback?: boolean
}

export interface RecoDeps {
  store: RecoStore
  titles: TitleIndex
  campaigns: Campaigns
  cache: Cache
  blobs: Blobs
  accounts: () => AccountsService
  catalog: () => CatalogService
  playback: () => PlaybackService
  trends: () => TrendsService
  log: Logger
  now: () => number
  moduleTtlMs: number
}

const GENRE_ROWS = 4
/** Candidates a personalized row takes beyond its length, for the titles the page rules drop as repeats. */
const CANDIDATE_SLACK = 10
/**
 * How long this process reuses what it computed (bounded staleness, far inside the minute a play has
 * to show): a profile's Continue watching row and module, the trending rows of a country, and the
 * catalog rows. A play or a rating handled here forgets the profile's at once.
 */
const CONTINUE_MEMO_MS = 1_000
const MODULE_MEMO_MS = 1_000
const LIVE_MEMO_MS = 3_000
/**
 * A profile's assembled page (see pageMemo); the rows in it are at most this much older than their
 * memos. A play or rating handled here, a new module or a catalog change rebuilds it at once; what
 * another process handled shows within this long.
 */
const PAGE_MEMO_MS = 10_000
/** Bytes of pages kept (each counted as two variants of the page it was first built as). */
const PAGE_MEMO_BYTES = 64 * 2 ** 20
const CATALOG_MEMO_MS = 10_000
/** A profile's rows are recomputed this long after the first play of a burst (see refreshSoon). */
const REFRESH_DELAY_MS = 500
/**
 * Recomputations after plays run at most this many at a time, the rest in turn: a burst of
 * first plays (a premiere, a replayed backlog) would otherwise start one per profile at once,
 * and their synchronous parts, back to back, stalled the requests in between for 100+ ms.
 */
const REFRESH_CONCURRENCY = 4
/** Tries to write a recomputed module before giving up (each loss means someone else wrote it). */
const MODULE_WRITE_ATTEMPTS = 5
const HISTORY_ROWS = 200
const FALLBACK_KEY = 'reco/fallback.json'
/** A fallback page this young is not rebuilt. */
const FALLBACK_MIN_AGE_MS = 60_000

/** Rows whose titles come from the profile's history: completed titles leave them. */
const PERSONAL_KINDS = new Set([
  'top_picks',
  'because_you_watched',
  'others_also_watched',
  'more_with_person',
  'from_director',
])

interface FallbackItem extends HomeItem {
  maturityRating: RecoTitle['maturityRating']
  availability: RecoTitle['availability']
}
interface FallbackPage {
  builtAt: number
  rows: (Omit<HomeRow, 'items'> & { items: FallbackItem[] })[]
}

interface SponsoredRow {
  row: HomeRow
  json: string
}
/** A campaign's sponsored row, made once per campaign object (the live list is re-read every few seconds). */
const sponsoredRows = new WeakMap<Campaign, { title: RecoTitle; row: SponsoredRow }>()
interface PageMemo {
  module: ProfileModule | undefined
  /** The module the rules applied (an empty one when the profile has none yet). */
  mod: ProfileModule
  version: number
  /** The viewer and profile name it was built for. */
  country: string
  maturityLimit: Viewer['maturityLimit']
  profileName: string
  now: number
  size: number
  /** The campaigns the profile may be shown, scored once per memo (impressions are counted per page). */
  candidates: Candidates | undefined
  /** The page's JSON by the JSON of the sponsored row it carries ('' for none). */
  variants: Map<string, Buffer>
}

/** The cached JSON a module was parsed from. */
const moduleJson = new WeakMap<ProfileModule, string>()

const jsonOf = (page: HomePage): Buffer => Buffer.from(JSON.stringify(page))

/** A page's JSON with the sponsored row (if any) between the first rows and the rest. */
function pageBytes(
  head: readonly HomeRow[],
  tail: readonly HomeRow[],
  sponsored: string | undefined,
): Buffer {
  const parts = [...head.map((r) => JSON.stringify(r))]
  if (sponsored !== undefined) parts.push(sponsored)
  for (const r of tail) parts.push(JSON.stringify(r))
  return Buffer.from(`{"rows":[${parts.join(',')}]}`)
}

const pagesServed = counter('reco_home_pages_total', 'Home pages served, by where their rows came from', [
  'source',
])
/** The two sources of a whole page, counted per page view. */
const servedFrom = {
  module: tally(pagesServed, { source: 'module' }),
  live: tally(pagesServed, { source: 'live' }),
}
const recomputationsWaiting = gauge(
  'reco_recomputations_waiting',
  'Profiles whose recomputation after their plays waits (for its delay, or for its turn)',
)
const memoHits = counter('reco_home_page_memo_hits_total', 'Home pages sent again from memory, as built')
const fallbacks = counter(
  'reco_fallbacks_total',
  'Home pages or rows served from the static fallback page, by cause',
  ['cause'],
)
const freshUpdates = counter(
  'reco_fresh_updates_total',
  "Profiles' modules recomputed after a play or a rating",
)

const itemOf = (t: Pick<TitleSummary, 'id' | 'title' | 'artwork'>): HomeItem => ({
  titleId: t.id,
  title: t.title,
  ...(t.artwork.backdrop || t.artwork.poster ? { artwork: t.artwork.backdrop ?? t.artwork.poster } : {}),
})

/** One tile per title object, shared by every page (pages never change their items). */
const tiles = new WeakMap<RecoTitle, HomeItem>()
const recoItem = (t: RecoTitle): HomeItem => {
  let tile = tiles.get(t)
  if (!tile) {
    tile = { titleId: t.id, title: t.title, ...(t.artwork ? { artwork: t.artwork } : {}) }
    tiles.set(t, tile)
  }
  return tile
}

const regionName = (country: string) =>
  new Intl.DisplayNames(['en'], { type: 'region' }).of(country) ?? country

/**
 * The home page of a profile: its precomputed module (trained rows, kept fresh after each play or
 * rating) read behind the cache, the live rows (continue watching, trending, top 10, new, genres)
 * and a sponsored row, with the page rules applied to every row. A source that fails is replaced by
 * the static fallback page (the last good global rows, kept in the blob store).
 */
export class RecoService {
  private fallbackPage: FallbackPage | undefined
  private readonly rowMemo = new LRUCache<string, Promise<HomeRow>>({ max: 20_000 })
  private readonly moduleMemo = new LRUCache<string, ProfileModule | false>({
    max: 20_000,
    ttl: MODULE_MEMO_MS,
  })
  private readonly catalogMemo = new Map<
    string,
    {
      version: number
      at: number
      rows: { newest: HomeRow; genres: { id: string; name: string; row: HomeRow }[] }
    }
  >()
  /**
   * Each profile's assembled page but its sponsored row, as JSON bytes, by the sponsored title it
   * was assembled around (that title takes one of its two appearances); valid for the module object,
   * catalog copy version and viewer it was built from.
   */
  private readonly pageMemo = new LRUCache<string, PageMemo>({
    max: 20_000,
    ttl: PAGE_MEMO_MS,
    maxSize: PAGE_MEMO_BYTES,
    sizeCalculation: (m) => m.size,
  })
  /** Counts forget() calls: a page assembled while a play or rating of its profile was handled is not kept. */
  private generation = 0
  /** Per profile, the count at its last forget() (recent ones; an evicted one raises the floor). */
  private readonly forgotten = new LRUCache<string, number>({
    max: 100_000,
    dispose: (g, _id, reason) => {
      if (reason === 'evict') this.forgottenFloor = Math.max(this.forgottenFloor, g)
    },
  })
  private forgottenFloor = 0
  /** Profiles whose recomputation waits for REFRESH_DELAY_MS, then for a turn (refreshQueue). */
  private readonly refreshing = new Map<string, NodeJS.Timeout>()
  private readonly refreshQueue = new Set<string>()
  private refreshesRunning = 0
  private readonly inflight = new Set<Promise<void>>()
  /** Profiles deleted while this process ran: a recomputation or a late play writes nothing for them. */
  private readonly deleted = new LRUCache<string, true>({ max: 100_000 })
  /** The latest training run this process knows of: modules are cached under it (see moduleKey). */
  private trainedRun = 'none'

  /** Learns the latest training run from the DB (at start). */
  async loadGeneration(): Promise<void> {
    const run = await this.d.store.lastRun()
    if (run) this.trained(run.id)
  }

  /** A training run finished (here or in another process): modules are read as it wrote them. */
  trained(runId: string): void {
    if (runId === this.trainedRun) return
    this.trainedRun = runId
    this.moduleMemo.clear()
  }

  /** Plays and ratings seen by this process since the schedule last took them (REEL_RECO_TRAIN_AFTER_EVENTS). */
  private newEvents = 0
  /** Plays and ratings this process took in since it started (never reset). */
  eventsSeen = 0

  constructor(private readonly d: RecoDeps) {}

  /** Reco's copy of a catalog title (one function for every page view, not a closure each). */
  private readonly titleOf = (id: string) => this.d.titles.get(id)

  get titles(): TitleIndex {
    return this.d.titles
  }

  get campaigns(): Campaigns {
    return this.d.campaigns
  }

  async home(auth: Auth, profileId: string): Promise<HomePage> {
    return JSON.parse((await this.homeJson(auth, profileId)).toString('utf8')) as HomePage
  }

  /** This process's plays new to a history and ratings since the last call; counting restarts at 0. */
  takeNewEvents(): number {
    const n = this.newEvents
    this.newEvents = 0
    return n
  }

  /** The home page as JSON bytes (what the route sends; the sponsored row is spliced into a memoized page). */
  async homeJson(auth: Auth, profileId: string): Promise<Buffer> {
    let profile: Profile
    try {
      profile = await this.d.accounts().profile(auth.accountId, profileId)
    } catch (e) {
      if (isAppError(e)) throw e
      // Who the profile is cannot be read: the fallback page within a kids profile's limit.
      return jsonOf(
        await this.fallback({ country: auth.country, maturityLimit: KIDS_MAX_RATING }, 'profile', e),
      )
    }
    const viewer: Viewer = { country: auth.country, maturityLimit: profile.maturityLimit }
    try {
      return await this.page(auth, profile, viewer)
    } catch (e) {
      return jsonOf(await this.fallback(viewer, 'page', e))
    }
  }

  private async page(auth: Auth, profile: Profile, viewer: Viewer): Promise<Buffer> {
    // The path of a memoized page (most views) makes no closures and awaits only what it needs.
    const failed: string[] = []
    const started = this.generation
    const pendingModule = this.settle('module', this.module(profile.id), profile.id, failed)
    const pendingTitles = this.settle('titles', this.d.titles.fresh(), profile.id, failed)
    const module = await pendingModule
    const titles = await pendingTitles
    const now = this.d.now()
    const version = this.d.titles.version
    let memo = this.pageMemo.get(profile.id)
    if (
      memo &&
      (memo.module !== module ||
        memo.version !== version ||
        memo.country !== viewer.country ||
        memo.maturityLimit !== viewer.maturityLimit ||
        memo.profileName !== profile.name ||
        Math.abs(now - memo.now) >= PAGE_MEMO_MS)
    )
      memo = undefined
    const mod = memo?.mod ?? module ?? emptyModule(profile.id, now)
    // The sponsored title is picked first (its impression counts the moment it is picked): it keeps
    // its place on the page and takes one of the title's two appearances.
    let candidates: Candidates | undefined
    let sponsored: SponsoredRow | undefined
    if (titles)
      try {
        candidates = await this.d.campaigns.candidates(viewer, mod, this.titleOf, memo?.candidates)
        if (memo) memo.candidates = candidates
        sponsored = await this.sponsored(profile.id, candidates)
      } catch (e) {
        this.sourceFailed('campaigns', profile.id, failed, e)
      }
    const source = module && module.trainedAt !== null ? 'module' : 'live'
    const variantKey = sponsored?.json ?? ''
    const hit = failed.length === 0 ? memo?.variants.get(variantKey) : undefined
    if (hit) {
      servedFrom[source].inc()
      memoHits.inc()
      return hit
    }
    // A source that throws before its promise is made counts as failed too.
    const attempt = <T>(source: string, build: () => Promise<T>): Promise<T | undefined> =>
      this.settle(source, Promise.resolve().then(build), profile.id, failed)
    const [continueWatching, trending, top10, newest, genres] = await Promise.all([
      attempt('playback', () => this.continueWatching(auth, profile)),
      attempt('trends', () => this.trending(viewer)),
      attempt('trends', () => this.top10(viewer)),
      attempt('catalog', () => this.newest(viewer)),
      attempt('catalog', () => this.genreRows(viewer, module)),
    ])
    const personal = titles ? this.personalRows(profile, mod, viewer) : { first: [], later: [] }
    const reserved = sponsored?.row.items.map((i) => i.titleId) ?? []
    const first = [continueWatching, ...personal.first, trending].filter((r): r is HomeRow => r !== undefined)
    const rows = applyRules(
      [...first, ...personal.later, top10, newest, ...(genres ?? [])].filter(
        (r): r is HomeRow => r !== undefined,
      ),
      mod,
      reserved,
    )
    // The sponsored row goes after the first rows that kept any titles.
    const firstIds = new Set(first.map((r) => r.id))
    let at = 0
    while (at < rows.length && firstIds.has(rows[at]?.id ?? '')) at++
    if (failed.length > 0) {
      if (sponsored) rows.splice(at, 0, sponsored.row)
      pagesServed.inc({ source: 'partial' })
      return jsonOf(await this.withFallback({ rows }, viewer, mod, failed))
    }
    servedFrom[source].inc()
    const bytes = pageBytes(rows.slice(0, at), rows.slice(at), sponsored?.json)
    // Kept only when no play or rating of the profile was handled meanwhile (the page might predate it).
    if (this.generationOf(profile.id) <= started) {
      if (!memo) {
        memo = {
          module,
          mod,
          version,
          country: viewer.country,
          maturityLimit: viewer.maturityLimit,
          profileName: profile.name,
          now,
          size: 2 * bytes.length,
          candidates,
          variants: new Map(),
        }
        // Lifetimes spread over the last third of PAGE_MEMO_MS: pages built together are not all rebuilt together.
        this.pageMemo.set(profile.id, memo, { ttl: Math.round((PAGE_MEMO_MS * (2 + Math.random())) / 3) })
      }
      memo.variants.set(variantKey, bytes)
    }
    return bytes
  }

  /** A source's answer, or undefined with the source noted as failed (and logged). */
  private async settle<T>(source: string, answer: Promise<T>, profileId: string, failed: string[]) {
    try {
      return await answer
    } catch (e) {
      this.sourceFailed(source, profileId, failed, e)
      return undefined
    }
  }

  private sourceFailed(source: string, profileId: string, failed: string[], e: unknown): void {
    failed.push(source)
    this.d.log.warn({ source, profileId, err: errorMessage(e) }, 'home row source failed')
  }

  /** The rows the module gives: top picks, because you watched, others also watched, people. */
  private personalRows(
    profile: Profile,
    mod: ProfileModule,
    viewer: Viewer,
  ): { first: HomeRow[]; later: HomeRow[] } {
    const now = this.d.now()
    const { completed, excluded } = setsOf(mod)
    // Enough candidates for a full row after the page rules drop repeats; the rest is never shown.
    const items = (ids: readonly string[]) => {
      const out: HomeItem[] = []
      for (const id of ids) {
        if (out.length === ROW_LENGTH + CANDIDATE_SLACK) break
        if (completed.has(id) || excluded.has(id)) continue
        const t = this.d.titles.get(id)
        if (t && visible(t, viewer, now)) out.push(recoItem(t))
      }
      return out
    }
    const seedName = (id: string) => this.d.titles.get(id)?.title
    const because = mod.because.flatMap((r) => {
      const name = seedName(r.seedId)
      return name
        ? [
            {
              id: `because-${r.seedId}`,
              kind: 'because_you_watched',
              title: `Because you watched ${name}`,
              reason: `Because you watched ${name}`,
              items: items(r.items),
            },
          ]
        : []
    })
    const also = mod.alsoWatched.flatMap((r) => {
      const name = seedName(r.seedId)
      return name
        ? [
            {
              id: `also-watched-${r.seedId}`,
              kind: 'others_also_watched',
              title: `Others who watched ${name} also watched`,
              reason: `Watched by people who watched ${name}`,
              items: items(r.items),
            },
          ]
        : []
    })
    const people = mod.people.map((p) => {
      const director = p.role === 'director' || p.role === 'creator'
      return {
        id: `person-${p.personId}`,
        kind: director ? 'from_director' : 'more_with_person',
        title: director ? `From director ${p.name}` : `More with ${p.name}`,
        reason: `Because you watched several titles ${director ? 'by' : 'with'} ${p.name}`,
        items: items(p.items),
      }
    })
    const topPicks: HomeRow = {
      id: 'top-picks',
      kind: 'top_picks',
      title: `Top picks for ${profile.name}`,
      reason: `Picked for ${profile.name} from what they watched and rated`,
      items: items(mod.topPicks),
    }
    return {
      first: [topPicks, ...because.slice(0, 1)],
      later: [...also.slice(0, 1), ...because.slice(1, 2), ...people, ...also.slice(1), ...because.slice(2)],
    }
  }

  /** The sponsored row of this page view (its impression counted) and its JSON. */
  private async sponsored(profileId: string, candidates: Candidates): Promise<SponsoredRow | undefined> {
    const picked = await this.d.campaigns.serve(profileId, candidates)
    if (!picked) return undefined
    const known = sponsoredRows.get(picked.campaign)
    if (known?.title === picked.title) return known.row
    const row: HomeRow = {
      id: `sponsored-${picked.campaign.id}`,
      kind: 'sponsored',
      title: 'Sponsored',
      reason: `Sponsored by ${picked.campaign.advertiser}`,
      sponsored: true,
      campaignId: picked.campaign.id,
      items: [recoItem(picked.title)],
    }
    const made = { row, json: JSON.stringify(row) }
    sponsoredRows.set(picked.campaign, { title: picked.title, row: made })
    return made
  }

  private async continueWatching(auth: Auth, profile: Profile): Promise<HomeRow> {
    return this.memo(`cw:${profile.id}`, CONTINUE_MEMO_MS, async () => {
      const progress = await this.d.playback().continueWatching(auth, profile.id, ROW_LENGTH)
      const titles = await this.tiles(progress.map((p) => p.seriesId ?? p.titleId))
      const items = progress.flatMap((p) => {
        const title = titles.get(p.seriesId ?? p.titleId)
        const progressOf = p.durationMs > 0 ? Math.min(1, p.positionMs / p.durationMs) : 0
        return title ? [{ ...title, progress: progressOf }] : []
      })
      return {
        id: 'continue-watching',
        kind: 'continue_watching',
        title: `Continue watching for ${profile.name}`,
        reason: 'Pick up where you left off',
        items,
      }
    })
  }

  private async trending(viewer: Viewer): Promise<HomeRow> {
    return this.memo(`trending:${viewer.country}:${viewer.maturityLimit}`, LIVE_MEMO_MS, async () => {
      const answer = await this.d.trends().trending(viewer, { window: 'day', limit: ROW_LENGTH })
      const titles = await this.tiles(answer.items.map((i) => i.titleId))
      const region = regionName(viewer.country)
      return {
        id: 'trending',
        kind: 'trending',
        title: `Trending now in ${region}`,
        reason: `Played most in ${region} today`,
        items: answer.items.flatMap((i) => titles.get(i.titleId) ?? []),
      }
    })
  }

  private async top10(viewer: Viewer): Promise<HomeRow> {
    return this.memo(`top10:${viewer.country}:${viewer.maturityLimit}`, LIVE_MEMO_MS, async () => {
      const answer = await this.d.trends().top10(viewer, {})
      const titles = await this.tiles(answer.items.map((i) => i.titleId))
      const region = regionName(viewer.country)
      return {
        id: 'top10',
        kind: 'top10',
        title: `Top 10 in ${region} this week`,
        reason: `Watched most in ${region} this week`,
        items: answer.items.flatMap((i) => titles.get(i.titleId) ?? []),
      }
    })
  }

  /** Tiles of titles by id: from reco's copy of the catalog, else (a title it has not seen yet) from the catalog. */
  private async tiles(ids: readonly string[]): Promise<Map<string, HomeItem>> {
    const out = new Map<string, HomeItem>()
    const missing: string[] = []
    for (const id of ids) {
      const t = this.d.titles.get(id)
      if (t) out.set(id, recoItem(t))
      else missing.push(id)
    }
    if (missing.length > 0)
      for (const [id, t] of await this.d.catalog().titlesById(missing)) out.set(id, itemOf(t))
    return out
  }

  /**
   * New on reel and the genre rows of a viewer's country and maturity limit, from reco's copy of the
   * catalog (newest by id, genres by popularity), recomputed when the copy changes.
   */
  private catalogRows(viewer: Viewer): {
    newest: HomeRow
    genres: { id: string; name: string; row: HomeRow }[]
  } {
    const key = `${viewer.country}:${viewer.maturityLimit}`
    const version = this.d.titles.version
    const hit = this.catalogMemo.get(key)
    if (hit && hit.version === version && Date.now() - hit.at < CATALOG_MEMO_MS) return hit.rows
    const now = this.d.now()
    const shown = [...this.d.titles.all()].filter((t) => visible(t, viewer, now))
    const newest = [...shown].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)).slice(0, ROW_LENGTH)
    const byPopularity = shown.sort((a, b) => b.popularity - a.popularity || (a.id < b.id ? -1 : 1))
    const genres = new Map<string, { name: string; titles: RecoTitle[] }>()
    for (const t of byPopularity)
      for (const g of t.genres) {
        const entry = genres.get(g.id) ?? { name: g.name, titles: [] }
        entry.titles.push(t)
        genres.set(g.id, entry)
      }
    const rows = {
      newest: {
        id: 'new',
        kind: 'new',
        title: 'New on reel',
        reason: 'Just added to reel',
        items: newest.map(recoItem),
      },
      genres: [...genres]
        .sort((a, b) => b[1].titles.length - a[1].titles.length || (a[0] < b[0] ? -1 : 1))
        .map(([id, g]) => ({
          id,
          name: g.name,
          row: {
            id: `genre-${id}`,
            kind: 'genre',
            title: g.name,
            reason: `Popular in ${g.name}`,
            items: g.titles.slice(0, ROW_LENGTH).map(recoItem),
          },
        })),
    }
    this.catalogMemo.set(key, { version, at: Date.now(), rows })
    return rows
  }

  private async newest(viewer: Viewer): Promise<HomeRow> {
    await this.d.titles.fresh()
    return this.catalogRows(viewer).newest
  }

  /** The genres this viewer may see titles in: the profile's favourites first, then those with most titles. */
  private async genreRows(viewer: Viewer, mod: ProfileModule | undefined): Promise<HomeRow[]> {
    await this.d.titles.fresh()
    const affinity = mod?.genreAffinity ?? {}
    return this.catalogRows(viewer)
      .genres.map((g, i) => ({ g, i }))
      .sort((a, b) => (affinity[b.g.id] ?? 0) - (affinity[a.g.id] ?? 0) || a.i - b.i)
      .slice(0, GENRE_ROWS)
      .map(({ g }) =>
        (affinity[g.id] ?? 0) > 0 ? { ...g.row, reason: `Because you watch ${g.name}` } : g.row,
      )
  }

  /** A row computed at most once per ttlMs in this process (concurrent callers share the computation). */
  private memo(name: string, ttlMs: number, build: () => Promise<HomeRow>): Promise<HomeRow> {
    // Rows of titles follow a change in reco's copy of the catalog at once (a new key).
    const key = `${name}@${this.d.titles.version}`
    const hit = this.rowMemo.get(key)
    if (hit) return hit
    const work = build()
    this.rowMemo.set(key, work, { ttl: ttlMs })
    work.catch(() => this.rowMemo.delete(key))
    return work
  }

  /** Forgets the rows this process keeps of a profile (after its play or rating). */
  forget(profileId: string): void {
    this.forgotten.set(profileId, ++this.generation)
    this.rowMemo.delete(`cw:${profileId}@${this.d.titles.version}`)
    this.moduleMemo.delete(profileId)
    this.pageMemo.delete(profileId)
  }

  private generationOf(profileId: string): number {
    return this.forgotten.get(profileId) ?? this.forgottenFloor
  }

  // The precomputed module

  /** The profile's module: the cache, else the DB (then cached); undefined before anything was computed. */
  async module(profileId: string): Promise<ProfileModule | undefined> {
    const memo = this.moduleMemo.get(profileId)
    if (memo !== undefined) return memo === false ? undefined : memo
    // The module its memoized page was built from, kept when the cache still holds the same JSON
    // (the page stays valid; the JSON is not parsed again).
    const module = await this.readModule(profileId, this.pageMemo.get(profileId)?.module)
    this.moduleMemo.set(profileId, module ?? false)
    return module
  }

  private async readModule(profileId: string, known?: ProfileModule): Promise<ProfileModule | undefined> {
    const key = moduleKey(this.trainedRun, profileId)
    const hit = await this.d.cache.get(key)
    if (hit !== undefined) {
      if (known && moduleJson.get(known) === hit) return known
      try {
        const module = JSON.parse(hit) as ProfileModule
        moduleJson.set(module, hit)
        return module
      } catch {
        await this.d.cache.del(key)
      }
    }
    const stored = await this.d.store.module(profileId)
    if (stored === undefined) return undefined
    await this.d.cache.set(key, stored, this.d.moduleTtlMs)
    return JSON.parse(stored) as ProfileModule
  }

  /** What reco knows of a profile: history (most recent first) and ratings. */
  async facts(profileId: string): Promise<ProfileFacts> {
    const [history, ratings] = await Promise.all([
      this.d.store.historyOf(profileId, HISTORY_ROWS),
      this.d.store.ratingsOf(profileId),
    ])
    return {
      profileId,
      history: history.map((h) => ({
        titleId: h.title_id,
        progress: h.progress,
        completed: h.completed === 1,
        lastAt: h.last_at,
      })),
      ratings: new Map(ratings.map((r) => [r.title_id, r.rating as Rating])),
    }
  }

  /**
   * Recomputes the history-driven rows of one profile now (after a play or a rating), keeping the
   * trained top picks (or, from a training run, putting in its `trained` picks): "Because you
   * watched" reflects a play without waiting for training. Written
   * by compare-and-set on the module's version: when a training run (or another process) wrote the
   * module meanwhile, it is read and recomputed again, so neither write loses the other's. Undefined
   * when there is nothing to write: reco knows nothing of the profile (never played, or deleted).
   */
  async refreshProfile(
    profileId: string,
    trained?: Pick<ProfileModule, 'topPicks' | 'topScores' | 'trainedAt'>,
  ): Promise<ProfileModule | undefined> {
    await this.d.titles.fresh()
    for (let attempt = 1; ; attempt++) {
      const row = await this.d.store.moduleRow(profileId)
      const facts = await this.facts(profileId)
      if (!row && facts.history.length === 0 && facts.ratings.size === 0) return undefined
      const previous = row ? (JSON.parse(row.module) as ProfileModule) : emptyModule(profileId, this.d.now())
      const module: ProfileModule = {
        ...previous,
        ...historyRows(facts, (id) => this.d.titles.get(id), await this.neighboursOf(facts)),
        updatedAt: this.d.now(),
      }
      if (trained) {
        // A training run's picks, from facts older than these: without what the profile has since
        // thumbed down or finished.
        const out = new Set([...module.excluded, ...module.completed])
        const keep = trained.topPicks.flatMap((id, i) =>
          out.has(id) ? [] : [[id, trained.topScores[i] ?? 0] as const],
        )
        module.topPicks = keep.map(([id]) => id)
        module.topScores = keep.map(([, score]) => score)
        module.trainedAt = trained.trainedAt
      }
      const json = JSON.stringify(module)
      if (this.deleted.has(profileId)) return undefined
      if (await this.d.store.saveModuleIf(profileId, json, this.d.now(), row?.version)) {
        // A profile deleted between reading its facts and this first write leaves no module behind.
        if (!row && !(await this.d.store.hasFacts(profileId))) {
          await this.d.store.deleteModule(profileId)
          return undefined
        }
        // Checked with no await before the write: a deletion after it drops the cached copy after it.
        if (this.deleted.has(profileId)) return undefined
        await this.d.cache.set(moduleKey(this.trainedRun, profileId), json, this.d.moduleTtlMs)
        this.forget(profileId)
        freshUpdates.inc()
        return module
      }
      if (attempt === MODULE_WRITE_ATTEMPTS)
        throw new Error(`the module of profile ${profileId} kept changing while it was recomputed`)
    }
  }

  /** Neighbours of the titles a profile watched or rated: the last training's, else from features now. */
  private async neighboursOf(facts: ProfileFacts): Promise<Neighbours> {
    const seeds = [...new Set([...facts.history.map((h) => h.titleId), ...facts.ratings.keys()])]
    const [content, cf] = await Promise.all([
      this.d.store.similar('content', seeds),
      this.d.store.similar('cf', seeds),
    ])
    return {
      content: (id) => {
        let list = content.get(id)
        if (!list) {
          // A title newer than the last training run: its neighbours from its features, now.
          const title = this.d.titles.get(id)
          list = title ? mostSimilar(title, this.d.titles.all(), NEIGHBOURS) : []
          content.set(id, list)
        }
        return list
      },
      cf: (id) => cf.get(id) ?? [],
      withPerson: (id) => this.d.titles.withPerson(id),
    }
  }

  // Events

  /** catalog.title.upserted / removed: reco's copy of the catalog, newest version wins. */
  async applyCatalogEvent(event: EventEnvelope): Promise<void> {
    if (event.type === TITLE_UPSERTED) {
      const doc = (event.data as TitleUpserted).title
      const title = recoTitleOf(doc)
      await this.d.store.putTitle(doc.id, doc.version, false, JSON.stringify(title), Date.now())
      this.d.titles.apply(doc.id, doc.version, title)
    } else if (event.type === TITLE_REMOVED) {
      const { id, version } = event.data as TitleRemoved
      await this.d.store.putTitle(id, version, true, '{}', Date.now())
      this.d.titles.apply(id, version, undefined)
    }
  }

  /**
   * playback.*: what the profiles watched (a movie, or an episode's series), progress and
   * completion, a batch of events at a time (their history rows read and written a statement at a
   * time). A profile whose rows changed (a title new to its history, or just finished) has its module
   * recomputed at once. Returns how many profiles' rows changed.
   */
  async applyPlaybackEvents(events: readonly EventEnvelope[]): Promise<number> {
    const rows: HistoryRow[] = []
    for (const event of events) {
      const e = event.data as PlaybackEventBase
      const titleId = e.seriesId ?? e.titleId
      if (!e.profileId || !titleId || this.deleted.has(e.profileId)) continue
      const completed = event.type === PLAYBACK_STOPPED && (event.data as PlaybackStopped).completed
      // A series counts as completed only through its own rows later; an episode finished is progress.
      const progress = e.durationMs > 0 ? Math.min(1, Math.max(0, e.positionMs / e.durationMs)) : 0
      const at = Date.parse(e.at)
      rows.push({
        profile_id: e.profileId,
        title_id: titleId,
        progress,
        completed: completed && e.seriesId === null ? 1 : 0,
        last_at: Number.isNaN(at) ? this.d.now() : at,
      })
    }
    if (rows.length === 0) return 0
    const before = new Map(
      (
        await this.d.store.historyRows(rows.map((r) => ({ profileId: r.profile_id, titleId: r.title_id })))
      ).map((r) => [historyKey(r.profile_id, r.title_id), r]),
    )
    await this.d.store.recordPlays(rows)
    this.newEvents += rows.length
    this.eventsSeen += rows.length
    const changed = new Set<string>()
    for (const row of rows) {
      this.forget(row.profile_id)
      const known = before.get(historyKey(row.profile_id, row.title_id))
      if (!known || (row.completed === 1 && known.completed === 0)) changed.add(row.profile_id)
    }
    for (const profileId of changed) this.refreshSoon(profileId)
    return changed.size
  }

  /**
   * Recomputes a profile's rows REFRESH_DELAY_MS after its first play in a burst: a binge or a
   * replayed backlog costs one recomputation per profile, not one per event. (The plays are stored
   * already: a refresh lost to a crash is made by the next play or training run.)
   */
  private refreshSoon(profileId: string): void {
    // One waiting in the queue has not read anything yet: it will see this play too.
    if (this.refreshing.has(profileId) || this.refreshQueue.has(profileId)) return
    const timer = setTimeout(() => {
      this.refreshing.delete(profileId)
      this.refreshQueue.add(profileId)
      this.runRefreshes()
    }, REFRESH_DELAY_MS)
    timer.unref()
    this.refreshing.set(profileId, timer)
    this.countWaiting()
  }

  private countWaiting(): void {
    recomputationsWaiting.set(this.refreshing.size + this.refreshQueue.size)
  }

  /** Starts queued recomputations while fewer than REFRESH_CONCURRENCY run. */
  private runRefreshes(): void {
    for (const profileId of this.refreshQueue) {
      if (this.refreshesRunning >= REFRESH_CONCURRENCY) break
      this.refreshQueue.delete(profileId)
      this.refreshesRunning++
      const run = this.refreshProfile(profileId)
        .then(() => undefined)
        .catch((e: unknown) =>
          this.d.log.warn(
            { profileId, err: errorMessage(e) },
            'recomputing a profile after its plays failed',
          ),
        )
        .finally(() => {
          this.inflight.delete(run)
          this.refreshesRunning--
          // The next one after a turn of the event loop: requests waiting are answered first.
          if (this.refreshQueue.size > 0) setImmediate(() => this.runRefreshes())
        })
      this.inflight.add(run)
    }
    this.countWaiting()
  }

  /** Runs the refreshes still waiting and waits for those running (at shutdown; tests). */
  async flushRefreshes(): Promise<void> {
    const waiting = [...this.refreshing.keys(), ...this.refreshQueue]
    for (const timer of this.refreshing.values()) clearTimeout(timer)
    this.refreshing.clear()
    this.refreshQueue.clear()
    this.countWaiting()
    for (const profileId of waiting) await this.refreshProfile(profileId).catch(() => undefined)
    await Promise.all([...this.inflight])
  }

  async profileDeleted(profileId: string): Promise<void> {
    // A refresh still waiting would write the deleted profile's module again.
    this.deleted.set(profileId, true)
    clearTimeout(this.refreshing.get(profileId))
    this.refreshing.delete(profileId)
    this.refreshQueue.delete(profileId)
    this.countWaiting()
    this.forget(profileId)
    await this.d.store.deleteProfile(profileId)
    await this.d.cache.del(moduleKey(this.trainedRun, profileId))
  }

  // Ratings

  async rate(
    auth: Auth,
    profileId: string,
    titleId: string,
    rating: Rating,
  ): Promise<{ titleId: string; rating: Rating }> {
    const profile = await this.d.accounts().profile(auth.accountId, profileId)
    await this.d.catalog().title(titleId, { country: auth.country, maturityLimit: profile.maturityLimit })
    await this.d.store.putRating(profileId, titleId, rating, this.d.now())
    this.newEvents++
    this.eventsSeen++
    await this.refreshProfile(profileId)
    return { titleId, rating }
  }

  async unrate(auth: Auth, profileId: string, titleId: string): Promise<void> {
    await this.d.accounts().profile(auth.accountId, profileId)
    if (!(await this.d.store.deleteRating(profileId, titleId)))
      throw notFound('rating_not_found', 'This profile has not rated this title')
    await this.refreshProfile(profileId)
  }

  async ratings(
    auth: Auth,
    profileId: string,
  ): Promise<{ titleId: string; rating: Rating; updatedAt: string }[]> {
    await this.d.accounts().profile(auth.accountId, profileId)
    return (await this.d.store.ratingsOf(profileId)).map((r) => ({
      titleId: r.title_id,
      rating: r.rating as Rating,
      updatedAt: new Date(r.updated_at).toISOString(),
    }))
  }

  async rating(
    auth: Auth,
    profileId: string,
    titleId: string,
  ): Promise<{ titleId: string; rating: Rating | null }> {
    const all = await this.ratings(auth, profileId)
    return { titleId, rating: all.find((r) => r.titleId === titleId)?.rating ?? null }
  }

  /** The last training run that succeeded. */
  async lastRun(): Promise<{ finishedAt: string; report: Record<string, unknown> } | undefined> {
    const run = await this.d.store.lastRun()
    if (!run) return undefined
    return {
      finishedAt: new Date(run.finished_at ?? run.started_at).toISOString(),
      report: JSON.parse(run.report) as Record<string, unknown>,
    }
  }

  // The static fallback page

  /** Builds the global rows from reco's copy of the catalog and keeps them in memory and in the blob store. */
  async saveFallback(): Promise<boolean> {
    const now = this.d.now()
    if (this.fallbackPage && now - this.fallbackPage.builtAt < FALLBACK_MIN_AGE_MS) return false
    await this.d.titles.fresh()
    const all = [...this.d.titles.all()]
    if (all.length === 0) return false
    const item = (t: RecoTitle): FallbackItem => ({
      ...recoItem(t),
      maturityRating: t.maturityRating,
      availability: t.availability,
    })
    // Enough candidates that a viewer's region and maturity rules still leave a full row.
    const top = (list: RecoTitle[]) => list.slice(0, ROW_LENGTH * 5).map(item)
    const popular = [...all].sort((a, b) => b.popularity - a.popularity || (a.id < b.id ? -1 : 1))
    const newest = [...all].sort((a, b) =>
      a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0,
    )
    const genreCount = new Map<string, { name: string; n: number }>()
    for (const t of all)
      for (const g of t.genres) genreCount.set(g.id, { name: g.name, n: (genreCount.get(g.id)?.n ?? 0) + 1 })
    const genres = [...genreCount].sort((a, b) => b[1].n - a[1].n).slice(0, GENRE_ROWS)
    const page: FallbackPage = {
      builtAt: now,
      rows: [
        {
          id: 'popular',
          kind: 'popular',
          title: 'Popular on reel',
          reason: 'Watched most on reel',
          items: top(popular),
        },
        { id: 'new', kind: 'new', title: 'New on reel', reason: 'Just added to reel', items: top(newest) },
        ...genres.map(([id, g]) => ({
          id: `genre-${id}`,
          kind: 'genre',
          title: g.name,
          reason: `Popular in ${g.name}`,
          items: top(popular.filter((t) => t.genres.some((x) => x.id === id))),
        })),
      ],
    }
    this.fallbackPage = page
    await this.d.blobs.put(FALLBACK_KEY, JSON.stringify(page), { contentType: 'application/json' })
    return true
  }

  /** Reads the fallback page from the blob store (at start, and when this process has none). */
  async loadFallback(): Promise<FallbackPage | undefined> {
    if (this.fallbackPage) return this.fallbackPage
    try {
      const read = await this.d.blobs.get(FALLBACK_KEY)
      this.fallbackPage = JSON.parse(await text(read.body)) as FallbackPage
    } catch (e) {
      this.d.log.info({ err: errorMessage(e) }, 'no reco fallback page in the blob store yet')
    }
    return this.fallbackPage
  }

  private async fallbackRows(viewer: Viewer): Promise<HomeRow[]> {
    const page = await this.loadFallback()
    if (!page) return []
    const now = this.d.now()
    return page.rows.map((r) => ({
      ...r,
      items: r.items
        .filter((i) => visible(i as unknown as RecoTitle, viewer, now))
        .map(({ titleId, title, artwork }) => ({ titleId, title, ...(artwork ? { artwork } : {}) })),
    }))
  }

  private async fallback(viewer: Viewer, cause: string, e: unknown): Promise<HomePage> {
    this.d.log.warn({ cause, err: errorMessage(e) }, 'home page served from the fallback page')
    fallbacks.inc({ cause })
    pagesServed.inc({ source: 'fallback' })
    return { rows: applyRules(await this.fallbackRows(viewer), undefined), fallback: true }
  }

  /** Adds the fallback rows the page lacks (by id), after the rows that answered. */
  private async withFallback(
    page: HomePage,
    viewer: Viewer,
    module: ProfileModule,
    failed: string[],
  ): Promise<HomePage> {
    for (const cause of new Set(failed)) fallbacks.inc({ cause })
    const have = new Set(page.rows.map((r) => r.id))
    const extra = (await this.fallbackRows(viewer)).filter((r) => !have.has(r.id))
    return { rows: applyRules([...page.rows, ...extra], module), fallback: true }
  }
}

/**
 * The rules every page keeps: down-rated titles (and their neighbours) leave every row but Continue
 * watching, titles watched to the end leave the personalized rows, a title appears at most twice,
 * rows are at most ROW_LENGTH long and none is empty. `reserved` titles are already on the page once.
 */
export function applyRules(
  rows: readonly HomeRow[],
  module: ProfileModule | undefined,
  reserved: readonly string[] = [],
): HomeRow[] {
  const { excluded, completed } = setsOf(module)
  const seen = new Map<string, number>(reserved.map((id) => [id, 1]))
  const out: HomeRow[] = []
  for (const row of rows) {
    const items: HomeItem[] = []
    const all = row.kind === 'continue_watching'
    const personal = PERSONAL_KINDS.has(row.kind)
    for (const item of row.items) {
      if (items.length === ROW_LENGTH) break
      const id = item.titleId
      if (!all && excluded.has(id)) continue
      if (personal && completed.has(id)) continue
      const n = seen.get(id) ?? 0
      if (n >= MAX_APPEARANCES) continue
      // A row is short: a scan beats a set per row.
      if (n > 0 && items.some((i) => i.titleId === id)) continue
      seen.set(id, n + 1)
      items.push(item)
    }
    if (items.length > 0) out.push(items.length === row.items.length ? row : { ...row, items })
  }
  return out
}

const NO_TITLES: ReadonlySet<string> = new Set()
const moduleSets = new WeakMap<
  ProfileModule,
  { excluded: ReadonlySet<string>; completed: ReadonlySet<string> }
>()

/** A module's excluded and completed titles as sets, built once per module object. */
function setsOf(module: ProfileModule | undefined): {
  excluded: ReadonlySet<string>
  completed: ReadonlySet<string>
} {
  if (!module) return { excluded: NO_TITLES, completed: NO_TITLES }
  let sets = moduleSets.get(module)
  if (!sets) {
    sets = { excluded: new Set(module.excluded), completed: new Set(module.completed) }
    moduleSets.set(module, sets)
  }
  return sets
}
