import { Type } from '@sinclair/typebox'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import { EntitlementSchema, InvoiceSchema, PlanId, PlanSchema, SubscriptionSchema } from './schemas.js'
import type { BillingService } from './service.js'

const auth = [{ bearer: [] }]
const SubscriptionView = Type.Object({
  subscription: Type.Union([SubscriptionSchema, Type.Null()]),
  entitlement: EntitlementSchema,
})

export function billingRoutes(ctx: ModuleContext, billing: BillingService): void {
  const { http } = ctx
  const tags = ['billing']

  http.get(
    '/api/v1/plans',
    {
      schema: {
        tags,
        summary: 'The plans on offer',
        response: { 200: Type.Object({ plans: Type.Array(PlanSchema) }), ...errorResponses() },
      },
    },
    async () => ({ plans: await billing.plans() }),
  )

  http.get(
    '/api/v1/subscription',
    {
      schema: {
        tags,
        security: auth,
        summary: "The account's subscription and what it is entitled to",
        response: { 200: SubscriptionView, ...errorResponses(401) },
      },
    },
    async (req) => {
      const { accountId } = await ctx.auth.authenticate(req)
      return {
        subscription: await billing.subscription(accountId),
        entitlement: await billing.entitlement(accountId),
      }
    },
  )

  http.put(
    '/api/v1/subscription',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Subscribe, change plan (prorated) or resume a subscription set to cancel',
        body: Type.Object({ plan: PlanId }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            subscription: SubscriptionSchema,
            entitlement: EntitlementSchema,
            invoice: Type.Optional(InvoiceSchema),
          }),
          ...errorResponses(401, 402, 409),
        },
      },
    },
    async (req) => {
      const { accountId } = await ctx.auth.authenticate(req)
      const result = await billing.subscribe(accountId, req.body.plan)
      return { ...result, entitlement: await billing.entitlement(accountId) }
    },
  )

  http.post(
    '/api/v1/subscription/cancel',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Cancel at the end of the paid period (again: no change)',
        response: { 200: SubscriptionView, ...errorResponses(401, 404, 409) },
      },
    },
    async (req) => {
      const { accountId } = await ctx.auth.authenticate(req)
      const subscription = await billing.cancel(accountId)
      return { subscription, entitlement: await billing.entitlement(accountId) }
    },
  )

  http.get(
    '/api/v1/invoices',
    {
      schema: {
        tags,
        security: auth,
        summary: "The account's invoices, newest first",
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100, default: 50 }) }),
        response: { 200: Type.Object({ invoices: Type.Array(InvoiceSchema) }), ...errorResponses(401) },
      },
    },
    async (req) => {
      const { accountId } = await ctx.auth.authenticate(req)
      return { invoices: await billing.invoices(accountId, req.query.limit) }
    },
  )

  http.put(
    '/api/v1/admin/billing/accounts/:accountId/payment-outcome',
    {
      schema: {
        tags,
        security: auth,
        summary: "Make the built-in payment provider succeed or decline an account's charges (tests, demos)",
        params: Type.Object({ accountId: Type.String({ minLength: 1, maxLength: 64 }) }),
        body: Type.Object(
          { outcome: Type.Union([Type.Literal('succeed'), Type.Literal('decline')]) },
          { additionalProperties: false },
        ),
        response: { 204: Type.Null(), ...errorResponses(401, 403, 409) },
      },
    },
    async (req, reply) => {
      await ctx.auth.requireAdmin(req)
      await billing.setTestOutcome(req.params.accountId, req.body.outcome)
      return reply.code(204).send(null)
    },
  )

  http.post(
    '/api/v1/admin/billing/cycle',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Run the billing cycle now (it also runs every minute)',
        response: {
          200: Type.Object({
            renewed: Type.Integer(),
            pastDue: Type.Integer(),
            canceled: Type.Integer(),
            recovered: Type.Integer(),
          }),
          ...errorResponses(401, 403),
        },
      },
    },
    async (req) => {
      await ctx.auth.requireAdmin(req)
      return billing.runCycle()
    },
  )
}
