/**
 * The in-memory title index of one search replica, on MiniSearch.
 *
 * Why MiniSearch (measured on the IMDb-5000 feed, 4,919 titles, 400 queries of 1–3 words with
 * typos, this 2-core machine): MiniSearch built in 0.38 s / 15 MB with p50 0.33 ms and the best
 * recall@10 (73.5 %); Orama took 1.1 s / 28 MB, p50 3.0 ms, recall 55 %; FlexSearch 1.4 s / 4 MB,
 * p50 0.03 ms but recall 62 %, because its typo tolerance is phonetic, not edit distance. Only
 * MiniSearch does what the product asks — Levenshtein distance per term (1 typo from 5 letters,
 * 2 from 9), prefix on the last word only, per-field weights, BM25 scores, nested AND/OR queries
 * and a serialisable index for snapshots. At 100,000 titles no library met the p99 target on its
 * own (MiniSearch 610 ms, Orama 3.7 s, FlexSearch 91 ms, all from very common words), so this
 * class bounds the work itself: each typed word expands to a few candidate terms (Typesense's
 * `max_candidates` idea), very common words only rank (Lucene's common-terms query), and the
 * query is evaluated here over MiniSearch's index (its term tree, postings and field lengths,
 * scored with its BM25+): term at a time from the rarest word, further words looked up per title
 * or intersected, whichever reads less, without MiniSearch's per-hit result objects and full sort.
 * Long postings lists are read from typed copies made on first use (common words and short
 * prefixes read tens of thousands of postings a query; MiniSearch keeps them in Maps).
 * Filters, facets and ranking read per-title columns in typed arrays (columns.ts). Whole answers
 * are cached, as their callers render them, until the index changes. bench/search measures the result.
 */

import { LRUCache } from 'lru-cache'
import MiniSearch, { type Options } from 'minisearch'
import type { GenreRef, TitleType } from '../catalog/events.js'
import { NO_YEAR, TitleColumns } from './columns.js'
import { expand, type SynonymTable } from './synonyms.js'
import { highlight, matches, STOP_WORDS, snippet, terms } from './text.js'

/** A title as the index keeps it (what search shows, filters and ranks on). */
export interface IndexedTitle {
  id: string
  type: TitleType
  title: string
  year: number | null
  genres: GenreRef[]
  language: string | null
  /** Position in MATURITY_RATINGS (G = 0). */
  ratingRank: number
  /** [region or `*`, from ms or null, until ms or null]. */
  windows: [string, number | null, number | null][]
  popularity: number
  people: string[]
  tags: string[]
  synopsis: string
  version: number
}

export interface Filters {
  genres?: string[]
  yearFrom?: number
  yearTo?: number
  languages?: string[]
  types?: TitleType[]
}

export interface Audience {
  country: string
  now: number
  /** Highest rating rank shown; absent: any. */
  maxRatingRank?: number
}

export interface QueryInput {
  q: string
  filters: Filters
  audience: Audience
  offset: number
  limit: number
  synonyms: SynonymTable
  /** `titles`: match titles and people only (the search box's suggestions). */
  scope?: 'all' | 'titles'
  facets?: boolean
}

export interface Hit {
  doc: IndexedTitle
  score: number
  highlight: Record<string, string>
}

export interface Facets {
  genre: Record<string, number>
  year: Record<string, number>
  language: Record<string, number>
}

export interface QueryResult {
  hits: Hit[]
  total: number
  facets: Facets
}

const FIELDS = ['title', 'people', 'genres', 'keywords', 'synopsis'] as const
type Field = (typeof FIELDS)[number]
/** title > people > genres > keywords > synopsis. */
const BOOST: Record<Field, number> = { title: 6, people: 3, genres: 2, keywords: 1.5, synopsis: 1 }
const LONG_TEXT = new Set<string>(['keywords', 'synopsis'])
const SHORT_FIELDS: Field[] = ['title', 'people', 'genres']

/** Words of a query that count; the rest is ignored (a pasted paragraph must not cost seconds). */
export const MAX_QUERY_WORDS = 10
/** Candidate terms per typed word: prefix completions and typo corrections beyond the exact word. */
const PREFIX_CANDIDATES = 8
const TYPO_CANDIDATES = 6
/** A word in at least this many titles' titles, names or genres is looked up as typed, without typo neighbours. */
const TYPO_THRESHOLD = 20
/** Completion lists are kept for prefixes up to this long, this many terms each (enough after the scope drops some). */
const COMPLETION_PREFIX = 3
const COMPLETIONS_KEPT = 48
const CACHE_ENTRIES = 2000
/** A word in more titles' short fields than this share (and 500) is common: it only ranks when rarer words are typed too. */
const COMMON_SHARE = 0.03
const COMMON_MIN = 500
/** A word in more synopses (or keyword lists) than this share (and 1,000) is not looked for there. */
const LONG_FIELD_SHARE = 0.02
const LONG_FIELD_MIN = 1000
export const SNAPSHOT_FORMAT = 'reel-search-1'

/** Typos allowed in a word of this many letters: 1 from 5, 2 from 9. */
export const typoBudget = (length: number) => (length >= 9 ? 2 : length >= 5 ? 1 : 0)

function fieldText(doc: IndexedTitle, field: string): string {
  switch (field) {
    case 'id':
      return doc.id
    case 'title':
      return doc.title
    case 'people':
      return doc.people.join(' | ')
    case 'genres':
      return doc.genres.map((g) => g.name).join(' | ')
    case 'keywords':
      return doc.tags.join(' | ')
    default:
      return doc.synopsis
  }
}

const keepTerm = (term: string, field: string | undefined) =>
  !(field !== undefined && LONG_TEXT.has(field) && STOP_WORDS.has(term))

const MINI_OPTIONS: Options<IndexedTitle> = {
  fields: [...FIELDS],
  extractField: fieldText,
  tokenize: (text) => terms(text),
  processTerm: (term, field) => (keepTerm(term, field) ? term : null),
  searchOptions: {
    // Queries are built from index terms already: no second tokenizing or folding.
    tokenize: (text) => [text],
    processTerm: (term) => term,
    prefix: false,
    fuzzy: false,
    combineWith: 'AND',
    boost: BOOST,
  },
  autoVacuum: { minDirtCount: 200, minDirtFactor: 0.05, batchSize: 2000, batchWait: 5 },
}

/** Field id → title's short id → frequency, for one term. */
type TermData = Map<number, Map<number, number>>

/** What this class reads of MiniSearch's own term tree (a radix tree of term → TermData). */
interface TermTree {
  get(term: string): TermData | undefined
  atPrefix(prefix: string): Iterable<[string, TermData]>
  fuzzyGet(term: string, maxDistance: number): Map<string, [TermData, number]>
}

/**
 * Reads MiniSearch's index (protected members, there for subclasses): candidate terms, postings
 * and field lengths come from it, without keeping a second copy.
 */
class MiniSearchInternals extends MiniSearch<IndexedTitle> {
  static termTree(mini: MiniSearch<IndexedTitle>): TermTree {
    return (mini as MiniSearchInternals)._index
  }

  static fieldIds(mini: MiniSearch<IndexedTitle>): Record<string, number> {
    return (mini as MiniSearchInternals)._fieldIds
  }

  static shortId(mini: MiniSearch<IndexedTitle>, id: string): number | undefined {
    return (mini as MiniSearchInternals)._idToShortId.get(id)
  }

  static fieldLengths(mini: MiniSearch<IndexedTitle>, shortId: number): number[] | undefined {
    return (mini as MiniSearchInternals)._fieldLength.get(shortId)
  }

  static averageFieldLengths(mini: MiniSearch<IndexedTitle>): number[] {
    return (mini as MiniSearchInternals)._avgFieldLength
  }

  /** Everything MiniSearch's toJSON() writes, read in place (for writing it a piece at a time). */
  static state(mini: MiniSearch<IndexedTitle>) {
    const m = mini as MiniSearchInternals
    return {
      documentCount: m._documentCount,
      nextId: m._nextId,
      documentIds: m._documentIds,
      fieldIds: m._fieldIds,
      fieldLength: m._fieldLength,
      averageFieldLength: m._avgFieldLength,
      storedFields: m._storedFields,
      dirtCount: m._dirtCount,
      index: m._index,
    }
  }
}

/** A candidate index term for a query word: its weight (exact 1, completions and typos less) and the fields to look in. */
interface Candidate {
  weight: number
  fields: Field[]
  /** Titles with the term in a short field (title, people, genres). */
  shortCount: number
}
type Candidates = Map<string, Candidate>

/** One field's postings of a candidate term, with what BM25 needs to score them. */
interface Part {
  postings: Map<number, number>
  /** The same postings as typed arrays, for a long list (see packedOf()). */
  packed: PackedPostings | undefined
  lengths: Float32Array
  average: number
  idf: number
  /** Candidate weight × field boost. */
  weight: number
}

/**
 * A long postings list copied into typed arrays: reading it is several times faster than walking
 * MiniSearch's Map (common words and short prefixes read tens of thousands of postings a query).
 * Short ids of removed titles may stay in it; readers skip titles that are not live.
 */
interface PackedPostings {
  ids: Int32Array
  tfs: Float32Array
}
/** Looking a title up in a postings Map costs about as much as reading this many packed postings (of 1, 4, 8, 4 was fastest on bench/search's 100,000 titles). */
const LOOKUP_COST = 4
/** Postings lists at least this long are packed when a query reads them. */
const PACK_MIN = 256

/** A typed word (or a synonym's word) as the terms it may match. */
interface WordPlan {
  terms: { term: string; parts: Part[] }[]
  /** Postings to read to collect every title it matches. */
  cost: number
  /** Postings looked up to score one title. */
  lookups: number
}

/** One position of the query: alternatives (the typed words or a synonym), each a list of words that must all match. */
interface SlotPlan {
  alternatives: WordPlan[][]
  cost: number
  lookups: number
  /** Very common: it ranks the titles the other words find, and selects only when every word is common. */
  common: boolean
}

interface Plan {
  slots: SlotPlan[]
  /** The typed words, in order (exact-title check). */
  typed: string[]
  /** Terms that matched only as completions of the word being typed, with that word. */
  prefixOf: Map<string, string>
}

/** Titles a text matches: short ids and their relevance, in step. */
interface Matches {
  ids: Int32Array
  scores: Float64Array
  /** Entries in use; the arrays are buffers reused from query to query (no garbage per hit). */
  length: number
}

const NO_MATCHES: Matches = { ids: new Int32Array(0), scores: new Float64Array(0), length: 0 }
/** Which reusable buffer: the matches so far, a further slot's, an alternative's while a slot unites them. */
type Buffer = 0 | 1 | 2

/** MiniSearch's BM25+ parameters, so scores read as they did when MiniSearch scored. */
const BM25 = { k: 1.2, b: 0.7, d: 0.5 }
/** A very common word a title lacks lowers its score by this factor instead of excluding it. */
const COMMON_MISSING = 0.6
/** Years counted in a typed array from this one on (others in a Map). */
const YEAR_BASE = 1700
const YEAR_SPAN = 512

const idfOf = (total: number, matching: number) => Math.log(1 + (total - matching + 0.5) / (matching + 0.5))

function wordScore(word: WordPlan, shortId: number): number {
  let score = 0
  for (const { parts } of word.terms)
    for (const p of parts) {
      const tf = p.postings.get(shortId)
      if (tf === undefined) continue
      const length = p.lengths[shortId] ?? 0
      score +=
        p.weight *
        p.idf *
        (BM25.d + (tf * (BM25.k + 1)) / (tf + BM25.k * (1 - BM25.b + (BM25.b * length) / p.average)))
    }
  return score
}

/** The score of a title for one slot, 0 when it does not match it. */
function slotScore(slot: SlotPlan, shortId: number): number {
  let total = 0
  for (const alternative of slot.alternatives) {
    let sum = 0
    for (const word of alternative) {
      const s = wordScore(word, shortId)
      if (s === 0) {
        sum = 0
        break
      }
      sum += s
    }
    total += sum
  }
  return total
}

/** Search hits of titles for one replica: add, replace, remove, query, snapshot. */
export class TitleIndex {
  private mini: MiniSearch<IndexedTitle>
  private readonly docs = new Map<string, IndexedTitle>()
  /** Versions of titles seen, removed ones included: an older event never undoes a newer one. */
  private readonly versions = new Map<string, number>()
  private columns = new TitleColumns(FIELDS.length)
  /** A title's words joined by spaces → its short ids (exact-title check). */
  private readonly exactTitles = new Map<string, Set<number>>()
  /** Completions of short prefixes (see completions()). */
  private readonly completionCache = new Map<string, string[]>()
  /** Typed copies of long postings lists queries have read, by MiniSearch's list (see packedOf()). */
  private packed = new WeakMap<Map<number, number>, PackedPostings>()
  private anyPacked = false
  /**
   * Warm-up (see warmSteps()): once a full pass has run, the terms of titles changed since, whose
   * completion lists and packed postings are to be made again; undefined until then.
   */
  private staleTerms: Set<string> | undefined
  /** Titles added, replaced or removed so far: a full warm-up pass restarts when it changes under it. */
  private mutations = 0
  /** Scratch accumulator of one word's matches, by short id; `stamp` says which entries are current. */
  private accumulator = new Float64Array(0)
  private stamp = new Uint32Array(0)
  private epoch = 0
  private exactMarked = new Uint32Array(0)
  private exactEpoch = 0
  private readonly buffers: Matches[] = []
  /**
   * Whole answers (filters, audience and page included) as their callers rendered them (see
   * rendered()), for the same query asked again.
   */
  private readonly resultCache: LRUCache<string, object | string> | undefined
  /** The synonym table the cache was filled with: another one empties it. */
  private cachedSynonyms: SynonymTable | undefined

  /** cacheEntries: answers kept until the index changes (0: none, for measuring). */
  constructor(options: { cacheEntries?: number } = {}) {
    this.mini = new MiniSearch(MINI_OPTIONS)
    const max = options.cacheEntries ?? CACHE_ENTRIES
    this.resultCache = max > 0 ? new LRUCache({ max }) : undefined
  }

  get size(): number {
    return this.docs.size
  }

  /** How many prefixes have their completion list made (see warmSteps()). */
  get completionLists(): number {
    return this.completionCache.size
  }

  version(id: string): number | undefined {
    return this.versions.get(id)
  }

  get(id: string): IndexedTitle | undefined {
    return this.docs.get(id)
  }

  /** Adds or replaces a title; false when a newer version is already known. */
  upsert(doc: IndexedTitle): boolean {
    const known = this.versions.get(doc.id)
    if (known !== undefined && doc.version <= known) return false
    this.versions.set(doc.id, doc.version)
    const current = this.docs.get(doc.id)
    const next = { ...doc }
    if (current && sameText(current, doc)) {
      // Popularity, availability or rating changed: nothing to re-index, but answers change.
      this.docs.set(doc.id, next)
      const shortId = MiniSearchInternals.shortId(this.mini, doc.id)
      if (shortId !== undefined) this.columns.set(shortId, next, undefined)
      this.resultCache?.clear()
      return true
    }
    if (current) this.unindex(current)
    this.docs.set(doc.id, next)
    this.mini.add(next)
    this.track(next)
    this.changed()
    return true
  }

  /** Removes a title; false when a newer version is already known. */
  remove(id: string, version: number): boolean {
    const known = this.versions.get(id)
    if (known !== undefined && version <= known) return false
    this.versions.set(id, version)
    const current = this.docs.get(id)
    if (current) {
      this.unindex(current)
      this.docs.delete(id)
      this.changed()
    }
    return true
  }

  /** Columns and exact-title entry of a title MiniSearch has just indexed. */
  private track(doc: IndexedTitle): void {
    this.forgetDerived(doc)
    const shortId = MiniSearchInternals.shortId(this.mini, doc.id)
    if (shortId === undefined) return
    this.columns.set(shortId, doc, MiniSearchInternals.fieldLengths(this.mini, shortId))
    const key = terms(doc.title).join(' ')
    let ids = this.exactTitles.get(key)
    if (!ids) {
      ids = new Set()
      this.exactTitles.set(key, ids)
    }
    ids.add(shortId)
  }

  private unindex(doc: IndexedTitle): void {
    this.forgetDerived(doc)
    const shortId = MiniSearchInternals.shortId(this.mini, doc.id)
    if (shortId !== undefined) {
      this.columns.clear(shortId)
      const key = terms(doc.title).join(' ')
      const ids = this.exactTitles.get(key)
      ids?.delete(shortId)
      if (ids?.size === 0) this.exactTitles.delete(key)
    }
    this.mini.discard(doc.id)
  }

  /**
   * Drops what was derived from the postings of the title's words: the kept completions of every
   * prefix (their counts change) and the packed copies of its terms' postings (they gain or lose it).
   */
  private forgetDerived(doc: IndexedTitle): void {
    this.mutations++
    const completions = this.completionCache.size > 0
    const stale = this.staleTerms
    if (!completions && !this.anyPacked && !stale) return
    const tree = MiniSearchInternals.termTree(this.mini)
    const fieldIds = MiniSearchInternals.fieldIds(this.mini)
    for (const field of FIELDS)
      for (const term of terms(fieldText(doc, field))) {
        stale?.add(term)
        if (completions)
          for (let n = 1; n <= COMPLETION_PREFIX && n <= term.length; n++)
            this.completionCache.delete(term.slice(0, n))
        if (this.anyPacked) {
          const postings = tree.get(term)?.get(fieldIds[field] ?? -1)
          if (postings) this.packed.delete(postings)
        }
      }
  }

  /** A long postings list as typed arrays, copied on first read and kept until a title with the term changes. */
  private packedOf(postings: Map<number, number>): PackedPostings | undefined {
    if (postings.size < PACK_MIN) return undefined
    let packed = this.packed.get(postings)
    if (!packed) {
      const ids = new Int32Array(postings.size)
      const tfs = new Float32Array(postings.size)
      let n = 0
      for (const [id, tf] of postings) {
        ids[n] = id
        tfs[n++] = tf
      }
      packed = { ids, tfs }
      this.packed.set(postings, packed)
      this.anyPacked = true
    }
    return packed
  }

  /**
   * Makes ahead what queries would otherwise make the first time they need it: the completion
   * lists of every 1–3 letter prefix and the typed copies of every long postings list (a query
   * meeting them first paid up to tens of milliseconds). A step at a time, so a caller can give
   * the event loop a turn between steps: the first run walks the whole term tree (again if a title
   * changes during it); later runs redo only the terms of titles changed since. The same lists a
   * query would make then: answers do not change.
   */
  *warmSteps(): Generator<'vacuuming' | undefined> {
    const tree = MiniSearchInternals.termTree(this.mini)
    const fieldIds = MiniSearchInternals.fieldIds(this.mini)
    const warmTerm = (term: string) => {
      const data = tree.get(term)
      if (data) for (const postings of data.values()) this.packedOf(postings)
      for (let n = 1; n <= COMPLETION_PREFIX && n <= term.length; n++) {
        const prefix = term.slice(0, n)
        if (!this.completionCache.has(prefix)) this.completions(tree, fieldIds, prefix)
      }
    }
    if (!this.staleTerms) {
      this.staleTerms = new Set()
      for (;;) {
        const mutations = this.mutations
        let complete = true
        // A vacuum rewrites the tree between its batches, and a change may too: walk it afresh then.
        for (const [term] of tree.atPrefix('')) {
          warmTerm(term)
          yield
          if (this.mutations !== mutations || this.mini.isVacuuming) {
            complete = false
            break
          }
        }
        if (complete) break
        while (this.mini.isVacuuming) yield 'vacuuming'
      }
    }
    const stale = this.staleTerms
    for (const term of stale) {
      stale.delete(term)
      warmTerm(term)
      yield
    }
  }

  /** Runs warmSteps() with the event loop free at least every `sliceMs`. */
  async warmUp(sliceMs = 5): Promise<void> {
    let sliceStarted = performance.now()
    for (const step of this.warmSteps())
      if (step === 'vacuuming' || performance.now() - sliceStarted > sliceMs) {
        await new Promise((resolve) => (step ? setTimeout(resolve, 5) : setImmediate(resolve)))
        sliceStarted = performance.now()
      }
  }

  private changed(): void {
    if (this.resultCache && this.resultCache.size > 0) this.resultCache.clear()
  }

  query(input: QueryInput): QueryResult {
    return this.rendered(input, '', (result) => result)
  }

  /**
   * The answer to `input` as `render` makes it (an HTTP body, say), cached under `kind` until the
   * index changes. The search service caches the bytes it sends: a cached answer asked again is a
   * lookup, and the cache holds one small object per answer, not the answer's object graph, which
   * young-generation collections copied as the cache filled (bench/search's API p99).
   */
  rendered<T extends object | string>(
    input: QueryInput,
    kind: string,
    render: (result: QueryResult) => T,
  ): T {
    if (input.synonyms !== this.cachedSynonyms) {
      this.changed()
      this.cachedSynonyms = input.synonyms
    }
    const a = input.audience
    // Windows open and close with time: an answer is reused within the same minute only.
    const key = JSON.stringify([
      kind,
      input.q,
      input.filters,
      a.country,
      a.maxRatingRank,
      Math.floor(a.now / 60_000),
      input.offset,
      input.limit,
      input.scope,
      input.facets,
    ])
    const cached = this.resultCache?.get(key)
    if (cached !== undefined) return cached as T
    const value = render(this.answer(input))
    this.resultCache?.set(key, value)
    return value
  }

  private answer(input: QueryInput): QueryResult {
    const words = terms(input.q).slice(0, MAX_QUERY_WORDS)
    // Something typed but no word in it (emoji, punctuation): nothing matches, unlike an empty query.
    if (words.length === 0 && input.q.trim() !== '')
      return { hits: [], total: 0, facets: { genre: {}, year: {}, language: {} } }
    // The last word is still being typed unless the query ends with a space or punctuation.
    const open = words.length > 0 && /[\p{L}\p{N}]$/u.test(input.q)
    const plan = words.length === 0 ? undefined : this.plan(words, open, input.synonyms, input.scope ?? 'all')
    const found = plan ? this.matches(plan) : undefined
    const exact = plan ? this.exactTitles.get(words.join(' ')) : undefined

    const c = this.columns
    const f = input.filters
    const genres = f.genres && f.genres.length > 0 ? c.genreMask(f.genres) : undefined
    const languages =
      f.languages && f.languages.length > 0
        ? new Set(f.languages.map((l) => c.languageNames.find(l)).filter((n) => n !== undefined))
        : undefined
    const types =
      f.types && f.types.length > 0
        ? new Set<number>(f.types.map((t) => (t === 'series' ? 1 : 0)))
        : undefined
    const yearFrom = f.yearFrom ?? -Infinity
    const yearTo = f.yearTo ?? Infinity
    const yearFiltered = f.yearFrom !== undefined || f.yearTo !== undefined
    const wantFacets = input.facets !== false
    // Counted in typed arrays by interned number, turned into objects at the end.
    const genreCounts = new Int32Array(c.genreWords * 32)
    const languageCounts = new Int32Array(c.languageNames.names.length)
    const yearCounts = new Int32Array(YEAR_SPAN)
    const otherYears = new Map<number, number>()
    const best = new Best(input.offset + input.limit, c, exact && this.exactMarks(exact))
    let total = 0
    const audience = input.audience
    const { rating, everywhere, series, year: years, language: languageOf, genres: genreBits, docs } = c
    const genreWords = c.genreWords
    const maxRating = audience.maxRatingRank ?? Number.POSITIVE_INFINITY
    const count = found ? found.length : c.capacity
    // One tight pass over the hits (tens of thousands for a common word): typed arrays, no calls per hit.
    for (let i = 0; i < count; i++) {
      const id = found ? (found.ids[i] as number) : i
      if (!found && docs[id] === undefined) continue
      if ((rating[id] as number) > maxRating) continue
      if (everywhere[id] !== 1 && !c.visible(id, audience)) continue
      if (types && !types.has(series[id] as number)) continue
      const year = years[id] as number
      const language = languageOf[id] as number
      const genreAt = id * genreWords
      let byGenre = !genres
      if (genres)
        for (let w = 0; w < genreWords; w++)
          if (((genreBits[genreAt + w] as number) & (genres[w] as number)) !== 0) byGenre = true
      const byYear = !yearFiltered || (year !== NO_YEAR && year >= yearFrom && year <= yearTo)
      const byLanguage = !languages || languages.has(language)
      // Disjunctive facets: each facet counts the hits of every other filter, so choosing one genre still shows the others.
      if (wantFacets) {
        if (byYear && byLanguage) {
          for (let w = 0; w < genreWords; w++)
            for (let bits = genreBits[genreAt + w] as number; bits !== 0; bits &= bits - 1) {
              const g = w * 32 + 31 - Math.clz32(bits & -bits)
              genreCounts[g] = (genreCounts[g] as number) + 1
            }
        }
        if (byGenre && byLanguage && year !== NO_YEAR) {
          const slot = year - YEAR_BASE
          if (slot >= 0 && slot < YEAR_SPAN) yearCounts[slot] = (yearCounts[slot] as number) + 1
          else otherYears.set(year, (otherYears.get(year) ?? 0) + 1)
        }
        if (byGenre && byYear && language >= 0)
          languageCounts[language] = (languageCounts[language] as number) + 1
      }
      if (byGenre && byYear && byLanguage) {
        total++
        // Most hits cannot enter the full list: decided here, without a call that would box the score.
        const score = found ? (found.scores[i] as number) : 0
        if (score >= best.below || best.isExact(id)) best.offer(id, score)
      }
    }

    const genre: Record<string, number> = {}
    genreCounts.forEach((n, g) => {
      if (n > 0) genre[c.genreNames.names[g] as string] = n
    })
    const language: Record<string, number> = {}
    languageCounts.forEach((n, l) => {
      if (n > 0) language[c.languageNames.names[l] as string] = n
    })
    const year: Record<string, number> = {}
    yearCounts.forEach((n, y) => {
      if (n > 0) year[YEAR_BASE + y] = n
    })
    for (const [y, n] of otherYears) year[y] = n
    return {
      total,
      facets: { genre, year, language },
      hits: best
        .ranked()
        .slice(input.offset)
        .map(({ id, score }) => {
          const doc = c.docs[id] as IndexedTitle
          return {
            doc,
            score: Math.round(score * 1000) / 1000,
            highlight: plan ? highlights(doc, id, plan) : { title: doc.title },
          }
        }),
    }
  }

  /** The query's words as candidate terms and postings to read, rarest first. */
  private plan(words: string[], open: boolean, synonyms: SynonymTable, scope: 'all' | 'titles'): Plan {
    const slots = expand(words, synonyms)
    const prefixOf = new Map<string, string>()
    const total = Math.max(this.docs.size, 1)
    const tree = MiniSearchInternals.termTree(this.mini)
    const fieldIds = MiniSearchInternals.fieldIds(this.mini)
    const candidates = slots.map((slot, s) =>
      slot.alternatives.map((alternative, a) =>
        alternative.map((word, w) => {
          const typing = open && s === slots.length - 1 && a === 0 && w === alternative.length - 1
          const found = this.candidates(tree, fieldIds, word, typing, total, scope)
          if (typing)
            for (const [term, c] of found) if (c.weight < 1 && term.startsWith(word)) prefixOf.set(term, word)
          return found
        }),
      ),
    )
    const common = candidates.map((alternatives) => {
      const only = alternatives.length === 1 && alternatives[0]?.length === 1 ? alternatives[0][0] : undefined
      let frequency = 0
      for (const c of only?.values() ?? []) frequency += c.shortCount
      return frequency > Math.max(COMMON_MIN, total * COMMON_SHARE)
    })
    // A query of common words only looks in short fields, where they say something.
    const shortOnly = common.every(Boolean)
    const averages = MiniSearchInternals.averageFieldLengths(this.mini)
    const documents = Math.max(this.mini.documentCount, 1)
    const resolve = (found: Candidates): WordPlan => {
      const word: WordPlan = { terms: [], cost: 0, lookups: 0 }
      for (const [term, candidate] of found) {
        const data = tree.get(term)
        if (!data) continue
        const parts: Part[] = []
        for (const field of candidate.fields) {
          if (shortOnly && LONG_TEXT.has(field)) continue
          const fieldId = fieldIds[field] ?? -1
          const postings = data.get(fieldId)
          if (!postings || postings.size === 0) continue
          parts.push({
            postings,
            packed: this.packedOf(postings),
            lengths: this.columns.fieldLength[fieldId] as Float32Array,
            average: averages[fieldId] || 1,
            // Postings keep replaced titles until MiniSearch vacuums: never more than there are titles
            // (a word in every title got a negative idf and was taken for absent).
            idf: idfOf(documents, Math.min(postings.size, documents)),
            weight: candidate.weight * BOOST[field],
          })
          word.cost += postings.size
          word.lookups++
        }
        if (parts.length > 0) word.terms.push({ term, parts })
      }
      return word
    }
    return {
      typed: words,
      prefixOf,
      slots: candidates.map((alternatives, s) => {
        const resolved = alternatives.map((alternative) => alternative.map(resolve))
        let cost = 0
        let lookups = 0
        for (const alternative of resolved)
          for (const word of alternative) {
            cost += word.cost
            lookups += word.lookups
          }
        return { alternatives: resolved, cost, lookups, common: !shortOnly && common[s] === true }
      }),
    }
  }

  /**
   * Titles matching every slot that is not common, scored: the rarest slot's postings are read;
   * each further slot either checks the titles found so far one by one, or reads its own postings
   * and intersects, whichever reads less. Common slots only rank the titles found.
   */
  private matches(plan: Plan): Matches {
    const required = plan.slots.filter((s) => !s.common).sort((a, b) => a.cost - b.cost)
    const ranking = plan.slots.filter((s) => s.common)
    const first = required[0]
    if (!first) return NO_MATCHES
    const found = this.collectSlot(first, 0)
    // Each further slot keeps the titles it also matches, compacting the buffer in place.
    for (const slot of required.slice(1)) {
      if (found.length === 0) break
      let kept = 0
      if (found.length * slot.lookups * LOOKUP_COST <= slot.cost) {
        for (let i = 0; i < found.length; i++) {
          const id = found.ids[i] as number
          const s = slotScore(slot, id)
          if (s > 0) {
            found.ids[kept] = id
            found.scores[kept] = (found.scores[i] as number) + s
            kept++
          }
        }
      } else {
        const other = this.collectSlot(slot, 1)
        const epoch = this.nextEpoch()
        for (let i = 0; i < other.length; i++) {
          const id = other.ids[i] as number
          this.stamp[id] = epoch
          this.accumulator[id] = other.scores[i] as number
        }
        for (let i = 0; i < found.length; i++) {
          const id = found.ids[i] as number
          if (this.stamp[id] !== epoch) continue
          found.ids[kept] = id
          found.scores[kept] = (found.scores[i] as number) + (this.accumulator[id] as number)
          kept++
        }
      }
      found.length = kept
    }
    for (const slot of ranking) {
      const only = slot.alternatives.length === 1 ? slot.alternatives[0] : undefined
      const word = only?.length === 1 ? only[0] : undefined
      if (word && found.length * slot.lookups * LOOKUP_COST > slot.cost) {
        // Reading the common word's postings once costs less than looking each title up in them.
        this.collectWord(word, 1)
        const { stamp, accumulator, epoch } = this
        for (let i = 0; i < found.length; i++) {
          const id = found.ids[i] as number
          found.scores[i] =
            stamp[id] === epoch
              ? (found.scores[i] as number) + (accumulator[id] as number)
              : (found.scores[i] as number) * COMMON_MISSING
        }
        continue
      }
      for (let i = 0; i < found.length; i++) {
        const s = slotScore(slot, found.ids[i] as number)
        found.scores[i] =
          s > 0 ? (found.scores[i] as number) + s : (found.scores[i] as number) * COMMON_MISSING
      }
    }
    return found
  }

  private collectSlot(slot: SlotPlan, into: 0 | 1): Matches {
    const only = slot.alternatives.length === 1 ? slot.alternatives[0] : undefined
    if (only && only.length === 1 && only[0]) return this.collectWord(only[0], into)
    const union = new Map<number, number>()
    for (const alternative of slot.alternatives) {
      const words = [...alternative].sort((a, b) => a.cost - b.cost)
      const head = words[0]
      if (!head) continue
      const found = this.collectWord(head, 2)
      for (let i = 0; i < found.length; i++) {
        const id = found.ids[i] as number
        let score = found.scores[i] as number
        for (const word of words.slice(1)) {
          const s = wordScore(word, id)
          if (s === 0) {
            score = 0
            break
          }
          score += s
        }
        if (score > 0) union.set(id, (union.get(id) ?? 0) + score)
      }
    }
    const out = this.buffer(into)
    for (const [id, score] of union) {
      out.ids[out.length] = id
      out.scores[out.length] = score
      out.length++
    }
    return out
  }

  /** Every live title a word's terms are in, with its score: postings summed in the scratch accumulator. */
  private collectWord(word: WordPlan, into: Buffer): Matches {
    const epoch = this.nextEpoch()
    const { stamp, accumulator } = this
    const live = this.columns.docs
    const out = this.buffer(into)
    const ids = out.ids
    let n = 0
    for (const { parts } of word.terms)
      for (const p of parts) {
        const base = p.weight * p.idf
        const norm = (BM25.k * BM25.b) / p.average
        const flat = BM25.k * (1 - BM25.b)
        const lengths = p.lengths
        if (p.packed) {
          const { ids: postingIds, tfs } = p.packed
          for (let i = 0; i < postingIds.length; i++) {
            const id = postingIds[i] as number
            if (live[id] === undefined) continue
            const tf = tfs[i] as number
            const s = base * (BM25.d + (tf * (BM25.k + 1)) / (tf + flat + norm * (lengths[id] as number)))
            if (stamp[id] === epoch) accumulator[id] = (accumulator[id] as number) + s
            else {
              stamp[id] = epoch
              accumulator[id] = s
              ids[n++] = id
            }
          }
          continue
        }
        // forEach, not for…of: no entry array per posting.
        p.postings.forEach((tf, id) => {
          if (live[id] === undefined) return
          const s = base * (BM25.d + (tf * (BM25.k + 1)) / (tf + flat + norm * (lengths[id] as number)))
          if (stamp[id] === epoch) accumulator[id] = (accumulator[id] as number) + s
          else {
            stamp[id] = epoch
            accumulator[id] = s
            ids[n++] = id
          }
        })
      }
    out.length = n
    for (let i = 0; i < n; i++) out.scores[i] = accumulator[ids[i] as number] as number
    return out
  }

  /** The exact-title hits of this query, marked in a reusable array. */
  private exactMarks(exact: ReadonlySet<number>): ExactMarks {
    if (this.exactMarked.length < this.columns.capacity) {
      this.exactMarked = new Uint32Array(this.columns.capacity)
      this.exactEpoch = 0
    }
    if (this.exactEpoch >= 0xfffffff0) {
      this.exactMarked.fill(0)
      this.exactEpoch = 0
    }
    const epoch = ++this.exactEpoch
    for (const id of exact) this.exactMarked[id] = epoch
    return { marks: this.exactMarked, epoch }
  }

  /** A reusable buffer of matches, emptied, as large as there are short ids. */
  private buffer(which: Buffer): Matches {
    const capacity = this.columns.capacity
    let buffer = this.buffers[which]
    if (!buffer || buffer.ids.length < capacity) {
      buffer = { ids: new Int32Array(capacity), scores: new Float64Array(capacity), length: 0 }
      this.buffers[which] = buffer
    }
    buffer.length = 0
    return buffer
  }

  /** A fresh stamp for the scratch arrays, grown to the columns' capacity. */
  private nextEpoch(): number {
    const capacity = this.columns.capacity
    if (this.stamp.length < capacity) {
      this.stamp = new Uint32Array(capacity)
      this.accumulator = new Float64Array(capacity)
      this.epoch = 0
    }
    if (this.epoch >= 0xfffffff0) {
      this.stamp.fill(0)
      this.epoch = 0
    }
    return ++this.epoch
  }

  /**
   * Terms starting with a typed word, most likely first: words of titles, then of names and
   * genres, frequent ones first. A 1–3 letter prefix reads a large part of the term tree, so its
   * list is kept until a title with a word of that prefix changes.
   */
  private completions(tree: TermTree, fieldIds: Record<string, number>, word: string): string[] {
    const keep = word.length <= COMPLETION_PREFIX
    const cached = keep ? this.completionCache.get(word) : undefined
    if (cached) return cached
    const titleField = fieldIds.title ?? -1
    const found: [string, number, number][] = []
    for (const [term, data] of tree.atPrefix(word)) {
      if (term === word) continue
      let short = 0
      for (const f of SHORT_FIELDS) short += data.get(fieldIds[f] ?? -1)?.size ?? 0
      found.push([term, data.get(titleField)?.size ?? 0, short])
    }
    found.sort((a, b) => b[1] - a[1] || b[2] - a[2] || a[0].length - b[0].length)
    const list = found.slice(0, keep ? COMPLETIONS_KEPT : found.length).map(([term]) => term)
    if (keep) this.completionCache.set(word, list)
    return list
  }

  private candidates(
    tree: TermTree,
    fieldIds: Record<string, number>,
    word: string,
    typing: boolean,
    total: number,
    scope: 'all' | 'titles',
  ): Candidates {
    const longCap = Math.max(LONG_FIELD_MIN, total * LONG_FIELD_SHARE)
    const describe = (data: TermData, weight: number): Candidate | undefined => {
      const n = FIELDS.map((f) => data.get(fieldIds[f] ?? -1)?.size ?? 0)
      const short = SHORT_FIELDS.filter((f) => (n[FIELDS.indexOf(f)] ?? 0) > 0)
      // A word in very many synopses or keyword lists says little there and costs the most: look for it elsewhere.
      const long = FIELDS.filter(
        (f, i) => LONG_TEXT.has(f) && (n[i] ?? 0) > 0 && ((n[i] ?? 0) <= longCap || short.length === 0),
      )
      const fields = scope === 'titles' ? short.filter((f) => f !== 'genres') : [...short, ...long]
      if (fields.length === 0) return undefined
      return { weight, fields, shortCount: (n[0] ?? 0) + (n[1] ?? 0) + (n[2] ?? 0) }
    }
    const out: Candidates = new Map()
    const exact = tree.get(word)
    const exactCandidate = exact && describe(exact, 1)
    if (exactCandidate) out.set(word, exactCandidate)
    if (typing) {
      // One or two letters complete to many common words: fewer of them, or the query costs too much.
      const limit = word.length === 1 ? 5 : word.length === 2 ? 6 : PREFIX_CANDIDATES
      for (const term of this.completions(tree, fieldIds, word)) {
        if (out.size >= limit + (exactCandidate ? 1 : 0)) break
        const data = tree.get(term)
        const c = data && describe(data, 0.55 + 0.35 * (word.length / term.length))
        if (c) out.set(term, c)
      }
    }
    const typos = typoBudget(word.length)
    // A word typed as it is in a page's worth of titles is not a typo (Typesense's typo_tokens_threshold):
    // its neighbours, often as frequent, would cost the most and rank below it anyway.
    const typedAsIs = exactCandidate !== undefined && exactCandidate.shortCount >= TYPO_THRESHOLD
    if (typos > 0 && !typedAsIs) {
      const near: [string, Candidate, number][] = []
      for (const [term, [data, distance]] of tree.fuzzyGet(word, typos)) {
        if (out.has(term)) continue
        const c = describe(data, distance === 1 ? 0.5 : 0.3)
        if (c) near.push([term, c, distance])
      }
      near.sort((a, b) => a[2] - b[2] || b[1].shortCount - a[1].shortCount)
      for (const [term, c] of near.slice(0, TYPO_CANDIDATES)) out.set(term, c)
    }
    return out
  }

  /** The index as a JSON text, for the blob store, with `meta` kept alongside (e.g. a log position). */
  toSnapshot(meta?: unknown): string {
    return [...this.snapshotPieces(meta)].join('')
  }

  /**
   * The same text as toSnapshot(), made in slices of about `sliceMs` with the event loop free in
   * between (JSON.stringify of 100,000 titles held it for seconds). The index must not change until
   * it resolves: the caller holds its updates back.
   */
  async snapshotChunks(
    meta?: unknown,
    sliceMs = 8,
    stats: { longestSliceMs: number } = { longestSliceMs: 0 },
  ): Promise<string[]> {
    // A vacuum in progress rewrites the term tree between its batches: let it finish first.
    while (this.mini.isVacuuming) await new Promise((resolve) => setTimeout(resolve, 5))
    const chunks: string[] = []
    let pieces: string[] = []
    let sliceStarted = performance.now()
    let n = 0
    let size = 0
    for (const piece of this.snapshotPieces(meta)) {
      pieces.push(piece)
      size += piece.length
      // About a megabyte a chunk: joining more at once is itself a stall.
      if (size >= 2 ** 20) {
        chunks.push(pieces.join(''))
        pieces = []
        size = 0
      }
      if (++n % 16 === 0 && performance.now() - sliceStarted > sliceMs) {
        stats.longestSliceMs = Math.max(stats.longestSliceMs, performance.now() - sliceStarted)
        await new Promise((resolve) => setImmediate(resolve))
        sliceStarted = performance.now()
      }
    }
    chunks.push(pieces.join(''))
    stats.longestSliceMs = Math.max(stats.longestSliceMs, performance.now() - sliceStarted)
    return chunks
  }

  /** The snapshot as small JSON pieces: MiniSearch's own serialised form (its toJSON), written a term at a time. */
  private *snapshotPieces(meta: unknown): Generator<string> {
    const m = MiniSearchInternals.state(this.mini)
    const json = JSON.stringify
    yield `{"format":${json(SNAPSHOT_FORMAT)},"meta":${json(meta ?? null)},"docs":[`
    let sep = ''
    for (const doc of this.docs.values()) {
      yield sep + json(doc)
      sep = ','
    }
    yield '],"versions":['
    sep = ''
    for (const entry of this.versions) {
      yield sep + json(entry)
      sep = ','
    }
    yield `],"mini":{"documentCount":${m.documentCount},"nextId":${m.nextId},"documentIds":{`
    sep = ''
    for (const [shortId, id] of m.documentIds) {
      yield `${sep}"${shortId}":${json(id)}`
      sep = ','
    }
    yield `},"fieldIds":${json(m.fieldIds)},"fieldLength":{`
    sep = ''
    for (const [shortId, lengths] of m.fieldLength) {
      yield `${sep}"${shortId}":${json(lengths)}`
      sep = ','
    }
    yield `},"averageFieldLength":${json(m.averageFieldLength)},"storedFields":{`
    sep = ''
    for (const [shortId, fields] of m.storedFields) {
      yield `${sep}"${shortId}":${json(fields)}`
      sep = ','
    }
    yield `},"dirtCount":${m.dirtCount},"index":[`
    sep = ''
    for (const [term, byField] of m.index as Iterable<[string, TermData]>) {
      yield `${sep}[${json(term)},{`
      let fieldSep = ''
      for (const [fieldId, postings] of byField) {
        // A common word has postings in most titles: written 256 at a time, each a piece.
        let freqs = `${fieldSep}"${fieldId}":{`
        let count = 0
        for (const [shortId, tf] of postings) {
          freqs += `${count === 0 ? '' : ','}"${shortId}":${tf}`
          if (++count % 256 === 0) {
            yield freqs
            freqs = ''
          }
        }
        yield `${freqs}}`
        fieldSep = ','
      }
      yield '}]'
      sep = ','
    }
    yield '],"serializationVersion":2}}'
  }

  /** What toSnapshot() was given as `meta`, for an index made by fromSnapshot(). */
  snapshotMeta: unknown

  /** An index from toSnapshot() text; undefined when it is not one (another format, damaged). */
  static fromSnapshot(text: string, options: { cacheEntries?: number } = {}): TitleIndex | undefined {
    let parsed: {
      format?: unknown
      meta?: unknown
      docs?: IndexedTitle[]
      versions?: [string, number][]
      mini?: unknown
    }
    try {
      parsed = JSON.parse(text)
    } catch {
      return undefined
    }
    if (parsed.format !== SNAPSHOT_FORMAT || !parsed.docs || !parsed.versions || !parsed.mini)
      return undefined
    const index = new TitleIndex(options)
    try {
      index.mini = MiniSearch.loadJS(parsed.mini as Parameters<typeof MiniSearch.loadJS>[0], MINI_OPTIONS)
    } catch {
      return undefined
    }
    for (const doc of parsed.docs) {
      index.docs.set(doc.id, doc)
      index.track(doc)
    }
    for (const [id, version] of parsed.versions) index.versions.set(id, version)
    index.snapshotMeta = parsed.meta
    return index
  }
}

function sameText(a: IndexedTitle, b: IndexedTitle): boolean {
  return FIELDS.every((f) => fieldText(a, f) === fieldText(b, f))
}

/** Relevance rounded to ~5 %: closer scores are a tie that popularity breaks. */
const bucketOf = (score: number) => (score > 0 ? Math.round(Math.log(score) * 20) : -1e9)

/** Exact-title hits of a query as marks by short id: `marks[id] === epoch` (a check per hit without a Set lookup). */
interface ExactMarks {
  marks: Uint32Array
  epoch: number
}

/** The k best hits in order, kept as they are offered: exact title first, then relevance (within ~5 %), then popularity. */
class Best {
  private readonly ids: number[] = []
  private readonly scores: number[] = []
  private readonly buckets: number[] = []
  /** A hit scoring under this cannot enter once the list is full (0 until it is), unless it is an exact title. */
  below = 0
  /** The worst kept, once the list is full: most hits that pass `below` are decided against it on numbers. */
  private worstBucket = 0
  private worstPopularity = 0
  private worstExact = false

  constructor(
    private readonly k: number,
    private readonly columns: TitleColumns,
    private readonly exact: ExactMarks | undefined,
  ) {}

  isExact(id: number): boolean {
    return this.exact !== undefined && this.exact.marks[id] === this.exact.epoch
  }

  offer(id: number, score: number): void {
    if (this.k <= 0) return
    const n = this.ids.length
    let bucket: number
    if (n === this.k) {
      // Once full, most hits are in a lower relevance bucket than the worst kept: rejected on the raw score, no log.
      if (this.isExact(id)) bucket = bucketOf(score)
      else {
        if (score < this.below || this.worstExact) return
        bucket = bucketOf(score)
        if (bucket < this.worstBucket) return
        if (bucket === this.worstBucket) {
          // A tie on relevance (common with common words): popularity, then the title id, as compare() does.
          const popularity = this.columns.popularity[id] as number
          if (popularity < this.worstPopularity) return
          if (popularity === this.worstPopularity) {
            const worstId = this.columns.ids[this.ids[n - 1] as number] ?? ''
            if ((this.columns.ids[id] ?? '') >= worstId) return
          }
        }
      }
      if (this.compare(id, bucket, this.ids[n - 1] as number, this.buckets[n - 1] as number) >= 0) return
    } else bucket = bucketOf(score)
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.compare(this.ids[mid] as number, this.buckets[mid] as number, id, bucket) <= 0) lo = mid + 1
      else hi = mid
    }
    this.ids.splice(lo, 0, id)
    this.scores.splice(lo, 0, score)
    this.buckets.splice(lo, 0, bucket)
    if (this.ids.length > this.k) {
      this.ids.pop()
      this.scores.pop()
      this.buckets.pop()
    }
    if (this.ids.length === this.k) {
      const worstId = this.ids[this.k - 1] as number
      const worst = this.buckets[this.k - 1] as number
      this.worstBucket = worst
      this.worstPopularity = this.columns.popularity[worstId] as number
      // A kept exact title beats every other: only exact ones may enter then.
      this.worstExact = this.isExact(worstId)
      // Scores under this round to a lower bucket than the worst kept (bucketOf inverted).
      this.below = this.worstExact ? Number.POSITIVE_INFINITY : Math.exp((worst - 0.5) / 20) * (1 - 1e-9)
    }
  }

  ranked(): { id: number; score: number }[] {
    return this.ids.map((id, i) => ({ id, score: this.scores[i] as number }))
  }

  private compare(a: number, bucketA: number, b: number, bucketB: number): number {
    const exactA = this.isExact(a)
    const exactB = this.isExact(b)
    if (exactA !== exactB) return exactA ? -1 : 1
    const { popularity, ids } = this.columns
    if (bucketA !== bucketB) return bucketB - bucketA
    const byPopularity = (popularity[b] as number) - (popularity[a] as number)
    if (byPopularity !== 0) return byPopularity
    const idA = ids[a] ?? ''
    const idB = ids[b] ?? ''
    return idA < idB ? -1 : idA > idB ? 1 : 0
  }
}

/** The k best items in order, without sorting them all. */
export function topK<T>(items: T[], k: number, compare: (a: T, b: T) => number): T[] {
  if (k <= 0) return []
  if (items.length <= k * 4) return items.sort(compare).slice(0, k)
  const best: T[] = []
  for (const item of items) {
    if (best.length === k) {
      const worst = best[k - 1] as T
      if (compare(item, worst) >= 0) continue
      best.pop()
    }
    let lo = 0
    let hi = best.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (compare(best[mid] as T, item) <= 0) lo = mid + 1
      else hi = mid
    }
    best.splice(lo, 0, item)
  }
  return best
}

function highlights(doc: IndexedTitle, shortId: number, plan: Plan): Record<string, string> {
  const whole = new Set<string>()
  const prefixes = new Set<string>()
  for (const slot of plan.slots)
    for (const alternative of slot.alternatives)
      for (const word of alternative)
        for (const { term, parts } of word.terms) {
          let found = false
          for (let i = 0; i < parts.length && !found; i++) found = parts[i]?.postings.has(shortId) === true
          if (!found) continue
          const typed = plan.prefixOf.get(term)
          if (typed) prefixes.add(typed)
          else whole.add(term)
        }
  const prefixList = [...prefixes]
  const out: Record<string, string> = { title: highlight(doc.title, whole, prefixList) }
  const people = doc.people.filter((p) => matches(p, whole, prefixList))
  if (people.length > 0) out.people = people.map((p) => highlight(p, whole, prefixList)).join(', ')
  const tags = doc.tags.filter((t) => matches(t, whole, prefixList))
  if (tags.length > 0) out.keywords = tags.map((t) => highlight(t, whole, prefixList)).join(', ')
  const synopsis = snippet(doc.synopsis, whole, prefixList)
  if (synopsis) out.synopsis = synopsis
  return out
}
