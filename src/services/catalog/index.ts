import type { ServiceModule } from '../../platform/modules.js'

/** The catalog service: titles, series, seasons, episodes, people, genres and availability. Its routes, consumers and jobs arrive with its issue. */
export const catalogModule: ServiceModule = {
  name: 'catalog',
  register() {},
}
