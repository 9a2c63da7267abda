import { unprocessable } from '../../../platform/errors.js'
import { TopK } from './topk.js'
import type { ItemFeatures, ItemNeighbours } from './types.js'

/**
 * How much a shared token of each field counts, before its rarity (IDF) scales it: a shared
 * person (director, lead) says more about taste than a shared language or decade.
 */
export const FIELD_WEIGHTS = { genre: 1, person: 1.5, keyword: 1, language: 0.5, decade: 0.5 } as const

const normalise = (value: string) => value.normalize('NFKC').trim().toLowerCase().replace(/\s+/g, ' ')

function tokensOf(features: ItemFeatures): Map<string, number> {
  const tokens = new Map<string, number>()
  const add = (field: keyof typeof FIELD_WEIGHTS, value: string | undefined) => {
    const v = value === undefined ? '' : normalise(value)
    if (v !== '') tokens.set(`${field}:${v}`, FIELD_WEIGHTS[field])
  }
  for (const g of features.genres ?? []) add('genre', g)
  for (const p of features.people ?? []) add('person', p)
  for (const k of features.keywords ?? []) add('keyword', k)
  add('language', features.language)
  if (features.year !== undefined && Number.isFinite(features.year))
    add('decade', String(Math.floor(features.year / 10) * 10))
  return tokens
}

/**
 * Content-based neighbours: each item is a TF-IDF vector over its genre, person, keyword, language
 * and decade tokens (binary term frequency times field weight times smoothed IDF
 * ln((1+N)/(1+df)), so a token every item has counts for nothing), L2-normalised; neighbours are
 * the k items of highest cosine, best first, ties to the lower index. Works for titles nobody has
 * played yet. Cost Σ over tokens of df², computed through an inverted index.
 */
export function contentNeighbours(features: readonly ItemFeatures[], k: number): ItemNeighbours {
  if (!Number.isInteger(k) || k < 1 || k > 1000)
    throw unprocessable('invalid_train_options', `k must be an integer in 1..1000, not ${k}`)
  const n = features.length
  const itemTokens = features.map(tokensOf)
  const df = new Map<string, number>()
  for (const tokens of itemTokens) for (const t of tokens.keys()) df.set(t, (df.get(t) ?? 0) + 1)
  // Token ids and postings (item, weight), items with their vector already normalised.
  const tokenId = new Map<string, number>()
  const postings: Array<{ items: number[]; weights: number[] }> = []
  const vectors: Array<Array<[number, number]>> = []
  for (let i = 0; i < n; i++) {
    const vector: Array<[number, number]> = []
    let norm = 0
    for (const [token, fieldWeight] of itemTokens[i] ?? []) {
      const weight = fieldWeight * Math.log((1 + n) / (1 + (df.get(token) ?? 0)))
      if (weight <= 0) continue
      let id = tokenId.get(token)
      if (id === undefined) {
        id = postings.length
        tokenId.set(token, id)
        postings.push({ items: [], weights: [] })
      }
      vector.push([id, weight])
      norm += weight * weight
    }
    norm = Math.sqrt(norm)
    for (const entry of vector) {
      entry[1] /= norm
      const posting = postings[entry[0]]
      posting?.items.push(i)
      posting?.weights.push(entry[1])
    }
    vectors.push(vector)
  }
  const ids = new Int32Array(n * k)
  const scores = new Float32Array(n * k)
  const dot = new Float64Array(n)
  const touched: number[] = []
  const top = new TopK(k)
  for (let i = 0; i < n; i++) {
    top.reset()
    for (const [id, weight] of vectors[i] ?? []) {
      const posting = postings[id]
      if (!posting) continue
      for (let p = 0; p < posting.items.length; p++) {
        const j = posting.items[p] as number
        if (j === i) continue
        if (dot[j] === 0) touched.push(j)
        dot[j] = (dot[j] as number) + weight * (posting.weights[p] as number)
      }
    }
    for (const j of touched) {
      top.offer(j, dot[j] as number)
      dot[j] = 0
    }
    touched.length = 0
    top.writeTo(i, ids, scores)
  }
  return { k, ids, scores }
}
