import { badRequest } from '../../platform/errors.js'

/**
 * What trends counts and how time is cut: pure functions shared by the streaming path, the batch
 * rollup and the read side, so that the two paths cannot disagree on a bucket or a subject.
 */

export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR
export const WEEK = 7 * DAY

/** Bucket sizes: 5-minute buckets make the sliding hour, hourly and daily ones are the rollups. */
export const GRAINS = { '5m': 5 * MINUTE, '1h': HOUR, '1d': DAY } as const
export type Grain = keyof typeof GRAINS
export const GRAIN_NAMES = Object.keys(GRAINS) as Grain[]

/** What is ranked: movies, series, and seasons (an episode counts towards its series and its season). */
export const SUBJECT_KINDS = ['movie', 'series', 'season'] as const
export type SubjectKind = (typeof SUBJECT_KINDS)[number]

/** The region of worldwide counts (a country is its ISO 3166 alpha-2 code). */
export const WORLD = 'world'

/** A heartbeat reports what was watched since the previous one; more than this in one event is not believed. */
export const MAX_WATCHED_PER_EVENT_MS = 6 * HOUR

/** Start of the bucket of `grain` that holds time `at` (UTC, epoch ms). */
export function bucketStart(at: number, grain: Grain): number {
  const size = GRAINS[grain]
  return Math.floor(at / size) * size
}

/** Monday 00:00 UTC of the calendar week (Monday–Sunday) that holds `at`. */
export function weekStart(at: number): number {
  const day = bucketStart(at, '1d')
  const weekday = (new Date(day).getUTCDay() + 6) % 7
  return day - weekday * DAY
}

/** ISO 8601 week name (`2026-W48`) of the week starting at `monday`. */
export function isoWeekName(monday: number): string {
  const thursday = new Date(monday + 3 * DAY)
  const year = thursday.getUTCFullYear()
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / WEEK) + 1
  return `${year}-W${String(week).padStart(2, '0')}`
}

/** Monday of an ISO week (`2026-W48`) or of the week holding a date (`2026-11-26`); 400 `invalid_week` otherwise. */
export function parseWeek(raw: string): number {
  const iso = /^(\d{4})-W(\d{2})$/.exec(raw)
  if (iso) {
    const year = Number(iso[1])
    const week = Number(iso[2])
    // Week 1 is the week holding January 4th.
    const monday = weekStart(Date.UTC(year, 0, 4)) + (week - 1) * WEEK
    if (week >= 1 && isoWeekName(monday) === raw) return monday
  } else if (/^\d{4}-\d{2}-\d{2}$/.test(raw)) {
    const day = Date.parse(`${raw}T00:00:00Z`)
    if (!Number.isNaN(day) && new Date(day).toISOString().startsWith(raw)) return weekStart(day)
  }
  throw badRequest(
    'invalid_week',
    `"${raw}" is not a week: use an ISO week such as 2026-W48, or a date such as 2026-11-26`,
  )
}

/** One playback event as trends reads it, once checked. */
export interface PlaySignal {
  /** The event id: the unit of deduplication. */
  id: string
  /** Event time (the client's `at`), epoch ms: the bucket it lands in. */
  at: number
  /** ISO 3166 alpha-2 code, or null when the event's region is not one (it then counts worldwide only). */
  region: string | null
  /** 1 for a play started, else 0. */
  plays: number
  /** Media time watched that this event reports. */
  watchedMs: number
  subjects: readonly Subject[]
}

export interface Subject {
  kind: SubjectKind
  id: string
}

/** A season is counted as `<series id>/<season id>`: the catalog knows seasons through their series. */
export const seasonSubject = (seriesId: string, seasonId: string) => `${seriesId}/${seasonId}`

/** The series and season of a season subject id; the id itself (and no season) for a movie or series. */
export function splitSubject(id: string): { titleId: string; seasonId: string | null } {
  const slash = id.indexOf('/')
  return slash < 0
    ? { titleId: id, seasonId: null }
    : { titleId: id.slice(0, slash), seasonId: id.slice(slash + 1) }
}

const text = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= 200 && !v.includes('/')

/** Subjects are the same for every event of a title: kept (up to this many titles), not built per event. */
const SUBJECTS_KEPT = 10_000
const moviesKept = new Map<string, readonly Subject[]>()
const seasonsKept = new Map<string, Map<string, readonly Subject[]>>()

function movieSubjects(titleId: string): readonly Subject[] {
  let subjects = moviesKept.get(titleId)
  if (!subjects) {
    if (moviesKept.size >= SUBJECTS_KEPT) moviesKept.clear()
    subjects = Object.freeze([Object.freeze({ kind: 'movie' as const, id: titleId })])
    moviesKept.set(titleId, subjects)
  }
  return subjects
}

function episodeSubjects(seriesId: string, seasonId: string): readonly Subject[] {
  let seasons = seasonsKept.get(seriesId)
  if (!seasons) {
    if (seasonsKept.size >= SUBJECTS_KEPT) seasonsKept.clear()
    seasons = new Map()
    seasonsKept.set(seriesId, seasons)
  }
  let subjects = seasons.get(seasonId)
  if (!subjects) {
    if (seasons.size >= SUBJECTS_KEPT) seasons.clear()
    subjects = Object.freeze([
      Object.freeze({ kind: 'series' as const, id: seriesId }),
      Object.freeze({ kind: 'season' as const, id: seasonSubject(seriesId, seasonId) }),
    ])
    seasons.set(seasonId, subjects)
  }
  return subjects
}

/**
 * The counts one playback event contributes, or a reason it cannot count. A movie counts as itself;
 * an episode as its series and its season. `started` is a play; `heartbeat` and `stopped` report
 * watched time.
 */
export function playSignal(event: {
  id: string
  type: string
  data: unknown
}): PlaySignal | { rejected: string } {
  const kind = event.type.slice(event.type.lastIndexOf('.') + 1)
  if (kind !== 'started' && kind !== 'heartbeat' && kind !== 'stopped')
    return { rejected: 'unknown event type' }
  const d = event.data
  if (typeof d !== 'object' || d === null) return { rejected: 'no data' }
  const data = d as Record<string, unknown>
  const at = typeof data.at === 'string' ? Date.parse(data.at) : Number.NaN
  if (!Number.isFinite(at)) return { rejected: 'no valid `at` time' }
  let subjects: readonly Subject[]
  if (data.titleType === 'movie' && text(data.titleId)) subjects = movieSubjects(data.titleId)
  else if (data.titleType === 'episode' && text(data.seriesId) && text(data.seasonId))
    subjects = episodeSubjects(data.seriesId, data.seasonId)
  else return { rejected: 'not a movie, nor an episode with its series and season' }
  let watchedMs = 0
  if (kind !== 'started') {
    const w = data.watchedMs
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) return { rejected: 'no valid watchedMs' }
    watchedMs = Math.min(Math.round(w), MAX_WATCHED_PER_EVENT_MS)
  }
  const region =
    typeof data.region === 'string' && /^[A-Za-z]{2}$/.test(data.region) ? data.region.toUpperCase() : null
  return { id: event.id, at, region, plays: kind === 'started' ? 1 : 0, watchedMs, subjects }
}

/** A counter row: the plays and watched time of one subject in one bucket of one region. */
export interface CountRow {
  grain: Grain
  bucket: number
  region: string
  kind: SubjectKind
  subjectId: string
  plays: number
  watchedMs: number
}

/** A tally's rows of one bucket: region → subject kind → subject id. */
type BucketRows = Map<string, Map<SubjectKind, Map<string, CountRow>>>

/**
 * Sums signals into counter rows, at every grain, per region and worldwide. Rows are found through
 * nested maps (grain, bucket, region, kind, subject id) rather than one key string per counter: an
 * event touches up to four counters a grain, and their key strings were most of a flush's garbage.
 */
export class Tally {
  readonly #grains = new Map<Grain, Map<number, BucketRows>>()

  add(signal: PlaySignal, grains: readonly Grain[] = GRAIN_NAMES): void {
    if (signal.plays === 0 && signal.watchedMs === 0) return
    const { subjects, plays, watchedMs } = signal
    // Indexed loops: for-of here allocated an iterator result per subject (a fifth of a flush's garbage).
    for (let g = 0; g < grains.length; g++) {
      const grain = grains[g] as Grain
      const bucket = bucketStart(signal.at, grain)
      const rows = this.#bucket(grain, bucket)
      // The event's region first, then worldwide (the order rows come out in).
      if (signal.region)
        for (let i = 0; i < subjects.length; i++) {
          const subject = subjects[i] as Subject
          this.#bump(rows, grain, bucket, signal.region, subject.kind, subject.id, plays, watchedMs)
        }
      for (let i = 0; i < subjects.length; i++) {
        const subject = subjects[i] as Subject
        this.#bump(rows, grain, bucket, WORLD, subject.kind, subject.id, plays, watchedMs)
      }
    }
  }

  #bucket(grain: Grain, bucket: number): BucketRows {
    let buckets = this.#grains.get(grain)
    if (!buckets) {
      buckets = new Map()
      this.#grains.set(grain, buckets)
    }
    let rows = buckets.get(bucket)
    if (!rows) {
      rows = new Map()
      buckets.set(bucket, rows)
    }
    return rows
  }

  #bump(
    rows: BucketRows,
    grain: Grain,
    bucket: number,
    region: string,
    kind: SubjectKind,
    subjectId: string,
    plays: number,
    watchedMs: number,
  ): void {
    let kinds = rows.get(region)
    if (!kinds) {
      kinds = new Map()
      rows.set(region, kinds)
    }
    let subjects = kinds.get(kind)
    if (!subjects) {
      subjects = new Map()
      kinds.set(kind, subjects)
    }
    const row = subjects.get(subjectId)
    if (row) {
      row.plays += plays
      row.watchedMs += watchedMs
    } else subjects.set(subjectId, { grain, bucket, region, kind, subjectId, plays, watchedMs })
  }

  /** Adds the rows of another tally or loose rows to this one. */
  merge(rows: Tally | readonly CountRow[]): void {
    for (const r of rows instanceof Tally ? rows.rows() : rows)
      this.#bump(
        this.#bucket(r.grain, r.bucket),
        r.grain,
        r.bucket,
        r.region,
        r.kind,
        r.subjectId,
        r.plays,
        r.watchedMs,
      )
  }

  /** The rows, grouped by grain, bucket, region and kind (each group in the order it was first added to). */
  rows(): CountRow[] {
    const out: CountRow[] = []
    for (const buckets of this.#grains.values())
      for (const regions of buckets.values())
        for (const kinds of regions.values())
          for (const subjects of kinds.values()) for (const row of subjects.values()) out.push(row)
    return out
  }
}

/** Answers that may be asked for. */
export const WINDOWS = {
  /** Sliding: the current 5-minute bucket and the 11 before it. */
  hour: { grain: '5m', buckets: 12, halfLifeMs: 15 * MINUTE },
  day: { grain: '1h', buckets: 24, halfLifeMs: 4 * HOUR },
  week: { grain: '1h', buckets: 168, halfLifeMs: DAY },
} as const satisfies Record<string, { grain: Grain; buckets: number; halfLifeMs: number }>
export type WindowName = keyof typeof WINDOWS
export const WINDOW_NAMES = Object.keys(WINDOWS) as WindowName[]

/** One cached set of a window: a bucket of a grain, and the trending weight of its plays. */
export interface Slice {
  grain: Grain
  bucket: number
  weight: number
}

/** The trending weight of a bucket: halves every half-life, by the age of the bucket's middle (of its elapsed part). */
function decay(start: number, size: number, end: number, halfLifeMs: number): number {
  const middle = (start + Math.min(start + size, end)) / 2
  return 2 ** (-Math.max(0, end - middle) / halfLifeMs)
}

/**
 * The buckets that make a window ending at `end`, oldest first. The hour is its 5-minute buckets
 * (the current, partial one and the 11 before it). A day or a week is hourly buckets: an hour before
 * `sealedUntil` is its hourly rollup, a later one its 5-minute buckets, weighted as their hour so a
 * score does not change when the hour is sealed.
 */
export function windowSlices(window: WindowName, end: number, sealedUntil: number): Slice[] {
  const { grain, buckets, halfLifeMs } = WINDOWS[window]
  const size = GRAINS[grain]
  const last = bucketStart(end, grain)
  const slices: Slice[] = []
  for (let i = buckets - 1; i >= 0; i--) {
    const start = last - i * size
    const weight = decay(start, size, end, halfLifeMs)
    if (grain === '5m' || start < sealedUntil) slices.push({ grain, bucket: start, weight })
    else
      for (let b = start; b < start + size && b <= end; b += GRAINS['5m'])
        slices.push({ grain: '5m', bucket: b, weight })
  }
  return slices
}

/** Length of a window, for the previous window that rank changes compare with. */
export function windowLength(window: WindowName): number {
  const { grain, buckets } = WINDOWS[window]
  return GRAINS[grain] * buckets
}

/** Netflix's Top 10 "views" since 2023: hours viewed ÷ runtime; 0 when the runtime is not known. */
export function views(watchedMs: number, runtimeMs: number | undefined): number {
  if (!runtimeMs || runtimeMs <= 0) return 0
  return watchedMs / runtimeMs
}
