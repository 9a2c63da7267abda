import { badRequest } from '../../platform/errors.js'
import { terms } from './text.js'

/** Groups of phrases that mean the same to a searcher; administrators replace them (PUT /api/v1/admin/search/synonyms). */
export const DEFAULT_SYNONYMS: readonly string[][] = [
  ['sci-fi', 'science fiction', 'scifi'],
  ['movie', 'film'],
  ['tv', 'television'],
  ['doc', 'documentary'],
  ['romcom', 'romantic comedy'],
  ['ww2', 'wwii', 'world war ii', 'world war 2', 'second world war'],
  ['ww1', 'wwi', 'world war i', 'world war 1', 'first world war'],
  ['animated', 'animation', 'cartoon'],
  ['kids', 'children', 'family'],
]

export const MAX_GROUPS = 1000
export const MAX_PHRASES = 20
export const MAX_PHRASE_CHARS = 60

/** Phrases as folded words, each group keeping at least two distinct phrases. */
export type SynonymTable = string[][][]

/** Checks synonym groups and folds them into the table queries expand with. */
export function compileSynonyms(groups: readonly (readonly string[])[]): SynonymTable {
  if (groups.length > MAX_GROUPS) throw badRequest('invalid_synonyms', `At most ${MAX_GROUPS} groups`)
  return groups.map((group) => {
    if (group.length < 2 || group.length > MAX_PHRASES)
      throw badRequest('invalid_synonyms', `A group has 2 to ${MAX_PHRASES} phrases`)
    const phrases = group.map((phrase) => {
      const words = terms(phrase)
      if (words.length === 0 || words.length > 5 || phrase.length > MAX_PHRASE_CHARS)
        throw badRequest(
          'invalid_synonyms',
          `A phrase has 1 to 5 words and at most ${MAX_PHRASE_CHARS} characters`,
        )
      return words
    })
    const distinct = new Map(phrases.map((p) => [p.join(' '), p]))
    if (distinct.size < 2) throw badRequest('invalid_synonyms', 'A group needs two different phrases')
    return [...distinct.values()]
  })
}

/** One position of a query: the words as typed, or the phrases a synonym group offers instead. */
export interface Slot {
  /** Each alternative is a list of words that must all match. */
  alternatives: string[][]
  /** The words as typed (for exact-title checks and highlighting). */
  typed: string[]
  /** True when an alternative is a synonym rather than what was typed. */
  expanded: boolean
}

/** Splits query words into slots, replacing phrases found in the table by their whole group (longest phrase first). */
export function expand(words: readonly string[], table: SynonymTable): Slot[] {
  const slots: Slot[] = []
  let i = 0
  while (i < words.length) {
    let best: { length: number; group: string[][] } | undefined
    for (const group of table) {
      for (const phrase of group) {
        if (phrase.length <= (best?.length ?? 0) || i + phrase.length > words.length) continue
        if (phrase.every((w, k) => words[i + k] === w)) best = { length: phrase.length, group }
      }
    }
    if (best) {
      const typed = words.slice(i, i + best.length)
      const alternatives = [typed, ...best.group.filter((p) => p.join(' ') !== typed.join(' '))]
      slots.push({ alternatives, typed, expanded: true })
      i += best.length
    } else {
      const word = words[i] ?? ''
      slots.push({ alternatives: [[word]], typed: [word], expanded: false })
      i++
    }
  }
  return slots
}
