import { LRUCache } from 'lru-cache'
import { ratingRank } from '../accounts/rules.js'

/** What trends needs to know of a ranked title (a movie, a series or a season); the catalog knows it. */
export interface TitleFact {
  /** Views are hours viewed ÷ runtime: a movie's runtime, or the sum of a season's or series' episodes. */
  runtimeMs: number
  /** One of accounts' MATURITY_RATINGS. */
  maturityRating: string
  /** Whether a viewer in `region` (ISO 3166 alpha-2) may be shown the title now. */
  availableIn(region: string): boolean
}

/** The catalog, as trends sees it. */
export interface TitleFacts {
  /** Facts of the titles known among ids; an id the catalog does not know is absent. */
  lookup(ids: readonly string[]): Promise<Map<string, TitleFact>>
}

/** Who is looking: where they are and what their profile may see. */
export interface Viewer {
  country: string
  maturityLimit: string
}

/** A title never shows unless the catalog knows it, offers it in the viewer's country now, and rates it within the profile's limit. */
export function showable(fact: TitleFact | undefined, viewer: Viewer): boolean {
  if (!fact) return false
  const rank = ratingRank(fact.maturityRating)
  const limit = ratingRank(viewer.maturityLimit)
  return rank >= 0 && limit >= 0 && rank <= limit && fact.availableIn(viewer.country)
}

const FACTS_TTL_MS = 60_000
const FACTS_MAX = 50_000

/**
 * Keeps facts for a minute in this process: every trending answer filters a few hundred titles per
 * request, and title facts change rarely (a changed availability shows within the minute).
 */
export class CachedTitleFacts implements TitleFacts {
  private readonly known = new LRUCache<string, { fact: TitleFact | null }>({
    max: FACTS_MAX,
    ttl: FACTS_TTL_MS,
  })

  constructor(private readonly source: () => TitleFacts) {}

  async lookup(ids: readonly string[]): Promise<Map<string, TitleFact>> {
    const out = new Map<string, TitleFact>()
    const missing: string[] = []
    for (const id of new Set(ids)) {
      const hit = this.known.get(id)
      if (hit === undefined) missing.push(id)
      else if (hit.fact) out.set(id, hit.fact)
    }
    if (missing.length > 0) {
      const found = await this.source().lookup(missing)
      for (const id of missing) {
        const fact = found.get(id)
        this.known.set(id, { fact: fact ?? null })
        if (fact) out.set(id, fact)
      }
    }
    return out
  }

  /** Forgets what was learnt (after a catalog change a caller knows of). */
  clear(): void {
    this.known.clear()
  }
}
