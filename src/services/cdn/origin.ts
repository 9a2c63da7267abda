import { Readable } from 'node:stream'
import type { Blobs } from '../../platform/blobs/blobs.js'
import { isAppError } from '../../platform/errors.js'
import type { UrlSigner } from './tokens.js'

/** The object is not at the origin (a 404 to pass on). */
export class OriginMissError extends Error {}
/** The origin could not be asked or failed (a 502). */
export class OriginUnreachableError extends Error {}

/** Where an edge fills from: the blob store, directly or through a reel server's /origin. */
export interface Origin {
  /** The whole object; throws OriginMissError or OriginUnreachableError. */
  fetch(key: string): Promise<Readable>
}

/** The built-in edge reads the blob store it sits next to. */
export class BlobOrigin implements Origin {
  constructor(private readonly blobs: Blobs) {}

  async fetch(key: string): Promise<Readable> {
    try {
      return (await this.blobs.get(key)).body
    } catch (e) {
      if (isAppError(e) && e.status === 404) throw new OriginMissError(key)
      throw new OriginUnreachableError(e instanceof Error ? e.message : String(e))
    }
  }
}

const FILL_TOKEN_TTL_S = 300

/** A separate edge (`reel edge`) fills over HTTP from a reel server's /origin, with a token it mints itself. */
export class HttpOrigin implements Origin {
  constructor(
    private readonly baseUrl: string,
    private readonly signer: UrlSigner,
    private readonly edgeId: string,
    private readonly now: () => number = Date.now,
  ) {}

  async fetch(key: string): Promise<Readable> {
    const prefix = key.split('/').slice(0, 2).join('/')
    const token = this.signer.sign({
      sid: `edge:${this.edgeId}`,
      prefix: `${prefix}/`,
      exp: Math.floor(this.now() / 1000) + FILL_TOKEN_TTL_S,
      maxHeight: 0,
    })
    let res: Response
    try {
      res = await fetch(`${this.baseUrl}/origin/t/${token}/${key}`, { signal: AbortSignal.timeout(30_000) })
    } catch (e) {
      throw new OriginUnreachableError(
        `origin ${this.baseUrl}: ${e instanceof Error ? e.message : String(e)}`,
      )
    }
    if (res.status === 404) {
      await res.body?.cancel()
      throw new OriginMissError(key)
    }
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel()
      throw new OriginUnreachableError(`origin ${this.baseUrl} answered ${res.status} for ${key}`)
    }
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)
  }
}
