import { readFile } from 'node:fs/promises'
import path from 'node:path'

/** MovieLens ratings with users and movies renumbered densely in order of first appearance. */
export interface MovieLensRatings {
  nUsers: number
  nItems: number
  users: Int32Array
  items: Int32Array
  ratings: Float32Array
  /** The original ids: userIds[u], itemIds[i]. */
  userIds: number[]
  itemIds: number[]
}

export interface MovieLensMovie {
  id: number
  title: string
  year?: number
  genres: string[]
}

/** Parses u.data (`user \t item \t rating \t time`, one rating a line). */
export function parseRatings(text: string): MovieLensRatings {
  const lines = text.split('\n')
  const users: number[] = []
  const items: number[] = []
  const ratings: number[] = []
  const userIndex = new Map<number, number>()
  const itemIndex = new Map<number, number>()
  lines.forEach((line, n) => {
    if (line.trim() === '') return
    const [user, item, rating] = line.split('\t').map(Number)
    if (!Number.isInteger(user) || !Number.isInteger(item) || !Number.isFinite(rating))
      throw new Error(`u.data line ${n + 1} is not "user<TAB>item<TAB>rating<TAB>time": ${line.slice(0, 80)}`)
    const u = userIndex.get(user as number) ?? userIndex.set(user as number, userIndex.size).size - 1
    const i = itemIndex.get(item as number) ?? itemIndex.set(item as number, itemIndex.size).size - 1
    users.push(u)
    items.push(i)
    ratings.push(rating as number)
  })
  if (users.length === 0) throw new Error('u.data holds no ratings')
  return {
    nUsers: userIndex.size,
    nItems: itemIndex.size,
    users: Int32Array.from(users),
    items: Int32Array.from(items),
    ratings: Float32Array.from(ratings),
    userIds: [...userIndex.keys()],
    itemIds: [...itemIndex.keys()],
  }
}

/** Parses u.item (`id|title|release date|video date|url|19 genre flags`), already decoded from ISO-8859-1. */
export function parseMovies(
  text: string,
  genreNames: readonly string[] = MOVIELENS_GENRES,
): MovieLensMovie[] {
  const movies: MovieLensMovie[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const fields = line.split('|')
    const id = Number(fields[0])
    if (!Number.isInteger(id) || fields.length < 5 + genreNames.length) continue
    const flags = fields.slice(5, 5 + genreNames.length)
    const year = /(\d{4})\s*$/.exec(fields[2] ?? '')?.[1]
    movies.push({
      id,
      title: fields[1] ?? '',
      ...(year ? { year: Number(year) } : {}),
      genres: genreNames.filter((_, g) => flags[g] === '1'),
    })
  }
  return movies
}

export const MOVIELENS_GENRES = [
  'unknown',
  'Action',
  'Adventure',
  'Animation',
  "Children's",
  'Comedy',
  'Crime',
  'Documentary',
  'Drama',
  'Fantasy',
  'Film-Noir',
  'Horror',
  'Musical',
  'Mystery',
  'Romance',
  'Sci-Fi',
  'Thriller',
  'War',
  'Western',
] as const

/** Reads a MovieLens-100K folder: u.data, and u.item when present (it is ISO-8859-1, not UTF-8). */
export async function readMovieLens(
  dir: string,
): Promise<{ ratings: MovieLensRatings; movies: MovieLensMovie[] }> {
  const ratings = parseRatings(await readFile(path.join(dir, 'u.data'), 'utf8'))
  const itemFile = await readFile(path.join(dir, 'u.item')).catch(() => undefined)
  const movies = itemFile ? parseMovies(new TextDecoder('latin1').decode(itemFile)) : []
  return { ratings, movies }
}
