import type { Auth } from '../../platform/auth.js'
import { errorMessage } from '../../platform/errors.js'
import type { Logger } from '../../platform/log.js'
import type { Profile } from '../accounts/service.js'
import type { CatalogService, TitleSummary, Viewer } from '../catalog/service.js'
import type { PlaybackService } from '../playback/service.js'
import type { TrendsService } from '../trends/service.js'

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
  items: HomeItem[]
}

export interface HomeSources {
  catalog: () => CatalogService
  playback: () => PlaybackService
  trends: () => TrendsService
  log: Logger
}

const ROW_LENGTH = 20
const GENRE_ROWS = 4

const itemOf = (t: Pick<TitleSummary, 'id' | 'title' | 'artwork'>): HomeItem => ({
  titleId: t.id,
  title: t.title,
  ...(t.artwork.backdrop || t.artwork.poster ? { artwork: t.artwork.backdrop ?? t.artwork.poster } : {}),
})

/**
 * A profile's home page until recommendations are trained: Continue watching (playback), Trending
 * now (trends), New on reel and the popular genres (catalog), every row within the profile's
 * maturity limit and the caller's country. A source that fails drops its row, never the page.
 */
export class HomePage {
  constructor(private readonly sources: HomeSources) {}

  async rows(auth: Auth, profile: Profile): Promise<HomeRow[]> {
    const viewer: Viewer = { country: auth.country, maturityLimit: profile.maturityLimit }
    const rows = await Promise.all([
      this.row('continue-watching', () => this.continueWatching(auth, profile)),
      this.row('trending', () => this.trending(viewer, auth.country)),
      this.row('new', () => this.newest(viewer)),
    ])
    const genreRows = await this.genreRows(viewer).catch((e: unknown) => {
      this.sources.log.warn({ row: 'genres', err: errorMessage(e) }, 'home row skipped')
      return []
    })
    return [...rows, ...genreRows].filter((r): r is HomeRow => r !== undefined && r.items.length > 0)
  }

  private async row(name: string, build: () => Promise<HomeRow | undefined>): Promise<HomeRow | undefined> {
    try {
      return await build()
    } catch (e) {
      this.sources.log.warn({ row: name, err: errorMessage(e) }, 'home row skipped')
      return undefined
    }
  }

  private async continueWatching(auth: Auth, profile: Profile): Promise<HomeRow> {
    const progress = await this.sources.playback().continueWatching(auth, profile.id, ROW_LENGTH)
    const ids = progress.map((p) => p.seriesId ?? p.titleId)
    const titles = await this.sources.catalog().titlesById(ids)
    const items = progress.flatMap((p) => {
      const title = titles.get(p.seriesId ?? p.titleId)
      const progressOf = p.durationMs > 0 ? Math.min(1, p.positionMs / p.durationMs) : 0
      return title ? [{ ...itemOf(title), progress: progressOf }] : []
    })
    return {
      id: 'continue-watching',
      kind: 'continue_watching',
      title: `Continue watching for ${profile.name}`,
      items,
    }
  }

  private async trending(viewer: Viewer, country: string): Promise<HomeRow> {
    const answer = await this.sources
      .trends()
      .trending(
        { country: viewer.country, maturityLimit: viewer.maturityLimit ?? 'NC-17' },
        { window: 'day', limit: ROW_LENGTH },
      )
    const titles = await this.sources.catalog().titlesById(answer.items.map((i) => i.titleId))
    const items = answer.items.flatMap((i) => {
      const title = titles.get(i.titleId)
      return title ? [itemOf(title)] : []
    })
    const region = new Intl.DisplayNames(['en'], { type: 'region' }).of(country) ?? country
    return { id: 'trending', kind: 'trending', title: `Trending now in ${region}`, items }
  }

  private async newest(viewer: Viewer): Promise<HomeRow> {
    const page = await this.sources.catalog().list(viewer, { sort: 'newest', limit: ROW_LENGTH })
    return { id: 'new', kind: 'new', title: 'New on reel', items: page.items.map(itemOf) }
  }

  /** A row for each of the first genres that have titles this viewer may see, most popular first. */
  private async genreRows(viewer: Viewer): Promise<HomeRow[]> {
    const rows: HomeRow[] = []
    for (const genre of await this.sources.catalog().genres()) {
      if (rows.length === GENRE_ROWS) break
      const page = await this.sources
        .catalog()
        .list(viewer, { genre: [genre.id], sort: 'popularity', limit: ROW_LENGTH })
      if (page.items.length === 0) continue
      rows.push({
        id: `genre-${genre.id}`,
        kind: 'genre',
        title: genre.name,
        reason: `Popular in ${genre.name}`,
        items: page.items.map(itemOf),
      })
    }
    return rows
  }
}
