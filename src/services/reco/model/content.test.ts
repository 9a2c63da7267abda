import { describe, expect, it } from 'vitest'
import { isAppError } from '../../../platform/errors.js'
import { contentNeighbours } from './content.js'
import type { ItemFeatures } from './types.js'

const film = (f: Partial<ItemFeatures>): ItemFeatures => ({ genres: [], people: [], keywords: [], ...f })

const catalog: ItemFeatures[] = [
  film({ genres: ['Drama'], people: ['Ana Lind'], language: 'sv', year: 1994 }), // 0
  film({ genres: ['Comedy'], people: ['Ana Lind'], language: 'en', year: 2011 }), // 1: same director as 0
  film({ genres: ['Drama'], language: 'en', year: 2015 }), // 2: same genre as 0
  film({ genres: ['Horror'], people: ['Jo Park'], keywords: ['zombie'], language: 'en', year: 2012 }), // 3
  film({ genres: ['horror '], keywords: ['Zombie'], language: 'en', year: 1985 }), // 4: 3's genre and keyword, other case
  film({}), // 5: nothing known
  film({ genres: ['Western'], people: ['Amélie Roux'], language: 'fr', year: 1999 }), // 6
  film({ genres: ['Western'], people: ['Ame\u0301lie Roux'], language: 'fr', year: 1960 }), // 7: decomposed é
]

function neighboursOf(i: number, k: number, ids: Int32Array): number[] {
  return [...ids.subarray(i * k, (i + 1) * k)]
}

describe('contentNeighbours', () => {
  it('ranks a shared director above a shared genre, and a shared genre above nothing', () => {
    const { k, ids, scores } = contentNeighbours(catalog, 3)
    expect(k).toBe(3)
    expect(neighboursOf(0, 3, ids).slice(0, 2)).toEqual([1, 2])
    expect(scores[0]).toBeGreaterThan(scores[1] as number)
    expect(neighboursOf(3, 3, ids)[0]).toBe(4)
    expect(neighboursOf(4, 3, ids)[0]).toBe(3)
    // Unicode forms and case do not split a name or a genre.
    expect(neighboursOf(6, 3, ids)[0]).toBe(7)
    expect(scores[6 * 3]).toBeGreaterThan(0.9)
  })

  it('leaves an item with no features without neighbours and out of every list', () => {
    const { ids, scores } = contentNeighbours(catalog, 7)
    expect(neighboursOf(5, 7, ids)).toEqual([-1, -1, -1, -1, -1, -1, -1])
    expect([...ids]).not.toContain(5)
    for (let i = 0; i < catalog.length; i++) {
      const row = neighboursOf(i, 7, ids)
      expect(row).not.toContain(i)
      for (let r = 1; r < 7; r++)
        if ((row[r] as number) >= 0)
          expect(scores[i * 7 + r - 1]).toBeGreaterThanOrEqual(scores[i * 7 + r] as number)
    }
  })

  it('gives a token every item shares no weight', () => {
    const same = [film({ genres: ['Drama'] }), film({ genres: ['Drama'] }), film({ genres: ['Drama'] })]
    expect([...contentNeighbours(same, 2).ids]).toEqual([-1, -1, -1, -1, -1, -1])
  })

  it('refuses a bad k', () => {
    for (const k of [0, 1.5, 1001])
      try {
        contentNeighbours(catalog, k)
        throw new Error('expected an error')
      } catch (e) {
        expect(isAppError(e) && e.code).toBe('invalid_train_options')
      }
  })
})
