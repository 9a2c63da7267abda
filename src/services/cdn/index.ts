import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { existingKey } from '../../platform/keys.js'
import type { ServiceModule } from '../../platform/modules.js'
import { TITLE_PUBLISHED, type TitlePublished } from '../media/events.js'
import { Edge } from './edge.js'
import { cdnMigrations } from './migrations.js'
import { BlobOrigin } from './origin.js'
import { cdnRoutes } from './routes.js'
import { ANY_REGION, CdnService, RegionTable } from './service.js'
import { CdnStore } from './store.js'
import { localUrlKeyPath, UrlSigner } from './tokens.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    /** Steering (`steer`, `regionOf`), URL signing and the edge registry. */
    cdn: CdnService
  }
}

export const BUILTIN_EDGE_ID = 'builtin'
const URL_KEY_SECRET = 'url-key'
const REPORT_INTERVAL_MS = 5_000

/** The cdn service: the edge registry, steering, the origin and the built-in edge. */
export const cdnModule: ServiceModule = {
  name: 'cdn',
  migrations: cdnMigrations,
  api(ctx) {
    const { config } = ctx
    const store = new CdnStore(ctx.db)
    // Processes sharing a database share the key kept there: the first one to start offers the key
    // its data dir already had, if any (URLs signed before an upgrade stay valid), the rest take it.
    const sharedKey = async () =>
      Buffer.from(
        await store.secret(
          URL_KEY_SECRET,
          (existingKey(localUrlKeyPath(config)) ?? randomBytes(32)).toString('base64url'),
          ctx.now(),
        ),
        'base64url',
      )
    const signer = UrlSigner.fromConfig(config, sharedKey)
    void signer.ready().then(
      () => ctx.log.info({ fingerprint: signer.fingerprint }, 'media URL signing key ready'),
      (e: unknown) => ctx.log.error({ err: e }, 'could not load the media URL signing key'),
    )
    return new CdnService({
      store,
      signer,
      now: ctx.now,
      settings: {
        edgeTimeoutMs: config.cdnEdgeTimeoutMs,
        edgesPerTitle: config.cdnEdgesPerTitle,
        regionHeader: config.cdnRegionHeader,
        regions: RegionTable.parse(config.cdnRegions),
        publicUrl: (config.url ?? '').replace(/\/+$/, ''),
      },
    })
  },
  register(ctx) {
    const cdn = ctx.use('cdn')
    const log = ctx.log.child({ service: 'cdn' })
    const edge = ctx.config.cdnBuiltinEdge
      ? new Edge({
          name: BUILTIN_EDGE_ID,
          cacheDir: ctx.config.edgeCacheDir ?? path.join(ctx.config.dataDir, 'edge-cache'),
          budgetBytes: ctx.config.edgeCacheBytes,
          origin: new BlobOrigin(ctx.blobs),
          signer: cdn.signer,
          log: log.child({ edge: BUILTIN_EDGE_ID }),
          now: ctx.now,
        })
      : undefined
    cdnRoutes(ctx, cdn, edge)
    ctx.onStart(async () => {
      // Recorded for the separate edges that poll for new titles (those without the event bus).
      const record = await ctx.bus.subscribe<TitlePublished>({
        name: 'cdn-published-log',
        types: [TITLE_PUBLISHED],
        handler: async (event) => {
          const at = Date.parse(event.time)
          await cdn.recordPublished(event.id, Number.isFinite(at) ? at : ctx.now(), event.data)
        },
      })
      ctx.onStop(() => record.stop())
    })
    if (!edge) return
    const report = () =>
      cdn.report({
        id: BUILTIN_EDGE_ID,
        url: `${(ctx.config.url ?? '').replace(/\/+$/, '')}/edge`,
        region: ANY_REGION,
        capacityBytes: edge.budgetBytes,
        usedBytes: edge.stats.usedBytes,
        healthy: true,
      })
    ctx.every('cdn-builtin-edge-report', REPORT_INTERVAL_MS, report)
    ctx.onStart(async () => {
      await report()
      const subscription = await ctx.bus.subscribe<TitlePublished>({
        name: 'cdn-fill-builtin',
        types: [TITLE_PUBLISHED],
        handler: async (event) => {
          if (await cdn.assigned(BUILTIN_EDGE_ID, event.data.titleId)) await edge.prefill(event.data)
        },
      })
      ctx.onStop(() => subscription.stop())
    })
  },
}
