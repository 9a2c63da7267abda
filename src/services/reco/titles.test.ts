import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createDb, type Db } from '../../platform/db/db.js'
import { recoMigrations } from './migrations.js'
import { RecoStore } from './store.js'
import { type RecoTitle, TitleIndex } from './titles.js'

const title = (id: string, name: string): RecoTitle => ({
  id,
  type: 'movie',
  title: name,
  year: 2020,
  maturityRating: 'PG',
  language: 'en',
  genres: [],
  tags: [],
  people: [],
  availability: [{ region: '*', startsAt: null, endsAt: null }],
  popularity: 1,
  createdAt: '2020-01-01T00:00:00.000Z',
})

describe("reco's copy of the catalog (TitleIndex)", () => {
  let db: Db
  let store: RecoStore
  beforeEach(async () => {
    db = createDb({ sqliteFile: ':memory:' })
    await db.migrate(recoMigrations)
    store = new RecoStore(db)
  })
  afterEach(async () => {
    await db.close()
  })

  it('keeps the newest version in memory when an older upsert comes late or after a remove', async () => {
    const index = new TitleIndex(store)
    expect(index.apply('t1', 2, title('t1', 'New'))).toBe(true)
    expect(index.apply('t1', 1, title('t1', 'Old'))).toBe(false)
    expect(index.apply('t1', 2, title('t1', 'New'))).toBe(false)
    expect(index.get('t1')?.title).toBe('New')
    expect(index.apply('t1', 3, undefined)).toBe(true)
    expect(index.apply('t1', 2, title('t1', 'New'))).toBe(false)
    expect(index.get('t1')).toBeUndefined()

    // Read from the DB: a row older than what this process applied changes nothing.
    await store.putTitle('t2', 1, false, JSON.stringify(title('t2', 'Old')), 1000)
    index.apply('t2', 2, title('t2', 'New'))
    const version = index.version
    await index.fresh(true)
    expect(index.get('t2')?.title).toBe('New')
    expect(index.version).toBe(version)
  })
  it('reads a row stamped earlier but committed after the last look, and counts rows read again as no change', async () => {
    const index = new TitleIndex(store)
    await store.putTitle('a', 1, false, JSON.stringify(title('a', 'A')), 100_000)
    await index.fresh(true)
    expect(index.get('a')?.title).toBe('A')
    const version = index.version
    // Another process stamped this row 5 s before 'a' but committed it after this process looked.
    await store.putTitle('b', 1, false, JSON.stringify(title('b', 'B')), 95_000)
    await index.fresh(true)
    expect(index.get('b')?.title).toBe('B')
    expect(index.version).toBe(version + 1)
    await index.fresh(true)
    expect(index.version).toBe(version + 1)
  })
})
