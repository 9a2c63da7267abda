import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import { notFound } from '../../platform/errors.js'
import type { ServiceModule } from '../../platform/modules.js'
import { statusPage } from './status-page.js'

/** The built web app (`npm run build`); src/ and dist/ sit at the same depth below the package. */
const WEB_ROOT = fileURLToPath(new URL('../../../dist/web/', import.meta.url))

/** reel's own origin for everything; media and connections also to the CDN edges' origins (REEL_CDN_EDGE_ORIGINS). */
export function contentSecurityPolicy(edgeOrigins: readonly string[] = []): string {
  const edges = edgeOrigins.map((o) => new URL(o).origin).join(' ')
  const withEdges = (sources: string) => (edges ? `${sources} ${edges}` : sources)
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    `media-src ${withEdges("'self' blob:")}`,
    `connect-src ${withEdges("'self'")}`,
    "worker-src 'self' blob:",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "object-src 'none'",
  ].join('; ')
}

export const CONTENT_SECURITY_POLICY = contentSecurityPolicy()

/**
 * The gateway: the front door of a process that serves people. It serves the web app (its files,
 * and index.html for every app path so deep links work) and an operator status page at /status.
 */
export const gatewayModule: ServiceModule = {
  name: 'gateway',
  async register(ctx) {
    const { http } = ctx
    const csp = contentSecurityPolicy(ctx.config.cdnEdgeOrigins)
    http.get('/status', { schema: { hide: true } }, async (_req, reply) =>
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(statusPage()),
    )
    if (!fs.existsSync(`${WEB_ROOT}index.html`)) {
      ctx.log.warn({ webRoot: WEB_ROOT }, 'web app not built (npm run build); serving the status page at /')
      http.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/status'))
      return
    }
    await http.register(fastifyStatic, {
      root: WEB_ROOT,
      wildcard: false,
      index: false,
      cacheControl: false,
      setHeaders(res, file) {
        // Hashed asset names never change content: cache them for a year; the page itself, never.
        res.setHeader(
          'cache-control',
          file.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        )
      },
    })
    http.get('/*', { schema: { hide: true } }, async (req, reply) => {
      const path = req.url.split('?')[0] ?? '/'
      if (path.startsWith('/api/') || /\.[a-z0-9]+$/i.test(path))
        throw notFound('route_not_found', `No route for GET ${path}`)
      return reply
        .header('content-security-policy', csp)
        .header('cache-control', 'no-cache')
        .sendFile('index.html')
    })
  },
}
