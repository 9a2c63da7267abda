import path from 'node:path'
import { ConfigError } from '../../platform/config.js'
import type { ServiceModule } from '../../platform/modules.js'
import { parseLadder } from './ladder.js'
import { mediaMigrations } from './migrations.js'
import { mediaRoutes } from './routes.js'
import { MediaService } from './service.js'
import { MediaStore } from './store.js'
import { CatalogTitles } from './titles.js'
import { MediaTools } from './tools.js'
import { uploadServer } from './uploads.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    media: MediaService
  }
}

const RECONCILE_INTERVAL_MS = 30_000

/** The media service: uploads, transcode jobs, the parts index, renditions and manifests. */
export const mediaModule: ServiceModule = {
  name: 'media',
  migrations: mediaMigrations,
  api(ctx) {
    const { config } = ctx
    let ladder: ReturnType<typeof parseLadder>
    try {
      ladder = parseLadder(config.mediaLadder)
    } catch (e) {
      throw new ConfigError('REEL_MEDIA_LADDER', e instanceof Error ? e.message : String(e))
    }
    const store = new MediaStore(ctx.db)
    return new MediaService({
      store,
      titles: new CatalogTitles(() => ctx.use('catalog')),
      cache: ctx.cache,
      bus: ctx.bus,
      blobs: ctx.blobs,
      tools: MediaTools.resolve(config),
      log: ctx.log.child({ service: 'media' }),
      now: ctx.now,
      settings: {
        chunkSeconds: config.mediaChunkSeconds,
        ladder,
        maxUploadBytes: config.mediaMaxUpload,
        maxDurationSeconds: config.mediaMaxDurationS,
        preset: config.mediaPreset,
        retryBackoffMs: config.mediaRetryBackoffMs,
        workers: config.mediaWorkers,
        workDir: path.join(config.dataDir, 'media-work'),
      },
    })
  },
  register(ctx) {
    const media = ctx.use('media')
    const uploads = uploadServer(
      media,
      path.join(ctx.config.dataDir, 'uploads'),
      ctx.config.mediaMaxUpload,
      ctx.log.child({ service: 'media' }),
    )
    mediaRoutes(ctx, media, uploads.server)
    ctx.onStart(() => uploads.recover())
    ctx.every('media-reconcile', RECONCILE_INTERVAL_MS, async () => {
      await uploads.recover()
      await media.reconcile()
    })
    if (ctx.config.mediaWorkers > 0) {
      ctx.onStart(async () => {
        const workers = await media.startWorkers(ctx.config.mediaWorkers)
        ctx.onStop(() => workers.stop())
      })
    }
  },
}
