import { Type } from '@sinclair/typebox'

export const PlanSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  priceMinor: Type.Integer({ description: 'Monthly price in minor units (cents)' }),
  currency: Type.String({ description: 'ISO 4217' }),
  interval: Type.String(),
  maxStreams: Type.Integer(),
  maxHeight: Type.Integer({ description: 'Highest video height the plan streams, e.g. 1080' }),
})

export const EntitlementSchema = Type.Object({
  active: Type.Boolean(),
  maxStreams: Type.Integer(),
  maxHeight: Type.Integer(),
})

export const SubscriptionSchema = Type.Object({
  id: Type.String(),
  plan: PlanSchema,
  status: Type.Union([
    Type.Literal('trialing'),
    Type.Literal('active'),
    Type.Literal('past_due'),
    Type.Literal('canceled'),
  ]),
  currentPeriodStart: Type.String({ format: 'date-time' }),
  currentPeriodEnd: Type.String({ format: 'date-time' }),
  cancelAtPeriodEnd: Type.Boolean(),
  creditMinor: Type.Integer(),
})

export const InvoiceSchema = Type.Object({
  id: Type.String(),
  number: Type.String(),
  reason: Type.String(),
  periodStart: Type.String({ format: 'date-time' }),
  periodEnd: Type.String({ format: 'date-time' }),
  lines: Type.Array(Type.Object({ description: Type.String(), amountMinor: Type.Integer() })),
  totalMinor: Type.Integer(),
  currency: Type.String(),
  status: Type.Union([
    Type.Literal('open'),
    Type.Literal('paid'),
    Type.Literal('failed'),
    Type.Literal('void'),
  ]),
  attempts: Type.Integer(),
  failureReason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  paidAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
})

export const PlanId = Type.String({ minLength: 1, maxLength: 64 })
