import fs from 'node:fs'
import path from 'node:path'
import { parse } from 'csv-parse'
import { parse as parseSync } from 'csv-parse/sync'
import type { MaturityRating } from '../accounts/rules.js'
import { genreIdOf } from './genres.js'
import { cleanLine } from './rules.js'
import type { ImportOutcome } from './service.js'

/**
 * Reading catalog feeds (CSV or JSON) into import records, the shape POST /api/v1/admin/titles/import
 * takes. This only maps columns and values; the catalog service checks each record and says why it
 * rejects one, so the rules live in one place.
 *
 * CSV columns are recognised by name, with the IMDb-5000 names as aliases (movie_title, title_year,
 * director_name, actor_1_name…, plot_keywords, content_rating, duration, num_voted_users,
 * movie_imdb_link). Lists inside a cell are separated by `|`.
 */
export type FeedRecord = Record<string, unknown>

export type FeedItem =
  | { line: number; record: FeedRecord }
  | { line: number; rejected: { externalId: string | null; code: string; reason: string } }

/** How a feed is written: `.csv`, `.json` (an array, or `{ titles: [...] }`), `.ndjson`/`.jsonl`. */
export type FeedFormat = 'csv' | 'json' | 'ndjson'

export const FEED_FORMATS: readonly FeedFormat[] = ['csv', 'json', 'ndjson']

/** A feed that cannot be read at all (not one bad row: those are rejected one by one). */
export class UnreadableFeed extends Error {}

export interface FeedOptions {
  /** Regions a record without availability is shown in (`*`: everywhere). */
  regions: string[]
  /** Called with bytes read so far, for a progress bar. */
  onBytes?: (read: number, total: number) => void
}

/**
 * IMDb/TV ratings as the five of reel. Unrated titles count as the oldest rating (NC-17): a kids
 * profile never sees a title nobody rated.
 */
const RATINGS: Record<string, MaturityRating> = {
  g: 'G',
  'tv-y': 'G',
  'tv-y7': 'G',
  'tv-g': 'G',
  approved: 'G',
  passed: 'G',
  pg: 'PG',
  gp: 'PG',
  m: 'PG',
  'tv-pg': 'PG',
  'pg-13': 'PG-13',
  'tv-14': 'PG-13',
  r: 'R',
  'tv-ma': 'R',
  'nc-17': 'NC-17',
  x: 'NC-17',
  'not rated': 'NC-17',
  unrated: 'NC-17',
  '': 'NC-17',
}

const COUNTRY_ALIASES: Record<string, string> = {
  usa: 'US',
  'united states of america': 'US',
  uk: 'GB',
  'great britain': 'GB',
  'west germany': 'DE',
  'soviet union': 'RU',
  'czech republic': 'CZ',
  'south korea': 'KR',
  'hong kong': 'HK',
}

const LANGUAGE_ALIASES: Record<string, string> = {
  mandarin: 'zh',
  chinese: 'zh',
  cantonese: 'yue',
  filipino: 'fil',
  panjabi: 'pa',
  persian: 'fa',
  dari: 'prs',
  maya: 'myn',
  aramaic: 'arc',
  aboriginal: 'aus',
}

function displayNames(type: 'region' | 'language', codes: string[]): Map<string, string> {
  const names = new Intl.DisplayNames(['en'], { type })
  const out = new Map<string, string>()
  for (const code of codes) {
    try {
      const name = names.of(code)
      // The first code of a name wins: FR before FX (Metropolitan France), both "France".
      if (name && name !== code && !out.has(name.toLowerCase())) out.set(name.toLowerCase(), code)
    } catch {}
  }
  return out
}

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
const countriesByName = displayNames(
  'region',
  [...LETTERS].flatMap((a) => [...LETTERS].map((b) => a + b)),
)
const countryCodes = new Set(countriesByName.values())
const languagesByName = displayNames(
  'language',
  [...'abcdefghijklmnopqrstuvwxyz'].flatMap((a) => [...'abcdefghijklmnopqrstuvwxyz'].map((b) => a + b)),
)

/** A country named in a feed ("USA", "France", "fr") as its code; undefined when unknown. */
export function countryCodeOf(name: string): string | undefined {
  const key = cleanLine(name).toLowerCase()
  const alias = COUNTRY_ALIASES[key]
  if (alias) return alias
  if (countryCodes.has(key.toUpperCase())) return key.toUpperCase()
  return countriesByName.get(key)
}

/** A language named in a feed ("English", "Mandarin", "pt-BR") as a tag; undefined when unknown. */
export function languageTagOf(name: string): string | undefined {
  const value = cleanLine(name)
  const key = value.toLowerCase()
  if (!key || key === 'none') return undefined
  if (/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(value)) return value
  return LANGUAGE_ALIASES[key] ?? languagesByName.get(key)
}

const list = (cell: string | undefined): string[] =>
  (cell ?? '')
    .split('|')
    .map((s) => cleanLine(s))
    .filter(Boolean)

const number = (cell: string | undefined): number | string | null => {
  const value = cleanLine(cell ?? '')
  if (value === '') return null
  const n = Number(value)
  return Number.isFinite(n) ? n : value
}

/** The first of the named columns a row has a value in. */
function cell(row: Record<string, string>, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = row[name]
    if (value !== undefined && cleanLine(value) !== '') return value
  }
  return undefined
}

/** An IMDb link (…/title/tt0499549/…) as `imdb:tt0499549`. */
function externalIdOf(row: Record<string, string>): string | undefined {
  const given = cell(row, 'externalId', 'external_id', 'id')
  if (given) return cleanLine(given)
  const imdb = /tt\d{5,10}/.exec(cell(row, 'movie_imdb_link', 'imdb_id', 'imdb') ?? '')?.[0]
  return imdb ? `imdb:${imdb}` : undefined
}

/** One CSV row as an import record. */
export function recordOfRow(row: Record<string, string>, options: Pick<FeedOptions, 'regions'>): FeedRecord {
  const year = number(cell(row, 'year', 'title_year'))
  const directors = list(cell(row, 'directors', 'director', 'director_name'))
  const cast = [
    ...list(cell(row, 'cast', 'actors')),
    ...['actor_1_name', 'actor_2_name', 'actor_3_name'].flatMap((c) => list(row[c])),
  ]
  const writers = list(cell(row, 'writers', 'writer'))
  const explicitType = cleanLine(cell(row, 'type') ?? '').toLowerCase()
  // IMDb-5000 lists series without a year or a director.
  const type = explicitType || (year === null && directors.length === 0 ? 'series' : 'movie')
  const rating = cleanLine(cell(row, 'maturityRating', 'rating', 'content_rating') ?? '')
  const language = cell(row, 'originalLanguage', 'language')
  const regions = list(cell(row, 'regions'))
  const poster = cell(row, 'poster', 'poster_url')
  const record: FeedRecord = {
    externalId: externalIdOf(row),
    type,
    title: cleanLine(cell(row, 'title', 'movie_title', 'name') ?? ''),
    synopsis: cell(row, 'synopsis', 'description', 'overview') ?? '',
    year,
    runtimeMin: number(cell(row, 'runtimeMin', 'runtime', 'duration')),
    maturityRating: RATINGS[rating.toLowerCase()] ?? rating,
    originalLanguage: language === undefined ? null : (languageTagOf(language) ?? null),
    countries: list(cell(row, 'countries', 'country')).flatMap((c) => countryCodeOf(c) ?? []),
    genres: list(cell(row, 'genres', 'genre')).map((g) => genreIdOf(g) ?? g),
    tags: list(cell(row, 'tags', 'keywords', 'plot_keywords')),
    credits: [
      ...directors.map((name) => ({ name, role: 'director' })),
      ...cast.map((name) => ({ name, role: 'cast' })),
      ...writers.map((name) => ({ name, role: 'writer' })),
    ],
    availability: (regions.length > 0 ? regions : options.regions).map((region) => ({ region })),
    popularity: number(cell(row, 'popularity', 'num_voted_users')) ?? 0,
  }
  if (poster) record.artwork = { poster: cleanLine(poster) }
  return record
}

/** The format a feed file's name says it has; undefined for another extension. */
export function feedFormatOf(file: string): FeedFormat | undefined {
  const extension = path.extname(file).toLowerCase()
  if (extension === '.csv') return 'csv'
  if (extension === '.json') return 'json'
  if (extension === '.ndjson' || extension === '.jsonl') return 'ndjson'
  return undefined
}

/** Reads a feed file: `.csv`, `.json` (an array, or `{ titles: [...] }`) or `.ndjson`/`.jsonl`. */
export async function* readFeed(file: string, options: FeedOptions): AsyncGenerator<FeedItem> {
  const total = fs.statSync(file).size
  const format = feedFormatOf(file)
  if (format === undefined) throw new Error(`${file}: a feed is a .csv, .json, .ndjson or .jsonl file`)
  if (format === 'csv') {
    yield* readCsv(file, total, options)
    return
  }
  const text = fs.readFileSync(file, 'utf8')
  options.onBytes?.(total, total)
  try {
    yield* parseFeed(text, format, options)
  } catch (e) {
    if (e instanceof UnreadableFeed)
      throw new Error(`${file}${e.message.startsWith('not') ? ' is ' : ': '}${e.message}`)
    throw e
  }
}

/**
 * A feed already in memory (an upload through the admin page), read by the same rules as a file.
 * Throws UnreadableFeed when the whole feed is unusable (a JSON feed that is not JSON).
 */
export function parseFeed(
  text: string,
  format: FeedFormat,
  options: Pick<FeedOptions, 'regions'>,
): FeedItem[] {
  if (format === 'csv') return parseCsvText(text, options)
  if (format === 'ndjson')
    return text
      .split('\n')
      .flatMap((line, i) => (line.trim() === '' ? [] : [jsonItem(i + 1, () => JSON.parse(line), options)]))
  let parsed: unknown
  try {
    parsed = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (e) {
    throw new UnreadableFeed(`not valid JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  const records = Array.isArray(parsed) ? parsed : (parsed as { titles?: unknown } | null)?.titles
  if (!Array.isArray(records)) throw new UnreadableFeed('expected an array of titles, or { "titles": [...] }')
  return records.map((record, i) => jsonItem(i + 1, () => record, options))
}

function jsonItem(line: number, read: () => unknown, options: Pick<FeedOptions, 'regions'>): FeedItem {
  let record: unknown
  try {
    record = read()
  } catch (e) {
    return { line, rejected: { externalId: null, code: 'malformed_record', reason: String(e) } }
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record))
    return {
      line,
      rejected: { externalId: null, code: 'malformed_record', reason: 'A record is a JSON object' },
    }
  const out = { ...(record as FeedRecord) }
  if (out.availability === undefined) out.availability = options.regions.map((region) => ({ region }))
  return { line, record: out }
}

const CSV_OPTIONS = {
  columns: (header: string[]) => header.map((h) => cleanLine(h)),
  bom: true,
  info: true,
  relax_column_count: true,
  skip_empty_lines: true,
  skip_records_with_error: true,
} as const

type CsvRow = { record: Record<string, string>; info: { lines: number } }

function parseCsvText(text: string, options: Pick<FeedOptions, 'regions'>): FeedItem[] {
  const skipped: FeedItem[] = []
  const rows = parseSync(text, {
    ...CSV_OPTIONS,
    on_skip: (err) => {
      skipped.push({
        line: typeof err?.lines === 'number' ? err.lines : 0,
        rejected: { externalId: null, code: 'malformed_row', reason: err?.message ?? 'unreadable row' },
      })
      return undefined
    },
  }) as unknown as CsvRow[]
  const items: FeedItem[] = rows.map((row) => ({
    line: row.info.lines,
    record: recordOfRow(row.record, options),
  }))
  return [...items, ...skipped].sort((a, b) => a.line - b.line)
}

async function* readCsv(file: string, total: number, options: FeedOptions): AsyncGenerator<FeedItem> {
  const input = fs.createReadStream(file)
  let read = 0
  input.on('data', (chunk) => {
    read += chunk.length
    options.onBytes?.(read, total)
  })
  const skipped: FeedItem[] = []
  const parser = input.pipe(parse(CSV_OPTIONS))
  parser.on('skip', (err: Error & { lines?: number }) => {
    skipped.push({
      line: err.lines ?? 0,
      rejected: { externalId: null, code: 'malformed_row', reason: err.message },
    })
  })
  for await (const item of parser as AsyncIterable<CsvRow>) {
    while (skipped.length > 0) {
      const next = skipped.shift()
      if (next) yield next
    }
    yield { line: item.info.lines, record: recordOfRow(item.record, options) }
  }
  yield* skipped
}

/** What became of a feed's rows, by line (the line a CSV row ends on; the index of a JSON record). */
export interface ImportReport {
  created: number
  updated: number
  unchanged: number
  rejected: { line: number; externalId: string | null; code: string; reason: string }[]
  /** Rows whose external id an earlier row of the same feed had (imported as an update of it). */
  repeated: { line: number; externalId: string; firstLine: number }[]
}

/**
 * Sends a feed's records in batches through `send` (the import API: each record is accepted or
 * rejected on its own) and reports every row; `onBatch` hears the rows done after each batch.
 */
export async function importFeedItems(
  items: AsyncIterable<FeedItem> | Iterable<FeedItem>,
  send: (records: FeedRecord[]) => Promise<{ outcomes: ImportOutcome[] }>,
  options: { batch: number; onBatch?: (rows: number, report: ImportReport) => void | Promise<void> },
): Promise<ImportReport> {
  const report: ImportReport = { created: 0, updated: 0, unchanged: 0, rejected: [], repeated: [] }
  const firstLine = new Map<string, number>()
  let batch: { line: number; record: FeedRecord }[] = []
  let rows = 0
  const flush = async () => {
    if (batch.length === 0) return
    const sent = batch
    batch = []
    const { outcomes } = await send(sent.map((b) => b.record))
    for (const outcome of outcomes) {
      const line = sent[outcome.index]?.line ?? 0
      if (outcome.status === 'rejected')
        report.rejected.push({
          line,
          externalId: outcome.externalId,
          code: outcome.code ?? 'rejected',
          reason: outcome.reason ?? '',
        })
      else report[outcome.status]++
    }
    await options.onBatch?.(rows, report)
  }
  for await (const item of items) {
    rows++
    if ('rejected' in item) {
      report.rejected.push({ line: item.line, ...item.rejected })
      continue
    }
    const externalId = typeof item.record.externalId === 'string' ? item.record.externalId : undefined
    if (externalId !== undefined) {
      const first = firstLine.get(externalId)
      if (first === undefined) firstLine.set(externalId, item.line)
      // The API applies a batch in order: a repeated id arrives as an update of the first.
      else report.repeated.push({ line: item.line, externalId, firstLine: first })
    }
    batch.push(item)
    if (batch.length >= options.batch) await flush()
  }
  await flush()
  report.rejected.sort((a, b) => a.line - b.line)
  return report
}
