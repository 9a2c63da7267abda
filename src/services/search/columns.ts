/**
 * What filtering, facets and ranking read of every hit, kept per MiniSearch short id in typed
 * arrays: a query touching 30,000 titles reads numbers from a few arrays instead of walking
 * 30,000 objects (the cost that made a query of common words take 100 ms at 100,000 titles).
 */

import type { Audience, IndexedTitle } from './engine.js'

/** Interns strings (genre ids, languages) as small numbers, for counting in typed arrays. */
class Interned {
  readonly names: string[] = []
  private readonly numbers = new Map<string, number>()

  of(name: string): number {
    let n = this.numbers.get(name)
    if (n === undefined) {
      n = this.names.length
      this.names.push(name)
      this.numbers.set(name, n)
    }
    return n
  }

  find(name: string): number | undefined {
    return this.numbers.get(name)
  }
}

const NO_YEAR = -32768

export class TitleColumns {
  /** The title under each short id; undefined once removed. */
  docs: (IndexedTitle | undefined)[] = []
  /** Title ids, for the last tie-break of the ranking without a hop through the title. */
  ids: string[] = []
  popularity = new Float64Array(0)
  year = new Int16Array(0)
  language = new Int32Array(0)
  rating = new Uint8Array(0)
  series = new Uint8Array(0)
  /** 1: one window covers every region at every time, so the audience's rating is the only check. */
  everywhere = new Uint8Array(0)
  /** Per field (MiniSearch field id): the title's length in terms, for BM25. */
  fieldLength: Float32Array[]
  /**
   * Genres as bits of interned genre numbers, `genreWords` 32-bit words a title (title × genreWords
   * + number / 32): one word for the catalog's 28 genres, more as further genres appear.
   */
  genres = new Uint32Array(0)
  genreWords = 1
  readonly genreNames = new Interned()
  readonly languageNames = new Interned()

  constructor(private readonly fieldCount: number) {
    this.fieldLength = Array.from({ length: fieldCount }, () => new Float32Array(0))
  }

  get capacity(): number {
    return this.popularity.length
  }

  live(shortId: number): boolean {
    return this.docs[shortId] !== undefined
  }

  set(shortId: number, doc: IndexedTitle, fieldLengths: readonly number[] | undefined): void {
    if (shortId >= this.capacity) this.grow(Math.max(1024, shortId + 1, this.capacity * 2))
    this.docs[shortId] = doc
    this.ids[shortId] = doc.id
    this.popularity[shortId] = doc.popularity
    this.year[shortId] = doc.year ?? NO_YEAR
    this.language[shortId] = doc.language === null ? -1 : this.languageNames.of(doc.language)
    this.rating[shortId] = doc.ratingRank
    this.series[shortId] = doc.type === 'series' ? 1 : 0
    this.everywhere[shortId] = doc.windows.some(
      ([r, from, until]) => r === '*' && from === null && until === null,
    )
      ? 1
      : 0
    const numbers = doc.genres.map((g) => this.genreNames.of(g.id))
    const words = Math.ceil((Math.max(-1, ...numbers) + 1) / 32)
    if (words > this.genreWords) this.widenGenres(words)
    const at = shortId * this.genreWords
    this.genres.fill(0, at, at + this.genreWords)
    for (const n of numbers)
      this.genres[at + (n >>> 5)] = ((this.genres[at + (n >>> 5)] as number) | (1 << (n & 31))) >>> 0
    if (fieldLengths)
      for (let f = 0; f < this.fieldCount; f++)
        (this.fieldLength[f] as Float32Array)[shortId] = fieldLengths[f] ?? 0
  }

  clear(shortId: number): void {
    this.docs[shortId] = undefined
  }

  visible(shortId: number, audience: Audience): boolean {
    if (audience.maxRatingRank !== undefined && (this.rating[shortId] ?? 0) > audience.maxRatingRank)
      return false
    if (this.everywhere[shortId] === 1) return true
    const doc = this.docs[shortId]
    if (!doc) return false
    const { country, now } = audience
    for (const [region, from, until] of doc.windows)
      if (
        (region === '*' || region === country) &&
        (from === null || from <= now) &&
        (until === null || until > now)
      )
        return true
    return false
  }

  /** The bits of a list of genre ids, `genreWords` words; unknown ids set none. */
  genreMask(ids: string[]): Uint32Array {
    const mask = new Uint32Array(this.genreWords)
    for (const id of ids) {
      const n = this.genreNames.find(id)
      if (n !== undefined) mask[n >>> 5] = ((mask[n >>> 5] as number) | (1 << (n & 31))) >>> 0
    }
    return mask
  }

  /** More words of genre bits a title: every title's words copied to the wider layout. */
  private widenGenres(words: number): void {
    const wider = new Uint32Array(this.capacity * words)
    for (let id = 0; id < this.capacity; id++)
      for (let w = 0; w < this.genreWords; w++)
        wider[id * words + w] = this.genres[id * this.genreWords + w] as number
    this.genres = wider
    this.genreWords = words
  }

  yearOf(shortId: number): number | null {
    const y = this.year[shortId] ?? NO_YEAR
    return y === NO_YEAR ? null : y
  }

  private grow(size: number): void {
    const grown = <
      A extends Float64Array | Float32Array | Int16Array | Int32Array | Uint32Array | Uint8Array,
    >(
      a: A,
      make: (n: number) => A,
    ): A => {
      const b = make(size)
      b.set(a as never)
      return b
    }
    this.popularity = grown(this.popularity, (n) => new Float64Array(n))
    this.year = grown(this.year, (n) => new Int16Array(n))
    this.language = grown(this.language, (n) => new Int32Array(n))
    this.rating = grown(this.rating, (n) => new Uint8Array(n))
    this.series = grown(this.series, (n) => new Uint8Array(n))
    this.everywhere = grown(this.everywhere, (n) => new Uint8Array(n))
    const genres = new Uint32Array(size * this.genreWords)
    genres.set(this.genres)
    this.genres = genres
    this.fieldLength = this.fieldLength.map((a) => grown(a, (n) => new Float32Array(n)))
  }
}

export { NO_YEAR }
