import { newId } from '../../platform/ids.js'
import type { BillingStore } from './store.js'

export interface ChargeRequest {
  accountId: string
  invoiceId: string
  amountMinor: number
  currency: string
}

export type ChargeResult = { ok: true; reference: string } | { ok: false; reason: string }

/**
 * Where money is taken. reel ships `LocalPaymentProvider`; a real processor (Stripe, Adyen…)
 * implements this and nothing else in billing changes.
 */
export interface PaymentProvider {
  readonly name: string
  charge(request: ChargeRequest): Promise<ChargeResult>
}

/**
 * Records payments locally and succeeds, unless an administrator told it to decline an account's
 * charges (for tests and demos of dunning).
 */
export class LocalPaymentProvider implements PaymentProvider {
  readonly name = 'local'

  constructor(private readonly store: BillingStore) {}

  async charge(request: ChargeRequest): Promise<ChargeResult> {
    const declined = (await this.store.testOutcome(request.accountId)) === 'decline'
    const reference = `local_${newId()}`
    await this.store.insertPayment({
      id: newId(),
      invoice_id: request.invoiceId,
      account_id: request.accountId,
      provider: this.name,
      amount_minor: request.amountMinor,
      currency: request.currency,
      status: declined ? 'declined' : 'succeeded',
      reference: declined ? null : reference,
      created_at: Date.now(),
    })
    return declined ? { ok: false, reason: 'card_declined' } : { ok: true, reference }
  }
}
