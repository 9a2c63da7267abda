import type { Kysely } from 'kysely'
import type { Db } from '../../platform/db/db.js'

export interface PlanRow {
  id: string
  name: string
  price_minor: number
  currency: string
  interval: string
  max_streams: number
  max_height: number
  position: number
  offered: number
}

export type SubscriptionStatus = 'trialing' | 'active' | 'past_due' | 'canceled'

export interface SubscriptionRow {
  id: string
  account_id: string
  plan_id: string
  status: SubscriptionStatus
  current_period_start: number
  current_period_end: number
  cancel_at_period_end: number
  credit_minor: number
  had_trial: number
  created_at: number
  updated_at: number
  canceled_at: number | null
}

export type InvoiceStatus = 'open' | 'paid' | 'failed' | 'void'

export interface InvoiceRow {
  id: string
  number: string
  account_id: string
  subscription_id: string
  reason: string
  period_start: number
  period_end: number
  lines: string
  total_minor: number
  currency: string
  status: InvoiceStatus
  attempts: number
  next_attempt_at: number | null
  failure_reason: string | null
  created_at: number
  paid_at: number | null
}

export interface PaymentRow {
  id: string
  invoice_id: string
  account_id: string
  provider: string
  amount_minor: number
  currency: string
  status: 'succeeded' | 'declined'
  reference: string | null
  created_at: number
}

interface BillingTables {
  billing_plans: PlanRow
  billing_subscriptions: SubscriptionRow
  billing_invoices: InvoiceRow
  billing_payments: PaymentRow
  billing_test_outcomes: { account_id: string; outcome: string }
  billing_counters: { name: string; value: number }
}

/** Billing's SQL, and nothing else. */
export class BillingStore {
  private readonly db: Kysely<BillingTables>

  constructor(db: Db) {
    this.db = db.tables<BillingTables>()
  }

  plans(): Promise<PlanRow[]> {
    return this.db
      .selectFrom('billing_plans')
      .selectAll()
      .where('offered', '=', 1)
      .orderBy('position')
      .execute()
  }

  plan(id: string): Promise<PlanRow | undefined> {
    return this.db.selectFrom('billing_plans').selectAll().where('id', '=', id).executeTakeFirst()
  }

  subscription(accountId: string): Promise<SubscriptionRow | undefined> {
    return this.db
      .selectFrom('billing_subscriptions')
      .selectAll()
      .where('account_id', '=', accountId)
      .executeTakeFirst()
  }

  async insertSubscription(row: SubscriptionRow): Promise<void> {
    await this.db.insertInto('billing_subscriptions').values(row).execute()
  }

  /**
   * Writes changes only if the row still has `expectedUpdatedAt`, so two processes acting on one
   * subscription cannot both win; returns whether this one did.
   */
  async updateSubscription(
    id: string,
    expectedUpdatedAt: number,
    changes: Partial<Omit<SubscriptionRow, 'id' | 'account_id'>>,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('billing_subscriptions')
      .set(changes)
      .where('id', '=', id)
      .where('updated_at', '=', expectedUpdatedAt)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  dueSubscriptions(now: number, limit: number): Promise<SubscriptionRow[]> {
    return this.db
      .selectFrom('billing_subscriptions')
      .selectAll()
      .where('status', 'in', ['trialing', 'active', 'past_due'])
      .where('current_period_end', '<=', now)
      .orderBy('current_period_end')
      .limit(limit)
      .execute()
  }

  async nextInvoiceNumber(): Promise<string> {
    const row = await this.db
      .updateTable('billing_counters')
      .set((eb) => ({ value: eb('value', '+', 1) }))
      .where('name', '=', 'invoice')
      .returning('value')
      .executeTakeFirstOrThrow()
    return `INV-${String(row.value).padStart(6, '0')}`
  }

  /** False when this subscription already has an invoice for that reason and period. */
  async insertInvoice(row: InvoiceRow): Promise<boolean> {
    const result = await this.db
      .insertInto('billing_invoices')
      .values(row)
      .onConflict((oc) => oc.columns(['subscription_id', 'reason', 'period_start']).doNothing())
      .executeTakeFirst()
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1
  }

  async updateInvoice(id: string, changes: Partial<Omit<InvoiceRow, 'id'>>): Promise<void> {
    await this.db.updateTable('billing_invoices').set(changes).where('id', '=', id).execute()
  }

  invoices(accountId: string, limit: number): Promise<InvoiceRow[]> {
    return this.db
      .selectFrom('billing_invoices')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at', 'desc')
      .orderBy('number', 'desc')
      .limit(limit)
      .execute()
  }

  failedInvoicesDue(now: number, limit: number): Promise<InvoiceRow[]> {
    return this.db
      .selectFrom('billing_invoices')
      .selectAll()
      .where('status', '=', 'failed')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(limit)
      .execute()
  }

  async insertPayment(row: PaymentRow): Promise<void> {
    await this.db.insertInto('billing_payments').values(row).execute()
  }

  async testOutcome(accountId: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('billing_test_outcomes')
      .select('outcome')
      .where('account_id', '=', accountId)
      .executeTakeFirst()
    return row?.outcome
  }

  async setTestOutcome(accountId: string, outcome: string): Promise<void> {
    await this.db
      .insertInto('billing_test_outcomes')
      .values({ account_id: accountId, outcome })
      .onConflict((oc) => oc.column('account_id').doUpdateSet({ outcome }))
      .execute()
  }
}
