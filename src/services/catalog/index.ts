import path from 'node:path'
import type { ServiceModule } from '../../platform/modules.js'
import { MediaTools } from '../media/tools.js'
import { catalogMigrations } from './migrations.js'
import { catalogRoutes } from './routes.js'
import { DemoSeeder, seedRoutes } from './seed.js'
import { CatalogService } from './service.js'
import { CatalogStore } from './store.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    /**
     * Titles, seasons, episodes, people, genres and availability. For the media pipeline:
     * `upsertMedia` (create a minimal title, set a title's or episode's media status and duration);
     * for trends: `setPopularity`.
     */
    catalog: CatalogService
  }
}

const OUTBOX_RELAY_INTERVAL_MS = 5_000

/** The catalog service: titles, series, seasons, episodes, people, genres and availability. */
export const catalogModule: ServiceModule = {
  name: 'catalog',
  migrations: catalogMigrations,
  api(ctx) {
    return new CatalogService({
      store: CatalogStore.of(ctx.db),
      cache: ctx.cache,
      bus: ctx.bus,
      accounts: () => ctx.use('accounts'),
      log: ctx.log.child({ service: 'catalog' }),
      now: ctx.now,
    })
  },
  register(ctx) {
    const catalog = ctx.use('catalog')
    catalogRoutes(ctx, catalog)
    ctx.every('catalog-outbox-relay', OUTBOX_RELAY_INTERVAL_MS, async () => {
      await catalog.relayOutbox()
    })
    const seeder = new DemoSeeder({
      catalog: () => catalog,
      media: () => ctx.use('media'),
      tools: MediaTools.resolve(ctx.config),
      blobs: ctx.blobs,
      log: ctx.log.child({ service: 'catalog', task: 'seed' }),
      workDir: path.join(ctx.config.dataDir, 'seed-work'),
    })
    seedRoutes(ctx, seeder)
    ctx.onStop(() => seeder.stop())
    // The quick start (`reel start`) fills a first, empty install; tests and `reel serve` leave it unset.
    if (ctx.config.seed === 'auto') ctx.onStart(() => seeder.seedIfFirstStart())
  },
}
