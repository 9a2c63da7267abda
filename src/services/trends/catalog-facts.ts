import type { ModuleContext } from '../../platform/modules.js'
import type { Episode } from '../catalog/service.js'
import type { TitleFact, TitleFacts } from './facts.js'
import { MINUTE, splitSubject } from './rules.js'

const episodeMs = (e: Episode) => e.durationMs ?? (e.runtimeMin ?? 0) * MINUTE
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0)

/**
 * Title facts from the catalog's in-process API: a movie's runtime is its media's duration (else its
 * listed runtime); a season's is the sum of its episodes', a series' the sum of all of them. A season
 * is shown where and to whom its series is.
 */
export function catalogTitleFacts(ctx: ModuleContext): TitleFacts {
  return {
    async lookup(ids) {
      const catalog = ctx.use('catalog')
      const subjects = ids.map((id) => ({ id, ...splitSubject(id) }))
      const titles = await catalog.titlesById([...new Set(subjects.map((s) => s.titleId))])
      const out = new Map<string, TitleFact>()
      for (const { id, titleId, seasonId } of subjects) {
        const title = titles.get(titleId)
        if (!title) continue
        let runtimeMs: number
        if (seasonId !== null) {
          const season = title.seasons.find((s) => s.id === seasonId)
          if (!season) continue
          runtimeMs = sum(season.episodes.map(episodeMs))
        } else if (title.type === 'series')
          runtimeMs = sum(title.seasons.flatMap((s) => s.episodes.map(episodeMs)))
        else runtimeMs = title.durationMs ?? (title.runtimeMin ?? 0) * MINUTE
        out.set(id, {
          runtimeMs,
          maturityRating: title.maturityRating,
          availableIn: (region) => catalog.visibleTo(title, { country: region }),
        })
      }
      return out
    },
  }
}
