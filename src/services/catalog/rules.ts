import { createHash } from 'node:crypto'
import { badRequest } from '../../platform/errors.js'
import { type MaturityRating, normalizeCountry, normalizeLanguage } from '../accounts/rules.js'
import {
  type Artwork,
  type AvailabilityWindow,
  type CreditRole,
  EVERY_REGION,
  type MediaStatus,
  type TitleType,
} from './events.js'

export const TITLE_MAX = 300
export const SYNOPSIS_MAX = 5000
export const NAME_MAX = 200
export const TAG_MAX = 60
export const EXTERNAL_ID_MAX = 100
export const MAX_GENRES = 10
export const MAX_TAGS = 50
export const MAX_COUNTRIES = 50
export const MAX_CREDITS = 200
export const MAX_WINDOWS = 300
export const MAX_SEASONS = 100
export const MAX_EPISODES = 500
export const URL_MAX = 2048
export const FIRST_YEAR = 1870
export const RUNTIME_MAX_MIN = 24 * 60
export const POPULARITY_MAX = 1e12

export interface CreditInput {
  personId?: string
  name?: string
  role: CreditRole
  character?: string | null
}

export interface WindowInput {
  region: string
  startsAt?: string | null
  endsAt?: string | null
}

export interface EpisodeInput {
  number: number
  name?: string
  synopsis?: string
  runtimeMin?: number | null
}

export interface SeasonInput {
  number: number
  name?: string
  synopsis?: string
  year?: number | null
  episodes?: EpisodeInput[]
}

/** What an administrator or a feed says about a title. */
export interface TitleInput {
  externalId?: string | null
  type: TitleType
  title: string
  synopsis?: string
  year?: number | null
  runtimeMin?: number | null
  maturityRating: MaturityRating
  originalLanguage?: string | null
  countries?: string[]
  genres?: string[]
  tags?: string[]
  artwork?: Artwork
  credits?: CreditInput[]
  availability?: WindowInput[]
  popularity?: number
  seasons?: SeasonInput[]
}

export type TitleChanges = Partial<Omit<TitleInput, 'type' | 'seasons'>>

/** A title's own fields, checked and in their stored form. */
export interface NormalizedTitle {
  externalId: string | null
  type: TitleType
  title: string
  sortTitle: string
  synopsis: string
  year: number | null
  runtimeMin: number | null
  maturityRating: MaturityRating
  originalLanguage: string | null
  countries: string[]
  genres: string[]
  tags: string[]
  artwork: Artwork
  credits: { personId?: string; name?: string; role: CreditRole; character: string | null }[]
  availability: { region: string; startsAt: number | null; endsAt: number | null }[]
  popularity: number
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we remove
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\ufeff]/g

/** NFC, no control characters, non-breaking and repeated spaces folded into one, trimmed. */
export function cleanLine(raw: string): string {
  return raw.normalize('NFC').replace(CONTROL, '').replace(/\s+/gu, ' ').trim()
}

/** Like cleanLine, but keeps paragraph breaks. */
export function cleanText(raw: string): string {
  return raw
    .normalize('NFC')
    .replace(CONTROL, '')
    .split(/\n{2,}/)
    .map((p) => p.replace(/\s+/gu, ' ').trim())
    .filter(Boolean)
    .join('\n\n')
}

function requiredLine(raw: string, max: number, code: string, what: string): string {
  const value = cleanLine(raw)
  if (value.length === 0 || [...value].length > max)
    throw badRequest(code, `${what} needs 1 to ${max} characters`)
  return value
}

/** How titles sort: case- and accent-blind, a leading article ignored ("The Matrix" sorts as "matrix"). */
export function sortKey(title: string): string {
  return title
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/^(the|a|an)\s+/, '')
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim()
}

/** A person's name as compared when a feed names people: case-, accent- and spacing-blind. */
export function nameKey(name: string): string {
  return name.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase().replace(/\s+/g, ' ').trim()
}

export function checkYear(year: number | null | undefined, nowMs: number): number | null {
  if (year === null || year === undefined) return null
  const last = new Date(nowMs).getUTCFullYear() + 10
  if (!Number.isInteger(year) || year < FIRST_YEAR || year > last)
    throw badRequest('invalid_year', `A year is a whole number from ${FIRST_YEAR} to ${last}`)
  return year
}

export function checkRuntime(minutes: number | null | undefined): number | null {
  if (minutes === null || minutes === undefined) return null
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > RUNTIME_MAX_MIN)
    throw badRequest('invalid_runtime', `A runtime is a whole number of minutes from 1 to ${RUNTIME_MAX_MIN}`)
  return minutes
}

export function checkPopularity(score: number): number {
  if (!Number.isFinite(score) || score < 0 || score > POPULARITY_MAX)
    throw badRequest('invalid_popularity', `Popularity is a number from 0 to ${POPULARITY_MAX}`)
  return score
}

function checkUrl(raw: string, field: string): string {
  let url: URL | undefined
  try {
    url = new URL(raw.trim())
  } catch {
    url = undefined
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || raw.length > URL_MAX)
    throw badRequest(
      'invalid_artwork',
      `artwork.${field} must be an http(s) URL of at most ${URL_MAX} characters`,
    )
  return url.href
}

/** Small generated images (the demo catalog's posters) travel inline; the web app's CSP allows data: images. */
const IMAGE_DATA_URL = /^data:image\/(svg\+xml|png|jpeg|webp);base64,[A-Za-z0-9+/]+={0,2}$/
export const IMAGE_DATA_URL_MAX = 4096

function checkArtwork(artwork: Artwork | undefined): Artwork {
  const out: Artwork = {}
  if (!artwork) return out
  for (const key of ['poster', 'backdrop', 'logo'] as const) {
    const value = artwork[key]
    if (value === undefined) continue
    if (value.startsWith('data:')) {
      if (value.length > IMAGE_DATA_URL_MAX || !IMAGE_DATA_URL.test(value))
        throw badRequest(
          'invalid_artwork',
          `artwork.${key} as data is a data:image/(svg+xml|png|jpeg|webp);base64 URL of at most ${IMAGE_DATA_URL_MAX} characters`,
        )
      out[key] = value
    } else out[key] = checkUrl(value, key)
  }
  return out
}

function parseInstant(raw: string | null | undefined, field: string): number | null {
  if (raw === null || raw === undefined) return null
  const ms = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(raw) ? Date.parse(raw) : Number.NaN
  if (!Number.isFinite(ms))
    throw badRequest('invalid_availability', `${field} must be an ISO-8601 date such as 2025-01-31T00:00:00Z`)
  return ms
}

export function checkWindows(windows: WindowInput[] | undefined): NormalizedTitle['availability'] {
  if (!windows) return []
  if (windows.length > MAX_WINDOWS)
    throw badRequest('invalid_availability', `At most ${MAX_WINDOWS} availability windows`)
  return windows.map((w) => {
    const region = w.region.trim() === EVERY_REGION ? EVERY_REGION : regionCode(w.region)
    const startsAt = parseInstant(w.startsAt, 'startsAt')
    const endsAt = parseInstant(w.endsAt, 'endsAt')
    if (startsAt !== null && endsAt !== null && endsAt <= startsAt)
      throw badRequest('invalid_availability', 'An availability window must end after it starts')
    return { region, startsAt, endsAt }
  })
}

function regionCode(raw: string): string {
  try {
    return normalizeCountry(raw)
  } catch {
    throw badRequest(
      'invalid_region',
      `"${raw}" is not a region: use a country code such as US, or * for all`,
    )
  }
}

function uniqueBy<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Set<string>()
  return items.filter((item) => {
    const k = key(item)
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

function checkTags(tags: string[] | undefined): string[] {
  const cleaned = uniqueBy(
    (tags ?? []).map(cleanLine).filter((t) => t.length > 0),
    (t) => t.toLowerCase(),
  )
  if (cleaned.length > MAX_TAGS) throw badRequest('invalid_tags', `At most ${MAX_TAGS} tags`)
  for (const tag of cleaned)
    if ([...tag].length > TAG_MAX) throw badRequest('invalid_tags', `A tag has at most ${TAG_MAX} characters`)
  return cleaned
}

function checkCredits(credits: CreditInput[] | undefined): NormalizedTitle['credits'] {
  if (!credits) return []
  if (credits.length > MAX_CREDITS) throw badRequest('invalid_credits', `At most ${MAX_CREDITS} credits`)
  return credits.map((c) => {
    if ((c.personId === undefined) === (c.name === undefined))
      throw badRequest('invalid_credits', 'A credit names a person by exactly one of personId or name')
    const character =
      c.character === null || c.character === undefined
        ? null
        : cleanLine(c.character).slice(0, NAME_MAX) || null
    return c.name === undefined
      ? { personId: c.personId, role: c.role, character }
      : {
          name: requiredLine(c.name, NAME_MAX, 'invalid_credits', 'A person’s name'),
          role: c.role,
          character,
        }
  })
}

export function checkExternalId(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null
  const id = raw.trim()
  if (!/^[\p{L}\p{N}._:/@#-]{1,100}$/u.test(id))
    throw badRequest(
      'invalid_external_id',
      `An external id has 1 to ${EXTERNAL_ID_MAX} letters, digits or . _ : / @ # -`,
    )
  return id
}

export const checkTitleText = (raw: string) => requiredLine(raw, TITLE_MAX, 'invalid_title', 'A title')

export function checkSynopsis(raw: string | undefined): string {
  const text = cleanText(raw ?? '')
  if ([...text].length > SYNOPSIS_MAX)
    throw badRequest('invalid_synopsis', `A synopsis has at most ${SYNOPSIS_MAX} characters`)
  return text
}

export function checkName(raw: string | undefined, fallback: string): string {
  if (raw === undefined) return fallback
  return requiredLine(raw, NAME_MAX, 'invalid_name', 'A name')
}

/** Checks and normalizes a whole title; genres and people are checked against the store by the service. */
export function normalizeTitle(input: TitleInput, nowMs: number): NormalizedTitle {
  const title = checkTitleText(input.title)
  const genres = uniqueBy(
    (input.genres ?? []).map((g) => g.trim().toLowerCase()),
    (g) => g,
  )
  if (genres.length > MAX_GENRES) throw badRequest('invalid_genres', `At most ${MAX_GENRES} genres`)
  const countries = uniqueBy((input.countries ?? []).map(normalizeCountry), (c) => c)
  if (countries.length > MAX_COUNTRIES)
    throw badRequest('invalid_countries', `At most ${MAX_COUNTRIES} countries`)
  return {
    externalId: checkExternalId(input.externalId),
    type: input.type,
    title,
    sortTitle: sortKey(title),
    synopsis: checkSynopsis(input.synopsis),
    year: checkYear(input.year, nowMs),
    runtimeMin: checkRuntime(input.runtimeMin),
    maturityRating: input.maturityRating,
    originalLanguage:
      input.originalLanguage === null || input.originalLanguage === undefined
        ? null
        : normalizeLanguage(input.originalLanguage),
    countries,
    genres,
    tags: checkTags(input.tags),
    artwork: checkArtwork(input.artwork),
    credits: checkCredits(input.credits),
    availability: checkWindows(input.availability),
    popularity: checkPopularity(input.popularity ?? 0),
  }
}

/** A stable digest of a normalized title: an import that changes nothing is recognised and skipped. */
export function contentHash(title: NormalizedTitle, seasons: SeasonInput[] | undefined): string {
  return createHash('sha256')
    .update(JSON.stringify([title, seasons ?? null]))
    .digest('base64url')
}

export function checkSeasonNumber(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 1000)
    throw badRequest('invalid_season_number', 'A season number is a whole number from 0 to 1000')
  return n
}

export function checkEpisodeNumber(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 10_000)
    throw badRequest('invalid_episode_number', 'An episode number is a whole number from 1 to 10000')
  return n
}

/** A series is as playable as its best episode. */
export function seriesMediaStatus(episodes: readonly MediaStatus[]): MediaStatus {
  for (const status of ['available', 'processing', 'pending', 'failed'] as const)
    if (episodes.includes(status)) return status
  return 'pending'
}

export const iso = (ms: number) => new Date(ms).toISOString()
export const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms))

export const windowsOf = (rows: { region: string; startsAt: number | null; endsAt: number | null }[]) =>
  rows.map(
    (w): AvailabilityWindow => ({
      region: w.region,
      startsAt: isoOrNull(w.startsAt),
      endsAt: isoOrNull(w.endsAt),
    }),
  )
