import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { playbackMigrations } from '../src/services/playback/migrations.js'
import { PlaybackStore, type ProgressRow, type SessionRow } from '../src/services/playback/store.js'
import { hasPostgres, type TestDb, testDb } from './engines.js'

// The write-behind's upserts (hand-written statements): what a flush may and may not overwrite.

const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

const progress = (over: Partial<ProgressRow>): ProgressRow => ({
  profile_id: 'p1',
  media_id: 'm1',
  title_id: 't1',
  title_type: 'episode',
  series_id: 't1',
  season_id: 's1',
  position_ms: 1000,
  duration_ms: 60_000,
  completed: 0,
  updated_at: 1000,
  ...over,
})
const session = (over: Partial<SessionRow>): SessionRow => ({
  id: 'x1',
  account_id: 'a1',
  profile_id: 'p1',
  title_id: 't1',
  media_id: 'm1',
  device: "Robert'); DROP TABLE playback_sessions;-- 📺",
  region: 'US',
  max_height: 1080,
  position_ms: 0,
  duration_ms: 60_000,
  started_at: 1000,
  seen_at: 1000,
  stopped_at: null,
  ...over,
})

describe.each(kinds)('the playback store on %s', (kind) => {
  let test: TestDb
  let store: PlaybackStore

  beforeAll(async () => {
    test = await testDb(kind)
    await test.db.migrate(playbackMigrations)
    store = new PlaybackStore(test.db)
  })
  afterAll(() => test?.cleanup())

  it('keeps the newest position per (profile, title): an older report never overwrites it', async () => {
    await store.writeBehind([progress({ position_ms: 5000, updated_at: 3000 })], [])
    await store.writeBehind([progress({ position_ms: 2000, updated_at: 2000, completed: 1 })], [])
    expect(await store.progress('p1', 'm1')).toMatchObject({
      position_ms: 5000,
      updated_at: 3000,
      completed: 0,
    })
    await store.writeBehind(
      [progress({ position_ms: 59_000, updated_at: 4000, completed: 1, season_id: null })],
      [],
    )
    expect(await store.progress('p1', 'm1')).toMatchObject({
      position_ms: 59_000,
      completed: 1,
      season_id: null,
      series_id: 't1',
      title_type: 'episode',
    })
  })

  it('updates a live session row, and a stopped one is final', async () => {
    await store.writeBehind([], [session({})])
    await store.writeBehind([], [session({ position_ms: 3000, seen_at: 4000 })])
    expect(await store.session('x1')).toMatchObject({ position_ms: 3000, seen_at: 4000, stopped_at: null })
    await store.writeBehind([], [session({ position_ms: 7000, seen_at: 8000, stopped_at: 8000 })])
    await store.writeBehind([], [session({ position_ms: 9000, seen_at: 9000 })]) // a late heartbeat's flush
    expect(await store.session('x1')).toMatchObject({
      position_ms: 7000,
      seen_at: 8000,
      stopped_at: 8000,
      device: "Robert'); DROP TABLE playback_sessions;-- 📺",
    })
  })

  it('writes many rows in several statements, in one flush', async () => {
    const rows = Array.from({ length: 600 }, (_, i) =>
      progress({ profile_id: `bulk-${i}`, media_id: 'm2', position_ms: i, updated_at: 10 + i }),
    )
    const sessions = Array.from({ length: 260 }, (_, i) => session({ id: `bulk-${i}`, position_ms: i }))
    await store.writeBehind(rows, sessions)
    expect((await store.progress('bulk-599', 'm2'))?.position_ms).toBe(599)
    expect((await store.progress('bulk-0', 'm2'))?.position_ms).toBe(0)
    expect((await store.session('bulk-259'))?.position_ms).toBe(259)
  })
})
