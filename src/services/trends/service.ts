import { LRUCache } from 'lru-cache'
import type { Auth } from '../../platform/auth.js'
import type { Blobs } from '../../platform/blobs/blobs.js'
import type { EventEnvelope } from '../../platform/bus/bus.js'
import type { Cache } from '../../platform/cache/cache.js'
import { badRequest, conflict, errorMessage } from '../../platform/errors.js'
import type { Logger } from '../../platform/log.js'
import { PlaybackArchive } from './archive.js'
import { showable, type TitleFact, type TitleFacts, type Viewer } from './facts.js'
import { type IngestReport, StreamingAggregator } from './ingest.js'
import {
  bucketStart,
  type CountRow,
  DAY,
  GRAINS,
  HOUR,
  isoWeekName,
  type PlaySignal,
  parseWeek,
  playSignal,
  SUBJECT_KINDS,
  type SubjectKind,
  splitSubject,
  Tally,
  views,
  WEEK,
  WINDOWS,
  type WindowName,
  WORLD,
  weekStart,
  windowLength,
  windowSlices,
} from './rules.js'
import type { TrendsStore } from './store.js'
import { type Ranked, WindowCounters, yieldToRequests } from './windows.js'

export type TitleType = SubjectKind | 'all'

export interface RankedTitle {
  rank: number
  /** The movie or series (for a season: its series). */
  titleId: string
  /** For a season: the season of titleId; else null. */
  seasonId: string | null
  type: SubjectKind
  plays: number
  hoursViewed: number
  /** Hours viewed ÷ runtime (Netflix's Top 10 "views"), one decimal. */
  views: number
  /** Rank among what this viewer could see in the previous period; null when not ranked then. */
  previousRank: number | null
  /** previousRank − rank: positive moved up; null when new. */
  rankChange: number | null
}

export interface TrendingTitle extends RankedTitle {
  /** Time-decayed plays (recent plays weigh more): what the row is ordered by. */
  score: number
}

export interface TrendingAnswer {
  region: string
  window: WindowName
  type: TitleType
  from: string
  to: string
  items: TrendingTitle[]
}

export interface Top10Answer {
  region: string
  type: TitleType
  week: string
  from: string
  to: string
  items: RankedTitle[]
}

export interface RollupReport {
  /** Hours [from, to) whose 5-minute and hourly counters were recomputed. */
  from: string
  to: string
  /** Days whose daily counters were recomputed (those wholly closed to streaming). */
  days: string[]
  /** Distinct events read from the archive. */
  events: number
  /** Repeats of an event id in the archive, counted once. */
  duplicates: number
  rows: number
}

export interface TrendsOptions {
  store: TrendsStore
  cache: Cache
  blobs: Blobs
  facts: TitleFacts
  /** The profile's maturity limit; 404 `profile_not_found` for an id not of this account. */
  profile(accountId: string, profileId: string): Promise<{ maturityLimit: string }>
  log: Logger
  now: () => number
  /** Events this late still count in their own bucket; later ones only reach the archive and the next rollup. */
  graceMs: number
  /** How long a computed ranking is served from the cache. */
  answerTtlMs: number
  /** Hands a title's popularity to the catalog, which orders lists and search ties by it. */
  setPopularity(titleId: string, score: number): Promise<void>
}

/** Most titles one answer returns; a larger `limit` is cut to this. */
export const MAX_LIMIT = 50
/** Titles ranked before filtering for a viewer: enough that a viewer's filter rarely leaves fewer than MAX_LIMIT. */
const CANDIDATES = 4 * MAX_LIMIT
const TOP10 = 10
/** Event ids forgotten per statement when pruning. */
const PRUNE_CHUNK = 10_000
/** Titles whose popularity is handed to the catalog. */
const POPULARITY_TOP = 1000

const KINDS_OF: Record<TitleType, readonly SubjectKind[]> = {
  all: ['movie', 'series'],
  movie: ['movie'],
  series: ['series'],
  season: ['season'],
}

/** `world`, an ISO 3166 alpha-2 code (upper-cased), or undefined for a region nothing is counted in. */
function regionOf(raw: string | undefined, viewer: Viewer): string | undefined {
  const value = (raw ?? '').trim()
  if (value === '') return viewer.country
  if (value.toLowerCase() === WORLD) return WORLD
  return /^[A-Za-z]{2}$/.test(value) ? value.toUpperCase() : undefined
}

const iso = (ms: number) => new Date(ms).toISOString()
const hours = (ms: number) => Math.round((ms / HOUR) * 10) / 10
const oneDecimal = (n: number) => Math.round(n * 10) / 10

interface CachedTrending {
  current: Ranked[]
  previous: string[]
}

interface WeekTotals {
  kind: SubjectKind
  id: string
  plays: number
  watchedMs: number
  views: number
}

interface CachedTop10 {
  current: WeekTotals[]
  previous: string[]
}

/** Trends: what is watched, per region and worldwide, streaming and batch. */
export class TrendsService {
  readonly aggregator: StreamingAggregator
  private readonly windows: WindowCounters
  private readonly archive: PlaybackArchive
  /** Answers being computed in this process: concurrent misses share one computation. */
  private readonly computing = new Map<string, Promise<unknown>>()
  /** Popularity last handed to the catalog, per title. */
  private readonly published = new Map<string, number>()
  /** Items of answers as some viewer saw them (see rendered). */
  private readonly renderedItems = new LRUCache<string, unknown[]>({ max: 10_000 })
  private readonly renderTtlMs: number

  constructor(private readonly o: TrendsOptions) {
    this.renderTtlMs = Math.min(o.answerTtlMs, 1000)
    this.windows = new WindowCounters(o.cache, o.store, o.now, o.graceMs)
    this.archive = new PlaybackArchive(o.blobs)
    this.aggregator = new StreamingAggregator({
      store: o.store,
      archive: this.archive,
      windows: this.windows,
      now: o.now,
      graceMs: o.graceMs,
      log: o.log,
    })
  }

  /** The viewer behind a request: the caller's country and the profile's maturity limit. */
  async viewer(auth: Auth, profileId: string): Promise<Viewer> {
    const profile = await this.o.profile(auth.accountId, profileId)
    return { country: auth.country, maturityLimit: profile.maturityLimit }
  }

  /** The Trending row: titles by time-decayed plays over the window, with rank changes against the window before. */
  async trending(
    viewer: Viewer,
    query: { region?: string; window: WindowName; type?: TitleType; limit?: number },
  ): Promise<TrendingAnswer> {
    const now = this.o.now()
    const type = query.type ?? 'all'
    const limit = Math.min(Math.max(1, query.limit ?? 20), MAX_LIMIT)
    const region = regionOf(query.region, viewer)
    const length = windowLength(query.window)
    const answer: TrendingAnswer = {
      region: region ?? (query.region ?? '').trim(),
      window: query.window,
      type,
      from: iso(bucketStart(now, WINDOWS[query.window].grain) + GRAINS[WINDOWS[query.window].grain] - length),
      to: iso(now),
      items: [],
    }
    if (!region) return answer
    const key = `trends:answer:trending:${region}:${query.window}:${type}`
    answer.items = await this.rendered(key, viewer, limit, async () => {
      const ranking = await this.shared<CachedTrending>(key, async () => {
        const kinds = KINDS_OF[type]
        const sealed = await this.sealedHours()
        const current = await this.windows.top(
          region,
          kinds,
          windowSlices(query.window, now, sealed),
          CANDIDATES,
        )
        // One window at a time, letting requests in between: a week is a union of 168 sets or more.
        await yieldToRequests()
        const previous = await this.windows.top(
          region,
          kinds,
          windowSlices(query.window, now - length, sealed),
          CANDIDATES,
        )
        return { current, previous: previous.map((r) => r.id) }
      })
      const facts = await this.o.facts.lookup([...ranking.current.map((r) => r.id), ...ranking.previous])
      const visible = (id: string) => showable(facts.get(id), viewer)
      const previousRank = ranksOf(ranking.previous.filter(visible))
      return ranking.current
        .filter((r) => visible(r.id))
        .slice(0, limit)
        .map((r, i) => ({
          ...rankedTitle(r.kind, r.id, i + 1, r.plays, r.watchedMs, facts.get(r.id), previousRank),
          score: Math.round(r.score * 1000) / 1000,
        }))
    })
    return answer
  }

  /** Top 10 of a calendar week (Monday–Sunday, UTC) by views, with rank changes against the week before. */
  async top10(
    viewer: Viewer,
    query: { region?: string; type?: TitleType; week?: string },
  ): Promise<Top10Answer> {
    const now = this.o.now()
    const type = query.type ?? 'all'
    const monday = query.week ? parseWeek(query.week) : weekStart(now)
    const region = regionOf(query.region, viewer)
    const answer: Top10Answer = {
      region: region ?? (query.region ?? '').trim(),
      type,
      week: isoWeekName(monday),
      from: iso(monday),
      to: iso(monday + WEEK),
      items: [],
    }
    if (!region || monday > now) return answer
    const key = `trends:answer:top10:${region}:${type}:${monday}`
    answer.items = await this.rendered(key, viewer, TOP10, async () => {
      const ranking = await this.shared<CachedTop10>(key, async () => {
        const [current, previous] = await Promise.all([
          this.weekTotals(region, KINDS_OF[type], monday),
          this.weekTotals(region, KINDS_OF[type], monday - WEEK),
        ])
        return { current, previous: previous.map((t) => t.id) }
      })
      const facts = await this.o.facts.lookup([...ranking.current.map((t) => t.id), ...ranking.previous])
      const visible = (id: string) => showable(facts.get(id), viewer)
      const previousRank = ranksOf(ranking.previous.filter(visible))
      return ranking.current
        .filter((t) => visible(t.id))
        .slice(0, TOP10)
        .map((t, i) => rankedTitle(t.kind, t.id, i + 1, t.plays, t.watchedMs, facts.get(t.id), previousRank))
    })
    return answer
  }

  /**
   * Popularity of titles (movies, series or seasons) for search and recommendations: time-decayed
   * plays over the last week (half-life one day), worldwide unless a region is given; 0 for a title
   * nobody played.
   */
  async popularity(
    titleIds: readonly string[],
    options: { region?: string } = {},
  ): Promise<Map<string, number>> {
    const region =
      options.region === undefined ? WORLD : regionOf(options.region, { country: WORLD, maturityLimit: '' })
    if (!region) return new Map(titleIds.map((id) => [id, 0]))
    const now = this.o.now()
    const slices = windowSlices('week', now, await this.sealedHours())
    const scores = await this.windows.scores(region, SUBJECT_KINDS, slices, titleIds)
    return new Map(titleIds.map((id) => [id, Math.round((scores.get(id) ?? 0) * 1000) / 1000]))
  }

  /**
   * Hands the popularity of the most played movies and series to the catalog, for those whose score
   * moved by more than 1 % since this process last sent it (a title that left the top gets 0).
   */
  async publishPopularity(): Promise<number> {
    const slices = windowSlices('week', this.o.now(), await this.sealedHours())
    const top = await this.windows.top(WORLD, KINDS_OF.all, slices, POPULARITY_TOP)
    const scores = new Map(top.map((r) => [r.id, Math.round(r.score * 1000) / 1000]))
    for (const id of this.published.keys()) if (!scores.has(id)) scores.set(id, 0)
    let sent = 0
    for (const [id, score] of scores) {
      const last = this.published.get(id)
      if (last !== undefined && Math.abs(score - last) <= 0.01 * Math.max(last, score)) continue
      try {
        await this.o.setPopularity(id, score)
        sent++
      } catch (e) {
        // A title the catalog does not know (or no longer has) keeps no popularity.
        this.o.log.debug({ titleId: id, err: errorMessage(e) }, 'popularity not handed to the catalog')
      }
      if (score === 0) this.published.delete(id)
      else this.published.set(id, score)
    }
    return sent
  }

  /** The bus's batch handler of the streaming path: resolves once the batch's effect is durable. */
  async handleBatch(events: readonly EventEnvelope[]): Promise<void> {
    await this.aggregator.ingest(events)
  }

  /** One event on its own (a redelivery, say): the same as a batch of one. */
  async handle(event: EventEnvelope): Promise<void> {
    await this.aggregator.ingest([event])
  }

  /** Counts a batch of events at once (a flush), reporting what it did with them. */
  ingest(events: readonly EventEnvelope[]): Promise<IngestReport> {
    return this.aggregator.ingest(events)
  }

  /**
   * The batch path: recomputes from the raw archive, deduplicated by event id, the 5-minute and
   * hourly counters of hours [from, to) and the daily counters of the days they touch that are
   * wholly closed (with all those days' hours). Idempotent; on the same events it equals what
   * streaming produced, plus the events that came later than the grace. Hours still open to
   * streaming (later than now − grace) are refused: both paths would write them.
   */
  async rollup(fromMs: number, toMs: number): Promise<RollupReport> {
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs))
      throw badRequest('invalid_range', 'from and to must be times such as 2026-11-20 or 2026-11-20T06:00Z')
    let from = bucketStart(fromMs, '1h')
    let to = bucketStart(toMs + HOUR - 1, '1h')
    if (to <= from) throw badRequest('invalid_range', 'to must be after from')
    await this.seal()
    const closed = bucketStart(this.o.now() - this.o.graceMs, '1h')
    const pending = await this.o.store.firstPendingBucket()
    if (pending !== undefined && pending < to)
      throw conflict('counts_pending', 'Counts of that range are still being added; try again in a minute')
    if (to > closed)
      throw conflict(
        'range_still_open',
        `Hours from ${iso(closed)} on still take late events (grace ${this.o.graceMs / 60_000} min); roll up to ${iso(closed)} at most`,
      )
    const days: number[] = []
    for (let day = bucketStart(fromMs, '1d'); day < to; day += DAY) if (day + DAY <= closed) days.push(day)
    const daysFrom = days[0] ?? from
    const daysTo = daysFrom + days.length * DAY
    // A day recomputed whole gets its hours recomputed whole too, so its daily row is their sum.
    if (days.length > 0) {
      from = Math.min(from, daysFrom)
      to = Math.max(to, daysTo)
    }

    // Events staged but not yet in the blob store are part of the archive too.
    await this.aggregator.moveArchive()
    const seen = new Set<string>()
    let duplicates = 0
    const hourly = new Tally()
    const daily = new Tally()
    for await (const envelope of this.archive.read(from, to)) {
      if (seen.has(envelope.id)) {
        duplicates++
        continue
      }
      seen.add(envelope.id)
      const signal: PlaySignal | { rejected: string } = playSignal(envelope)
      if ('rejected' in signal) continue
      if (signal.at >= from && signal.at < to) hourly.add(signal, ['5m', '1h'])
      if (signal.at >= daysFrom && signal.at < daysTo) daily.add(signal, ['1d'])
    }
    const hourRows = hourly.rows()
    const dayRows = daily.rows()
    await this.o.store.transaction(async (store) => {
      await store.replaceCounts(['5m', '1h'], from, to, hourRows)
      if (days.length > 0) await store.replaceCounts(['1d'], daysFrom, daysTo, dayRows)
    })
    // Batch totals are never below streaming's (the archive holds every counted event), so raising suffices.
    await this.windows.raise(hourRows.filter((r) => this.windows.isCached(r)))
    this.o.log.info(
      { from: iso(from), to: iso(to), days: days.length, events: seen.size, duplicates },
      'trends rollup done',
    )
    return {
      from: iso(from),
      to: iso(to),
      days: days.map((d) => iso(d).slice(0, 10)),
      events: seen.size,
      duplicates,
      rows: hourRows.length + dayRows.length,
    }
  }

  /** Counters of buckets [from, to) at every grain, in key order, once this process's pending counts are added: what the two paths are compared on. */
  async counters(from: number, to: number): Promise<CountRow[]> {
    await this.aggregator.apply()
    return this.o.store.countsBetween(['5m', '1h', '1d'], from, to)
  }

  /**
   * Seals the hourly rollups of hours closed to streaming (their end + grace has passed) from their
   * 5-minute counters, and the daily rollups of days whose hours are all sealed; moves the watermarks.
   */
  async seal(): Promise<{ hours: number; days: number }> {
    const { store } = this.o
    await this.aggregator.apply()
    // An hour some pending counts (of any process) still touch waits for them to be added.
    const pending = await store.firstPendingBucket()
    const closed = Math.min(
      bucketStart(this.o.now() - this.o.graceMs, '1h'),
      pending === undefined ? Number.POSITIVE_INFINITY : bucketStart(pending, '1h'),
    )
    let hourMark =
      (await store.watermark('sealed_hours')) ?? bucketStart((await store.firstBucket('5m')) ?? closed, '1h')
    let hours = 0
    for (; hourMark < closed; hours++) {
      const hour = hourMark
      await store.transaction(async (s) => {
        await s.seal('5m', '1h', hour, HOUR)
        await s.setWatermark('sealed_hours', hour + HOUR)
      })
      hourMark += HOUR
    }
    if (hours === 0 && (await store.watermark('sealed_hours')) === undefined)
      await store.setWatermark('sealed_hours', hourMark)
    let dayMark =
      (await store.watermark('sealed_days')) ?? bucketStart((await store.firstBucket('1h')) ?? hourMark, '1d')
    let days = 0
    for (; dayMark + DAY <= hourMark; days++) {
      const day = dayMark
      await store.transaction(async (s) => {
        await s.seal('1h', '1d', day, DAY)
        await s.setWatermark('sealed_days', day + DAY)
      })
      dayMark += DAY
    }
    if (days === 0 && (await store.watermark('sealed_days')) === undefined)
      await store.setWatermark('sealed_days', dayMark)
    return { hours, days }
  }

  /**
   * Forgets event ids too old to be counted again, and counters past their retention. An id is kept
   * while an event of its hour can still count (its hour ends after now − grace), and an hour more
   * for processes whose clocks run behind; without this the ids would grow by the event rate forever.
   * Ids go in chunks of `chunk`, yielding between them, so requests keep being answered meanwhile.
   */
  async prune(chunk = PRUNE_CHUNK): Promise<{ seen: number; counts: number }> {
    const now = this.o.now()
    const before = bucketStart(now - this.o.graceMs, '1h') - HOUR
    let seen = 0
    for (let n = chunk; n === chunk; seen += n) {
      n = await this.o.store.pruneSeen(before, chunk)
      await new Promise((resolve) => setImmediate(resolve))
    }
    // 5-minute counters of unsealed hours are all those hours have.
    const counts =
      (await this.o.store.pruneCounts(
        '5m',
        Math.min(await this.sealedHours(), bucketStart(now - 2 * DAY, '1h')),
      )) +
      (await this.o.store.pruneCounts(
        '1h',
        Math.min(await this.sealedDays(), bucketStart(now - 60 * DAY, '1d')),
      ))
    return { seen, counts }
  }

  private async sealedHours(): Promise<number> {
    return (await this.o.store.watermark('sealed_hours')) ?? 0
  }

  private async sealedDays(): Promise<number> {
    return (await this.o.store.watermark('sealed_days')) ?? 0
  }

  private async weekTotals(
    region: string,
    kinds: readonly SubjectKind[],
    monday: number,
  ): Promise<WeekTotals[]> {
    // Sealed days from daily rollups, then sealed hours from hourly ones, then 5-minute counters.
    const end = monday + WEEK
    const dayMark = Math.min(Math.max(await this.sealedDays(), monday), end)
    const hourMark = Math.min(Math.max(await this.sealedHours(), dayMark), end)
    const parts = await Promise.all([
      this.o.store.sums('1d', region, kinds, monday, dayMark),
      this.o.store.sums('1h', region, kinds, dayMark, hourMark),
      this.o.store.sums('5m', region, kinds, hourMark, end),
    ])
    const bySubject = new Map<
      string,
      { kind: SubjectKind; subjectId: string; plays: number; watchedMs: number }
    >()
    for (const part of parts)
      for (const row of part) {
        const key = `${row.kind}|${row.subjectId}`
        const total = bySubject.get(key)
        if (total) {
          total.plays += row.plays
          total.watchedMs += row.watchedMs
        } else bySubject.set(key, { ...row })
      }
    const sums = [...bySubject.values()]
    const facts = await this.o.facts.lookup(sums.map((s) => s.subjectId))
    return sums
      .filter((s) => facts.has(s.subjectId))
      .map((s) => ({
        kind: s.kind,
        id: s.subjectId,
        plays: s.plays,
        watchedMs: s.watchedMs,
        views: views(s.watchedMs, facts.get(s.subjectId)?.runtimeMs),
      }))
      .sort(
        (a, b) =>
          b.views - a.views ||
          b.watchedMs - a.watchedMs ||
          b.plays - a.plays ||
          (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
      )
      .slice(0, CANDIDATES)
  }

  /**
   * A viewer's items of a cached answer, kept in this process for a second at most (never longer
   * than the answer itself): viewers differ only by country and maturity limit, so a popular row is
   * filtered once a second, not once a request.
   */
  private async rendered<T>(
    key: string,
    viewer: Viewer,
    limit: number,
    render: () => Promise<T[]>,
  ): Promise<T[]> {
    if (this.renderTtlMs <= 0) return render()
    const memo = `${key}|${viewer.country}|${viewer.maturityLimit}|${limit}`
    const hit = this.renderedItems.get(memo)
    if (hit) return hit as T[]
    const items = await render()
    this.renderedItems.set(memo, items, { ttl: this.renderTtlMs })
    return items
  }

  /** The cached answer at key, else computed once per process (concurrent callers share it) and cached briefly. */
  private async shared<T>(key: string, compute: () => Promise<T>): Promise<T> {
    const hit = this.o.answerTtlMs > 0 ? await this.o.cache.get(key) : undefined
    if (hit !== undefined) {
      try {
        return JSON.parse(hit) as T
      } catch {
        // A corrupt entry is recomputed below.
      }
    }
    const running = this.computing.get(key)
    if (running) return running as Promise<T>
    const work = (async () => {
      const value = await compute()
      if (this.o.answerTtlMs > 0) await this.o.cache.set(key, JSON.stringify(value), this.o.answerTtlMs)
      return value
    })().finally(() => this.computing.delete(key))
    this.computing.set(key, work)
    return work
  }
}

function ranksOf(ids: readonly string[]): Map<string, number> {
  return new Map(ids.map((id, i) => [id, i + 1]))
}

function rankedTitle(
  kind: SubjectKind,
  id: string,
  rank: number,
  plays: number,
  watchedMs: number,
  fact: TitleFact | undefined,
  previousRanks: Map<string, number>,
): RankedTitle {
  const previousRank = previousRanks.get(id) ?? null
  return {
    rank,
    ...splitSubject(id),
    type: kind,
    plays,
    hoursViewed: hours(watchedMs),
    views: oneDecimal(views(watchedMs, fact?.runtimeMs)),
    previousRank,
    rankChange: previousRank === null ? null : previousRank - rank,
  }
}
