import { createHmac, timingSafeEqual } from 'node:crypto'
import path from 'node:path'
import { LRUCache } from 'lru-cache'
import type { Config } from '../../platform/config.js'
import { persistedKey } from '../../platform/keys.js'

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

/** Where one machine keeps its URL key (REEL_DATA_DIR/keys). */
export const localUrlKeyPath = (config: Config): string => path.join(config.dataDir, 'keys', 'cdn-url.key')

/**
 * Signs and checks media URL tokens: `base64url(json).base64url(HMAC-SHA256)`. Edges hold the key
 * and check tokens without asking anyone (offline), so a token travels in the URL path and relative
 * playlist URIs keep it. A player sends one token with every segment of a session: a checked token
 * is remembered, so only its first request pays for the HMAC.
 */
export class UrlSigner {
  private key: Buffer | undefined
  private loading: Promise<void> | undefined
  private readonly load: (() => Promise<Buffer>) | undefined
  private readonly checked = new LRUCache<string, UrlGrant>({ max: 20_000 })
  private waiting: { grant: UrlGrant; resolve: (token: string) => void; reject: (e: unknown) => void }[] = []

  /** The key, or where to load it from (a key shared through the database; a failed load is tried again). */
  constructor(key: Buffer | (() => Promise<Buffer>)) {
    if (Buffer.isBuffer(key)) this.key = key
    else {
      this.load = key
      this.startLoading()
    }
  }

  private startLoading(): Promise<void> {
    const load = this.load
    if (!load) return Promise.resolve()
    const loading = load().then(
      (loaded) => {
        this.key = loaded
      },
      (e: unknown) => {
        // A database that failed once (start-up, a pool timeout) is asked again by the next caller.
        if (this.loading === loading) this.loading = undefined
        throw e
      },
    )
    this.loading = loading
    return loading
  }

  /**
   * REEL_CDN_URL_KEY; else, for processes sharing a PostgreSQL database, the key kept there
   * (`shared`, the first process to start makes it); else a key kept under REEL_DATA_DIR (one
   * machine). A separate edge has no database: it needs REEL_CDN_URL_KEY or the API's data dir.
   */
  static fromConfig(config: Config, shared?: () => Promise<Buffer>): UrlSigner {
    if (config.cdnUrlKey) return new UrlSigner(Buffer.from(config.cdnUrlKey, 'utf8'))
    if (config.databaseUrl && shared) return new UrlSigner(shared)
    return new UrlSigner(persistedKey(localUrlKeyPath(config)))
  }

  /** Whether the key is at hand (sign and check throw until it is). */
  get loaded(): boolean {
    return this.key !== undefined
  }

  /** Resolves once the key is at hand. */
  async ready(): Promise<void> {
    if (!this.key) await (this.loading ?? this.startLoading())
  }

  /** A short fingerprint of the key, safe to log: processes that must agree show the same one. */
  get fingerprint(): string {
    return createHmac('sha256', this.current()).update('reel-url-key-fingerprint').digest('hex').slice(0, 12)
  }

  sign(grant: UrlGrant): string {
    const payload = Buffer.from(
      JSON.stringify([grant.sid, grant.prefix, grant.exp, grant.maxHeight]),
    ).toString('base64url')
    return `${payload}.${this.mac(payload).toString('base64url')}`
  }

  /**
   * As sign, at the end of this turn of the event loop (setImmediate): the tokens asked for in one
   * turn are signed back to back, and their requests go on together. In a busy server a lone HMAC
   * runs with its code and tables out of the CPU's caches: ~17 µs for a play start's in
   * bench/playback/cpu.ts, ~5 µs for one right after it, ~2.5 µs in a loop. Play starts under load
   * (bench/playback) went from ~4,200 to ~6,000 a second with it, more than the HMACs alone account
   * for: the starts of a batch also finish and answer together.
   */
  signSoon(grant: UrlGrant): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.waiting.length === 0) setImmediate(() => this.signWaiting())
      this.waiting.push({ grant, resolve, reject })
    })
  }

  private signWaiting(): void {
    const waiting = this.waiting
    this.waiting = []
    for (const w of waiting) {
      try {
        w.resolve(this.sign(w.grant))
      } catch (e) {
        w.reject(e)
      }
    }
  }

  check(token: string, nowMs: number): TokenCheck {
    const known = this.checked.get(token)
    if (known)
      return known.exp * 1000 <= nowMs ? { ok: false, reason: 'expired' } : { ok: true, grant: known }
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
    const grant = { sid, prefix, exp, maxHeight }
    this.checked.set(token, grant)
    return { ok: true, grant }
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.current()).update(payload).digest()
  }

  private current(): Buffer {
    if (!this.key) throw new Error('the URL signing key is not loaded yet (await ready())')
    return this.key
  }
}
