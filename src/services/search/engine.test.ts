import MiniSearch from 'minisearch'
import { describe, expect, it } from 'vitest'
import { type IndexedTitle, TitleIndex, topK, typoBudget } from './engine.js'
import { compileSynonyms, DEFAULT_SYNONYMS, expand } from './synonyms.js'
import { highlight, matches, snippet, terms } from './text.js'

const synonyms = compileSynonyms(DEFAULT_SYNONYMS)
const audience = { country: 'US', now: 0 }

function title(id: string, over: Partial<IndexedTitle> = {}): IndexedTitle {
  return {
    id,
    type: 'movie',
    title: id,
    year: 2000,
    genres: [],
    language: 'en',
    ratingRank: 0,
    windows: [['*', null, null]],
    popularity: 0,
    people: [],
    tags: [],
    synopsis: '',
    version: 1,
    ...over,
  }
}

const search = (index: TitleIndex, q: string, limit = 20) =>
  index.query({ q, filters: {}, audience, offset: 0, limit, synonyms })
const titlesOf = (index: TitleIndex, q: string) => search(index, q).hits.map((h) => h.doc.title)

describe('search text', () => {
  it('folds accents and case, and splits on anything but letters and digits', () => {
    expect(terms("Amélie's CAFÉ-au-lait, 2001")).toEqual(['amelie', 's', 'cafe', 'au', 'lait', '2001'])
    expect(terms('東京物語 1953')).toEqual(['東京物語', '1953'])
    expect(terms('🎬 (.*)')).toEqual([])
  })

  it('marks whole words, and only the typed part of a completed one, accents kept', () => {
    expect(highlight('Amélie à Paris', new Set(['paris']), ['ame'])).toBe(
      '<mark>Amé</mark>lie à <mark>Paris</mark>',
    )
    expect(highlight('No match here', new Set(['x']), [])).toBe('No match here')
    // ASCII text is matched in place, case aside: whole words only, prefixes at the start of a word.
    expect(highlight('The DARK Knight Rises, darkly', new Set(['dark', 'knight']), ['ri'])).toBe(
      'The <mark>DARK</mark> <mark>Knight</mark> <mark>Ri</mark>ses, darkly',
    )
    expect(highlight('Unknightly Darkness', new Set(['knight', 'dark']), ['ses'])).toBe('Unknightly Darkness')
    expect(matches('Christopher Nolan', new Set(['nolan']), [])).toBe(true)
    expect(matches('Nolanesque', new Set(['nolan']), [])).toBe(false)
    expect(matches('Nolanesque', new Set(), ['nol'])).toBe(true)
    expect(matches('Dark', new Set(['darker']), ['darke'])).toBe(false)
    const long = `${'word '.repeat(60)}wormhole ${'word '.repeat(60)}`.trim()
    const cut = snippet(long, new Set(['wormhole']), []) ?? ''
    expect(cut).toContain('<mark>wormhole</mark>')
    expect(cut.length).toBeLessThan(200)
    expect(cut.startsWith('…') && cut.endsWith('…')).toBe(true)
  })

  it('expands the longest synonym phrase and rejects unusable groups', () => {
    const slots = expand(['world', 'war', 'ii', 'movie'], synonyms)
    expect(slots.map((s) => s.typed)).toEqual([['world', 'war', 'ii'], ['movie']])
    expect(slots[0]?.alternatives).toContainEqual(['ww2'])
    expect(slots[1]?.alternatives).toEqual([['movie'], ['film']])
    expect(() => compileSynonyms([['one']])).toThrow(/2 to/)
    expect(() => compileSynonyms([['same', 'SAME']])).toThrow(/two different/)
  })
})

describe('title index', () => {
  it('allows 1 typo from 5 letters and 2 from 9', () => {
    expect([1, 4, 5, 8, 9, 20].map(typoBudget)).toEqual([0, 0, 1, 1, 2, 2])
  })

  it('keeps the k best in order, like a full sort', () => {
    const items = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000)
    const byValue = (a: number, b: number) => a - b
    expect(topK([...items], 10, byValue)).toEqual([...items].sort(byValue).slice(0, 10))
    expect(topK([...items], 0, byValue)).toEqual([])
  })

  it('ignores an event older than what it has, removals included', () => {
    const index = new TitleIndex()
    expect(index.upsert(title('a', { title: 'Arrival', version: 2 }))).toBe(true)
    expect(index.upsert(title('a', { title: 'Old Name', version: 1 }))).toBe(false)
    expect(index.remove('a', 3)).toBe(true)
    expect(index.upsert(title('a', { title: 'Arrival', version: 2 }))).toBe(false)
    expect(titlesOf(index, 'arrival')).toEqual([])
    expect(index.upsert(title('a', { title: 'Arrival', version: 4 }))).toBe(true)
    expect(titlesOf(index, 'arrival')).toEqual(['Arrival'])
  })

  it('does not index stop words of synopses, but does in titles', () => {
    const index = new TitleIndex()
    index.upsert(title('1', { title: 'Something', synopsis: 'the story of them' }))
    index.upsert(title('2', { title: 'The The' }))
    expect(titlesOf(index, 'the ')).toEqual(['The The'])
    expect(titlesOf(index, 'story ')).toEqual(['Something'])
  })

  it('lets a very common word rank rather than select when rarer words are typed', () => {
    const index = new TitleIndex()
    for (let i = 0; i < 600; i++) index.upsert(title(`t${i}`, { title: `The Story ${i}` }))
    index.upsert(title('z1', { title: 'The Zebra', popularity: 1 }))
    index.upsert(title('z2', { title: 'Zebra Crossing', popularity: 99 }))
    const result = search(index, 'the zebra ')
    expect(result.hits.map((h) => h.doc.title)).toEqual(['The Zebra', 'Zebra Crossing'])
    // Alone, the common word still finds every title it is in, exact title and popularity first.
    expect(search(index, 'the ', 0).total).toBe(601)
    index.upsert(title('the', { title: 'The', popularity: 0 }))
    const alone = search(index, 'the ', 3)
    expect(alone.total).toBe(602)
    expect(alone.hits.slice(0, 2).map((h) => h.doc.title)).toEqual(['The', 'The Zebra'])
    expect(alone.hits[0]?.highlight.title).toBe('<mark>The</mark>')
    expect(search(index, 'the zeb').hits.map((h) => h.doc.title)).toEqual(['The Zebra', 'Zebra Crossing'])
  })

  it('follows additions, changes and removals of titles with a word in hundreds of titles', () => {
    // A long postings list is read from a typed copy; changes to the titles must reach it.
    const index = new TitleIndex({ cacheEntries: 0 })
    for (let i = 0; i < 400; i++) index.upsert(title(`t${i}`, { title: `Harbor ${i}`, people: ['Kim Lee'] }))
    const total = (q: string) => search(index, q, 0).total
    expect(total('harbor ')).toBe(400)
    expect(total('harbor kim ')).toBe(400)
    index.upsert(title('new', { title: 'Harbor Lights', people: ['Kim Lee'], popularity: 50 }))
    expect(total('harbor ')).toBe(401)
    expect(search(index, 'harbor kim ', 1).hits.map((h) => h.doc.id)).toEqual(['new'])
    index.upsert(title('t7', { title: 'Lighthouse', people: ['Kim Lee'], version: 2 }))
    expect(total('harbor ')).toBe(400)
    expect(total('harbor kim ')).toBe(400)
    index.remove('t8', 2)
    index.remove('new', 2)
    expect(total('harbor ')).toBe(398)
    expect(total('kim ')).toBe(399)
    expect(search(index, 'harbor ', 500).hits.some((h) => ['t7', 't8', 'new'].includes(h.doc.id))).toBe(false)
  })

  it('warms up to the answers queries would make, and again after titles change, even during a warm-up', async () => {
    const history = (index: TitleIndex) => ({
      before: () => {
        const words = ['Habit', 'Hack', 'Haddock', 'Hagen', 'Halo', 'Hammer', 'Handel', 'Harbor']
        for (let i = 0; i < 300; i++)
          index.upsert(title(`t${i}`, { title: `${words[i % words.length]} ${i % 3 ? 'Lights' : ''}` }))
      },
      // Makes "hazel" the first completion of h and ha (more than the 5–6 taken of them), and brings in z, zu, zul.
      after: () => {
        for (let i = 0; i < 400; i++) index.upsert(title(`h${i}`, { title: `Hazel ${i}`, popularity: 1000 }))
        index.upsert(title('t3', { title: 'Zulu', version: 2 }))
        index.remove('t5', 2)
      },
    })
    const prefixes = (index: TitleIndex) => {
      const all = new Set<string>()
      for (let i = 0; i < 1000; i++)
        for (const id of [`t${i}`, `h${i}`]) {
          const doc = index.get(id)
          for (const term of doc ? terms(doc.title) : [])
            for (let n = 1; n <= 3 && n <= term.length; n++) all.add(term.slice(0, n))
        }
      return all.size
    }
    const queries = ['h', 'ha', 'haz', 'har', 'hab', 'z', 'zu', 'l', 'li', 'harbor h', 'ha l', 'hazl']
    const answers = (index: TitleIndex) => queries.map((q) => JSON.stringify(search(index, q, 5)))

    const warmed = new TitleIndex({ cacheEntries: 0 })
    const lazy = new TitleIndex({ cacheEntries: 0 })
    history(warmed).before()
    history(lazy).before()
    await warmed.warmUp()
    expect(warmed.completionLists).toBeGreaterThanOrEqual(prefixes(warmed))
    expect(answers(warmed)).toEqual(answers(lazy))

    history(warmed).after()
    history(lazy).after()
    await warmed.warmUp()
    expect(warmed.completionLists).toBeGreaterThanOrEqual(prefixes(warmed))
    expect(answers(warmed)).toEqual(answers(lazy))
    expect(search(warmed, 'ha', 0).total).toBeGreaterThan(400)

    // Titles change while a first warm-up walks the term tree: it walks it again.
    const during = new TitleIndex({ cacheEntries: 0 })
    const steps = during.warmSteps()
    history(during).before()
    for (let i = 0; i < 3; i++) expect(steps.next().done).toBe(false)
    history(during).after()
    for (let r = steps.next(); !r.done; r = steps.next());
    expect(during.completionLists).toBeGreaterThanOrEqual(prefixes(during))
    expect(answers(during)).toEqual(answers(lazy))
  })

  it('still finds a word that is in every title together with another after a title was replaced', () => {
    const index = new TitleIndex({ cacheEntries: 0 })
    for (let i = 0; i < 3; i++) index.upsert(title(`t${i}`, { title: `Harbor ${i}`, people: ['Kim Lee'] }))
    index.upsert(title('t1', { title: 'Lighthouse', people: ['Kim Lee'], version: 2 }))
    expect(titlesOf(index, 'lighthouse kim ')).toEqual(['Lighthouse'])
    expect(titlesOf(index, 'kim lighthouse ')).toEqual(['Lighthouse'])
  })

  it('indexes and counts titles of more than 64 distinct genres', () => {
    const index = new TitleIndex({ cacheEntries: 0 })
    const genre = (n: number) => ({ id: `g${n}`, name: `Genre ${n}` })
    for (let n = 0; n < 70; n++) index.upsert(title(`t${n}`, { title: `Story ${n}`, genres: [genre(n)] }))
    index.upsert(title('wide', { title: 'Story Wide', genres: [genre(1), genre(40), genre(65), genre(70)] }))
    const all = search(index, 'story ', 100)
    expect(all.total).toBe(71)
    expect(Object.keys(all.facets.genre)).toHaveLength(71)
    expect(all.facets.genre.g65).toBe(2)
    expect(all.facets.genre.g70).toBe(1)
    expect(all.facets.genre.g2).toBe(1)
    const byGenre = (genres: string[]) =>
      index
        .query({ q: 'story ', filters: { genres }, audience, offset: 0, limit: 100, synonyms })
        .hits.map((h) => h.doc.id)
        .sort()
    expect(byGenre(['g65'])).toEqual(['t65', 'wide'])
    expect(byGenre(['g70'])).toEqual(['wide'])
    expect(byGenre(['g3', 'g69'])).toEqual(['t3', 't69'])
    // A title indexed before the genres outgrew a word keeps its genres.
    expect(byGenre(['g1'])).toEqual(['t1', 'wide'])
    expect(search(index, 'wide ').hits[0]?.doc.id).toBe('wide')
  })

  it('answers again after popularity or availability change, though the text did not', () => {
    const index = new TitleIndex()
    index.upsert(title('a', { title: 'Echo', popularity: 1 }))
    index.upsert(title('b', { title: 'Echo', popularity: 2 }))
    expect(search(index, 'echo').hits.map((h) => h.doc.id)).toEqual(['b', 'a'])
    index.upsert(title('a', { title: 'Echo', popularity: 3, version: 2 }))
    expect(search(index, 'echo').hits.map((h) => h.doc.id)).toEqual(['a', 'b'])
    index.upsert(title('a', { title: 'Echo', popularity: 3, version: 3, windows: [['DE', null, null]] }))
    expect(search(index, 'echo').hits.map((h) => h.doc.id)).toEqual(['b'])
    const later = index.query({
      q: 'echo',
      filters: {},
      audience: { country: 'DE', now: 0 },
      offset: 0,
      limit: 5,
      synonyms,
    })
    expect(later.hits.map((h) => h.doc.id)).toEqual(['a', 'b'])
  })

  it('applies changed synonyms to a query asked before', () => {
    const index = new TitleIndex()
    index.upsert(title('m', { title: 'Matrix' }))
    expect(search(index, 'starship ').total).toBe(0)
    const custom = compileSynonyms([['starship', 'matrix']])
    expect(
      index.query({ q: 'starship ', filters: {}, audience, offset: 0, limit: 5, synonyms: custom }).total,
    ).toBe(1)
  })

  it('writes the same snapshot in slices as at once, and in MiniSearch’s own serialised form', async () => {
    const index = new TitleIndex()
    for (let i = 0; i < 300; i++)
      index.upsert(
        title(`t${i}`, { title: `Title ${i}`, people: [`Person ${i % 7}`], synopsis: 'a wormhole story' }),
      )
    index.remove('t5', 2)
    const whole = index.toSnapshot({ position: 3 })
    expect((await index.snapshotChunks({ position: 3 }, 0)).join('')).toBe(whole)
    const mini = JSON.parse(whole).mini
    const reference = new MiniSearch<IndexedTitle>({ fields: ['title'] })
    expect(Object.keys(mini).sort()).toEqual(Object.keys(JSON.parse(JSON.stringify(reference))).sort())
    expect(mini.serializationVersion).toBe(2)
    expect(titlesOf(TitleIndex.fromSnapshot(whole) ?? index, 'wormhole ').length).toBe(20)
  })

  it('round-trips through a snapshot, and refuses anything else', () => {
    const index = new TitleIndex()
    index.upsert(title('a', { title: 'Interstellar', people: ['Matthew McConaughey'], version: 3 }))
    index.remove('gone', 5)
    const copy = TitleIndex.fromSnapshot(index.toSnapshot())
    expect(copy?.size).toBe(1)
    expect(copy?.version('gone')).toBe(5)
    expect(copy && titlesOf(copy, 'intersteller ')).toEqual(['Interstellar'])
    expect(copy && titlesOf(copy, 'mccon')).toEqual(['Interstellar'])
    expect(TitleIndex.fromSnapshot('not json')).toBeUndefined()
    expect(copy?.snapshotMeta).toBeNull()
    expect(TitleIndex.fromSnapshot(index.toSnapshot({ position: 7 }))?.snapshotMeta).toEqual({ position: 7 })
    expect(TitleIndex.fromSnapshot(JSON.stringify({ format: 'other' }))).toBeUndefined()
    expect(
      TitleIndex.fromSnapshot(
        index.toSnapshot().replace('"serializationVersion":2', '"serializationVersion":99'),
      ),
    ).toBeUndefined()
  })
})
