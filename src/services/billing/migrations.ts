import { sql } from 'kysely'
import type { ReelMigration } from '../../platform/db/db.js'

const PLANS = [
  { id: 'basic', name: 'Basic', price_minor: 799, max_streams: 1, max_height: 720, position: 1 },
  { id: 'standard', name: 'Standard', price_minor: 1549, max_streams: 2, max_height: 1080, position: 2 },
  { id: 'premium', name: 'Premium', price_minor: 2299, max_streams: 4, max_height: 2160, position: 3 },
]

export const billingMigrations: Record<string, ReelMigration> = {
  billing_0001_plans_subscriptions_invoices: {
    async up(db) {
      await db.schema
        .createTable('billing_plans')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('price_minor', 'integer', (c) => c.notNull())
        .addColumn('currency', 'text', (c) => c.notNull())
        .addColumn('interval', 'text', (c) => c.notNull())
        .addColumn('max_streams', 'integer', (c) => c.notNull())
        .addColumn('max_height', 'integer', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('offered', 'integer', (c) => c.notNull().defaultTo(1))
        .execute()
      for (const plan of PLANS) {
        await db
          .insertInto('billing_plans' as never)
          .values({ ...plan, currency: 'USD', interval: 'month', offered: 1 } as never)
          .onConflict((oc) => oc.doNothing())
          .execute()
      }
      await db.schema
        .createTable('billing_subscriptions')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull().unique())
        .addColumn('plan_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('current_period_start', 'bigint', (c) => c.notNull())
        .addColumn('current_period_end', 'bigint', (c) => c.notNull())
        .addColumn('cancel_at_period_end', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('credit_minor', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('had_trial', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('canceled_at', 'bigint')
        .execute()
      await db.schema
        .createIndex('billing_subscriptions_due')
        .ifNotExists()
        .on('billing_subscriptions')
        .columns(['status', 'current_period_end'])
        .execute()
      await db.schema
        .createTable('billing_invoices')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('number', 'text', (c) => c.notNull().unique())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('subscription_id', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('period_start', 'bigint', (c) => c.notNull())
        .addColumn('period_end', 'bigint', (c) => c.notNull())
        .addColumn('lines', 'text', (c) => c.notNull())
        .addColumn('total_minor', 'integer', (c) => c.notNull())
        .addColumn('currency', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'bigint')
        .addColumn('failure_reason', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('paid_at', 'bigint')
        .execute()
      // One renewal invoice per subscription period, however many processes run the billing cycle.
      await db.schema
        .createIndex('billing_invoices_period')
        .ifNotExists()
        .unique()
        .on('billing_invoices')
        .columns(['subscription_id', 'reason', 'period_start'])
        .execute()
      await db.schema
        .createIndex('billing_invoices_account')
        .ifNotExists()
        .on('billing_invoices')
        .columns(['account_id', 'created_at'])
        .execute()
      await db.schema
        .createTable('billing_payments')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('invoice_id', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('amount_minor', 'integer', (c) => c.notNull())
        .addColumn('currency', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('reference', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('billing_test_outcomes')
        .ifNotExists()
        .addColumn('account_id', 'text', (c) => c.primaryKey())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('billing_counters')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'bigint', (c) => c.notNull())
        .execute()
      await sql`insert into billing_counters (name, value) values ('invoice', 0) on conflict do nothing`.execute(
        db,
      )
    },
  },
}
