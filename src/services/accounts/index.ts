import type { ServiceModule } from '../../platform/modules.js'
import { accountsMigrations } from './migrations.js'
import { accountsRoutes } from './routes.js'
import { AccountsService } from './service.js'
import { AccountsStore } from './store.js'

declare module '../../platform/modules.js' {
  interface ServiceApis {
    accounts: AccountsService
  }
}

const SESSION_PRUNE_INTERVAL_MS = 3600_000

/** The accounts service: users, credentials, sessions and profiles. */
export const accountsModule: ServiceModule = {
  name: 'accounts',
  migrations: accountsMigrations,
  api(ctx) {
    return new AccountsService({
      store: new AccountsStore(ctx.db),
      cache: ctx.cache,
      bus: ctx.bus,
      auth: ctx.auth,
      billing: ctx.use('billing'),
      log: ctx.log.child({ service: 'accounts' }),
      defaultCountry: ctx.config.defaultCountry,
      refreshTokenTtlDays: ctx.config.refreshTokenTtlDays,
      loginMaxFailures: ctx.config.loginMaxFailures,
      loginMaxAttemptsPerAddress: ctx.config.loginMaxAttemptsPerAddress,
      now: ctx.now,
    })
  },
  register(ctx) {
    const accounts = ctx.use('accounts')
    accountsRoutes(ctx, accounts)
    ctx.every('accounts-session-prune', SESSION_PRUNE_INTERVAL_MS, async () => {
      const pruned = await accounts.pruneEndedSessions()
      if (pruned > 0) ctx.log.info({ pruned }, 'forgot sessions that ended over 30 days ago')
    })
  },
}
