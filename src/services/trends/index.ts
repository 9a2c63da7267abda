import type { ServiceModule } from '../../platform/modules.js'
import { PLAYBACK_HEARTBEAT, PLAYBACK_STARTED, PLAYBACK_STOPPED } from '../playback/events.js'
import { catalogTitleFacts } from './catalog-facts.js'
import { CachedTitleFacts } from './facts.js'
import { FLUSH_EVENTS, FLUSHES_AT_ONCE } from './ingest.js'
import { trendsMigrations } from './migrations.js'
import { trendsRoutes } from './routes.js'
import { TrendsService } from './service.js'
import { TrendsStore } from './store.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    trends: TrendsService
  }
}

/** Every minute: each run forgets a minute's worth of event ids, not an hour's at once. */
const PRUNE_INTERVAL_MS = 60_000
const SEAL_INTERVAL_MS = 60_000
const POPULARITY_INTERVAL_MS = 10 * 60_000
const RECOVER_INTERVAL_MS = 60_000

/** The trends service: per-region and worldwide windows of plays, Top 10, popularity; streaming and batch. */
export const trendsModule: ServiceModule = {
  name: 'trends',
  migrations: trendsMigrations,
  api(ctx) {
    return new TrendsService({
      store: new TrendsStore(ctx.db),
      cache: ctx.cache,
      blobs: ctx.blobs,
      facts: new CachedTitleFacts(() => catalogTitleFacts(ctx)),
      profile: (accountId, profileId) => ctx.use('accounts').profile(accountId, profileId),
      log: ctx.log.child({ service: 'trends' }),
      now: ctx.now,
      graceMs: ctx.config.trendsGraceS * 1000,
      answerTtlMs: ctx.config.trendsAnswerTtlMs,
      setPopularity: (titleId, score) => ctx.use('catalog').setPopularity(titleId, score),
    })
  },
  register(ctx) {
    const trends = ctx.use('trends')
    trendsRoutes(ctx, trends)
    ctx.every('trends-seal', SEAL_INTERVAL_MS, async () => {
      await trends.seal()
    })
    ctx.every('trends-prune', PRUNE_INTERVAL_MS, async () => {
      await trends.prune()
    })
    ctx.every('trends-popularity', POPULARITY_INTERVAL_MS, async () => {
      await trends.publishPopularity()
    })
    ctx.every('trends-recover', RECOVER_INTERVAL_MS, async () => {
      await trends.aggregator.recover()
      await trends.aggregator.moveArchive()
    })
    // Runs after the consumer has stopped (stop hooks run in reverse): finishes what its last flushes left.
    ctx.onStop(async () => {
      await trends.aggregator.apply()
      await trends.aggregator.moveArchive()
    })
    ctx.onStart(async () => {
      await trends.aggregator.recover()
      const subscription = await ctx.bus.subscribe({
        name: 'trends',
        types: [PLAYBACK_STARTED, PLAYBACK_HEARTBEAT, PLAYBACK_STOPPED],
        // One flush a batch; batches in flight at once hold distinct profiles.
        concurrency: FLUSHES_AT_ONCE,
        maxBatch: FLUSH_EVENTS,
        batchHandler: (events) => trends.handleBatch(events),
      })
      ctx.onStop(() => subscription.stop())
    })
  },
}
