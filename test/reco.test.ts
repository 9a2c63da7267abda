import { setTimeout as sleep } from 'node:timers/promises'
import { Command } from 'commander'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { registerRecoCommands } from '../src/cli/reco.js'
import { createReel } from '../src/platform/app.js'
import type { PublishInput } from '../src/platform/bus/bus.js'
import { createLogger } from '../src/platform/log.js'
import { registry } from '../src/platform/metrics.js'
import {
  PLAYBACK_STARTED,
  PLAYBACK_STOPPED,
  type PlaybackEventBase,
} from '../src/services/playback/events.js'
import { PlaybackStore } from '../src/services/playback/store.js'
import { contentInWorker } from '../src/services/reco/content.js'
import { trainInWorker } from '../src/services/reco/model/worker.js'
import { RecoStore } from '../src/services/reco/store.js'
import { Trainer } from '../src/services/reco/training.js'
import { engines, hasPostgres } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'
const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE

interface Row {
  id: string
  kind: string
  title: string
  reason?: string
  sponsored?: boolean
  campaignId?: string
  items: { titleId: string; title: string }[]
}
interface Page {
  rows: Row[]
  fallback?: boolean
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

const waitingRecomputations = async () =>
  (await registry.getSingleMetric('reco_recomputations_waiting')?.get())?.values[0]?.value

const idsOf = (row: Row | undefined) => row?.items.map((i) => i.titleId) ?? []
const allIds = (page: Page) => page.rows.flatMap(idsOf)

/** A reel with a small catalog of planted tastes: comedies, horror (rated R), dramas, one US-only comedy. */
class World {
  t!: TestReel
  admin = ''
  member = { token: '', profileId: '' }
  titles = new Map<string, { id: string; title: string }>()
  private seq = 0
  private accounts = 0

  async start(db: 'sqlite' | 'postgres', env: Record<string, string> = {}) {
    this.t = await startReel(db, {
      REEL_RECO_TRAIN_INTERVAL_S: '0',
      REEL_RECO_TRAIN_AFTER_EVENTS: '0',
      ...env,
    })
    await this.t.reel.use('accounts').createAdmin('reco-admin@example.com', PASSWORD)
    this.admin = (
      await this.t.call('POST', '/api/v1/sessions', {
        body: { email: 'reco-admin@example.com', password: PASSWORD },
      })
    ).json().accessToken
    this.member = await this.account('DE')
    return this
  }

  async account(country: string): Promise<{ token: string; profileId: string }> {
    const signUp = await this.t.call('POST', '/api/v1/accounts', {
      body: {
        email: `reco-${this.accounts++}-${country}@example.com`,
        password: PASSWORD,
        plan: 'premium',
        country,
      },
    })
    expect(signUp.statusCode, signUp.body).toBe(201)
    const token = signUp.json().tokens.accessToken as string
    const profiles = (await this.t.call('GET', '/api/v1/profiles', { token })).json().profiles
    return { token, profileId: profiles[0].id }
  }

  async profile(token: string, body: Record<string, unknown>): Promise<string> {
    const res = await this.t.call('POST', '/api/v1/profiles', { token, body })
    expect(res.statusCode, res.body).toBe(201)
    return res.json().id
  }

  async title(name: string, over: Record<string, unknown>) {
    const res = await this.t.call('POST', '/api/v1/admin/titles', {
      token: this.admin,
      body: {
        type: 'movie',
        title: name,
        maturityRating: 'PG',
        year: 2000 + (this.seq++ % 20),
        availability: [{ region: '*' }],
        ...over,
      },
    })
    expect(res.statusCode, res.body).toBe(201)
    const t = res.json() as { id: string; title: string }
    this.titles.set(name, t)
    return t
  }

  id(name: string): string {
    const t = this.titles.get(name)
    if (!t) throw new Error(`no title ${name}`)
    return t.id
  }

  async plantedCatalog() {
    for (let i = 1; i <= 6; i++)
      await this.title(`Comedy ${i}`, {
        genres: ['comedy'],
        tags: ['funny', 'friends'],
        credits: [
          { name: 'Carla Jester', role: 'director' },
          { name: `Comic Actor ${i % 3}`, role: 'cast' },
        ],
      })
    for (let i = 1; i <= 6; i++)
      await this.title(`Horror ${i}`, {
        genres: ['horror'],
        maturityRating: 'R',
        tags: ['scary', 'night'],
        credits: [{ name: 'Hugo Dread', role: 'director' }],
      })
    for (let i = 1; i <= 3; i++) await this.title(`Drama ${i}`, { genres: ['drama'], tags: ['tears'] })
    await this.title('Comedy US', {
      genres: ['comedy'],
      tags: ['funny', 'friends'],
      availability: [{ region: 'US' }],
      credits: [{ name: 'Carla Jester', role: 'director' }],
    })
    await this.reco.titles.fresh(true)
    await until(
      async () => (await this.reco.titles.fresh(true)).size >= this.titles.size,
      'reco to see the catalog',
    )
  }

  get reco() {
    return this.t.reel.use('reco')
  }

  private eventSeq = 0
  /** A playback event of the published contract, as the playback service sends it. */
  play(profileId: string, title: string, kind: 'started' | 'stopped', completed = false): PublishInput {
    const durationMs = 100 * MINUTE
    const base: PlaybackEventBase = {
      sessionId: `session-${profileId}-${title}`,
      accountId: `account-${profileId}`,
      profileId,
      titleId: this.id(title),
      titleType: 'movie',
      seriesId: null,
      seasonId: null,
      region: 'DE',
      positionMs: kind === 'started' ? 0 : completed ? durationMs : durationMs / 2,
      durationMs,
      at: new Date(this.t.clock.now).toISOString(),
    }
    return {
      id: `reco-ev-${process.pid}-${this.eventSeq++}`,
      type: kind === 'started' ? PLAYBACK_STARTED : PLAYBACK_STOPPED,
      key: profileId,
      data:
        kind === 'started'
          ? { ...base, resumeAtMs: 0, maxHeight: 1080, device: 'test' }
          : { ...base, watchedMs: base.positionMs, completed },
    }
  }

  /** Publishes plays on the Bus and waits until reco has taken them in. */
  async watch(profileId: string, titles: string[], completed = true) {
    const before = this.reco.eventsSeen
    for (const title of titles) {
      await this.t.reel.ports.bus.publish(this.play(profileId, title, 'started'))
      await this.t.reel.ports.bus.publish(this.play(profileId, title, 'stopped', completed))
    }
    await until(() => this.reco.eventsSeen >= before + titles.length * 2, 'reco to take in the plays')
    // Its rows are recomputed a moment after a burst of plays: now, for the test.
    await this.reco.flushRefreshes()
  }

  async train() {
    const res = await this.t.call('POST', '/api/v1/admin/reco/train', { token: this.admin })
    expect(res.statusCode, res.body).toBe(200)
    return res.json()
  }

  async home(token: string, profileId: string): Promise<Page> {
    const res = await this.t.call('GET', `/api/v1/profiles/${profileId}/home`, { token })
    expect(res.statusCode, res.body).toBe(200)
    return res.json() as Page
  }
}

/** Every page keeps these rules. */
function expectRules(page: Page) {
  const count = new Map<string, number>()
  for (const row of page.rows) {
    expect(row.items.length).toBeGreaterThan(0)
    expect(row.reason, `row ${row.id} has a reason`).toMatch(/\w/)
    for (const id of idsOf(row)) count.set(id, (count.get(id) ?? 0) + 1)
  }
  for (const [id, n] of count) expect(n, `${id} appears ${n} times`).toBeLessThanOrEqual(2)
}

/** A batch of plays with repeats of one title: each fact keeps its largest value, whatever the order. */
async function recordsABatchOfPlays(w: World): Promise<void> {
  const store = new RecoStore(w.t.reel.ports.db)
  const profile = `batch-of-plays-${w.t.reel.ports.db.kind}`
  const [one, two] = [w.id('Drama 1'), w.id('Drama 2')]
  await store.recordPlays([
    { profile_id: profile, title_id: one, progress: 0.2, completed: 0, last_at: 100 },
    { profile_id: profile, title_id: one, progress: 0.7, completed: 0, last_at: 300 },
    { profile_id: profile, title_id: one, progress: 0.5, completed: 1, last_at: 200 },
    { profile_id: profile, title_id: two, progress: 0.1, completed: 0, last_at: 50 },
  ])
  // A later batch with smaller values lowers nothing.
  await store.recordPlays([{ profile_id: profile, title_id: one, progress: 0.1, completed: 0, last_at: 10 }])
  const rows = await store.historyRows([
    { profileId: profile, titleId: one },
    { profileId: profile, titleId: two },
    { profileId: profile, titleId: 'no-such-title' },
    { profileId: 'no-such-profile', titleId: one },
  ])
  expect(rows.sort((a, b) => a.last_at - b.last_at)).toEqual([
    { profile_id: profile, title_id: two, progress: 0.1, completed: 0, last_at: 50 },
    { profile_id: profile, title_id: one, progress: 0.7, completed: 1, last_at: 300 },
  ])
}

describe('recommendations (SQLite)', () => {
  const w = new World()
  let comic: string
  let scary: string
  let kids: string

  beforeAll(async () => {
    await w.start('sqlite')
    await w.plantedCatalog()
    // Other viewers with planted tastes: comedy fans watch comedies together, horror fans horror.
    for (let i = 0; i < 12; i++) {
      const picks = [1, 2, 3, 4, 5, 6].filter((n) => (n + i) % 3 !== 0)
      await w.watch(
        `fan-comedy-${i}`,
        picks.map((n) => `Comedy ${n}`),
      )
      await w.watch(
        `fan-horror-${i}`,
        picks.map((n) => `Horror ${n}`),
      )
    }
    comic = w.member.profileId
    scary = await w.profile(w.member.token, { name: 'Scary' })
    kids = await w.profile(w.member.token, { name: 'Little', kids: true })
    await w.watch(comic, ['Comedy 1', 'Comedy 2'])
    await w.watch(scary, ['Horror 1', 'Horror 2'])
  }, 120_000)
  afterAll(() => w.t.stop())

  it('gives a profile with no history useful rows and no error', async () => {
    const fresh = await w.account('DE')
    const page = await w.home(fresh.token, fresh.profileId)
    const kinds = page.rows.map((r) => r.kind)
    expect(kinds).toContain('new')
    expect(kinds).toContain('genre')
    expect(kinds).not.toContain('top_picks')
    expect(page.fallback).toBeUndefined()
    expectRules(page)
  })

  it('trains top picks, others-also-watched and people rows from planted tastes', async () => {
    const report = await w.train()
    expect(report.profiles).toBeGreaterThanOrEqual(26)
    expect(report.titles).toBe(w.titles.size)
    const status = (await w.t.call('GET', '/api/v1/reco/status')).json()
    expect(status.lastRun.report).toMatchObject({ runId: report.runId, profiles: report.profiles })
    expect(status.training).toBe(false)
    expect((await w.t.call('POST', '/api/v1/admin/reco/train', { token: w.member.token })).statusCode).toBe(
      403,
    )
    const page = await w.home(w.member.token, comic)
    expectRules(page)
    const top = page.rows.find((r) => r.kind === 'top_picks')
    expect(top?.title).toMatch(/^Top picks for \S/)
    const picks = idsOf(top).slice(0, 3)
    expect(picks.length).toBe(3)
    for (const id of picks) expect([...w.titles].find(([, t]) => t.id === id)?.[0]).toMatch(/^Comedy [3-6]$/)
    const because = page.rows.find((r) => r.kind === 'because_you_watched')
    expect(because?.title).toMatch(/^Because you watched Comedy [12]$/)
    // The module holds more rows than a small catalog can show: a title appears at most twice per page.
    const module = await w.reco.module(comic)
    const nameOf = (id: string) => [...w.titles].find(([, t]) => t.id === id)?.[0]
    expect(module?.alsoWatched.map((r) => nameOf(r.seedId)).sort()).toEqual(['Comedy 1', 'Comedy 2'])
    for (const r of module?.alsoWatched ?? [])
      for (const id of r.items) expect(nameOf(id)).toMatch(/^Comedy [3-6]$/)
    expect(module?.people[0]).toMatchObject({ name: 'Carla Jester', role: 'director' })
    expect(module?.people[0]?.items).toContain(w.id('Comedy 4'))
    expect(module?.genreAffinity).toEqual({ comedy: 1 })
    // Watched to the end: out of the personalized rows; the US-only comedy never shows in Germany.
    for (const row of page.rows.filter((r) =>
      ['top_picks', 'because_you_watched', 'others_also_watched', 'from_director'].includes(r.kind),
    ))
      expect(idsOf(row)).not.toContain(w.id('Comedy 1'))
    expect(allIds(page)).not.toContain(w.id('Comedy US'))
    const metrics = (await w.t.call('GET', '/metrics')).body
    expect(metrics).toMatch(/reco_training_runs_total\{status="succeeded"\} [1-9]/)
    expect(metrics).toMatch(/reco_home_pages_total\{source="module"\} [1-9]/)
    expect(metrics).toContain('reco_training_duration_seconds_count')

    const horror = await w.home(w.member.token, scary)
    const scaryTop = idsOf(horror.rows.find((r) => r.kind === 'top_picks')).slice(0, 3)
    for (const id of scaryTop)
      expect([...w.titles].find(([, t]) => t.id === id)?.[0]).toMatch(/^Horror [3-6]$/)
  })

  it('records a batch of plays in one statement, merging repeats of a title', () => recordsABatchOfPlays(w))

  it('shows "Because you watched" for a play within moments, without training', async () => {
    const page = await w.home(w.member.token, scary)
    expect(page.rows.find((r) => r.title === 'Because you watched Drama 1')).toBeUndefined()
    w.t.clock.advance(MINUTE)
    await w.t.reel.ports.bus.publish(w.play(scary, 'Drama 1', 'started'))
    await until(
      async () =>
        (await w.home(w.member.token, scary)).rows.some((r) => r.title === 'Because you watched Drama 1'),
      'Because you watched Drama 1',
    )
    const row = (await w.home(w.member.token, scary)).rows.find(
      (r) => r.title === 'Because you watched Drama 1',
    )
    expect(row?.kind).toBe('because_you_watched')
    expect(row?.reason).toBe('Because you watched Drama 1')
    expect(idsOf(row)).toEqual(expect.arrayContaining([w.id('Drama 2'), w.id('Drama 3')]))
    expect(idsOf(row)).not.toContain(w.id('Drama 1'))
  })

  it('keeps a kids profile within its maturity limit on every row', async () => {
    await w.watch(kids, ['Comedy 1'])
    await w.train()
    const page = await w.home(w.member.token, kids)
    expectRules(page)
    const horror = [1, 2, 3, 4, 5, 6].map((n) => w.id(`Horror ${n}`))
    for (const id of allIds(page)) expect(horror).not.toContain(id)
    expect(page.rows.some((r) => r.kind === 'top_picks' || r.kind === 'because_you_watched')).toBe(true)
  })

  it('rates titles: thumbs down takes the title and its close neighbours out of the rows', async () => {
    const profile = await w.profile(w.member.token, { name: 'Rater' })
    await w.watch(profile, ['Comedy 3'])
    const url = (titleId: string) => `/api/v1/profiles/${profile}/ratings/${titleId}`
    const before = await w.home(w.member.token, profile)
    const because = before.rows.find((r) => r.title === 'Because you watched Comedy 3')
    expect(idsOf(because).length).toBeGreaterThan(0)

    const target = w.id('Comedy 5')
    const put = await w.t.call('PUT', url(target), { token: w.member.token, body: { rating: 'down' } })
    expect(put.statusCode, put.body).toBe(200)
    expect(put.json()).toEqual({ titleId: target, rating: 'down' })
    const got = await w.t.call('GET', url(target), { token: w.member.token })
    expect(got.json()).toEqual({ titleId: target, rating: 'down' })
    const list = await w.t.call('GET', `/api/v1/profiles/${profile}/ratings`, { token: w.member.token })
    expect(list.json().ratings.map((r: { titleId: string }) => r.titleId)).toEqual([target])

    const after = await w.home(w.member.token, profile)
    expectRules(after)
    expect(allIds(after)).not.toContain(target)
    // Its closest neighbour by content leaves too (the comedies by the same director with the same tags).
    const module = await w.reco.module(profile)
    expect(module?.excluded).toContain(target)
    expect(module?.excluded.length).toBeGreaterThan(1)
    for (const id of module?.excluded ?? []) expect(allIds(after)).not.toContain(id)

    // Thumbs up counts as a seed; removing the rating brings the title back.
    expect(
      (await w.t.call('PUT', url(w.id('Drama 2')), { token: w.member.token, body: { rating: 'up' } }))
        .statusCode,
    ).toBe(200)
    expect(
      (await w.home(w.member.token, profile)).rows.some((r) => r.title === 'Because you watched Drama 2'),
    ).toBe(true)
    expect((await w.t.call('DELETE', url(target), { token: w.member.token })).statusCode).toBe(204)
    expect((await w.t.call('GET', url(target), { token: w.member.token })).json().rating).toBeNull()
    expect(allIds(await w.home(w.member.token, profile))).toContain(target)
    expect((await w.t.call('DELETE', url(target), { token: w.member.token })).json().error.code).toBe(
      'rating_not_found',
    )
  })

  it('takes a thumbs-down given while the page is being assembled out of the next page', async () => {
    const profile = await w.profile(w.member.token, { name: 'Racer' })
    await w.watch(profile, ['Comedy 3'])
    const url = (titleId: string) => `/api/v1/profiles/${profile}/ratings/${titleId}`
    // The thumbs-down lands at a different point of the page's assembly each time.
    for (let step = 0; step < 16; step++) {
      const before = await w.home(w.member.token, profile)
      const target = idsOf(before.rows.find((r) => r.title === 'Because you watched Comedy 3'))[0]
      expect(target, `step ${step}`).toBeDefined()
      w.reco.forget(profile)
      const building = w.home(w.member.token, profile)
      for (let i = 0; i < step; i++) await new Promise((r) => setImmediate(r))
      const put = await w.t.call('PUT', url(target ?? ''), {
        token: w.member.token,
        body: { rating: 'down' },
      })
      expect(put.statusCode, put.body).toBe(200)
      await building
      expect(allIds(await w.home(w.member.token, profile)), `step ${step}`).not.toContain(target)
      expect((await w.t.call('DELETE', url(target ?? ''), { token: w.member.token })).statusCode).toBe(204)
    }
  })

  it('keeps no page assembled while a play of its profile came in (continue watching leads with it)', async () => {
    const { token, profileId: profile } = await w.account('DE')
    const progress = new PlaybackStore(w.t.reel.ports.db)
    const playback = w.t.reel.use('playback')
    const continueWatching = playback.continueWatching.bind(playback)
    for (const [step, name] of ['Comedy 1', 'Drama 1', 'Comedy 2'].entries()) {
      await w.home(token, profile)
      w.reco.forget(profile)
      const id = w.id(name)
      // The play comes in just after the page being assembled has read continue watching: it changes
      // that row and no module (its recomputation comes later), so only the page memo could hide it.
      const spy = vi.spyOn(playback, 'continueWatching').mockImplementationOnce(async (...args) => {
        const before = await continueWatching(...args)
        await progress.writeBehind(
          [
            {
              profile_id: profile,
              media_id: id,
              title_id: id,
              title_type: 'movie',
              series_id: null,
              season_id: null,
              position_ms: 60_000,
              duration_ms: 3_600_000,
              completed: 0,
              updated_at: w.t.clock.now + step,
            },
          ],
          [],
        )
        w.reco.forget(profile)
        return before
      })
      const during = await w.home(token, profile)
      spy.mockRestore()
      expect(idsOf(during.rows.find((r) => r.kind === 'continue_watching'))[0], `step ${step}`).not.toBe(id)
      const after = await w.home(token, profile)
      expect(idsOf(after.rows.find((r) => r.kind === 'continue_watching'))[0], `step ${step}`).toBe(id)
    }
  })

  it('refuses bad ratings with stable codes', async () => {
    const url = (profile: string, titleId: string) => `/api/v1/profiles/${profile}/ratings/${titleId}`
    const token = w.member.token
    const unknown = await w.t.call('PUT', url(comic, 'no-such-title'), { token, body: { rating: 'up' } })
    expect(unknown.statusCode).toBe(404)
    expect(unknown.json().error.code).toBe('title_not_found')
    for (const body of [
      { rating: 'meh' },
      { rating: 1 },
      {},
      { rating: 'up', extra: true },
      { rating: "'; drop table reco_ratings; --" },
      { rating: 'ÜP' },
    ]) {
      const bad = await w.t.call('PUT', url(comic, w.id('Drama 3')), { token, body })
      expect(bad.statusCode, JSON.stringify(body)).toBe(400)
    }
    expect((await w.t.call('GET', `/api/v1/profiles/${comic}/ratings`, { token })).json().ratings).toEqual([])
    const other = await w.account('FR')
    const foreign = await w.t.call('PUT', url(comic, w.id('Drama 3')), {
      token: other.token,
      body: { rating: 'up' },
    })
    expect(foreign.statusCode).toBe(404)
    expect(foreign.json().error.code).toBe('profile_not_found')
    expect(
      (await w.t.call('GET', `/api/v1/profiles/${comic}/ratings`, { token: other.token })).statusCode,
    ).toBe(404)
    expect((await w.t.call('PUT', url(comic, w.id('Drama 3')), { body: { rating: 'up' } })).statusCode).toBe(
      401,
    )
    // A kids profile cannot rate what it may not see.
    const adult = await w.t.call('PUT', url(kids, w.id('Horror 1')), { token, body: { rating: 'up' } })
    expect(adult.statusCode).toBe(404)
  })

  it('answers 404 for an unknown or foreign profile and 401 without a token', async () => {
    const other = await w.account('DE')
    for (const [token, profile] of [
      [other.token, comic],
      [w.member.token, 'no-such-profile'],
      [w.member.token, "' or 1=1 --"],
    ] as const) {
      const res = await w.t.call('GET', `/api/v1/profiles/${encodeURIComponent(profile)}/home`, { token })
      expect(res.statusCode).toBe(404)
      expect(res.json().error.code).toBe('profile_not_found')
    }
    expect((await w.t.call('GET', `/api/v1/profiles/${comic}/home`)).statusCode).toBe(401)
  })

  it('recomputes the profiles of a burst of first plays a few at a time, each of them', async () => {
    const reco = w.reco
    const profiles = Array.from({ length: 12 }, (_, i) => `burst-of-first-plays-${i}`)
    const refresh = reco.refreshProfile
    let running = 0
    let most = 0
    const done = new Set<string>()
    reco.refreshProfile = async function (this: typeof reco, ...args: Parameters<typeof refresh>) {
      running++
      most = Math.max(most, running)
      try {
        return await refresh.apply(this, args)
      } finally {
        running--
        done.add(args[0])
      }
    }
    try {
      const before = reco.eventsSeen
      // Published together: reco takes them in as one batch.
      await Promise.all(profiles.map((p) => w.t.reel.ports.bus.publish(w.play(p, 'Drama 1', 'started'))))
      await until(() => reco.eventsSeen >= before + profiles.length, 'reco to take in the plays')
      // /metrics shows them waiting (for REFRESH_DELAY_MS yet).
      expect(await waitingRecomputations()).toBeGreaterThanOrEqual(profiles.length)
      // Their timers end together, REFRESH_DELAY_MS on; the recomputations then take turns.
      await until(() => done.size === profiles.length, 'every profile recomputed', 10_000)
    } finally {
      reco.refreshProfile = refresh
    }
    expect(most).toBeLessThanOrEqual(4)
    expect(await waitingRecomputations()).toBe(0)
    for (const profile of profiles) expect(await reco.module(profile)).toBeDefined()
  })

  it('writes no module again for a profile deleted while the recomputation after its plays waits', async () => {
    const gone = 'profile-deleted-while-its-refresh-waits'
    const before = w.reco.eventsSeen
    await w.t.reel.ports.bus.publish(w.play(gone, 'Drama 1', 'started'))
    await w.t.reel.ports.bus.publish(w.play(gone, 'Drama 1', 'stopped', true))
    await until(() => w.reco.eventsSeen >= before + 2, 'reco to take in the plays')
    await w.reco.profileDeleted(gone)
    // Runs what still waits now (as the timer would a moment later).
    await w.reco.flushRefreshes()
    expect(await w.reco.module(gone)).toBeUndefined()
  })

  it('serves a page again from memory, and follows a change in the catalog at once', async () => {
    const first = await w.home(w.member.token, comic)
    expect(await w.home(w.member.token, comic)).toEqual(first)
    const id = w.id('Comedy 3')
    const rename = async (title: string) => {
      const res = await w.t.call('PATCH', `/api/v1/admin/titles/${id}`, { token: w.admin, body: { title } })
      expect(res.statusCode, res.body).toBe(200)
      await until(() => w.reco.titles.get(id)?.title === title, 'reco to see the new name')
    }
    await rename('Comedy 3 (remastered)')
    try {
      const page = await w.home(w.member.token, comic)
      const names = page.rows.flatMap((r) => r.items.filter((i) => i.titleId === id).map((i) => i.title))
      expect(names.length).toBeGreaterThan(0)
      expect(new Set(names)).toEqual(new Set(['Comedy 3 (remastered)']))
      expectRules(page)
    } finally {
      await rename('Comedy 3')
    }
  })

  it('keeps a thumbs-down given while a training run computes, with the picks of that run', async () => {
    const viewer = await w.account('DE')
    await w.watch(viewer.profileId, ['Comedy 1', 'Comedy 2'])
    await w.train()
    const before = await w.reco.module(viewer.profileId)
    const pick = before?.topPicks[0] ?? ''
    expect(pick).not.toBe('')
    // The service's trainer, with a thumbs-down arriving after the run has read every profile's
    // facts and before it writes their modules (the model trains in its worker meanwhile).
    const store = new RecoStore(w.t.reel.ports.db)
    let during: (() => Promise<void>) | undefined
    const trainer = new Trainer({
      store,
      titles: w.reco.titles,
      recompute: async (trained) => (await w.reco.refreshProfile(trained.profileId, trained)) !== undefined,
      announce: async (runId) => w.reco.trained(runId),
      train: async (data, options) => {
        const model = await trainInWorker(data, options)
        await during?.()
        return model
      },
      content: contentInWorker,
      log: createLogger('silent'),
      now: () => w.t.clock.now,
      algorithm: 'itemknn',
    })
    during = async () => {
      w.t.clock.advance(1000)
      const res = await w.t.call('PUT', `/api/v1/profiles/${viewer.profileId}/ratings/${pick}`, {
        token: viewer.token,
        body: { rating: 'down' },
      })
      expect(res.statusCode, res.body).toBe(200)
    }
    const report = await trainer.run()
    expect(report?.profiles).toBeGreaterThan(0)
    const module = await w.reco.module(viewer.profileId)
    expect(module?.excluded).toContain(pick)
    expect(module?.topPicks).not.toContain(pick)
    expect(module?.topPicks.length).toBeGreaterThan(0)
    // This run's picks (it finished after the thumbs-down, at the clock's new time).
    expect(module?.trainedAt).toBe(w.t.clock.now)
    expect(module?.trainedAt).toBeGreaterThan(before?.trainedAt ?? Number.POSITIVE_INFINITY)
    expect(allIds(await w.home(viewer.token, viewer.profileId))).not.toContain(pick)
  })

  it('writes no module for a profile deleted while its recomputation runs', async () => {
    const store = new RecoStore(w.t.reel.ports.db)
    // Deleted at each step of a recomputation (with a module already written, or its first one).
    for (let step = 0; step < 12; step++) {
      const gone = `profile-deleted-while-its-refresh-runs-${step}`
      await store.recordPlay({
        profile_id: gone,
        title_id: w.id('Drama 1'),
        progress: 1,
        completed: 1,
        last_at: w.t.clock.now,
      })
      if (step % 2 === 1) expect(await w.reco.refreshProfile(gone)).toBeDefined()
      const running = w.reco.refreshProfile(gone)
      for (let i = 0; i < step / 2; i++) await new Promise((r) => setImmediate(r))
      await w.reco.profileDeleted(gone)
      await running
      w.reco.forget(gone)
      expect(await w.reco.module(gone), `step ${step}`).toBeUndefined()
      expect(await store.moduleRow(gone), `step ${step}`).toBeUndefined()
    }
  })

  describe('sponsored campaigns', () => {
    const campaign = (over: Record<string, unknown>) => ({
      name: 'Spring comedy push',
      advertiser: 'Laugh Studios',
      titleId: w.id('Comedy 6'),
      segment: { regions: ['DE'] },
      budget: 1000,
      startsAt: new Date(w.t.clock.now - DAY).toISOString(),
      endsAt: new Date(w.t.clock.now + 9 * DAY).toISOString(),
      pacing: 'asap',
      frequencyCap: 100,
      minAffinity: 0.3,
      ...over,
    })
    const create = async (over: Record<string, unknown>) => {
      const res = await w.t.call('POST', '/api/v1/admin/campaigns', { token: w.admin, body: campaign(over) })
      expect(res.statusCode, res.body).toBe(201)
      return res.json() as { id: string; impressions: number }
    }
    const remove = async (id: string) =>
      expect((await w.t.call('DELETE', `/api/v1/admin/campaigns/${id}`, { token: w.admin })).statusCode).toBe(
        204,
      )
    const sponsoredRows = (page: Page) => page.rows.filter((r) => r.kind === 'sponsored')
    const impressions = async (id: string) =>
      (await w.t.call('GET', `/api/v1/admin/campaigns/${id}`, { token: w.admin })).json()
        .impressions as number

    it('refuses bad campaigns with stable codes, and non-admins', async () => {
      for (const [over, code] of [
        [{ segment: { regions: [] } }, 'empty_segment'],
        [{ segment: { regions: ['DE'], maturityLimits: [] } }, 'empty_segment'],
        [{ budget: 0 }, 'invalid_budget'],
        [{ endsAt: new Date(w.t.clock.now - 2 * DAY).toISOString() }, 'invalid_flight'],
        [{ segment: { regions: ['Germany'] } }, 'invalid_request'],
        [{ budget: -5 }, 'invalid_request'],
        [{ budget: 'lots' }, 'invalid_request'],
        [{ minAffinity: 2 }, 'invalid_request'],
        [{ startsAt: 'yesterday' }, 'invalid_request'],
        [{ segment: {} }, 'invalid_request'],
      ] as const) {
        const res = await w.t.call('POST', '/api/v1/admin/campaigns', {
          token: w.admin,
          body: campaign(over),
        })
        expect(res.statusCode, JSON.stringify(over)).toBe(400)
        expect(res.json().error.code, JSON.stringify(over)).toBe(code)
      }
      const unknown = await w.t.call('POST', '/api/v1/admin/campaigns', {
        token: w.admin,
        body: campaign({ titleId: 'no-such-title' }),
      })
      expect(unknown.statusCode).toBe(404)
      expect(
        (await w.t.call('POST', '/api/v1/admin/campaigns', { token: w.member.token, body: campaign({}) }))
          .statusCode,
      ).toBe(403)
      expect((await w.t.call('GET', '/api/v1/admin/campaigns', { token: w.member.token })).statusCode).toBe(
        403,
      )
      expect((await w.t.call('GET', '/api/v1/admin/campaigns/nope', { token: w.admin })).statusCode).toBe(404)
      expect((await w.t.call('GET', '/api/v1/admin/campaigns', { token: w.admin })).json().campaigns).toEqual(
        [],
      )
    })

    it('shows a campaign only to its segment with enough predicted affinity, labelled Sponsored', async () => {
      const c = await create({})
      const comedyPage = await w.home(w.member.token, comic)
      const rows = sponsoredRows(comedyPage)
      expect(rows).toHaveLength(1)
      expect(rows[0]).toMatchObject({ sponsored: true, campaignId: c.id, title: 'Sponsored' })
      expect(rows[0]?.reason).toBe('Sponsored by Laugh Studios')
      expect(idsOf(rows[0])).toEqual([w.id('Comedy 6')])
      expectRules(comedyPage)
      // The horror fan's affinity for a comedy is below the threshold; a French account is outside the segment.
      expect(sponsoredRows(await w.home(w.member.token, scary))).toEqual([])
      const french = await w.account('FR')
      await w.watch(french.profileId, ['Comedy 1', 'Comedy 2'])
      expect(sponsoredRows(await w.home(french.token, french.profileId))).toEqual([])
      expect(await impressions(c.id)).toBe(1)
      // Segment by maturity limit: adults only leaves the kids profile out even though it likes comedies.
      const put = await w.t.call('PUT', `/api/v1/admin/campaigns/${c.id}`, {
        token: w.admin,
        body: campaign({ segment: { regions: ['DE'], maturityLimits: ['NC-17'] } }),
      })
      expect(put.statusCode, put.body).toBe(200)
      expect(put.json().impressions).toBe(1)
      expect(sponsoredRows(await w.home(w.member.token, kids))).toEqual([])
      expect(sponsoredRows(await w.home(w.member.token, comic))).toHaveLength(1)
      await remove(c.id)
      expect(sponsoredRows(await w.home(w.member.token, comic))).toEqual([])
    })

    it('stops at its budget and counts each impression exactly once under concurrent page views', async () => {
      const c = await create({ budget: 5 })
      const pages = await Promise.all(Array.from({ length: 24 }, () => w.home(w.member.token, comic)))
      const shown = pages.filter((p) => sponsoredRows(p).length > 0).length
      expect(shown).toBe(5)
      expect(await impressions(c.id)).toBe(5)
      expect(sponsoredRows(await w.home(w.member.token, comic))).toEqual([])
      await remove(c.id)
    })

    it('keeps to the frequency cap per profile and day, and to even pacing', async () => {
      const c = await create({ frequencyCap: 2 })
      const shown = async () => sponsoredRows(await w.home(w.member.token, comic)).length
      expect([await shown(), await shown(), await shown()]).toEqual([1, 1, 0])
      w.t.clock.advance(DAY)
      expect(await shown()).toBe(1)
      await remove(c.id)
      // Even pacing over 100 days, one day in: about 6 % of 100 impressions may be spent by now.
      const paced = await create({
        budget: 100,
        pacing: 'even',
        startsAt: new Date(w.t.clock.now - DAY).toISOString(),
        endsAt: new Date(w.t.clock.now + 99 * DAY).toISOString(),
      })
      const views = await Promise.all(Array.from({ length: 20 }, () => w.home(w.member.token, comic)))
      expect(views.filter((p) => sponsoredRows(p).length > 0).length).toBe(6)
      expect(await impressions(paced.id)).toBe(6)
      await remove(paced.id)
    })
  })
})

describe('the fallback page', () => {
  const w = new World()
  beforeAll(async () => {
    // The cache is a Redis node nobody listens on: every read misses, every write is dropped.
    await w.start('sqlite', { REEL_REDIS_URLS: 'redis://127.0.0.1:1' })
    await w.plantedCatalog()
    expect(await w.reco.saveFallback()).toBe(true)
  }, 60_000)
  afterAll(() => w.t.stop())

  it('answers 200 with rows while the cache and the trends service are down', async () => {
    const db = w.t.reel.ports.db.kysely
    await sql`alter table trends_counts rename to trends_counts_gone`.execute(db)
    await sql`alter table trends_state rename to trends_state_gone`.execute(db)
    try {
      const page = await w.home(w.member.token, w.member.profileId)
      expect(page.fallback).toBe(true)
      expect(page.rows.length).toBeGreaterThan(2)
      expect((await w.t.call('GET', '/metrics')).body).toMatch(/reco_fallbacks_total\{cause="trends"\} [1-9]/)
      expectRules(page)
      expect(allIds(page)).not.toContain(w.id('Comedy US'))
    } finally {
      await sql`alter table trends_counts_gone rename to trends_counts`.execute(db)
      await sql`alter table trends_state_gone rename to trends_state`.execute(db)
    }
    const healthy = await w.home(w.member.token, w.member.profileId)
    expect(healthy.fallback).toBeUndefined()
  })

  it('answers 200 with the static page, within a kids limit, when the DB fails; still 404 for a foreign profile when it works', async () => {
    const db = w.t.reel.ports.db.kysely
    const other = await w.account('DE')
    expect(
      (await w.t.call('GET', `/api/v1/profiles/${w.member.profileId}/home`, { token: other.token }))
        .statusCode,
    ).toBe(404)
    await sql`alter table accounts_profiles rename to accounts_profiles_gone`.execute(db)
    await sql`alter table reco_modules rename to reco_modules_gone`.execute(db)
    try {
      const page = await w.home(w.member.token, w.member.profileId)
      expect(page.fallback).toBe(true)
      expect(page.rows.length).toBeGreaterThan(0)
      expectRules(page)
      const horror = [1, 2, 3, 4, 5, 6].map((n) => w.id(`Horror ${n}`))
      for (const id of allIds(page)) expect(horror).not.toContain(id)
    } finally {
      await sql`alter table accounts_profiles_gone rename to accounts_profiles`.execute(db)
      await sql`alter table reco_modules_gone rename to reco_modules`.execute(db)
    }
  })
})

describe.runIf(hasPostgres())('recommendations (PostgreSQL)', () => {
  const w = new World()
  beforeAll(async () => {
    await w.start('postgres')
    await w.plantedCatalog()
    for (let i = 0; i < 6; i++) await w.watch(`pg-fan-${i}`, ['Comedy 1', 'Comedy 2', 'Comedy 3'])
    await w.watch(w.member.profileId, ['Comedy 1'])
  }, 120_000)
  afterAll(() => w.t.stop())

  it('records a batch of plays in one statement, merging repeats of a title', () => recordsABatchOfPlays(w))

  it('trains, serves and counts impressions exactly once on PostgreSQL', async () => {
    expect(engines.databaseUrl).toBeTruthy()
    await w.train()
    const page = await w.home(w.member.token, w.member.profileId)
    expect(idsOf(page.rows.find((r) => r.kind === 'top_picks'))).toEqual(
      expect.arrayContaining([w.id('Comedy 2'), w.id('Comedy 3')]),
    )
    const res = await w.t.call('POST', '/api/v1/admin/campaigns', {
      token: w.admin,
      body: {
        name: 'PG push',
        advertiser: 'Laugh Studios',
        titleId: w.id('Comedy 4'),
        segment: { regions: ['*'], genres: ['comedy'] },
        budget: 3,
        startsAt: new Date(w.t.clock.now - DAY).toISOString(),
        endsAt: new Date(w.t.clock.now + DAY).toISOString(),
        pacing: 'asap',
      },
    })
    expect(res.statusCode, res.body).toBe(201)
    const pages = await Promise.all(
      Array.from({ length: 12 }, () => w.home(w.member.token, w.member.profileId)),
    )
    expect(pages.filter((p) => p.rows.some((r) => r.sponsored)).length).toBe(3)
    const campaign = await w.t.call('GET', `/api/v1/admin/campaigns/${res.json().id}`, { token: w.admin })
    expect(campaign.json().impressions).toBe(3)
    const rate = await w.t.call('PUT', `/api/v1/profiles/${w.member.profileId}/ratings/${w.id('Comedy 2')}`, {
      token: w.member.token,
      body: { rating: 'down' },
    })
    expect(rate.statusCode).toBe(200)
    expect(allIds(await w.home(w.member.token, w.member.profileId))).not.toContain(w.id('Comedy 2'))
  })
  it('never overspends a budget served by two processes at once, and counts each impression once', async () => {
    // A second reel process on the same database (its own in-process cache and bus).
    const other = await createReel({
      config: { ...w.t.reel.config, port: 0 },
      log: createLogger('silent'),
      clock: () => w.t.clock.now,
      roles: ['accounts', 'catalog', 'playback', 'trends', 'reco'],
    })
    await other.start()
    let campaignId = ''
    try {
      await other.use('reco').titles.fresh(true)
      const res = await w.t.call('POST', '/api/v1/admin/campaigns', {
        token: w.admin,
        body: {
          name: 'Two processes',
          advertiser: 'Laugh Studios',
          // Not a neighbour of the title the first test thumbed down.
          titleId: w.id('Drama 2'),
          segment: { regions: ['DE'] },
          budget: 7,
          startsAt: new Date(w.t.clock.now - DAY).toISOString(),
          endsAt: new Date(w.t.clock.now + DAY).toISOString(),
          pacing: 'asap',
          frequencyCap: 1000,
          minAffinity: 0,
        },
      })
      expect(res.statusCode, res.body).toBe(201)
      campaignId = res.json().id
      const url = `/api/v1/profiles/${w.member.profileId}/home`
      const headers = { authorization: `Bearer ${w.member.token}` }
      const pages = await Promise.all([
        ...Array.from({ length: 10 }, () => w.home(w.member.token, w.member.profileId)),
        ...Array.from(
          { length: 10 },
          async () => (await other.http.inject({ method: 'GET', url, headers })).json() as Page,
        ),
      ])
      const shown = pages.filter((p) => p.rows.some((r) => r.campaignId === campaignId)).length
      expect(shown).toBe(7)
    } finally {
      await other.stop()
    }
    // The other process gave back what it reserved and did not serve: the count is what was shown.
    const campaign = await w.t.call('GET', `/api/v1/admin/campaigns/${campaignId}`, { token: w.admin })
    expect(campaign.json().impressions).toBe(7)
  })

  it('trains once the plays and ratings of all processes add up to REEL_RECO_TRAIN_AFTER_EVENTS', async () => {
    // Two more processes on this database, counting towards a threshold of 6 (their timers idle: the
    // test ticks their schedules itself).
    const config = { ...w.t.reel.config, port: 0, recoTrainAfterEvents: 6, recoTrainCheckS: 86_400 }
    const start = async () => {
      const reel = await createReel({
        config,
        log: createLogger('silent'),
        clock: () => w.t.clock.now,
        roles: ['accounts', 'catalog', 'reco'],
      })
      await reel.start()
      await reel.use('reco').titles.fresh(true)
      return reel
    }
    const a = await start()
    const b = await start()
    try {
      const rate = async (reel: typeof a, title: string) => {
        const res = await reel.http.inject({
          method: 'PUT',
          url: `/api/v1/profiles/${w.member.profileId}/ratings/${w.id(title)}`,
          headers: { authorization: `Bearer ${w.member.token}` },
          payload: { rating: 'up' },
        })
        expect(res.statusCode, res.body).toBe(200)
      }
      // Whatever ran before: a run now starts the count at 0.
      await w.train()
      for (const title of ['Drama 1', 'Drama 3', 'Horror 1']) await rate(a, title)
      expect(await a.use('reco').schedule.tick()).toBeUndefined() // 3 of 6
      expect(await a.use('reco').schedule.tick()).toBeUndefined() // counted once
      for (const title of ['Horror 3', 'Comedy 5', 'Comedy 6']) await rate(b, title)
      const before = (await w.reco.lastRun())?.report.runId
      w.t.clock.advance(1000) // the run starts after the last one
      expect(await b.use('reco').schedule.tick()).toBe('events') // 6 of 6, across both
      expect((await w.reco.lastRun())?.report.runId).not.toBe(before)
      // Counting starts again from the run.
      expect(await a.use('reco').schedule.tick()).toBeUndefined()
    } finally {
      await a.stop()
      await b.stop()
    }
  })

  it('trains with `reel reco train`, and the running server serves the new rows at once', async () => {
    // The server has the member's module in memory and in its (in-process) cache.
    await w.home(w.member.token, w.member.profileId)
    const cached = await w.reco.module(w.member.profileId)
    expect(cached).toBeDefined()
    const startedAt = Date.now()
    const saved = { ...process.env }
    Object.assign(process.env, {
      REEL_DATA_DIR: w.t.reel.config.dataDir,
      REEL_DATABASE_URL: w.t.reel.config.databaseUrl,
      REEL_DATABASE_SCHEMA: w.t.reel.config.databaseSchema,
    })
    const log = vi.spyOn(console, 'log').mockImplementation(() => {})
    let printed: string[]
    try {
      const cli = new Command('reel').exitOverride()
      registerRecoCommands(cli)
      await cli.parseAsync(['node', 'reel', 'reco', 'train'])
      printed = log.mock.calls.map((c) => c.join(' '))
    } finally {
      log.mockRestore()
      for (const k of ['REEL_DATA_DIR', 'REEL_DATABASE_URL', 'REEL_DATABASE_SCHEMA']) delete process.env[k]
      Object.assign(process.env, saved)
    }
    expect(printed.join('\n')).toMatch(
      /^trained itemknn on \d+ interactions of \d+ profiles over \d+ titles/m,
    )
    // The CLI's process ran on the real clock; the server's modules so far are from its test clock.
    await until(
      async () => ((await w.reco.module(w.member.profileId))?.trainedAt ?? 0) >= startedAt,
      'the server to read the modules of the run `reel reco train` made',
    )
    const status = (await w.t.call('GET', '/api/v1/reco/status')).json()
    expect(Date.parse(status.lastRun.finishedAt)).toBeGreaterThanOrEqual(startedAt)
  })
})

describe('training without being asked', () => {
  it('trains on the schedule, REEL_RECO_TRAIN_INTERVAL_S after the latest run started', async () => {
    const t = await startReel('sqlite', {
      REEL_RECO_TRAIN_INTERVAL_S: '3600',
      REEL_RECO_TRAIN_AFTER_EVENTS: '0',
      REEL_RECO_TRAIN_CHECK_S: '1',
    })
    try {
      const reco = t.reel.use('reco')
      const runId = async () => (await reco.lastRun())?.report.runId
      // Ticks of the first hour (the test's clock stands still): nothing due.
      await sleep(2500)
      expect(await runId()).toBeUndefined()
      t.clock.advance(3600_000)
      await until(async () => (await runId()) !== undefined, 'the first scheduled run')
      const first = await runId()
      await sleep(2500)
      expect(await runId()).toBe(first)
      t.clock.advance(3600_000)
      await until(async () => (await runId()) !== first, 'the next scheduled run')
    } finally {
      await t.stop()
    }
  })
})
