import type { Entitlement } from '../../platform/auth.js'
import type { Bus } from '../../platform/bus/bus.js'
import { type Cache, readThrough } from '../../platform/cache/cache.js'
import { AppError, badRequest, conflict, notFound } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import type { Logger } from '../../platform/log.js'
import { SUBSCRIPTION_CHANGED, type SubscriptionChanged } from './events.js'
import type { PaymentProvider } from './payments.js'
import type { BillingStore, InvoiceRow, PlanRow, SubscriptionRow, SubscriptionStatus } from './store.js'

export interface Plan {
  id: string
  name: string
  priceMinor: number
  currency: string
  interval: string
  maxStreams: number
  maxHeight: number
}

export interface Subscription {
  id: string
  plan: Plan
  status: SubscriptionStatus
  currentPeriodStart: string
  currentPeriodEnd: string
  cancelAtPeriodEnd: boolean
  creditMinor: number
}

export interface InvoiceLine {
  description: string
  amountMinor: number
}

export interface Invoice {
  id: string
  number: string
  reason: string
  periodStart: string
  periodEnd: string
  lines: InvoiceLine[]
  totalMinor: number
  currency: string
  status: InvoiceRow['status']
  attempts: number
  failureReason: string | null
  createdAt: string
  paidAt: string | null
}

export interface CycleReport {
  renewed: number
  pastDue: number
  canceled: number
  recovered: number
}

export const NOTHING: Entitlement = { active: false, maxStreams: 0, maxHeight: 0 }
/** Failed renewals are retried this often, this many times, before the subscription ends. */
const RETRY_AFTER_MS = 24 * 3600_000
const MAX_PAYMENT_ATTEMPTS = 3
const CACHE_TTL_MS = 5 * 60_000
const DAY_MS = 24 * 3600_000

const iso = (ms: number) => new Date(ms).toISOString()

/** The same day of the month n months later, or the month's last day when it has fewer days. */
export function addMonths(ms: number, n: number): number {
  const d = new Date(ms)
  const target = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, 1))
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate()
  target.setUTCDate(Math.min(d.getUTCDate(), lastDay))
  target.setUTCHours(d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds())
  return target.getTime()
}

const toPlan = (p: PlanRow): Plan => ({
  id: p.id,
  name: p.name,
  priceMinor: p.price_minor,
  currency: p.currency,
  interval: p.interval,
  maxStreams: p.max_streams,
  maxHeight: p.max_height,
})

const toInvoice = (i: InvoiceRow): Invoice => ({
  id: i.id,
  number: i.number,
  reason: i.reason,
  periodStart: iso(i.period_start),
  periodEnd: iso(i.period_end),
  lines: JSON.parse(i.lines) as InvoiceLine[],
  totalMinor: i.total_minor,
  currency: i.currency,
  status: i.status,
  attempts: i.attempts,
  failureReason: i.failure_reason,
  createdAt: iso(i.created_at),
  paidAt: i.paid_at === null ? null : iso(i.paid_at),
})

export interface BillingOptions {
  store: BillingStore
  cache: Cache
  bus: Bus
  payments: PaymentProvider
  log: Logger
  trialDays: number
  now?: () => number
}

/** Plans, subscriptions and their lifecycle, invoices, and what an account is entitled to. */
export class BillingService {
  private readonly store: BillingStore
  private readonly cache: Cache
  private readonly bus: Bus
  private readonly payments: PaymentProvider
  private readonly log: Logger
  private readonly trialDays: number
  private readonly now: () => number

  constructor(options: BillingOptions) {
    this.store = options.store
    this.cache = options.cache
    this.bus = options.bus
    this.payments = options.payments
    this.log = options.log
    this.trialDays = options.trialDays
    this.now = options.now ?? Date.now
  }

  async plans(): Promise<Plan[]> {
    return (await this.store.plans()).map(toPlan)
  }

  private async planOrThrow(planId: string): Promise<PlanRow> {
    const plan = await this.store.plan(planId)
    if (plan?.offered !== 1) {
      const offered = (await this.store.plans()).map((p) => p.id).join(', ')
      throw badRequest('unknown_plan', `There is no plan "${planId}"; plans on offer: ${offered}`)
    }
    return plan
  }

  /** What the account may watch now: read through the cache, invalidated on every change. */
  async entitlement(accountId: string): Promise<Entitlement> {
    return (
      (await readThrough(this.cache, `billing:entitlement:${accountId}`, CACHE_TTL_MS, async () => {
        const sub = await this.store.subscription(accountId)
        if (!sub || (sub.status !== 'trialing' && sub.status !== 'active')) return NOTHING
        const plan = await this.store.plan(sub.plan_id)
        return plan ? { active: true, maxStreams: plan.max_streams, maxHeight: plan.max_height } : NOTHING
      })) ?? NOTHING
    )
  }

  async subscription(accountId: string): Promise<Subscription | null> {
    return (
      (await readThrough(this.cache, `billing:subscription:${accountId}`, CACHE_TTL_MS, async () => {
        const sub = await this.store.subscription(accountId)
        return sub ? await this.toSubscription(sub) : null
      })) ?? null
    )
  }

  async invoices(accountId: string, limit: number): Promise<Invoice[]> {
    return (await this.store.invoices(accountId, limit)).map(toInvoice)
  }

  /**
   * Subscribes an account to a plan: a trial when the install offers one and the account never had
   * one, otherwise the first period is charged now. Resuming a subscription set to cancel, or
   * changing the plan of a live one, goes through here too.
   */
  async subscribe(
    accountId: string,
    planId: string,
  ): Promise<{ subscription: Subscription; invoice?: Invoice }> {
    const plan = await this.planOrThrow(planId)
    const current = await this.store.subscription(accountId)
    if (current && current.status !== 'canceled') return this.changePlan(current, plan)
    const now = this.now()
    const trial = this.trialDays > 0 && !current?.had_trial
    const row: SubscriptionRow = {
      id: current?.id ?? newId(),
      account_id: accountId,
      plan_id: plan.id,
      status: trial ? 'trialing' : 'active',
      current_period_start: now,
      current_period_end: trial ? now + this.trialDays * DAY_MS : addMonths(now, 1),
      cancel_at_period_end: 0,
      credit_minor: 0,
      had_trial: trial || current?.had_trial ? 1 : 0,
      created_at: current?.created_at ?? now,
      updated_at: now,
      canceled_at: null,
    }
    let invoice: InvoiceRow | undefined
    if (!trial) {
      invoice = await this.createInvoice(row, 'subscription_create', now, row.current_period_end, [
        {
          description: `${plan.name} plan, ${iso(now).slice(0, 10)} to ${iso(row.current_period_end).slice(0, 10)}`,
          amountMinor: plan.price_minor,
        },
      ])
      if (invoice && !(await this.collect(invoice))) {
        await this.store.updateInvoice(invoice.id, { next_attempt_at: null })
        throw new AppError(
          402,
          'payment_declined',
          'The payment was declined; the subscription did not start',
          {
            invoiceId: invoice.id,
          },
        )
      }
    }
    if (current) {
      if (!(await this.store.updateSubscription(current.id, current.updated_at, row))) throw this.raced()
    } else {
      try {
        await this.store.insertSubscription(row)
      } catch {
        throw this.raced()
      }
    }
    const subscription = await this.changed(row, current ? 'resumed' : 'started')
    return { subscription, invoice: invoice && toInvoice(invoice) }
  }

  private raced(): AppError {
    return conflict('subscription_changed', 'The subscription changed at the same time; try again')
  }

  private async changePlan(
    sub: SubscriptionRow,
    plan: PlanRow,
  ): Promise<{ subscription: Subscription; invoice?: Invoice }> {
    if (sub.status === 'past_due')
      throw conflict(
        'payment_required',
        'The last payment failed; settle the open invoice before changing plans',
      )
    const now = this.now()
    const resumed = sub.cancel_at_period_end === 1
    if (sub.plan_id === plan.id) {
      if (!resumed) return { subscription: await this.toSubscription(sub) }
      const row = { ...sub, cancel_at_period_end: 0, updated_at: this.tick(sub) }
      if (!(await this.store.updateSubscription(sub.id, sub.updated_at, row))) throw this.raced()
      return { subscription: await this.changed(row, 'resumed') }
    }
    const old = await this.planOrThrow(sub.plan_id).catch(() => undefined)
    const row: SubscriptionRow = {
      ...sub,
      plan_id: plan.id,
      cancel_at_period_end: 0,
      updated_at: this.tick(sub),
    }
    let invoice: InvoiceRow | undefined
    if (sub.status === 'active' && old) {
      // Proration: credit the unused part of the old plan, charge the rest of the period at the new price.
      const remaining =
        Math.max(0, sub.current_period_end - now) / (sub.current_period_end - sub.current_period_start)
      const unused = Math.round(old.price_minor * remaining)
      const rest = Math.round(plan.price_minor * remaining)
      if (rest - unused > 0) {
        invoice = await this.createInvoice(row, `proration_${now}`, now, sub.current_period_end, [
          { description: `Unused time on ${old.name}`, amountMinor: -unused },
          { description: `Remaining time on ${plan.name}`, amountMinor: rest },
        ])
        if (invoice && !(await this.collect(invoice)))
          throw new AppError(402, 'payment_declined', 'The payment was declined; the plan did not change', {
            invoiceId: invoice.id,
          })
      } else {
        row.credit_minor = sub.credit_minor + (unused - rest)
      }
    }
    if (!(await this.store.updateSubscription(sub.id, sub.updated_at, row))) throw this.raced()
    return { subscription: await this.changed(row, 'plan_changed'), invoice: invoice && toInvoice(invoice) }
  }

  /** Cancels at the end of the paid period (access continues until then); cancelling again is a no-op. */
  async cancel(accountId: string): Promise<Subscription> {
    const sub = await this.store.subscription(accountId)
    if (!sub) throw notFound('no_subscription', 'This account has no subscription')
    if (sub.status === 'canceled' || sub.cancel_at_period_end === 1) return this.toSubscription(sub)
    if (sub.status === 'past_due') return this.end(sub, 'canceled')
    const row = { ...sub, cancel_at_period_end: 1, updated_at: this.tick(sub) }
    if (!(await this.store.updateSubscription(sub.id, sub.updated_at, row))) throw this.raced()
    return this.changed(row, 'canceling')
  }

  /** Ends the subscription at once (an account being closed). Invoices stay as billing records. */
  async accountClosed(accountId: string): Promise<void> {
    const sub = await this.store.subscription(accountId)
    if (sub && sub.status !== 'canceled') await this.end(sub, 'canceled')
  }

  private async end(sub: SubscriptionRow, change: string): Promise<Subscription> {
    const now = this.now()
    const row = { ...sub, status: 'canceled' as const, canceled_at: now, updated_at: this.tick(sub) }
    if (!(await this.store.updateSubscription(sub.id, sub.updated_at, row))) throw this.raced()
    return this.changed(row, change)
  }

  /**
   * The billing cycle: renews subscriptions whose period has ended (charging the new period),
   * ends those set to cancel, and retries failed payments. Safe to run from several processes.
   */
  async runCycle(): Promise<CycleReport> {
    const report: CycleReport = { renewed: 0, pastDue: 0, canceled: 0, recovered: 0 }
    const now = this.now()
    for (const sub of await this.store.dueSubscriptions(now, 500)) {
      try {
        await this.renew(sub, report)
      } catch (e) {
        this.log.error({ err: e, subscriptionId: sub.id }, 'renewal failed')
      }
    }
    for (const invoice of await this.store.failedInvoicesDue(now, 500)) {
      try {
        await this.retry(invoice, report)
      } catch (e) {
        this.log.error({ err: e, invoiceId: invoice.id }, 'payment retry failed')
      }
    }
    if (report.renewed + report.pastDue + report.canceled + report.recovered > 0)
      this.log.info(report, 'billing cycle')
    return report
  }

  private async renew(sub: SubscriptionRow, report: CycleReport): Promise<void> {
    if (sub.cancel_at_period_end === 1 || sub.status === 'past_due') {
      // A past-due subscription whose period also ran out ends; so does one set to cancel.
      await this.end(sub, 'canceled')
      report.canceled++
      return
    }
    const plan = await this.planOrThrow(sub.plan_id)
    const start = sub.current_period_end
    const end = addMonths(start, 1)
    const credit = Math.min(sub.credit_minor, plan.price_minor)
    const lines: InvoiceLine[] = [
      {
        description: `${plan.name} plan, ${iso(start).slice(0, 10)} to ${iso(end).slice(0, 10)}`,
        amountMinor: plan.price_minor,
      },
    ]
    if (credit > 0) lines.push({ description: 'Credit from an earlier plan change', amountMinor: -credit })
    const advanced: SubscriptionRow = {
      ...sub,
      current_period_start: start,
      current_period_end: end,
      credit_minor: sub.credit_minor - credit,
      updated_at: this.tick(sub),
    }
    const invoice = await this.createInvoice(advanced, 'subscription_cycle', start, end, lines)
    if (!invoice) return // another process renews this period
    const paid = await this.collect(invoice)
    advanced.status = paid ? 'active' : 'past_due'
    if (!(await this.store.updateSubscription(sub.id, sub.updated_at, advanced))) return
    await this.changed(advanced, paid ? 'renewed' : 'past_due')
    if (paid) report.renewed++
    else report.pastDue++
  }

  private async retry(invoice: InvoiceRow, report: CycleReport): Promise<void> {
    const sub = await this.store.subscription(invoice.account_id)
    if (!sub || sub.id !== invoice.subscription_id || sub.status !== 'past_due') {
      await this.store.updateInvoice(invoice.id, { status: 'void', next_attempt_at: null })
      return
    }
    if (await this.collect(invoice)) {
      const row = { ...sub, status: 'active' as const, updated_at: this.tick(sub) }
      if (await this.store.updateSubscription(sub.id, sub.updated_at, row)) {
        await this.changed(row, 'payment_recovered')
        report.recovered++
      }
    } else if (invoice.attempts + 1 >= MAX_PAYMENT_ATTEMPTS) {
      await this.end(sub, 'canceled')
      report.canceled++
    }
  }

  private async createInvoice(
    sub: SubscriptionRow,
    reason: string,
    periodStart: number,
    periodEnd: number,
    lines: InvoiceLine[],
  ): Promise<InvoiceRow | undefined> {
    const plan = await this.planOrThrow(sub.plan_id)
    const row: InvoiceRow = {
      id: newId(),
      number: await this.store.nextInvoiceNumber(),
      account_id: sub.account_id,
      subscription_id: sub.id,
      reason,
      period_start: periodStart,
      period_end: periodEnd,
      lines: JSON.stringify(lines),
      total_minor: lines.reduce((sum, l) => sum + l.amountMinor, 0),
      currency: plan.currency,
      status: 'open',
      attempts: 0,
      next_attempt_at: null,
      failure_reason: null,
      created_at: this.now(),
      paid_at: null,
    }
    return (await this.store.insertInvoice(row)) ? row : undefined
  }

  /** Charges an open or failed invoice; true when paid. The invoice row records the outcome. */
  private async collect(invoice: InvoiceRow): Promise<boolean> {
    const now = this.now()
    const attempts = invoice.attempts + 1
    const result =
      invoice.total_minor <= 0
        ? ({ ok: true, reference: 'zero_amount' } as const)
        : await this.payments.charge({
            accountId: invoice.account_id,
            invoiceId: invoice.id,
            amountMinor: invoice.total_minor,
            currency: invoice.currency,
          })
    const changes: Partial<InvoiceRow> = result.ok
      ? { status: 'paid', attempts, paid_at: now, next_attempt_at: null, failure_reason: null }
      : {
          status: 'failed',
          attempts,
          failure_reason: result.reason,
          next_attempt_at: attempts < MAX_PAYMENT_ATTEMPTS ? now + RETRY_AFTER_MS : null,
        }
    await this.store.updateInvoice(invoice.id, changes)
    Object.assign(invoice, changes)
    if (!result.ok)
      this.log.warn({ invoice: invoice.number, reason: result.reason, attempts }, 'payment declined')
    return result.ok
  }

  async setTestOutcome(accountId: string, outcome: 'succeed' | 'decline'): Promise<void> {
    if (this.payments.name !== 'local')
      throw conflict(
        'not_local_payments',
        'Payment outcomes can only be set with the built-in payment provider',
      )
    await this.store.setTestOutcome(accountId, outcome)
  }

  /** Invalidates the cached views and announces the change. */
  private async changed(row: SubscriptionRow, change: string): Promise<Subscription> {
    await this.cache.del(`billing:entitlement:${row.account_id}`, `billing:subscription:${row.account_id}`)
    const subscription = await this.toSubscription(row)
    const event: SubscriptionChanged = {
      accountId: row.account_id,
      subscription,
      entitlement: await this.entitlement(row.account_id),
      change,
    }
    await this.bus.publish({ type: SUBSCRIPTION_CHANGED, key: row.account_id, data: event })
    return subscription
  }

  private tick(sub: SubscriptionRow): number {
    return Math.max(this.now(), sub.updated_at + 1)
  }

  private async toSubscription(row: SubscriptionRow): Promise<Subscription> {
    const plan = await this.planOrThrow(row.plan_id)
    return {
      id: row.id,
      plan: toPlan(plan),
      status: row.status,
      currentPeriodStart: iso(row.current_period_start),
      currentPeriodEnd: iso(row.current_period_end),
      cancelAtPeriodEnd: row.cancel_at_period_end === 1,
      creditMinor: row.credit_minor,
    }
  }
}
