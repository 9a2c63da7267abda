import type { ServiceModule } from '../../platform/modules.js'

/** The trends service: per-region and worldwide windows of plays. Its routes, consumers and jobs arrive with its issue. */
export const trendsModule: ServiceModule = {
  name: 'trends',
  register() {},
}
