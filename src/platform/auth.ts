import { randomBytes } from 'node:crypto'
import path from 'node:path'
import type { FastifyRequest } from 'fastify'
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose'
import { LRUCache } from 'lru-cache'
import type { Cache } from './cache/cache.js'
import type { Config } from './config.js'
import type { Db } from './db/db.js'
import { forbidden, unauthorized } from './errors.js'
import { existingKey, persistedKey } from './keys.js'
import { sharedSecret } from './secrets.js'

export type Role = 'member' | 'admin'

export interface Entitlement {
  active: boolean
  maxStreams: number
  maxHeight: number
}

/** Who is calling: what an access token carries. */
export interface Auth {
  accountId: string
  sessionId: string
  role: Role
  country: string
  entitlement: Entitlement
}

const ISSUER = 'reel'
/** The token signing key's name among the install's shared secrets. */
const JWT_SECRET_NAME = 'jwt-hs256'
const AUDIENCE = 'reel-api'
const revokedKey = (sessionId: string) => `auth:revoked:${sessionId}`

/** A token whose signature this process checked, with its session's revocation key made once. */
interface Verified {
  auth: Auth
  expiresAtMs: number
  revokedKey: string
}

/**
 * Signs and checks access tokens (HS256 JWTs). A signed-out session is remembered in the Cache for
 * as long as its tokens can live, so every process refuses them without asking the accounts DB.
 */
export class Authenticator {
  /**
   * Tokens this process already verified, until they expire: jose's WebCrypto HMAC check costs
   * ~130 µs, which would dominate a cached API read. Revocation is still checked on every request.
   */
  private readonly verified = new LRUCache<string, Verified>({ max: 20_000 })

  private constructor(
    private readonly key: Uint8Array,
    private readonly ttlS: number,
    private readonly cache: Cache,
  ) {}

  static async create(config: Config, db: Db, cache: Cache): Promise<Authenticator> {
    return new Authenticator(await signingKey(config, db), config.accessTokenTtlS, cache)
  }

  get accessTokenTtlS(): number {
    return this.ttlS
  }

  async sign(auth: Auth): Promise<string> {
    return new SignJWT({ sid: auth.sessionId, role: auth.role, country: auth.country, ent: auth.entitlement })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(auth.accountId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.ttlS}s`)
      .sign(this.key)
  }

  /** The caller of a token; throws 401 `invalid_token`, `token_expired` or `session_revoked`. */
  async verify(token: string): Promise<Auth> {
    let known = this.verified.get(token)
    if (!known || known.expiresAtMs <= Date.now()) known = await this.verifySignature(token)
    if ((await this.cache.get(known.revokedKey)) !== undefined)
      throw unauthorized('session_revoked', 'This session has been signed out')
    return known.auth
  }

  private async verifySignature(token: string): Promise<Verified> {
    let payload: Record<string, unknown>
    try {
      ;({ payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        audience: AUDIENCE,
      }))
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired)
        throw unauthorized('token_expired', 'The access token has expired; refresh it')
      throw unauthorized('invalid_token', 'The access token is not valid')
    }
    const auth = toAuth(payload)
    if (!auth || typeof payload.exp !== 'number')
      throw unauthorized('invalid_token', 'The access token is not valid')
    const verified = { auth, expiresAtMs: payload.exp * 1000, revokedKey: revokedKey(auth.sessionId) }
    this.verified.set(token, verified)
    return verified
  }

  /** Refuses the session's outstanding access tokens from now on, in every process. */
  async revokeSession(sessionId: string): Promise<void> {
    await this.cache.set(revokedKey(sessionId), '1', (this.ttlS + 60) * 1000)
  }

  /** The caller, or 401 when the request carries no valid token. */
  async authenticate(req: FastifyRequest): Promise<Auth> {
    const header = req.headers.authorization
    const token = typeof header === 'string' && /^Bearer /i.test(header) ? header.slice(7).trim() : undefined
    if (!token) throw unauthorized('missing_token', 'Sign in: send Authorization: Bearer <accessToken>')
    return this.verify(token)
  }

  async requireAdmin(req: FastifyRequest): Promise<Auth> {
    const auth = await this.authenticate(req)
    if (auth.role !== 'admin') throw forbidden('admin_only', 'This needs an administrator account')
    return auth
  }
}

function toAuth(p: Record<string, unknown>): Auth | undefined {
  const ent = p.ent as Partial<Entitlement> | undefined
  if (
    typeof p.sub !== 'string' ||
    typeof p.sid !== 'string' ||
    (p.role !== 'member' && p.role !== 'admin') ||
    typeof p.country !== 'string' ||
    typeof ent !== 'object' ||
    ent === null ||
    typeof ent.active !== 'boolean' ||
    typeof ent.maxStreams !== 'number' ||
    typeof ent.maxHeight !== 'number'
  )
    return undefined
  return {
    accountId: p.sub,
    sessionId: p.sid,
    role: p.role,
    country: p.country,
    entitlement: { active: ent.active, maxStreams: ent.maxStreams, maxHeight: ent.maxHeight },
  }
}

/**
 * REEL_JWT_SECRET; else, for processes sharing a PostgreSQL database, a key kept there (the first
 * process to start offers the key its data dir already had, so tokens signed before stay valid);
 * else a key generated once and kept (mode 0600) under the data dir (one machine).
 */
async function signingKey(config: Config, db: Db): Promise<Uint8Array> {
  if (config.jwtSecret) return new TextEncoder().encode(config.jwtSecret)
  const file = path.join(config.dataDir, 'keys', 'jwt-hs256.key')
  if (!config.databaseUrl) return persistedKey(file)
  const offer = (existingKey(file) ?? randomBytes(32)).toString('base64url')
  return Buffer.from(await sharedSecret(db, JWT_SECRET_NAME, offer, Date.now()), 'base64url')
}
