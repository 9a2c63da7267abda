// The reco bench's server: reel all-in-one on a fresh data dir with a catalog of BENCH_TITLES titles
// in 20 genres, BENCH_VIEWERS profiles (five per account) who each played a few titles of "their" genre (through
// the Bus, as playback publishes them), a crowd of synthetic profiles with the same tastes for the
// collaborative model, one training run, and a live sponsored campaign. Prints
// `{"url":…,"viewers":[{token,profileId}],"report":…}` once ready.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import { PLAYBACK_STARTED, type PlaybackEventBase } from '../../src/services/playback/events.js'
import { RecoStore } from '../../src/services/reco/store.js'

const TITLES = Number(process.env.BENCH_TITLES ?? 1000)
const VIEWERS = Number(process.env.BENCH_VIEWERS ?? 500)
const PROFILES_PER_ACCOUNT = 5
const CROWD = Number(process.env.BENCH_CROWD ?? 2000)
const GENRES = ['action', 'comedy', 'drama', 'horror', 'thriller', 'romance', 'documentary', 'animation']

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-reco-'))
const reel = await createReel({
  config: loadConfig({
    REEL_LOG_LEVEL: 'warn',
    ...process.env,
    REEL_DATA_DIR: dataDir,
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
    REEL_RECO_TRAIN_INTERVAL_S: '0',
    REEL_RECO_TRAIN_AFTER_EVENTS: '0',
  }),
})
const url = await reel.start()
const catalog = reel.use('catalog')
const titleIds: string[] = []
for (let i = 0; i < TITLES; i++) {
  const genre = GENRES[i % GENRES.length] as string
  const title = await catalog.create({
    type: 'movie',
    title: `Bench title ${i}`,
    year: 1980 + (i % 45),
    maturityRating: i % 5 === 0 ? 'R' : 'PG-13',
    genres: [genre],
    tags: [`${genre}-${i % 13}`],
    credits: [{ name: `Director ${genre} ${i % 9}`, role: 'director' }],
    availability: [{ region: '*' }],
  })
  titleIds.push(title.id)
}
const reco = reel.use('reco')
while ((await reco.titles.fresh(true)).size < TITLES) await new Promise((r) => setTimeout(r, 100))

const ofGenre = (g: number, n: number) =>
  Array.from({ length: n }, (_, j) => titleIds[(j * GENRES.length + g) % titleIds.length] as string)
// The crowd: profiles that watched 30 titles of one genre (reco's own history table, as its consumer writes it).
const store = new RecoStore(reel.ports.db)
await store.insertHistory(
  Array.from({ length: CROWD }, (_, p) =>
    ofGenre(p % GENRES.length, 30).map((titleId, j) => ({
      profile_id: `crowd-${p}`,
      title_id: titleId,
      progress: 1,
      completed: 1,
      last_at: Date.now() - j * 60_000,
    })),
  ).flat(),
)

const viewers: { token: string; profileId: string }[] = []
const accounts = reel.use('accounts')
for (let a = 0; a < VIEWERS / PROFILES_PER_ACCOUNT; a++) {
  const { account, tokens } = await accounts.signUp(
    {
      email: `reco-bench-${a}@example.com`,
      password: 'correct horse battery',
      plan: 'premium',
      country: 'DE',
    },
    { name: 'bench', address: '127.0.0.1' },
  )
  for (let p = 1; p < PROFILES_PER_ACCOUNT; p++)
    await accounts.createProfile(account.id, { name: `Viewer ${p}` })
  for (const profile of await accounts.profiles(account.id))
    viewers.push({ token: tokens.accessToken, profileId: profile.id })
}
for (const [v, { profileId }] of viewers.entries())
  for (const titleId of ofGenre(v % GENRES.length, 5)) {
    const data: PlaybackEventBase & Record<string, unknown> = {
      sessionId: `bench-${v}-${titleId}`,
      accountId: 'bench',
      profileId,
      titleId,
      titleType: 'movie',
      seriesId: null,
      seasonId: null,
      region: 'DE',
      positionMs: 0,
      durationMs: 6_000_000,
      at: new Date().toISOString(),
      resumeAtMs: 0,
      maxHeight: 1080,
      device: 'bench',
    }
    await reel.ports.bus.publish({ type: PLAYBACK_STARTED, key: profileId, data })
  }
while (reco.eventsSeen < viewers.length * 5) await new Promise((r) => setTimeout(r, 100))
const report = await reco.trainer.run()
// BENCH_CAMPAIGN=0: no sponsored campaign (no impression written per page view).
if (process.env.BENCH_CAMPAIGN !== '0')
  await reco.campaigns.create({
    name: 'Bench campaign',
    advertiser: 'Bench Studios',
    titleId: titleIds[1] as string,
    segment: { regions: ['*'] },
    budget: 1_000_000_000,
    startsAt: new Date(Date.now() - 86_400_000).toISOString(),
    endsAt: new Date(Date.now() + 86_400_000).toISOString(),
    pacing: 'asap',
    // Every page view claims an impression (a DB write): the worst case for serving.
    frequencyCap: 1_000_000_000,
    minAffinity: 0,
  })
console.log(JSON.stringify({ url, viewers, report }))
process.once('SIGTERM', () => {
  reel.stop().finally(() => {
    fs.rmSync(dataDir, { recursive: true, force: true })
    process.exit(0)
  })
})
