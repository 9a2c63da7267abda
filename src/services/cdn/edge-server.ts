import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../../platform/log.js'
import { registry } from '../../platform/metrics.js'
import type { TitlePublished } from '../media/events.js'
import type { Edge } from './edge.js'
import type { EdgeReport, PublishedPage } from './service.js'
import type { UrlSigner } from './tokens.js'

export interface EdgeServer {
  url: string
  server: http.Server
  close(): Promise<void>
}

/** A standalone edge (`reel edge`): `/t/<token>/<key>` from the cache, `/healthz`, `/stats`, `/metrics` (Prometheus). */
export async function startEdgeServer(
  edge: Edge,
  options: { port: number; host: string },
): Promise<EdgeServer> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/'
    if (url.startsWith('/t/')) return void edge.serve(req, res, url)
    if (url === '/healthz')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}')
    if (url === '/stats')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(edge.stats))
    if (url === '/metrics')
      return void registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      )
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code: 'route_not_found', message: 'Edge URLs are /t/<token>/<key>' } }))
  })
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** Steering refused the edge's token: the edge and the reel server sign with different keys. */
export class KeyMismatchError extends Error {
  constructor(steeringUrl: string) {
    super(
      `the reel server at ${steeringUrl} refuses this edge's token: the edge and the server sign media URLs with different keys (or their clocks differ by more than 10 minutes), so every segment would be refused (403). Set the same REEL_CDN_URL_KEY on the edge and on every reel server process`,
    )
    this.name = 'KeyMismatchError'
  }
}

/** Reports an edge to steering every intervalMs (a silent edge drops out), and asks what to push-fill. */
export class SteeringClient {
  constructor(
    private readonly steeringUrl: string,
    private readonly signer: UrlSigner,
    private readonly edgeId: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  private token(): string {
    return this.signer.sign({
      sid: `edge:${this.edgeId}`,
      prefix: 'edges/',
      exp: Math.floor(this.now() / 1000) + 600,
      maxHeight: 0,
    })
  }

  async report(report: Omit<EdgeReport, 'id'>): Promise<void> {
    const res = await fetch(
      `${this.steeringUrl}/api/v1/cdn/edges/${encodeURIComponent(this.edgeId)}/report`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token()}` },
        body: JSON.stringify(report),
        signal: AbortSignal.timeout(5000),
      },
    )
    if (res.status === 204) return
    const body = await res.text()
    if (res.status === 403 && body.includes('invalid_edge_token'))
      throw new KeyMismatchError(this.steeringUrl)
    throw new Error(`steering answered ${res.status}: ${body}`)
  }

  /** The titles published after `after` that steering places on this edge (for an edge without the bus). */
  async published(after: number | undefined): Promise<PublishedPage> {
    const query = after === undefined ? '' : `?after=${after}`
    const res = await fetch(
      `${this.steeringUrl}/api/v1/cdn/edges/${encodeURIComponent(this.edgeId)}/published${query}`,
      { headers: { authorization: `Bearer ${this.token()}` }, signal: AbortSignal.timeout(5000) },
    )
    if (res.status === 403) throw new KeyMismatchError(this.steeringUrl)
    if (res.status !== 200) throw new Error(`steering answered ${res.status}`)
    return (await res.json()) as PublishedPage
  }

  async assigned(titleId: string): Promise<boolean> {
    const res = await fetch(
      `${this.steeringUrl}/api/v1/cdn/edges/${encodeURIComponent(this.edgeId)}/assigned/${encodeURIComponent(titleId)}`,
      { headers: { authorization: `Bearer ${this.token()}` }, signal: AbortSignal.timeout(5000) },
    )
    if (res.status !== 200) throw new Error(`steering answered ${res.status}`)
    return ((await res.json()) as { assigned: boolean }).assigned
  }

  /** Reports every intervalMs until the returned function is called. */
  every(intervalMs: number, report: () => Omit<EdgeReport, 'id'>): () => void {
    const send = () =>
      this.report(report()).catch((e) =>
        e instanceof KeyMismatchError
          ? this.log.error({ err: e.message }, 'edge report refused')
          : this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'edge report failed'),
      )
    const timer = setInterval(send, intervalMs)
    timer.unref()
    return () => clearInterval(timer)
  }

  /**
   * Push fill for an edge without the event bus: asks every intervalMs for the titles published since
   * the last answer that steering places here, and pre-fills them (lowest renditions first), one at
   * a time. Returns the function that stops it.
   */
  pollPublished(edge: Edge, intervalMs: number): () => void {
    let cursor: number | undefined
    let running = false
    const seen = new SeenPublished()
    const poll = async () => {
      if (running) return
      running = true
      try {
        for (;;) {
          const page = await this.published(cursor)
          for (const title of seen.fresh(page)) {
            try {
              const objects = await edge.prefill(title)
              this.log.info({ titleId: title.titleId, objects }, 'push-filled a published title')
            } catch (e) {
              // A title that cannot be filled now is pulled on its first request instead.
              this.log.warn(
                { titleId: title.titleId, err: e instanceof Error ? e.message : String(e) },
                'push fill failed',
              )
            }
          }
          const more = page.cursor !== cursor
          cursor = page.cursor
          if (!more) break
        }
      } catch (e) {
        this.log.warn(
          { err: e instanceof Error ? e.message : String(e) },
          'polling for published titles failed',
        )
      } finally {
        running = false
      }
    }
    void poll()
    const timer = setInterval(() => void poll(), intervalMs)
    timer.unref()
    return () => clearInterval(timer)
  }
}

/**
 * The event ids of the published titles a polling edge has had lately: a poll answers again the
 * ones recorded just below its cursor, and those are not filled twice.
 */
export class SeenPublished {
  /** In the order first seen (oldest first). */
  private readonly ids = new Set<string>()

  constructor(private readonly max = 10_000) {}

  /** The titles of a page not had before (every title when the server sends no ids); remembers them. */
  fresh(page: { titles: TitlePublished[]; eventIds?: string[] }): TitlePublished[] {
    const fresh: TitlePublished[] = []
    page.titles.forEach((title, i) => {
      const id = page.eventIds?.[i]
      if (id !== undefined) {
        if (this.ids.has(id)) return
        this.ids.add(id)
        if (this.ids.size > this.max) {
          const oldest = this.ids.values().next()
          if (!oldest.done) this.ids.delete(oldest.value)
        }
      }
      fresh.push(title)
    })
    return fresh
  }
}
