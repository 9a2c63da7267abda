import type { ServiceModule } from '../../platform/modules.js'

/** The reco service: offline training and precomputed rows per profile. Its routes, consumers and jobs arrive with its issue. */
export const recoModule: ServiceModule = {
  name: 'reco',
  register() {},
}
