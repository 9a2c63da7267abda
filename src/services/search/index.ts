import type { ServiceModule } from '../../platform/modules.js'
import { TITLE_REMOVED, TITLE_UPSERTED } from '../catalog/events.js'
import { searchMigrations } from './migrations.js'
import { searchRoutes } from './routes.js'
import { SearchService } from './service.js'
import { SearchStore } from './store.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    search: SearchService
  }
}

const SNAPSHOT_INTERVAL_MS = 10 * 60_000
const SYNONYMS_RELOAD_MS = 30_000

/**
 * The search service. Each replica keeps its own index: at start it loads the blob snapshot (if
 * any) and checks it was made from this bus's log, then reads the catalog events after the
 * snapshot's log position (from the start of the log without one, or when the log is another)
 * through an ephemeral bus reader of its own, and stays subscribed. Events the index already holds
 * are skipped by version.
 */
export const searchModule: ServiceModule = {
  name: 'search',
  migrations: searchMigrations,
  api(ctx) {
    return new SearchService({
      store: new SearchStore(ctx.db),
      blobs: ctx.blobs,
      accounts: () => ctx.use('accounts'),
      log: ctx.log.child({ service: 'search' }),
      now: ctx.now,
      busKind: ctx.bus.kind,
    })
  },
  register(ctx) {
    const search = ctx.use('search')
    searchRoutes(ctx, search)
    ctx.every('search-snapshot', SNAPSHOT_INTERVAL_MS, async () => {
      await search.saveSnapshot()
    })
    ctx.every('search-synonyms', SYNONYMS_RELOAD_MS, () => search.reloadSynonyms())
    ctx.onStart(async () => {
      await search.reloadSynonyms()
      await search.loadSnapshot()
      await search.verifySnapshotLog(ctx.bus)
      const subscription = await ctx.bus.subscribe({
        // Ephemeral: every replica reads every event, and a stopped one leaves no consumer behind;
        // the position it resumes from is the one its snapshot recorded.
        name: 'search-index',
        durability: 'ephemeral',
        types: [TITLE_UPSERTED, TITLE_REMOVED],
        startAt: search.resumeAt(),
        handler: (event, info) => search.applyDelivered(event, info.position),
      })
      ctx.onStop(async () => {
        search.close()
        await subscription.stop()
        await search
          .saveSnapshot()
          .catch((e) => ctx.log.warn({ err: e }, 'saving the search snapshot failed'))
      })
    })
  },
}
