import type { ServiceModule } from '../../platform/modules.js'
import { statusPage } from './status-page.js'

/**
 * The gateway: the front door of a process that serves people. Routing and rate limits arrive with
 * their issues; today it serves the home page.
 */
export const gatewayModule: ServiceModule = {
  name: 'gateway',
  register(ctx) {
    ctx.http.get('/', { schema: { hide: true } }, async (_req, reply) =>
      reply.type('text/html; charset=utf-8').send(statusPage()),
    )
  },
}
