import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseRatings, readMovieLens } from './movielens.js'

describe('MovieLens files', () => {
  it('renumbers users and movies densely in order of appearance', () => {
    const r = parseRatings('196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t1\t878887116\n\n')
    expect(r.nUsers).toBe(2)
    expect(r.nItems).toBe(2)
    expect([...r.users]).toEqual([0, 1, 0])
    expect([...r.items]).toEqual([0, 1, 1])
    expect([...r.ratings]).toEqual([3, 3, 1])
    expect(r.userIds).toEqual([196, 186])
    expect(r.itemIds).toEqual([242, 302])
    expect(() => parseRatings('1\tx\t3\n')).toThrow(/line 1/)
    expect(() => parseRatings('\n')).toThrow(/no ratings/)
  })

  it('reads u.item as ISO-8859-1 with its genre flags', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'reel-ml-'))
    try {
      await writeFile(path.join(dir, 'u.data'), '1\t1\t5\t0\n')
      const flags = (set: number[]) =>
        Array.from({ length: 19 }, (_, g) => (set.includes(g) ? 1 : 0)).join('|')
      const line = `1|Cit\xe9 des enfants perdus, La (1995)|01-Jan-1995||http://x|${flags([8, 15])}\n`
      await writeFile(path.join(dir, 'u.item'), Buffer.from(line, 'latin1'))
      const { ratings, movies } = await readMovieLens(dir)
      expect(ratings.users.length).toBe(1)
      expect(movies).toEqual([
        { id: 1, title: 'Cité des enfants perdus, La (1995)', year: 1995, genres: ['Drama', 'Sci-Fi'] },
      ])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
