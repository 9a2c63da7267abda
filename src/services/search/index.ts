import type { ServiceModule } from '../../platform/modules.js'

/** The search service: the inverted index fed by catalog events. Its routes, consumers and jobs arrive with its issue. */
export const searchModule: ServiceModule = {
  name: 'search',
  register() {},
}
