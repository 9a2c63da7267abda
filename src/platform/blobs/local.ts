import { createHash, randomUUID } from 'node:crypto'
import { type BigIntStats, constants, createWriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { AppError, conflict } from '../errors.js'
import {
  assertBlobKey,
  assertBlobPrefix,
  assertByteRange,
  type BlobBody,
  type BlobInfo,
  BlobNotFoundError,
  type BlobRead,
  type Blobs,
  type ByteRange,
  checkLimit,
  resolveByteRange,
} from './blobs.js'
import { contentTypeFor } from './content-type.js'

/** The adapter's own files under the root (temp files, metadata); not part of the key space. */
export const LOCAL_INTERNAL_DIR = '.reel-blobs'

const STALE_TEMP_MS = 24 * 60 * 60 * 1000
const LIST_BATCH = 64

/** What a put knew about the file it wrote, kept beside it; it describes that file only (same inode, size, mtime). */
interface Sidecar {
  key: string
  contentType: string
  md5: string
  ino: string
  size: string
  mtimeNs: string
}

/**
 * The embedded Blobs: one file per key under a root directory (`<root>/<key>`), so the store can be
 * read with ordinary tools. A put streams into a temp file on the same filesystem, fsyncs it and
 * renames it into place, so readers see the old file or the whole new one; a failed put leaves
 * nothing behind. The content type and MD5 (the ETag) live in a sidecar under `.reel-blobs/meta`.
 */
export class LocalBlobs implements Blobs {
  readonly kind = 'local'
  readonly #root: string
  readonly #tmpDir: string
  readonly #metaDir: string
  #ready: Promise<void> | undefined
  /** Per key, the last commit (rename of sidecar and data) or delete, so that they apply in order. */
  readonly #commits = new Map<string, Promise<unknown>>()

  constructor(options: { dir: string }) {
    this.#root = path.resolve(options.dir)
    this.#tmpDir = path.join(this.#root, LOCAL_INTERNAL_DIR, 'tmp')
    this.#metaDir = path.join(this.#root, LOCAL_INTERNAL_DIR, 'meta')
  }

  async put(key: string, body: BlobBody, options: { contentType?: string } = {}): Promise<BlobInfo> {
    const file = this.#pathOf(key)
    await this.#init()
    const tmp = path.join(this.#tmpDir, randomUUID())
    const sidecarTmp = `${tmp}.json`
    try {
      const md5 = createHash('md5')
      if (body instanceof Readable)
        await pipeline(
          body,
          async function* (source: AsyncIterable<Buffer | string>) {
            for await (const chunk of source) {
              const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
              md5.update(bytes)
              yield bytes
            }
          },
          createWriteStream(tmp, { flags: 'wx', flush: true }),
        )
      else {
        // A body in memory is written in one go, without a stream's machinery.
        const bytes = typeof body === 'string' ? Buffer.from(body) : body
        md5.update(bytes)
        const handle = await fs.open(tmp, 'wx')
        try {
          await handle.writeFile(bytes)
          await handle.sync()
        } finally {
          await handle.close()
        }
      }
      const stat = await fs.stat(tmp, { bigint: true })
      const sidecar: Sidecar = {
        key,
        contentType: options.contentType ?? contentTypeFor(key),
        md5: md5.digest('hex'),
        ...identity(stat),
      }
      await fs.writeFile(sidecarTmp, JSON.stringify(sidecar), { flag: 'wx' })
      const sidecarFile = this.#sidecarOf(key)
      await fs.mkdir(path.dirname(sidecarFile), { recursive: true })
      await this.#inOrder(key, async () => {
        // Sidecar first: until the data follows, readers see the old file, whose identity no longer matches.
        await fs.rename(sidecarTmp, sidecarFile)
        await this.#moveIntoPlace(key, tmp, file)
      })
      return describe(key, stat, sidecar)
    } catch (e) {
      await Promise.all([fs.rm(tmp, { force: true }), fs.rm(sidecarTmp, { force: true })])
      throw putError(key, e)
    }
  }

  async get(key: string, range?: ByteRange): Promise<BlobRead> {
    const file = this.#pathOf(key)
    if (range) assertByteRange(range)
    // Reading through the opened handle keeps serving this version even if a put replaces the file.
    const handle = await fs.open(file, constants.O_RDONLY).catch((e: unknown) => {
      throw isMissing(e) ? new BlobNotFoundError(key) : e
    })
    try {
      const stat = await handle.stat({ bigint: true })
      if (!stat.isFile()) throw new BlobNotFoundError(key)
      const info = describe(key, stat, await this.#readSidecar(key))
      const { start, end } = resolveByteRange(range, info.size)
      if (end < start) {
        await handle.close()
        return { info, start, end, body: Readable.from([]) }
      }
      return { info, start, end, body: handle.createReadStream({ start, end }) }
    } catch (e) {
      await handle.close()
      throw e
    }
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    const file = this.#pathOf(key)
    const stat = await fs.stat(file, { bigint: true }).catch((e: unknown) => {
      if (isMissing(e)) return undefined
      throw e
    })
    if (!stat?.isFile()) return undefined
    return describe(key, stat, await this.#readSidecar(key))
  }

  async list(prefix: string, options: { limit?: number; startAfter?: string } = {}): Promise<BlobInfo[]> {
    assertBlobPrefix(prefix)
    const limit = checkLimit(options.limit)
    const after = options.startAfter === undefined ? undefined : Buffer.from(options.startAfter)
    const slash = prefix.lastIndexOf('/')
    const keys: string[] = []
    if (limit > 0) {
      for await (const key of this.#walk(
        prefix.slice(0, Math.max(slash, 0)),
        prefix.slice(slash + 1),
        after,
      )) {
        keys.push(key)
        if (keys.length >= limit) break
      }
    }
    const infos: BlobInfo[] = []
    for (let i = 0; i < keys.length; i += LIST_BATCH) {
      const batch = await Promise.all(keys.slice(i, i + LIST_BATCH).map((key) => this.head(key)))
      for (const info of batch) {
        // A key deleted since the walk is left out.
        if (info) infos.push({ key: info.key, size: info.size, etag: info.etag, modifiedAt: info.modifiedAt })
      }
    }
    return infos
  }

  async delete(key: string): Promise<void> {
    const file = this.#pathOf(key)
    await this.#inOrder(key, async () => {
      await fs.unlink(file).catch((e: unknown) => {
        if (!isMissing(e) && errorCode(e) !== 'EISDIR') throw e
      })
      await fs.rm(this.#sidecarOf(key), { force: true })
    })
    await this.#removeEmptyParents(path.dirname(file))
  }

  async ping(): Promise<void> {
    await this.#init()
    await fs.access(this.#tmpDir, constants.W_OK)
  }

  async close(): Promise<void> {}

  /** The file of a key; throws AppError 400 `invalid_blob_key` for keys that could leave the root. */
  #pathOf(key: string): string {
    assertBlobKey(key)
    const segments = key.split('/')
    if (segments[0] === LOCAL_INTERNAL_DIR) {
      throw new AppError(400, 'invalid_blob_key', `Invalid blob key: "${LOCAL_INTERNAL_DIR}" is reserved`)
    }
    const file = path.join(this.#root, ...segments)
    if (!file.startsWith(this.#root + path.sep))
      throw new AppError(400, 'invalid_blob_key', 'Invalid blob key')
    return file
  }

  #sidecarOf(key: string): string {
    const digest = createHash('sha256').update(key).digest('hex')
    return path.join(this.#metaDir, digest.slice(0, 2), `${digest}.json`)
  }

  async #readSidecar(key: string): Promise<Sidecar | undefined> {
    try {
      const sidecar = JSON.parse(await fs.readFile(this.#sidecarOf(key), 'utf8')) as Sidecar
      return sidecar.key === key ? sidecar : undefined
    } catch {
      return undefined
    }
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await fs.mkdir(this.#tmpDir, { recursive: true })
      await fs.mkdir(this.#metaDir, { recursive: true })
      void this.#removeStaleTemp()
    })()
    return this.#ready
  }

  /** Temp files of puts cut short by a crash; other processes' recent ones are still being written. */
  async #removeStaleTemp(): Promise<void> {
    try {
      for (const name of await fs.readdir(this.#tmpDir)) {
        const file = path.join(this.#tmpDir, name)
        const stat = await fs.stat(file).catch(() => undefined)
        if (stat && Date.now() - stat.mtimeMs > STALE_TEMP_MS) await fs.rm(file, { force: true })
      }
    } catch {
      // Best effort: a leftover temp file costs disk space, not correctness.
    }
  }

  /** Runs change after the key's previous commit or delete (in this process) has finished. */
  async #inOrder<T>(key: string, change: () => Promise<T>): Promise<T> {
    const previous = this.#commits.get(key) ?? Promise.resolve()
    const current = previous.then(change, change)
    const settled = current.catch(() => undefined)
    this.#commits.set(key, settled)
    try {
      return await current
    } finally {
      if (this.#commits.get(key) === settled) this.#commits.delete(key)
    }
  }

  async #moveIntoPlace(key: string, tmp: string, file: string): Promise<void> {
    // A concurrent delete may remove the (then empty) parent directory between mkdir and rename.
    for (let attempt = 1; ; attempt++) {
      await fs.mkdir(path.dirname(file), { recursive: true })
      try {
        await fs.rename(tmp, file)
        return
      } catch (e) {
        if (errorCode(e) === 'EISDIR' || errorCode(e) === 'ENOTEMPTY') throw keyConflict(key)
        if (errorCode(e) !== 'ENOENT' || attempt === 3) throw e
      }
    }
  }

  async #removeEmptyParents(dir: string): Promise<void> {
    for (let d = dir; d.startsWith(this.#root + path.sep); d = path.dirname(d)) {
      try {
        await fs.rmdir(d)
      } catch {
        return
      }
    }
  }

  /** Keys under dirKey whose first segment starts with namePrefix, in UTF-8 byte order, after `after`. */
  async *#walk(dirKey: string, namePrefix: string, after: Buffer | undefined): AsyncGenerator<string> {
    const dir = dirKey === '' ? this.#root : path.join(this.#root, ...dirKey.split('/'))
    let entries: { name: string; isDir: boolean; sortKey: Buffer }[]
    try {
      entries = (await fs.readdir(dir, { withFileTypes: true }))
        .filter((e) => e.name.startsWith(namePrefix) && (e.isFile() || e.isDirectory()))
        .filter((e) => !(dirKey === '' && e.name === LOCAL_INTERNAL_DIR))
        .map((e) => ({
          name: e.name,
          isDir: e.isDirectory(),
          sortKey: Buffer.from(e.isDirectory() ? `${e.name}/` : e.name),
        }))
    } catch (e) {
      if (isMissing(e)) return
      throw e
    }
    // A directory sorts as "name/": every key below it starts so, and no sibling file can fall among them.
    entries.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey))
    for (const entry of entries) {
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`
      if (entry.isDir) {
        const below = Buffer.from(`${key}/`)
        const allBeforeAfter =
          after !== undefined &&
          Buffer.compare(below, after) < 0 &&
          !after.subarray(0, below.length).equals(below)
        if (!allBeforeAfter) yield* this.#walk(key, '', after)
      } else if ((after === undefined || Buffer.compare(Buffer.from(key), after) > 0) && isValidKey(key)) {
        yield key
      }
    }
  }
}

function identity(stat: BigIntStats): Pick<Sidecar, 'ino' | 'size' | 'mtimeNs'> {
  return { ino: String(stat.ino), size: String(stat.size), mtimeNs: String(stat.mtimeNs) }
}

function describe(key: string, stat: BigIntStats, sidecar: Sidecar | undefined): BlobInfo {
  const id = identity(stat)
  const current =
    sidecar && sidecar.ino === id.ino && sidecar.size === id.size && sidecar.mtimeNs === id.mtimeNs
  return {
    key,
    size: Number(stat.size),
    // Without its sidecar (a file put there by hand, or mid-put), the file's identity stands in for its MD5.
    etag: current
      ? `"${sidecar.md5}"`
      : `"${stat.size.toString(36)}-${stat.mtimeNs.toString(36)}-${stat.ino.toString(36)}"`,
    contentType: current ? sidecar.contentType : contentTypeFor(key),
    modifiedAt: new Date(Number(stat.mtimeMs)),
  }
}

function isValidKey(key: string): boolean {
  try {
    assertBlobKey(key)
    return true
  } catch {
    return false
  }
}

function errorCode(e: unknown): string | undefined {
  return e instanceof Error && 'code' in e && typeof e.code === 'string' ? e.code : undefined
}

function isMissing(e: unknown): boolean {
  const code = errorCode(e)
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG'
}

function keyConflict(key: string): AppError {
  return conflict(
    'blob_key_conflict',
    `"${key}" clashes with another key: a local store cannot hold both "a" and "a/b"`,
  )
}

function putError(key: string, e: unknown): unknown {
  if (e instanceof AppError) return e
  const code = errorCode(e)
  if (code === 'ENOTDIR' || code === 'EEXIST') return keyConflict(key)
  if (code === 'ENAMETOOLONG')
    return new AppError(400, 'invalid_blob_key', `Invalid blob key: a segment is too long`)
  return e
}
