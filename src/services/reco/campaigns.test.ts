import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MemoryCache } from '../../platform/cache/index.js'
import { createDb, type Db } from '../../platform/db/db.js'
import { type CampaignInput, Campaigns } from './campaigns.js'
import { recoMigrations } from './migrations.js'
import { emptyModule } from './rules.js'
import { RecoStore } from './store.js'
import type { RecoTitle } from './titles.js'

const title: RecoTitle = {
  id: 't1',
  type: 'movie',
  title: 'Sponsored',
  year: 2020,
  maturityRating: 'PG',
  language: 'en',
  genres: [],
  tags: [],
  people: [],
  availability: [{ region: '*', startsAt: null, endsAt: null }],
  popularity: 1,
  createdAt: '2020-01-01T00:00:00.000Z',
}

const input: CampaignInput = {
  name: 'c',
  advertiser: 'a',
  titleId: 't1',
  segment: { regions: ['*'] },
  budget: 100,
  startsAt: new Date(Date.now() - 3600_000).toISOString(),
  endsAt: new Date(Date.now() + 3600_000).toISOString(),
  pacing: 'asap',
  minAffinity: 0,
}

describe('sponsored campaigns across processes', () => {
  let db: Db
  let store: RecoStore
  // Near the real time: a process also reads its live list again when Date.now() has moved on.
  let now = Date.now()
  const processOf = () =>
    new Campaigns(
      store,
      new MemoryCache({ maxEntries: 1000 }),
      () => now,
      async () => true,
    )
  beforeEach(async () => {
    db = createDb({ sqliteFile: ':memory:' })
    await db.migrate(recoMigrations)
    store = new RecoStore(db)
  })
  afterEach(async () => {
    await db.close()
  })

  it('gives back what a process reserved once the campaign is changed in another process', async () => {
    const a = processOf()
    const b = processOf()
    const c = await b.create(input)
    const viewer = { country: 'DE', maturityLimit: 'NC-17' } as const
    const picked = await a.pick('p1', viewer, emptyModule('p1', now), (id) =>
      id === 't1' ? title : undefined,
    )
    expect(picked?.campaign.id).toBe(c.id)
    // A holds the rest of its reservation: the DB counts them until it gives them back.
    expect((await b.get(c.id)).impressions).toBeGreaterThan(1)
    now += 1000
    await b.update(c.id, { ...input, name: 'renamed' })
    now += 3000
    // A's next page reads the live list again and gives back the lease of the campaign as it was.
    await a.pick('p2', viewer, emptyModule('p2', now), () => undefined)
    expect((await b.get(c.id)).impressions).toBe(1)
  })
  it('serves again after a failed reservation, without counting the failed page against the frequency cap', async () => {
    const a = processOf()
    const c = await a.create({ ...input, frequencyCap: 1 })
    const viewer = { country: 'DE', maturityLimit: 'NC-17' } as const
    const pick = (profileId: string) =>
      a.pick(profileId, viewer, emptyModule(profileId, now), (id) => (id === 't1' ? title : undefined))
    // Serves the whole first reservation, so the next page reserves again.
    for (let i = 0; i < 10; i++) expect((await pick(`p${i}`))?.campaign.id).toBe(c.id)
    const rename = (from: string, to: string) => db.kysely.schema.alterTable(from).renameTo(to).execute()
    await rename('reco_campaigns', 'reco_campaigns_away')
    await expect(pick('late')).rejects.toThrow()
    await rename('reco_campaigns_away', 'reco_campaigns')
    expect((await pick('late'))?.campaign.id).toBe(c.id)
    await a.release()
    expect((await a.get(c.id)).impressions).toBe(11)
  })
})
