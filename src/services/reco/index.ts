import type { ServiceModule } from '../../platform/modules.js'
import { PROFILE_DELETED, type ProfileDeleted } from '../accounts/events.js'
import { TITLE_REMOVED, TITLE_UPSERTED } from '../catalog/events.js'
import { PLAYBACK_STARTED, PLAYBACK_STOPPED } from '../playback/events.js'
import { Campaigns } from './campaigns.js'
import { contentInWorker } from './content.js'
import { recoMigrations } from './migrations.js'
import { trainInWorker } from './model/worker.js'
import { recoRoutes } from './routes.js'
import { RecoService } from './service.js'
import { RecoStore } from './store.js'
import { TitleIndex } from './titles.js'
import { Trainer } from './training.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    reco: RecoService & { trainer: Trainer }
  }
}

const FALLBACK_INTERVAL_MS = 10 * 60_000
/** How often the event count since the last run is compared with REEL_RECO_TRAIN_AFTER_EVENTS. */
const EVENT_CHECK_MS = 30_000
/** Plays of different profiles handled at once. */
const CONSUMER_CONCURRENCY = 16

/**
 * The reco service: each profile's home page from a precomputed module (trained on a schedule, after
 * enough new events and by `reel reco train`, kept fresh by plays and ratings) plus live rows,
 * ratings, sponsored campaigns, and a static fallback page when a source fails.
 */
export const recoModule: ServiceModule = {
  name: 'reco',
  migrations: recoMigrations,
  api(ctx) {
    const store = new RecoStore(ctx.db)
    const titles = new TitleIndex(store)
    const log = ctx.log.child({ service: 'reco' })
    const moduleTtlMs = ctx.config.recoModuleTtlS * 1000
    const campaigns = new Campaigns(store, ctx.cache, ctx.now, async (id) =>
      (await ctx.use('catalog').titlesById([id])).has(id),
    )
    const reco = new RecoService({
      store,
      titles,
      campaigns,
      cache: ctx.cache,
      blobs: ctx.blobs,
      accounts: () => ctx.use('accounts'),
      catalog: () => ctx.use('catalog'),
      playback: () => ctx.use('playback'),
      trends: () => ctx.use('trends'),
      log,
      now: ctx.now,
      moduleTtlMs,
    })
    const trainer = new Trainer({
      store,
      titles,
      cache: ctx.cache,
      train: trainInWorker,
      content: contentInWorker,
      log,
      now: ctx.now,
      algorithm: ctx.config.recoAlgorithm,
      moduleTtlMs,
    })
    return Object.assign(reco, { trainer })
  },
  register(ctx) {
    const reco = ctx.use('reco')
    const { trainer } = reco
    const log = ctx.log.child({ service: 'reco' })
    recoRoutes(ctx, reco, trainer)
    const train = async () => {
      await trainer.run()
      await reco.saveFallback()
    }
    if (ctx.config.recoTrainIntervalS > 0)
      ctx.every('reco-train', ctx.config.recoTrainIntervalS * 1000, train)
    const afterEvents = ctx.config.recoTrainAfterEvents
    if (afterEvents > 0)
      ctx.every('reco-train-after-events', EVENT_CHECK_MS, async () => {
        if (reco.newEvents < afterEvents || trainer.busy) return
        reco.newEvents = 0
        await train()
      })
    ctx.every('reco-fallback', FALLBACK_INTERVAL_MS, async () => {
      await reco.saveFallback()
    })
    ctx.onStart(async () => {
      await reco.loadFallback()
      const subscriptions = await Promise.all([
        ctx.bus.subscribe({
          name: 'reco-catalog',
          types: [TITLE_UPSERTED, TITLE_REMOVED],
          handler: (event) => reco.applyCatalogEvent(event),
        }),
        ctx.bus.subscribe({
          name: 'reco-history',
          // Heartbeats only move progress, which training reads from starts and stops.
          types: [PLAYBACK_STARTED, PLAYBACK_STOPPED],
          concurrency: CONSUMER_CONCURRENCY,
          handler: async (event) => {
            await reco.applyPlaybackEvent(event)
          },
        }),
        ctx.bus.subscribe<ProfileDeleted>({
          name: 'reco-profile-deleted',
          types: [PROFILE_DELETED],
          handler: (event) => reco.profileDeleted(event.data.profileId),
        }),
      ])
      ctx.onStop(async () => {
        for (const s of subscriptions) await s.stop()
        await reco.flushRefreshes()
        // Impressions this process reserved and did not serve go back to their campaigns.
        await reco.campaigns
          .release()
          .catch((e) => log.warn({ err: e }, 'returning reserved impressions failed'))
      })
      // A first fallback page as soon as the catalog copy has titles (errors only log: the next run retries).
      reco.saveFallback().catch((e) => log.warn({ err: e }, 'saving the reco fallback page failed'))
    })
  },
}
