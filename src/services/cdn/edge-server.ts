import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../../platform/log.js'
import type { Edge } from './edge.js'
import type { EdgeReport } from './service.js'
import type { UrlSigner } from './tokens.js'

export interface EdgeServer {
  url: string
  server: http.Server
  close(): Promise<void>
}

/** A standalone edge (`reel edge`): `/t/<token>/<key>` from the cache, `/healthz`, `/stats`. */
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
    if (res.status !== 204) throw new Error(`steering answered ${res.status}: ${await res.text()}`)
  }

  async assigned(titleId: string): Promise<boolean> {
    const res = await fetch(
      `${this.steeringUrl}/api/v1/cdn/edges/${encodeURIComponent(this.edgeId)}/assigned/${encodeURIComponent(titleId)}`,
      { headers: { authorization: `Bearer ${this.token()}` }, signal: AbortSignal.timeout(5000) },
    )
    if (res.status !== 200) throw new Error(`steering answered ${res.status}`)
    return ((await res.json()) as { assigned: boolean }).assigned
  }

  /** Reports now and then every intervalMs until the returned function is called. */
  every(intervalMs: number, report: () => Omit<EdgeReport, 'id'>): () => void {
    const send = () =>
      this.report(report()).catch((e) =>
        this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'edge report failed'),
      )
    void send()
    const timer = setInterval(send, intervalMs)
    timer.unref()
    return () => clearInterval(timer)
  }
}
