import type { ServiceModule } from '../../platform/modules.js'
import { PROFILE_DELETED, type ProfileDeleted } from '../accounts/events.js'
import { playbackMigrations } from './migrations.js'
import { playbackRoutes } from './routes.js'
import { PlaybackService } from './service.js'
import { PlaybackStore } from './store.js'
import { PlayableTitles } from './titles.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    playback: PlaybackService
  }
}

/** The playback service: play sessions, stream limits, resume state and viewing history. */
export const playbackModule: ServiceModule = {
  name: 'playback',
  migrations: playbackMigrations,
  api(ctx) {
    const { config } = ctx
    return new PlaybackService({
      store: new PlaybackStore(ctx.db),
      cache: ctx.cache,
      bus: ctx.bus,
      billing: () => ctx.use('billing'),
      accounts: () => ctx.use('accounts'),
      cdn: () => ctx.use('cdn'),
      titles: new PlayableTitles(
        () => ctx.use('catalog'),
        () => ctx.use('media'),
      ),
      log: ctx.log.child({ service: 'playback' }),
      now: ctx.now,
      settings: {
        heartbeatIntervalMs: config.playbackHeartbeatMs,
        streamTimeoutMs: config.playbackStreamTimeoutMs,
        flushRows: config.playbackFlushRows,
        tokenTtlS: config.playbackTokenTtlS,
      },
    })
  },
  register(ctx) {
    const playback = ctx.use('playback')
    playbackRoutes(ctx, playback)
    ctx.every('playback-write-behind', ctx.config.playbackFlushMs, () => playback.flush())
    // Registered before the consumer's stop hook, so it runs after it: the last positions reach the
    // DB and the last events the Bus.
    ctx.onStop(() => playback.drain())
    ctx.onStart(async () => {
      const subscriptions = await Promise.all([
        ctx.bus.subscribe<ProfileDeleted>({
          name: 'playback-profile-deleted',
          types: [PROFILE_DELETED],
          handler: async (event) => playback.profileDeleted(event.data.profileId),
        }),
        // The durable consumer above reaches one process (and catches up on deletions made while
        // none ran); every process also hears of each deletion, to drop the rows of that profile it
        // has not flushed and end its sessions there (the deletes are the same, so twice is harmless).
        ctx.bus.subscribe<ProfileDeleted>({
          name: 'playback-profile-deleted-here',
          types: [PROFILE_DELETED],
          durability: 'ephemeral',
          startAt: 'new',
          handler: async (event) => playback.profileDeleted(event.data.profileId),
        }),
      ])
      ctx.onStop(async () => {
        for (const s of subscriptions) await s.stop()
      })
    })
  },
}
