import type { ServiceModule } from '../../platform/modules.js'
import { billingMigrations } from './migrations.js'
import { LocalPaymentProvider } from './payments.js'
import { billingRoutes } from './routes.js'
import { BillingService } from './service.js'
import { BillingStore } from './store.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    billing: BillingService
  }
}

const CYCLE_INTERVAL_MS = 60_000

/** The billing service: plans, subscriptions, invoices and entitlements. */
export const billingModule: ServiceModule = {
  name: 'billing',
  migrations: billingMigrations,
  api(ctx) {
    const store = new BillingStore(ctx.db)
    return new BillingService({
      store,
      cache: ctx.cache,
      bus: ctx.bus,
      payments: new LocalPaymentProvider(store),
      log: ctx.log.child({ service: 'billing' }),
      trialDays: ctx.config.trialDays,
      now: ctx.now,
    })
  },
  register(ctx) {
    const billing = ctx.use('billing')
    billingRoutes(ctx, billing)
    ctx.every('billing-cycle', CYCLE_INTERVAL_MS, async () => {
      await billing.runCycle()
    })
    ctx.onStart(async () => {
      const subscription = await ctx.bus.subscribe<{ accountId: string }>({
        name: 'billing-account-closed',
        types: ['accounts.account.closed'],
        handler: async (event) => billing.accountClosed(event.data.accountId),
      })
      ctx.onStop(() => subscription.stop())
    })
  },
}
