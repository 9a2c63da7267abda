import type { ServiceModule } from '../../platform/modules.js'

/** The billing service: plans, subscriptions, invoices and entitlements. Its routes, consumers and jobs arrive with its issue. */
export const billingModule: ServiceModule = {
  name: 'billing',
  register() {},
}
