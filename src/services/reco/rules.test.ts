import { describe, expect, it } from 'vitest'
import {
  affinity,
  emptyModule,
  historyRows,
  type Neighbours,
  type ProfileFacts,
  type Rating,
  scaleScores,
} from './rules.js'
import { applyRules, type HomeRow } from './service.js'
import type { RecoTitle } from './titles.js'
import { visible } from './titles.js'

const title = (id: string, over: Partial<RecoTitle> = {}): RecoTitle => ({
  id,
  type: 'movie',
  title: id,
  year: 2000,
  maturityRating: 'PG',
  language: 'en',
  genres: [{ id: 'comedy', name: 'Comedy' }],
  tags: [],
  people: [],
  availability: [{ region: '*', startsAt: null, endsAt: null }],
  popularity: 0,
  createdAt: '2026-01-01T00:00:00.000Z',
  ...over,
})

const row = (id: string, kind: string, ids: string[]): HomeRow => ({
  id,
  kind,
  title: id,
  reason: id,
  items: ids.map((titleId) => ({ titleId, title: titleId })),
})

describe('the page rules', () => {
  it('shows a title at most twice, drops empty rows and cuts rows to 20', () => {
    const long = Array.from({ length: 30 }, (_, i) => `t${i}`)
    const rows = applyRules(
      [
        row('a', 'trending', ['x', 'y']),
        row('b', 'new', ['x', 'z']),
        row('c', 'genre', ['x']),
        row('d', 'genre', long),
      ],
      undefined,
    )
    expect(rows.map((r) => r.id)).toEqual(['a', 'b', 'd'])
    expect(rows[2]?.items).toHaveLength(20)
  })

  it('takes down-rated titles out of every row but Continue watching, and finished ones out of personal rows', () => {
    const module = { ...emptyModule('p', 0), excluded: ['bad'], completed: ['done'] }
    const rows = applyRules(
      [
        row('cw', 'continue_watching', ['bad', 'done']),
        row('top', 'top_picks', ['bad', 'done', 'ok']),
        row('new', 'new', ['bad', 'done']),
      ],
      module,
    )
    expect(rows.map((r) => [r.id, r.items.map((i) => i.titleId)])).toEqual([
      ['cw', ['bad', 'done']],
      ['top', ['ok']],
      ['new', ['done']],
    ])
  })

  it('counts a reserved (sponsored) title as already shown once', () => {
    const rows = applyRules([row('a', 'trending', ['s']), row('b', 'new', ['s', 't'])], undefined, ['s'])
    expect(rows.map((r) => r.items.map((i) => i.titleId))).toEqual([['s'], ['t']])
  })
})

describe('history rows', () => {
  const titles = new Map(
    [
      title('c1', { people: [{ id: 'dir', name: 'Carla', role: 'director' }] }),
      title('c2', { people: [{ id: 'dir', name: 'Carla', role: 'director' }] }),
      title('c3', { people: [{ id: 'dir', name: 'Carla', role: 'director' }] }),
      title('h1', { genres: [{ id: 'horror', name: 'Horror' }] }),
    ].map((t) => [t.id, t]),
  )
  const neighbours: Neighbours = {
    content: (id) => ({ c1: ['c2', 'c3', 'h1'], c2: ['c1', 'c3'], h1: ['c3', 'c2', 'c1', 'x'] })[id] ?? [],
    cf: (id) => ({ c1: ['c3'] })[id] ?? [],
    withPerson: (id) => (id === 'dir' ? ['c1', 'c2', 'c3'] : []),
  }
  const facts = (ratings: [string, Rating][] = []): ProfileFacts => ({
    profileId: 'p',
    history: [
      { titleId: 'c1', progress: 1, completed: true, lastAt: 2 },
      { titleId: 'c2', progress: 0.5, completed: false, lastAt: 1 },
    ],
    ratings: new Map(ratings),
  })

  it('seeds Because you watched and Others who watched with recent plays, watched titles left out', () => {
    const rows = historyRows(facts(), (id) => titles.get(id), neighbours)
    expect(rows.because).toEqual([
      { seedId: 'c1', items: ['c3', 'h1'] },
      { seedId: 'c2', items: ['c3'] },
    ])
    expect(rows.alsoWatched).toEqual([{ seedId: 'c1', items: ['c3'] }])
    expect(rows.completed).toEqual(['c1'])
    expect(rows.genreAffinity).toEqual({ comedy: 1 })
    // Carla directed both titles watched: a From director row with what is left of her work.
    expect(rows.people).toEqual([{ personId: 'dir', name: 'Carla', role: 'director', items: ['c3'] }])
  })

  it('excludes a down-rated title and its three closest neighbours', () => {
    const rows = historyRows(facts([['h1', 'down']]), (id) => titles.get(id), neighbours)
    expect(rows.excluded.sort()).toEqual(['c1', 'c2', 'c3', 'h1'])
    expect(rows.because.flatMap((r) => r.items)).toEqual([])
  })
})

describe('affinity and visibility', () => {
  it('is the higher of the title’s place in the top picks and the profile’s share of its genres', () => {
    const module = {
      ...emptyModule('p', 0),
      topPicks: ['a', 'b'],
      topScores: [1, 0.4],
      genreAffinity: { comedy: 0.25 },
    }
    expect(affinity(module, title('b'))).toBe(0.4)
    expect(affinity(module, title('z'))).toBe(0.25)
    expect(affinity(module, title('z', { genres: [] }), ['comedy'])).toBe(0.25)
    expect(affinity(emptyModule('p', 0), title('a'))).toBe(0)
  })

  it('scales scores by the best one', () => {
    expect(scaleScores([4, 2, 0, Number.NaN, -1])).toEqual([1, 0.5, 0, 0, 0])
    expect(scaleScores([])).toEqual([])
  })

  it('keeps maturity limits and regional windows', () => {
    const now = Date.parse('2026-06-01T00:00:00Z')
    const viewer = { country: 'DE', maturityLimit: 'PG' as const }
    expect(visible(title('a'), viewer, now)).toBe(true)
    expect(visible(title('a', { maturityRating: 'R' }), viewer, now)).toBe(false)
    expect(
      visible(title('a', { availability: [{ region: 'US', startsAt: null, endsAt: null }] }), viewer, now),
    ).toBe(false)
    const later = [{ region: 'DE', startsAt: '2026-07-01T00:00:00Z', endsAt: null }]
    expect(visible(title('a', { availability: later }), viewer, now)).toBe(false)
  })
})
