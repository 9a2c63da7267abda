import { createHmac, timingSafeEqual } from 'node:crypto'
import path from 'node:path'
import type { Config } from '../../platform/config.js'
import { persistedKey } from '../../platform/keys.js'
import type { Logger } from '../../platform/log.js'

/** What a media URL token grants: objects under `prefix`, for session `sid`, until `exp` (epoch s). */
export interface UrlGrant {
  /** The play session (or `edge:<id>` for an edge's own fills and reports). */
  sid: string
  /** Blob key prefix, e.g. `titles/<id>/`. */
  prefix: string
  /** Expiry, epoch seconds. */
  exp: number
  /** Highest video height a master playlist offers under this token (0: no limit). */
  maxHeight: number
}

export type TokenCheck = { ok: true; grant: UrlGrant } | { ok: false; reason: 'forged' | 'expired' }

const TOKEN = /^[A-Za-z0-9_-]{10,600}\.[A-Za-z0-9_-]{43}$/

/**
 * Signs and checks media URL tokens: `base64url(json).base64url(HMAC-SHA256)`. Edges hold the key
 * and check tokens without asking anyone (offline), so a token travels in the URL path and relative
 * playlist URIs keep it.
 */
export class UrlSigner {
  constructor(private readonly key: Buffer) {}

  static fromConfig(config: Config, log: Logger): UrlSigner {
    if (config.cdnUrlKey) return new UrlSigner(Buffer.from(config.cdnUrlKey, 'utf8'))
    if (config.databaseUrl)
      log.warn(
        'REEL_CDN_URL_KEY is not set: media URLs signed here verify only in this process and its built-in edge',
      )
    return new UrlSigner(persistedKey(path.join(config.dataDir, 'keys', 'cdn-url.key')))
  }

  sign(grant: UrlGrant): string {
    const payload = Buffer.from(
      JSON.stringify([grant.sid, grant.prefix, grant.exp, grant.maxHeight]),
    ).toString('base64url')
    return `${payload}.${this.mac(payload).toString('base64url')}`
  }

  check(token: string, nowMs: number): TokenCheck {
    if (!TOKEN.test(token)) return { ok: false, reason: 'forged' }
    const dot = token.indexOf('.')
    const payload = token.slice(0, dot)
    const given = Buffer.from(token.slice(dot + 1), 'base64url')
    if (!timingSafeEqual(given, this.mac(payload))) return { ok: false, reason: 'forged' }
    let parsed: unknown
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      return { ok: false, reason: 'forged' }
    }
    if (!Array.isArray(parsed) || parsed.length !== 4) return { ok: false, reason: 'forged' }
    const [sid, prefix, exp, maxHeight] = parsed as unknown[]
    if (
      typeof sid !== 'string' ||
      typeof prefix !== 'string' ||
      typeof exp !== 'number' ||
      typeof maxHeight !== 'number'
    )
      return { ok: false, reason: 'forged' }
    if (exp * 1000 <= nowMs) return { ok: false, reason: 'expired' }
    return { ok: true, grant: { sid, prefix, exp, maxHeight } }
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest()
  }
}
