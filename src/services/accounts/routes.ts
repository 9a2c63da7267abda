import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { forbidden, unauthorized } from '../../platform/errors.js'
import { errorResponses } from '../../platform/http/server.js'
import type { ModuleContext } from '../../platform/modules.js'
import { EntitlementSchema, SubscriptionSchema } from '../billing/schemas.js'
import {
  AccountSchema,
  Email,
  NewProfile,
  Password,
  ProfileChanges,
  ProfileSchema,
  SessionSchema,
  TokensSchema,
} from './schemas.js'
import type { AccountsService, Device, Tokens } from './service.js'

const auth = [{ bearer: [] }]
const tags = ['accounts']

const deviceOf = (req: FastifyRequest): Device => ({
  name: String(req.headers['user-agent'] ?? 'unknown device'),
  address: req.ip,
})

/**
 * The web app keeps its refresh token in an httpOnly, SameSite=Strict cookie scoped to the session
 * endpoints, so page scripts never see it; cookie-borne refreshes also need the x-reel-csrf header,
 * which a cross-site form or image cannot send.
 */
const REFRESH_COOKIE = 'reel_refresh'
const isWeb = (req: FastifyRequest) => req.headers['x-reel-client'] === 'web'

function withWebCookie(req: FastifyRequest, reply: FastifyReply, tokens: Tokens, maxAgeS: number): Tokens {
  if (!isWeb(req)) return tokens
  reply.setCookie(REFRESH_COOKIE, tokens.refreshToken, {
    httpOnly: true,
    sameSite: 'strict',
    secure: req.protocol === 'https',
    path: '/api/v1/sessions',
    maxAge: maxAgeS,
  })
  return { ...tokens, refreshToken: '' }
}

const ProfileId = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

export function accountsRoutes(ctx: ModuleContext, accounts: AccountsService): void {
  const { http } = ctx
  const cookieAge = ctx.config.refreshTokenTtlDays * 24 * 3600

  http.post(
    '/api/v1/accounts',
    {
      schema: {
        tags,
        summary: 'Sign up: creates the account, its first profile and a session',
        body: Type.Object(
          {
            email: Email,
            password: Password,
            country: Type.Optional(Type.String({ maxLength: 100 })),
            plan: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            profileName: Type.Optional(Type.String({ maxLength: 20_000 })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            account: AccountSchema,
            tokens: TokensSchema,
            subscription: Type.Union([SubscriptionSchema, Type.Null()]),
          }),
          ...errorResponses(409),
        },
      },
    },
    async (req, reply) => {
      const result = await accounts.signUp(req.body, deviceOf(req))
      return reply.code(201).send({ ...result, tokens: withWebCookie(req, reply, result.tokens, cookieAge) })
    },
  )

  http.post(
    '/api/v1/sessions',
    {
      schema: {
        tags,
        summary: 'Log in on this device',
        body: Type.Object({ email: Email, password: Password }, { additionalProperties: false }),
        response: { 201: TokensSchema, ...errorResponses(401, 429) },
      },
    },
    async (req, reply) =>
      reply
        .code(201)
        .send(withWebCookie(req, reply, await accounts.logIn(req.body, deviceOf(req)), cookieAge)),
  )

  http.post(
    '/api/v1/sessions/refresh',
    {
      schema: {
        tags,
        summary: 'New tokens for a refresh token; the old refresh token stops working',
        description:
          'API clients send the refresh token in the body; the web app sends its cookie and x-reel-csrf.',
        body: Type.Object(
          { refreshToken: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })) },
          { additionalProperties: false },
        ),
        response: { 200: TokensSchema, ...errorResponses(401, 403) },
      },
    },
    async (req, reply) => {
      let token: string | undefined = req.body.refreshToken
      if (!token) {
        token = req.cookies[REFRESH_COOKIE]
        if (!token) throw unauthorized('invalid_refresh_token', 'No refresh token: log in again')
        if (!req.headers['x-reel-csrf'])
          throw forbidden('csrf_check_failed', 'Cookie refreshes need the x-reel-csrf header')
      }
      return withWebCookie(req, reply, await accounts.refresh(token, deviceOf(req)), cookieAge)
    },
  )

  http.get(
    '/api/v1/sessions',
    {
      schema: {
        tags,
        security: auth,
        summary: 'The devices signed in to this account',
        response: { 200: Type.Object({ sessions: Type.Array(SessionSchema) }), ...errorResponses(401) },
      },
    },
    async (req) => ({ sessions: await accounts.sessions(await ctx.auth.authenticate(req)) }),
  )

  http.delete(
    '/api/v1/sessions/current',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Log out this device',
        response: { 204: Type.Null(), ...errorResponses(401) },
      },
    },
    async (req, reply) => {
      await accounts.logOut(await ctx.auth.authenticate(req))
      reply.clearCookie(REFRESH_COOKIE, { path: '/api/v1/sessions' })
      return reply.code(204).send(null)
    },
  )

  http.delete(
    '/api/v1/sessions',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Log out every device',
        response: { 200: Type.Object({ revoked: Type.Integer() }), ...errorResponses(401) },
      },
    },
    async (req) => ({ revoked: await accounts.logOutEverywhere(await ctx.auth.authenticate(req)) }),
  )

  http.get(
    '/api/v1/account',
    {
      schema: {
        tags,
        security: auth,
        summary: 'The account, its subscription and entitlements',
        response: {
          200: Type.Object({
            account: AccountSchema,
            subscription: Type.Union([SubscriptionSchema, Type.Null()]),
            entitlements: EntitlementSchema,
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => accounts.overview((await ctx.auth.authenticate(req)).accountId),
  )

  http.delete(
    '/api/v1/account',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Close the account: sessions end, profiles and what they own are deleted, invoices are kept',
        body: Type.Object({ password: Password }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...errorResponses(401, 404) },
      },
    },
    async (req, reply) => {
      await accounts.closeAccount(await ctx.auth.authenticate(req), req.body.password)
      return reply.code(204).send(null)
    },
  )

  http.get(
    '/api/v1/profiles',
    {
      schema: {
        tags,
        security: auth,
        summary: 'The profiles of this account',
        response: { 200: Type.Object({ profiles: Type.Array(ProfileSchema) }), ...errorResponses(401) },
      },
    },
    async (req) => ({ profiles: await accounts.profiles((await ctx.auth.authenticate(req)).accountId) }),
  )

  http.post(
    '/api/v1/profiles',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Add a profile (at most five)',
        body: NewProfile,
        response: { 201: ProfileSchema, ...errorResponses(401, 409) },
      },
    },
    async (req, reply) =>
      reply
        .code(201)
        .send(await accounts.createProfile((await ctx.auth.authenticate(req)).accountId, req.body)),
  )

  http.patch(
    '/api/v1/profiles/:id',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Change a profile',
        params: ProfileId,
        body: ProfileChanges,
        response: { 200: ProfileSchema, ...errorResponses(401, 404, 409) },
      },
    },
    async (req) =>
      accounts.updateProfile((await ctx.auth.authenticate(req)).accountId, req.params.id, req.body),
  )

  http.delete(
    '/api/v1/profiles/:id',
    {
      schema: {
        tags,
        security: auth,
        summary: 'Delete a profile and, through events, everything it owns',
        params: ProfileId,
        response: { 204: Type.Null(), ...errorResponses(401, 404, 409) },
      },
    },
    async (req, reply) => {
      await accounts.deleteProfile((await ctx.auth.authenticate(req)).accountId, req.params.id)
      return reply.code(204).send(null)
    },
  )
}
