import { isAppError, notFound } from '../../platform/errors.js'
import type { MaturityRating } from '../accounts/rules.js'
import { type AvailabilityWindow, isAvailable } from '../catalog/events.js'
import type { CatalogService, TitleDetail } from '../catalog/service.js'
import type { MediaService } from '../media/service.js'

/** What is played: a movie, or one episode of a series. */
export interface Playable {
  /** What the client asked for: the movie or the series. */
  titleId: string
  /** Whose media plays (the movie's own id, or the episode's): its blobs are under titles/<mediaId>/. */
  mediaId: string
  type: 'movie' | 'episode'
  seriesId: string | null
  seasonId: string | null
  maturityRating: MaturityRating
  durationMs: number
  /** Media packaged and published. */
  ready: boolean
  /** Where and when it may be watched (isAvailable); null: everywhere, always. */
  availability: readonly AvailabilityWindow[] | null
}

/** Whether `title` may be watched in `region` at `nowMs`. */
export const availableIn = (title: Playable, region: string, nowMs: number): boolean =>
  title.availability === null || isAvailable(title.availability, region, nowMs)

export interface EpisodeRef {
  id: string
  seasonId: string
}

/**
 * Titles as playback sees them: ratings, availability, series and episodes from the catalog;
 * packaged media from the media service. A title the catalog does not know yet (media uploaded
 * before the catalog links it) plays only for profiles allowed NC-17, in every region.
 */
export class PlayableTitles {
  constructor(
    private readonly catalog: () => CatalogService,
    private readonly media: () => MediaService,
  ) {}

  async resolve(titleId: string, episodeId?: string): Promise<Playable> {
    const detail = await this.catalogTitle(titleId)
    if (!detail) return this.mediaOnly(titleId)
    if (detail.type !== 'series') {
      const duration = detail.durationMs ?? (await this.mediaDuration(detail.id))
      return {
        titleId: detail.id,
        mediaId: detail.id,
        type: 'movie',
        seriesId: null,
        seasonId: null,
        maturityRating: detail.maturityRating,
        durationMs: duration ?? 0,
        ready: detail.mediaStatus === 'available' && (await this.packaged(detail.id)),
        availability: detail.availability,
      }
    }
    const episodes = episodesOf(detail)
    const episode = episodeId ? episodes.find((e) => e.id === episodeId) : episodes[0]
    if (!episode)
      throw notFound('episode_not_found', `Series ${titleId} has no episode ${episodeId ?? ''}`.trim())
    return {
      titleId: detail.id,
      mediaId: episode.id,
      type: 'episode',
      seriesId: detail.id,
      seasonId: episode.seasonId,
      maturityRating: detail.maturityRating,
      durationMs: episode.durationMs ?? (await this.mediaDuration(episode.id)) ?? 0,
      ready: episode.mediaStatus === 'available' && (await this.packaged(episode.id)),
      availability: detail.availability,
    }
  }

  /** The episodes of a series in viewing order (season, then episode number). */
  async episodes(seriesId: string): Promise<EpisodeRef[]> {
    const detail = await this.catalogTitle(seriesId)
    return detail ? episodesOf(detail) : []
  }

  private async catalogTitle(titleId: string): Promise<TitleDetail | undefined> {
    try {
      return await this.catalog().adminTitle(titleId)
    } catch (e) {
      if (isAppError(e) && e.status === 404) return undefined
      throw e
    }
  }

  private async mediaOnly(titleId: string): Promise<Playable> {
    const renditions = await this.media().renditions(titleId)
    let ready = renditions.length > 0
    if (!ready) {
      // Not packaged: 404 when media has never heard of it, else "not yet available".
      const view = await this.media().titleMedia(titleId)
      ready = view.status === 'available'
    }
    return {
      titleId,
      mediaId: titleId,
      type: 'movie',
      seriesId: null,
      seasonId: null,
      maturityRating: 'NC-17',
      durationMs: Math.max(0, ...renditions.map((r) => r.durationMs)),
      ready,
      availability: null,
    }
  }

  private async packaged(mediaId: string): Promise<boolean> {
    return (await this.media().renditions(mediaId)).length > 0
  }

  private async mediaDuration(mediaId: string): Promise<number | undefined> {
    const renditions = await this.media().renditions(mediaId)
    return renditions.length > 0 ? Math.max(...renditions.map((r) => r.durationMs)) : undefined
  }
}

function episodesOf(
  detail: TitleDetail,
): (EpisodeRef & { durationMs: number | null; mediaStatus: string })[] {
  return [...detail.seasons]
    .sort((a, b) => a.number - b.number)
    .flatMap((s) =>
      [...s.episodes]
        .sort((a, b) => a.number - b.number)
        .map((e) => ({ id: e.id, seasonId: s.id, durationMs: e.durationMs, mediaStatus: e.mediaStatus })),
    )
}
