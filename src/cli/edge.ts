import os from 'node:os'
import path from 'node:path'
import type { Command } from 'commander'
import type { Subscription } from '../platform/bus/bus.js'
import { createJetStreamBus } from '../platform/bus/jetstream.js'
import { loadConfig } from '../platform/config.js'
import { createLogger } from '../platform/log.js'
import { Edge } from '../services/cdn/edge.js'
import { KeyMismatchError, SteeringClient, startEdgeServer } from '../services/cdn/edge-server.js'
import { HttpOrigin } from '../services/cdn/origin.js'
import { UrlSigner } from '../services/cdn/tokens.js'
import { TITLE_PUBLISHED, type TitlePublished } from '../services/media/events.js'

const REPORT_INTERVAL_MS = 5_000

/** `reel edge`: only the edge server; registers with steering, fills from the origin, push-fills over JetStream. */
export function registerEdgeCommands(cli: Command): void {
  cli
    .command('edge')
    .description(
      "run a CDN edge: a pull-through cache of a reel server's /origin that reports to its steering and push-fills the titles steering places on it (from JetStream with REEL_NATS_URL, else by polling the server every REEL_EDGE_POLL_MS); refuses to start when the server rejects its URL key",
    )
    .action(async () => {
      const config = loadConfig(process.env)
      const log = createLogger(config.logLevel).child({ service: 'edge' })
      if (!config.cdnUrlKey)
        log.warn(
          'REEL_CDN_URL_KEY is not set: this edge uses the key under REEL_DATA_DIR, which only a reel server on the same data dir shares',
        )
      const signer = UrlSigner.fromConfig(config)
      const originUrl = (config.edgeOriginUrl ?? config.url ?? `http://localhost:${config.port}`).replace(
        /\/+$/,
        '',
      )
      const id = config.edgeId ?? `${os.hostname()}:${config.edgePort}`
      const edge = new Edge({
        name: id,
        cacheDir: config.edgeCacheDir ?? path.join(config.dataDir, `edge-${config.edgePort}`),
        budgetBytes: config.edgeCacheBytes,
        origin: new HttpOrigin(originUrl, signer, id),
        signer,
        log,
      })
      const server = await startEdgeServer(edge, { port: config.edgePort, host: config.host })
      const url = config.edgeUrl ?? server.url
      const steering = new SteeringClient(originUrl, signer, id, log)
      const report = (healthy: boolean) => ({
        url,
        region: config.edgeRegion,
        capacityBytes: config.edgeCacheBytes,
        usedBytes: edge.stats.usedBytes,
        healthy,
      })
      // The first report proves the server accepts this edge's key: refuse to run with a wrong one.
      try {
        await steering.report(report(true))
        log.info({ fingerprint: signer.fingerprint }, 'the reel server accepts this edge')
      } catch (e) {
        if (e instanceof KeyMismatchError) {
          log.fatal({ fingerprint: signer.fingerprint }, e.message)
          log.flush()
          await server.close()
          process.exit(1)
        }
        log.warn(
          { err: e instanceof Error ? e.message : String(e), origin: originUrl },
          'the reel server did not answer the first report; retrying every few seconds',
        )
      }
      const stopReports = steering.every(REPORT_INTERVAL_MS, () => report(true))
      let stopPolling: (() => void) | undefined
      let subscription: Subscription | undefined
      const bus = config.natsUrl
        ? await createJetStreamBus({ natsUrl: config.natsUrl, prefix: config.natsPrefix, log })
        : undefined
      if (bus) {
        subscription = await bus.subscribe<TitlePublished>({
          name: `cdn-fill-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`,
          types: [TITLE_PUBLISHED],
          handler: async (event) => {
            if (await steering.assigned(event.data.titleId)) await edge.prefill(event.data)
          },
        })
      } else {
        log.info(
          { everyMs: config.edgePollMs },
          'REEL_NATS_URL is not set: push fill by polling the reel server for published titles',
        )
        stopPolling = steering.pollPublished(edge, config.edgePollMs)
      }
      log.info({ id, url, region: config.edgeRegion, origin: originUrl }, 'edge is listening')
      const shutdown = async () => {
        stopReports()
        stopPolling?.()
        await steering.report(report(false)).catch(() => {})
        await subscription?.stop()
        await bus?.close()
        await server.close()
        log.flush()
        process.exit(0)
      }
      process.once('SIGTERM', () => void shutdown())
      process.once('SIGINT', () => void shutdown())
    })
}
