import type { MaturityRating } from '../accounts/rules.js'

export type TitleType = 'movie' | 'series'
export const TITLE_TYPES: readonly TitleType[] = ['movie', 'series']

/** Where a title's or an episode's playable media is: set by the media pipeline. */
export type MediaStatus = 'pending' | 'processing' | 'available' | 'failed'
export const MEDIA_STATUSES: readonly MediaStatus[] = ['pending', 'processing', 'available', 'failed']

export type CreditRole = 'director' | 'cast' | 'writer' | 'creator' | 'producer'
export const CREDIT_ROLES: readonly CreditRole[] = ['director', 'cast', 'writer', 'creator', 'producer']

/** Every region: a window with this region applies to every country. */
export const EVERY_REGION = '*'

/** A title may be shown in `region` (a country code, or `*`) from startsAt (inclusive) until endsAt (exclusive). */
export interface AvailabilityWindow {
  region: string
  /** ISO-8601 UTC; null: since always. */
  startsAt: string | null
  /** ISO-8601 UTC; null: for ever. */
  endsAt: string | null
}

export interface GenreRef {
  id: string
  name: string
}

export interface Credit {
  personId: string
  name: string
  role: CreditRole
  /** The part played, for cast. */
  character: string | null
  /** Billing order within the role, from 0. */
  order: number
}

export interface Artwork {
  poster?: string
  backdrop?: string
  logo?: string
}

/** A title as the catalog publishes it: everything but its seasons and episodes. */
export interface TitleDocument {
  id: string
  externalId: string | null
  type: TitleType
  title: string
  synopsis: string
  year: number | null
  runtimeMin: number | null
  maturityRating: MaturityRating
  originalLanguage: string | null
  countries: string[]
  genres: GenreRef[]
  tags: string[]
  artwork: Artwork
  credits: Credit[]
  availability: AvailabilityWindow[]
  /** Higher is more popular; fed by trends and views, used to break ties in search and to sort lists. */
  popularity: number
  /** A movie's own media; for a series, the best status among its episodes. */
  mediaStatus: MediaStatus
  durationMs: number | null
  seasonCount: number
  episodeCount: number
  /** Grows by one with every change of the title, its seasons or episodes. */
  version: number
  createdAt: string
  updatedAt: string
}

/** Published after every change of a title (or of its seasons, episodes, media, popularity); keyed by title id. */
export const TITLE_UPSERTED = 'catalog.title.upserted'
export interface TitleUpserted {
  title: TitleDocument
}

/** Published when a title is deleted; keyed by title id. */
export const TITLE_REMOVED = 'catalog.title.removed'
export interface TitleRemoved {
  id: string
  /** The version the title would have had next: greater than any upsert of it. */
  version: number
}

/** Event ids are derived from the title and its version, so publishing an event again is a no-op. */
export const catalogEventId = (titleId: string, version: number) => `catalog:${titleId}:${version}`

/**
 * The availability rule every reader applies: shown in `country` at `nowMs` when one of its windows
 * names that country or every region (`*`) and is open at that time. No window: shown nowhere.
 */
export function isAvailable(windows: readonly AvailabilityWindow[], country: string, nowMs: number): boolean {
  return windows.some(
    (w) =>
      (w.region === EVERY_REGION || w.region === country) &&
      (w.startsAt === null || Date.parse(w.startsAt) <= nowMs) &&
      (w.endsAt === null || Date.parse(w.endsAt) > nowMs),
  )
}
