// One training run of the reco service in a fresh process (peak RSS is a process's high-water mark):
// BENCH_PROFILES profiles × BENCH_TITLES titles of synthetic history with planted taste clusters,
// written to reco's own tables of a fresh SQLite reel, then `reel reco train`'s Trainer with the
// algorithm in argv[2]. Prints one JSON line with the report, peak RSS and the event loop's worst
// delay during the run (how much the API would have stalled).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import type { MaturityRating } from '../../src/services/accounts/rules.js'
import { contentInWorker } from '../../src/services/reco/content.js'
import { plantedHistory } from '../../src/services/reco/model/synthetic.js'
import type { Algorithm } from '../../src/services/reco/model/types.js'
import { trainInWorker } from '../../src/services/reco/model/worker.js'
import { RecoStore } from '../../src/services/reco/store.js'
import { type RecoTitle, TitleIndex } from '../../src/services/reco/titles.js'
import { Trainer } from '../../src/services/reco/training.js'
import { loopStalls } from '../lib.js'

const algorithm = (process.argv[2] ?? 'itemknn') as Algorithm
const nUsers = Number(process.env.BENCH_PROFILES ?? 10_000)
const nItems = Number(process.env.BENCH_TITLES ?? 5_000)
const perUser = Number(process.env.BENCH_PER_PROFILE ?? 40)
const CLUSTERS = 20

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-reco-train-'))
const reel = await createReel({
  roles: [],
  config: loadConfig({ ...process.env, REEL_LOG_LEVEL: 'warn', REEL_DATA_DIR: dataDir }),
})
try {
  const store = new RecoStore(reel.ports.db)
  const planted = plantedHistory({ nUsers, nItems, clusters: CLUSTERS, perUser, noise: 0.1, seed: 7 })
  const ratings: MaturityRating[] = ['G', 'PG', 'PG-13', 'R']
  const titleId = (i: number) => `title-${String(i).padStart(6, '0')}`
  for (let i = 0; i < nItems; i++) {
    const cluster = i % CLUSTERS
    const title: RecoTitle = {
      id: titleId(i),
      type: 'movie',
      title: `Title ${i}`,
      year: 1970 + ((i * 7) % 55),
      maturityRating: ratings[i % ratings.length] as MaturityRating,
      language: ['en', 'fr', 'de', 'ja'][cluster % 4] ?? 'en',
      genres: [{ id: `genre-${cluster}`, name: `Genre ${cluster}` }],
      tags: [`kw-${cluster}-${i % 7}`, `kw-${(i * 13) % 400}`],
      people: [
        { id: `director-${cluster}-${i % 11}`, name: `Director ${cluster}.${i % 11}`, role: 'director' },
        { id: `actor-${(i * 31) % 2000}`, name: `Actor ${(i * 31) % 2000}`, role: 'cast' },
      ],
      availability: [{ region: '*', startsAt: null, endsAt: null }],
      popularity: nItems - i,
      createdAt: new Date(Date.UTC(2020, 0, 1) + i * 60_000).toISOString(),
    }
    await store.putTitle(title.id, 1, false, JSON.stringify(title), i)
  }
  const { users, items, weights } = planted.data
  const rows = Array.from({ length: users.length }, (_, e) => ({
    profile_id: `profile-${String(users[e]).padStart(6, '0')}`,
    title_id: titleId(items[e] as number),
    progress: Math.min(1, (weights[e] as number) / 3),
    completed: (weights[e] as number) >= 3 ? 1 : 0,
    last_at: Date.UTC(2026, 0, 1) + e * 1000,
  }))
  await store.insertHistory(rows)

  const trainer = new Trainer({
    store,
    titles: new TitleIndex(store),
    announce: async () => {},
    recompute: async () => false,
    train: (data, options) => during('model (worker)', () => trainInWorker(data, options)),
    content: (features, k) => during('content neighbours (worker)', () => contentInWorker(features, k)),
    log: reel.log,
    now: Date.now,
    algorithm,
  })
  // The longest stall of the event loop, and in which phase it fell.
  let phase = 'reading and writing'
  const stalls = new Map<string, number>()
  let last = performance.now()
  const ticker = setInterval(() => {
    const now = performance.now()
    stalls.set(phase, Math.max(stalls.get(phase) ?? 0, now - last - 5))
    last = now
  }, 5)
  async function during<T>(name: string, work: () => Promise<T>): Promise<T> {
    await new Promise((r) => setTimeout(r, 10))
    phase = name
    try {
      return await work()
    } finally {
      await new Promise((r) => setTimeout(r, 10))
      phase = 'reading and writing'
    }
  }
  const rssBefore = process.memoryUsage().rss
  const loop = loopStalls()
  loop.enable()
  const report = await trainer.run()
  loop.disable()
  clearInterval(ticker)
  if (!report) throw new Error('training did not run')
  console.log(
    JSON.stringify({
      ...report,
      rssBeforeBytes: rssBefore,
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
      loopMaxMs: loop.maxMs(),
      loopP99Ms: loop.p99Ms(),
      stallsMs: Object.fromEntries([...stalls].map(([k, v]) => [k, Math.round(v)])),
    }),
  )
} finally {
  await reel.stop()
  fs.rmSync(dataDir, { recursive: true, force: true })
}
