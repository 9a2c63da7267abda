import type { Entitlement } from '../../platform/auth.js'
import type { Subscription } from './service.js'

/** Published on every change of an account's subscription; keyed by account id. */
export const SUBSCRIPTION_CHANGED = 'billing.subscription.changed'

export interface SubscriptionChanged {
  accountId: string
  subscription: Subscription | null
  entitlement: Entitlement
  /** What happened: started, renewed, plan_changed, canceling, resumed, canceled, past_due, payment_recovered. */
  change: string
}
