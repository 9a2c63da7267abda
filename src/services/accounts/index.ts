import type { ServiceModule } from '../../platform/modules.js'

/** The accounts service: users, credentials, sessions and profiles. Its routes, consumers and jobs arrive with its issue. */
export const accountsModule: ServiceModule = {
  name: 'accounts',
  register() {},
}
