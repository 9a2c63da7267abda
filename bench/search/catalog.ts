// The synthetic catalog and typed queries bench/search measures with (deterministic: same every run).
import { MATURITY_RATINGS } from '../../src/services/accounts/rules.js'
import type { TitleDocument } from '../../src/services/catalog/events.js'
import { GENRES } from '../../src/services/catalog/genres.js'
import type { IndexedTitle } from '../../src/services/search/engine.js'
import { terms } from '../../src/services/search/text.js'

/** Deterministic randomness (mulberry32), so every run measures the same catalog and queries. */
export function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A synthetic catalog: Zipf-distributed made-up words, English glue words, people, genres, synopses. */
export function syntheticCatalog(n: number): TitleDocument[] {
  const rand = random(7)
  const syllables =
    'ka lo mi ra ven tor al is an do re su ber lin mar co sha ne ti gra vel os um pri da fen'.split(' ')
  const word = () =>
    Array.from(
      { length: 2 + Math.floor(rand() * 3) },
      () => syllables[Math.floor(rand() * syllables.length)],
    ).join('')
  const vocabulary = [...new Set(Array.from({ length: 30_000 }, word))]
  const zipf = () =>
    vocabulary[Math.min(vocabulary.length - 1, Math.floor(vocabulary.length ** rand()) - 1)] ?? 'x'
  const glue = ['the', 'of', 'a', 'and', 'in', 'to', 'my', 'love', 'man', 'night']
  const firstNames = Array.from({ length: 600 }, word)
  const lastNames = Array.from({ length: 6000 }, word)
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)] as T
  const cap = (w: string) => w.charAt(0).toUpperCase() + w.slice(1)
  const titles: TitleDocument[] = []
  const now = new Date().toISOString()
  for (let i = 0; i < n; i++) {
    const words = Array.from({ length: 1 + Math.floor(rand() * 3) }, () =>
      rand() < 0.2 ? pick(glue) : zipf(),
    )
    if (rand() < 0.25) words.unshift('the')
    titles.push({
      id: `synthetic-${i}`,
      externalId: null,
      type: rand() < 0.8 ? 'movie' : 'series',
      title: words.map(cap).join(' '),
      synopsis: Array.from({ length: 20 + Math.floor(rand() * 20) }, () =>
        rand() < 0.3 ? pick(glue) : zipf(),
      ).join(' '),
      year: 1930 + Math.floor(rand() * 95),
      runtimeMin: 90,
      maturityRating: pick(MATURITY_RATINGS),
      originalLanguage: pick(['en', 'en', 'en', 'fr', 'de', 'es', 'ja', 'ko']),
      countries: [],
      genres: [...new Set(Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(GENRES)))],
      tags: Array.from({ length: 3 + Math.floor(rand() * 4) }, zipf),
      artwork: {},
      credits: Array.from({ length: 4 }, (_, order) => ({
        personId: `p${i}-${order}`,
        name: `${cap(pick(firstNames))} ${cap(pick(lastNames))}`,
        role: 'cast' as const,
        character: null,
        order,
      })),
      availability: [{ region: '*', startsAt: null, endsAt: null }],
      popularity: Math.floor(1 / (rand() + 1e-6)),
      mediaStatus: 'available',
      durationMs: null,
      seasonCount: 0,
      episodeCount: 0,
      version: 1,
      createdAt: now,
      updatedAt: now,
    })
  }
  return titles
}

/** Queries as people type them: 1–3 words of a title, a typo in half the long words, the last word often cut. */
export function typedQueries(titles: IndexedTitle[], n: number): string[] {
  const rand = random(42)
  const out: string[] = []
  while (out.length < n) {
    const words = terms((titles[Math.floor(rand() * titles.length)] as IndexedTitle).title)
    if (words.length === 0) continue
    const q = words.slice(0, 1 + Math.floor(rand() * Math.min(3, words.length))).map((w) => {
      if (w.length < 5 || rand() < 0.5) return w
      const i = 1 + Math.floor(rand() * (w.length - 1))
      return `${w.slice(0, i)}${w[i] === 'e' ? 'a' : 'e'}${w.slice(i + 1)}`
    })
    const last = q[q.length - 1] ?? ''
    if (last.length > 3 && rand() < 0.5) q[q.length - 1] = last.slice(0, Math.max(2, last.length - 2))
    out.push(q.join(' '))
  }
  return out
}
