import type { RecoTitle } from './titles.js'

/** Titles per row. */
export const ROW_LENGTH = 20
/** A title appears at most this many times on one page. */
export const MAX_APPEARANCES = 2
/** "Because you watched" and "Others who watched" rows: one per seed, for this many recent seeds. */
export const SEED_ROWS = 3
/** Neighbours of a down-rated title that leave the rows with it. */
export const DOWN_NEIGHBOURS = 3
/** Neighbours kept per title (content and collaborative). */
export const NEIGHBOURS = 30

export type Rating = 'up' | 'down'

/** A module's cache key; `generation` is the latest training run's id (a run makes every older key moot). */
export const moduleKey = (generation: string, profileId: string) => `reco:module:${generation}:${profileId}`

/**
 * The precomputed part of a profile's home page: "user_id → pre-computed json module with movie_ids".
 * Training writes it whole; a play or a rating rewrites the parts that come from history
 * (`because`, `alsoWatched`, `people`, `genreAffinity`, `completed`, `excluded`) at once.
 */
export interface ProfileModule {
  v: 1
  profileId: string
  /** When training last wrote topPicks (null: not trained yet). */
  trainedAt: number | null
  updatedAt: number
  /** Personalized collaborative filtering, best first, seen titles removed. */
  topPicks: string[]
  /** topPicks' scores scaled to 0..1 (for a campaign's predicted affinity). */
  topScores: number[]
  because: SeedRow[]
  alsoWatched: SeedRow[]
  people: PersonRow[]
  /** Share of the profile's watching per genre id (sums to 1 when it watched anything). */
  genreAffinity: Record<string, number>
  /** Watched to the end: out of the personalized rows. */
  completed: string[]
  /** Down-rated titles and their close neighbours: out of every row. */
  excluded: string[]
}

export interface SeedRow {
  seedId: string
  items: string[]
}

export interface PersonRow {
  personId: string
  name: string
  role: string
  items: string[]
}

/** One thing the profile did with a title (a movie, or a series for its episodes). */
export interface Interaction {
  titleId: string
  progress: number
  completed: boolean
  lastAt: number
}

export interface ProfileFacts {
  profileId: string
  /** Most recent first. */
  history: readonly Interaction[]
  ratings: ReadonlyMap<string, Rating>
}

export interface Neighbours {
  content(titleId: string): readonly string[]
  cf(titleId: string): readonly string[]
  /** Titles a person is credited in (the catalog's people–title graph), most popular first. */
  withPerson(personId: string): readonly string[]
}

/** The weight training gives a profile's interaction with a title: watching, finishing, thumbs. */
export function interactionWeight(i: Interaction | undefined, rating: Rating | undefined): number {
  if (rating === 'down') return 0
  let w = i ? 1 + Math.min(1, i.progress) + (i.completed ? 1 : 0) : 0
  if (rating === 'up') w += 2
  return w
}

/** The titles a profile played (most recent first) or thumbed up: the seeds of its "Because you watched" rows. */
export function seedsOf(facts: ProfileFacts): string[] {
  const ups = [...facts.ratings].filter(([, r]) => r === 'up').map(([id]) => id)
  const played = facts.history.filter((h) => facts.ratings.get(h.titleId) !== 'down').map((h) => h.titleId)
  return [...new Set([...played, ...ups])]
}

/** The history-driven parts of a module, given where neighbours come from. */
export function historyRows(
  facts: ProfileFacts,
  titles: (id: string) => RecoTitle | undefined,
  neighbours: Neighbours,
): Pick<ProfileModule, 'because' | 'alsoWatched' | 'people' | 'genreAffinity' | 'completed' | 'excluded'> {
  const completed = facts.history.filter((h) => h.completed).map((h) => h.titleId)
  const excluded = new Set<string>()
  for (const [id, r] of facts.ratings)
    if (r === 'down') {
      excluded.add(id)
      for (const n of neighbours.content(id).slice(0, DOWN_NEIGHBOURS)) excluded.add(n)
    }
  const watched = new Set(facts.history.map((h) => h.titleId))
  const seeds = seedsOf(facts).filter((id) => titles(id) !== undefined)
  const keep = (ids: readonly string[]) =>
    ids.filter((id) => !watched.has(id) && !excluded.has(id)).slice(0, ROW_LENGTH * 2)
  const because = seeds
    .slice(0, SEED_ROWS)
    .map((seedId) => ({ seedId, items: keep(neighbours.content(seedId)) }))
    .filter((r) => r.items.length > 0)
  const alsoWatched = seeds
    .slice(0, SEED_ROWS)
    .map((seedId) => ({ seedId, items: keep(neighbours.cf(seedId)) }))
    .filter((r) => r.items.length > 0)

  // Genres and people weighted by how much the profile watched (and liked) their titles.
  const genreWeight = new Map<string, number>()
  const personWeight = new Map<string, { name: string; role: string; weight: number }>()
  let total = 0
  for (const h of facts.history) {
    const title = titles(h.titleId)
    const w = interactionWeight(h, facts.ratings.get(h.titleId))
    if (!title || w === 0) continue
    total += w
    for (const g of title.genres)
      genreWeight.set(g.id, (genreWeight.get(g.id) ?? 0) + w / title.genres.length)
    for (const p of title.people) {
      const e = personWeight.get(p.id) ?? { name: p.name, role: p.role, weight: 0 }
      e.weight += w
      personWeight.set(p.id, e)
    }
  }
  const genreAffinity: Record<string, number> = {}
  for (const [g, w] of genreWeight) genreAffinity[g] = Math.round((w / total) * 1000) / 1000
  // A person counts once they are in two titles the profile watched: one film says little about taste.
  const people = [...personWeight]
    .filter(([, p]) => p.weight >= 2)
    .sort((a, b) => b[1].weight - a[1].weight || a[0].localeCompare(b[0]))
    .map(([personId, p]) => ({
      personId,
      name: p.name,
      role: p.role,
      items: keep(neighbours.withPerson(personId)),
    }))
    .filter((r) => r.items.length > 0)
    .slice(0, 2)
  return { because, alsoWatched, people, genreAffinity, completed, excluded: [...excluded] }
}

export function emptyModule(profileId: string, now: number): ProfileModule {
  return {
    v: 1,
    profileId,
    trainedAt: null,
    updatedAt: now,
    topPicks: [],
    topScores: [],
    because: [],
    alsoWatched: [],
    people: [],
    genreAffinity: {},
    completed: [],
    excluded: [],
  }
}

const GENRE_WEIGHT = 3
const PERSON_WEIGHT = 2
const TAG_WEIGHT = 1
const LANGUAGE_WEIGHT = 0.5
const ERA_WEIGHT = 0.5
const ERA_YEARS = 10

/**
 * Content similarity of two titles: shared genres, people and keywords (overlap over the smaller
 * set), the same original language, close years. Used for a title newer than the last training run;
 * the trained neighbours come from the model's contentNeighbours.
 */
export function contentSimilarity(a: RecoTitle, b: RecoTitle): number {
  const overlap = (x: readonly string[], y: readonly string[]) => {
    if (x.length === 0 || y.length === 0) return 0
    const ys = new Set(y)
    let n = 0
    for (const v of x) if (ys.has(v)) n++
    return n / Math.min(x.length, y.length)
  }
  let s =
    GENRE_WEIGHT *
      overlap(
        a.genres.map((g) => g.id),
        b.genres.map((g) => g.id),
      ) +
    PERSON_WEIGHT *
      overlap(
        a.people.map((p) => p.id),
        b.people.map((p) => p.id),
      ) +
    TAG_WEIGHT * overlap(a.tags, b.tags)
  if (s === 0) return 0
  if (a.language && a.language === b.language) s += LANGUAGE_WEIGHT
  if (a.year !== null && b.year !== null && Math.abs(a.year - b.year) <= ERA_YEARS)
    s += ERA_WEIGHT * (1 - Math.abs(a.year - b.year) / ERA_YEARS)
  return s
}

/** The k titles most like `seed` among `titles`, best first (ties: more popular, then id). */
export function mostSimilar(seed: RecoTitle, titles: Iterable<RecoTitle>, k: number): string[] {
  const scored: [RecoTitle, number][] = []
  for (const t of titles) {
    if (t.id === seed.id) continue
    const s = contentSimilarity(seed, t)
    if (s > 0) scored.push([t, s])
  }
  scored.sort((x, y) => y[1] - x[1] || y[0].popularity - x[0].popularity || (x[0].id < y[0].id ? -1 : 1))
  return scored.slice(0, k).map(([t]) => t.id)
}

/**
 * A profile's predicted affinity for a title, 0..1: its place in the profile's top picks, or the
 * share of the profile's watching that went to the title's genres, whichever is higher.
 */
export function affinity(
  module: ProfileModule,
  title: RecoTitle,
  extraGenres: readonly string[] = [],
): number {
  const at = module.topPicks.indexOf(title.id)
  const picked = at >= 0 ? (module.topScores[at] ?? 0) : 0
  let genres = 0
  for (const g of new Set([...title.genres.map((x) => x.id), ...extraGenres]))
    genres += module.genreAffinity[g] ?? 0
  return Math.min(1, Math.max(picked, genres))
}

/** Scales a top list's scores to 0..1 by the best one (a list of one scores 1). */
export function scaleScores(scores: readonly number[]): number[] {
  const best = Math.max(...scores.map((s) => (Number.isFinite(s) ? s : 0)), 0)
  return scores.map((s) =>
    best > 0 && Number.isFinite(s) ? Math.round((Math.max(0, s) / best) * 1000) / 1000 : 0,
  )
}
