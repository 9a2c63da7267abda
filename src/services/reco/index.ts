import type { ServiceModule } from '../../platform/modules.js'
import { PROFILE_DELETED, type ProfileDeleted } from '../accounts/events.js'
import { TITLE_REMOVED, TITLE_UPSERTED } from '../catalog/events.js'
import { PLAYBACK_STARTED, PLAYBACK_STOPPED } from '../playback/events.js'
import { Campaigns } from './campaigns.js'
import { contentInWorker } from './content.js'
import { TRAINING_FINISHED, type TrainingFinished } from './events.js'
import { recoMigrations } from './migrations.js'
import { trainInWorker } from './model/worker.js'
import { recoRoutes } from './routes.js'
import { RecoService } from './service.js'
import { RecoStore } from './store.js'
import { TitleIndex } from './titles.js'
import { Trainer, TrainingSchedule } from './training.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    reco: RecoService & { trainer: Trainer; schedule: TrainingSchedule }
  }
}

const FALLBACK_INTERVAL_MS = 10 * 60_000
/** Batches of plays handled at once (batches in flight hold distinct profiles). */
const CONSUMER_CONCURRENCY = 4
/** Most plays a batch of the history consumer holds. */
const HISTORY_BATCH = 500

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
      recompute: async (trained) => (await reco.refreshProfile(trained.profileId, trained)) !== undefined,
      announce: async (runId) => {
        reco.trained(runId)
        await ctx.bus.publish<TrainingFinished>({ type: TRAINING_FINISHED, key: 'reco', data: { runId } })
      },
      train: trainInWorker,
      content: contentInWorker,
      log,
      now: ctx.now,
      algorithm: ctx.config.recoAlgorithm,
    })
    const schedule = new TrainingSchedule(trainer, store, ctx.now, {
      intervalMs: ctx.config.recoTrainIntervalS * 1000,
      afterEvents: ctx.config.recoTrainAfterEvents,
      takeEvents: () => reco.takeNewEvents(),
      afterRun: async () => {
        await reco.saveFallback()
      },
    })
    return Object.assign(reco, { trainer, schedule })
  },
  register(ctx) {
    const reco = ctx.use('reco')
    const { trainer } = reco
    const log = ctx.log.child({ service: 'reco' })
    recoRoutes(ctx, reco, trainer)
    const { schedule } = reco
    if (ctx.config.recoTrainIntervalS > 0 || ctx.config.recoTrainAfterEvents > 0)
      ctx.every('reco-train', ctx.config.recoTrainCheckS * 1000, async () => {
        const reason = await schedule.tick()
        if (reason) log.info({ reason }, 'recommendations trained without being asked')
      })
    ctx.every('reco-fallback', FALLBACK_INTERVAL_MS, async () => {
      await reco.saveFallback()
    })
    ctx.onStart(async () => {
      await reco.loadFallback()
      await reco.loadGeneration()
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
          // A batch's history rows are read and written a statement at a time.
          concurrency: CONSUMER_CONCURRENCY,
          maxBatch: HISTORY_BATCH,
          batchHandler: async (events) => {
            await reco.applyPlaybackEvents(events)
          },
        }),
        // Every process hears of every run (its own included, already applied).
        ctx.bus.subscribe<TrainingFinished>({
          name: 'reco-training-finished',
          types: [TRAINING_FINISHED],
          durability: 'ephemeral',
          startAt: 'new',
          handler: async (event) => reco.trained(event.data.runId),
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
