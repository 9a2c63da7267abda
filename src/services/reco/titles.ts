import type { MaturityRating } from '../accounts/rules.js'
import { ratingRank } from '../accounts/rules.js'
import { type AvailabilityWindow, EVERY_REGION, isAvailable, type TitleDocument } from '../catalog/events.js'
import type { RecoStore } from './store.js'

/** What reco keeps of a catalog title: enough to recommend it, filter it and draw its tile. */
export interface RecoTitle {
  id: string
  type: 'movie' | 'series'
  title: string
  year: number | null
  maturityRating: MaturityRating
  language: string | null
  genres: { id: string; name: string }[]
  tags: string[]
  people: { id: string; name: string; role: string }[]
  availability: AvailabilityWindow[]
  artwork?: string
  popularity: number
  createdAt: string
}

export function recoTitleOf(doc: TitleDocument): RecoTitle {
  const artwork = doc.artwork.backdrop ?? doc.artwork.poster
  return {
    id: doc.id,
    type: doc.type,
    title: doc.title,
    year: doc.year,
    maturityRating: doc.maturityRating,
    language: doc.originalLanguage,
    genres: doc.genres,
    tags: doc.tags,
    // Directors and the first-billed cast say most about a title; the rest is noise for similarity.
    people: doc.credits
      .filter((c) => c.role === 'director' || c.role === 'creator' || (c.role === 'cast' && c.order < 5))
      .map((c) => ({ id: c.personId, name: c.name, role: c.role })),
    availability: doc.availability,
    ...(artwork ? { artwork } : {}),
    popularity: doc.popularity,
    createdAt: doc.createdAt,
  }
}

export interface Viewer {
  country: string
  maturityLimit: MaturityRating
}

export function visible(title: RecoTitle, viewer: Viewer, now: number): boolean {
  if (ratingRank(title.maturityRating) > ratingRank(viewer.maturityLimit)) return false
  const windows = title.availability
  // The common case, shown everywhere for ever, without parsing dates.
  const only = windows.length === 1 ? windows[0] : undefined
  if (only && only.region === EVERY_REGION && only.startsAt === null && only.endsAt === null) return true
  return isAvailable(windows, viewer.country, now)
}

/** How often a process looks for titles changed since it last looked. */
const REFRESH_MS = 2_000
/** How far before the last change seen each look reads again (rows committed late, clock skew). */
const LOOKBACK_MS = 60_000

/**
 * Every title reco knows, in memory: read from reco_titles and topped up with the rows changed since
 * the last look (at most every REFRESH_MS), so the serving path never waits on the DB for a title.
 */
export class TitleIndex {
  private readonly byId = new Map<string, RecoTitle>()
  /** The version applied per id (removed ones too): an older or equal one is skipped. */
  private readonly versions = new Map<string, number>()
  private byPerson: Map<string, string[]> | undefined
  /** Grows with every change this process applies or reads (for what is computed from the titles). */
  version = 0
  /** The largest `seq` read (another process's Date.now() when it wrote the row). */
  private seq = 0
  private checkedAt = Number.NEGATIVE_INFINITY
  private loading: Promise<void> | undefined

  constructor(private readonly store: RecoStore) {}

  get size(): number {
    return this.byId.size
  }

  get(id: string): RecoTitle | undefined {
    return this.byId.get(id)
  }

  all(): IterableIterator<RecoTitle> {
    return this.byId.values()
  }

  /** Titles a person is credited in, most popular first. */
  withPerson(personId: string): readonly string[] {
    if (!this.byPerson) {
      const out = new Map<string, RecoTitle[]>()
      for (const t of this.byId.values())
        for (const p of t.people) {
          const list = out.get(p.id) ?? []
          if (!list.includes(t)) list.push(t)
          out.set(p.id, list)
        }
      this.byPerson = new Map(
        [...out].map(([id, list]) => [id, list.sort((a, b) => b.popularity - a.popularity).map((t) => t.id)]),
      )
    }
    return this.byPerson.get(personId) ?? []
  }

  /** Up to date within REFRESH_MS; `force` reads the changes now. */
  async fresh(force = false): Promise<this> {
    const now = Date.now()
    if (!force && now - this.checkedAt < REFRESH_MS) return this
    this.loading ??= this.load(now).finally(() => {
      this.loading = undefined
    })
    await this.loading
    return this
  }

  /**
   * Applies a title in this process at once (the consumer that stored it calls this), unless this
   * process already has this version or a newer one (a redelivered or late event): false then.
   */
  apply(id: string, version: number, title: RecoTitle | undefined): boolean {
    if (this.has(id, version)) return false
    this.versions.set(id, version)
    if (title) this.byId.set(id, title)
    else this.byId.delete(id)
    this.byPerson = undefined
    this.version++
    return true
  }

  /** Whether this process has applied this version of the title, or a newer one. */
  private has(id: string, version: number): boolean {
    const known = this.versions.get(id)
    return known !== undefined && known >= version
  }

  private async load(now: number): Promise<void> {
    // Read again from LOOKBACK_MS before the last row seen: a row stamped earlier by another
    // process (its clock, its slower commit) may be committed after that. Rows already applied
    // are skipped by their version, so reading them again is no change.
    const rows = await this.store.titlesSince(this.seq - LOOKBACK_MS)
    for (const row of rows) {
      if (row.seq > this.seq) this.seq = row.seq
      if (this.has(row.id, row.version)) continue
      this.apply(row.id, row.version, row.removed ? undefined : (JSON.parse(row.doc) as RecoTitle))
    }
    this.checkedAt = now
  }
}
