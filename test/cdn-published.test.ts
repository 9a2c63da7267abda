import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SeenPublished } from '../src/services/cdn/edge-server.js'
import { cdnMigrations } from '../src/services/cdn/migrations.js'
import { CdnService, type PublishedPage, RegionTable } from '../src/services/cdn/service.js'
import { CdnStore } from '../src/services/cdn/store.js'
import { UrlSigner } from '../src/services/cdn/tokens.js'
import type { TitlePublished } from '../src/services/media/events.js'
import { hasPostgres, type TestDb, testDb } from './engines.js'

// The log of published titles that edges without the event bus poll: a title recorded below an
// edge's cursor after the edge read past it (PostgreSQL: one process's seq committed after
// another's higher one) still reaches the edge, and a cursor from another log is not echoed forever.

const title = (titleId: string): TitlePublished => ({
  titleId,
  title: titleId,
  durationMs: 4000,
  masterPlaylistKey: `titles/${titleId}/hls/master.m3u8`,
  prefix: `titles/${titleId}/`,
  posterKey: `titles/${titleId}/poster.jpg`,
  thumbnailsKey: `titles/${titleId}/thumbs.vtt`,
  renditions: [],
  bytes: 0,
})

const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

describe.each(kinds)('published titles for polling edges on %s', (kind) => {
  let test: TestDb
  let cdn: CdnService
  const clock = { now: Date.now() }
  const EDGE = 'edge-poll'

  beforeAll(async () => {
    test = await testDb(kind)
    await test.db.migrate(cdnMigrations)
    cdn = new CdnService({
      store: new CdnStore(test.db),
      signer: new UrlSigner(randomBytes(32)),
      settings: {
        edgeTimeoutMs: 60_000,
        edgesPerTitle: 1,
        regionHeader: '',
        regions: RegionTable.parse(''),
        publicUrl: '',
      },
      now: () => clock.now,
    })
    await cdn.report({
      id: EDGE,
      url: 'http://127.0.0.1:9/edge',
      region: '*',
      capacityBytes: 1e9,
      usedBytes: 0,
      healthy: true,
    })
  })
  afterAll(() => test?.cleanup())

  /** What an edge polling from `cursor` fills: every page until the cursor stays, seen ids skipped. */
  async function poll(seen: SeenPublished, cursor: number | undefined) {
    const filled: string[] = []
    for (;;) {
      const page: PublishedPage = await cdn.publishedFor(EDGE, cursor, 20)
      filled.push(...seen.fresh(page).map((t) => t.titleId))
      if (page.cursor === cursor) return { filled, cursor }
      cursor = page.cursor
    }
  }

  it('a cursor past every recorded title is answered from this log (the recent titles, a cursor below it)', async () => {
    await cdn.recordPublished(`ev-${kind}-a`, clock.now, title('reset-a'))
    const page = await cdn.publishedFor(EDGE, 1_000_000, 20)
    expect(page.titles.map((t) => t.titleId)).toContain('reset-a')
    expect(page.cursor).toBeLessThan(1_000_000)
    // The edge follows the log from there: a title published next reaches it once.
    const seen = new SeenPublished()
    const first = await poll(seen, 1_000_000)
    expect(first.filled).toContain('reset-a')
    await cdn.recordPublished(`ev-${kind}-b`, clock.now, title('reset-b'))
    const next = await poll(seen, first.cursor)
    expect(next.filled).toEqual(['reset-b'])
    expect((await poll(seen, next.cursor)).filled).toEqual([])
  })

  it.skipIf(kind !== 'postgres')(
    'a title whose seq commits after a higher one an edge has read still reaches the edge, once',
    async () => {
      const seen = new SeenPublished()
      const start = await poll(seen, undefined)
      const db = test.db.kysely
      let commit = () => {}
      const committing = new Promise<void>((resolve) => {
        commit = resolve
      })
      let inserted = () => {}
      const hasInserted = new Promise<void>((resolve) => {
        inserted = resolve
      })
      // Process A takes its seq first and commits last.
      const slow = db.transaction().execute(async (trx) => {
        await sql`insert into cdn_published (event_id, title_id, data, published_at, recorded_at)
          values (${'ev-late'}, ${'late'}, ${JSON.stringify(title('late'))}, ${clock.now}, ${clock.now})`.execute(
          trx,
        )
        inserted()
        await committing
      })
      await hasInserted
      await cdn.recordPublished('ev-early', clock.now, title('early'))
      const before = await poll(seen, start.cursor)
      expect(before.filled).toEqual(['early'])
      commit()
      await slow
      const after = await poll(seen, before.cursor)
      expect(after.filled).toEqual(['late'])
      expect((await poll(seen, after.cursor)).filled).toEqual([])
    },
  )
})

describe('an edge skips the published titles it has had', () => {
  it('by event id, bounded; titles without ids (an older server) always pass', () => {
    const seen = new SeenPublished(2)
    const page = (ids: string[]) => ({ titles: ids.map(title), eventIds: ids })
    expect(seen.fresh(page(['a', 'b'])).map((t) => t.titleId)).toEqual(['a', 'b'])
    expect(seen.fresh(page(['b', 'c'])).map((t) => t.titleId)).toEqual(['c'])
    // 'a' was forgotten to stay within 2 ids.
    expect(seen.fresh(page(['a'])).map((t) => t.titleId)).toEqual(['a'])
    expect(seen.fresh({ titles: [title('x')] }).map((t) => t.titleId)).toEqual(['x'])
  })
})
