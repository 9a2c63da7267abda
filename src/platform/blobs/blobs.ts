import type { Readable } from 'node:stream'
import { AppError } from '../errors.js'

export interface BlobInfo {
  key: string
  size: number
  /** Changes whenever the content changes (quoted, as in HTTP). */
  etag: string
  contentType?: string
  modifiedAt: Date
}

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`; `end` absent means to the end. */
export interface ByteRange {
  start: number
  end?: number
}

export interface BlobRead {
  info: BlobInfo
  /** The bytes actually returned (inclusive), equal to the whole object without a range. */
  start: number
  end: number
  body: Readable
}

export type BlobBody = Readable | Buffer | Uint8Array | string

/**
 * The Blobs port: an object store. A put is atomic (readers see the old object or the whole new
 * one, never part); keys are relative, '/'-separated paths that cannot escape the store.
 */
export interface Blobs {
  readonly kind: 'local' | 's3'
  put(key: string, body: BlobBody, options?: { contentType?: string }): Promise<BlobInfo>
  /** Throws BlobNotFoundError for a missing key and AppError 416 `range_not_satisfiable` for a bad range. */
  get(key: string, range?: ByteRange): Promise<BlobRead>
  head(key: string): Promise<BlobInfo | undefined>
  /** Objects whose key starts with prefix, in key order (UTF-8 byte order, as S3), without contentType. */
  list(prefix: string, options?: { limit?: number; startAfter?: string }): Promise<BlobInfo[]>
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>
  ping(): Promise<void>
  close(): Promise<void>
}

export class BlobNotFoundError extends AppError {
  constructor(key: string) {
    super(404, 'blob_not_found', `No object at "${key}"`)
  }
}

export function rangeNotSatisfiable(message: string): AppError {
  return new AppError(416, 'range_not_satisfiable', message)
}

/** Throws AppError 416 `range_not_satisfiable` unless range is whole numbers with 0 <= start <= end. */
export function assertByteRange(range: ByteRange): void {
  const { start, end } = range
  if (!Number.isSafeInteger(start) || start < 0) throw rangeNotSatisfiable(`Invalid range start: ${start}`)
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw rangeNotSatisfiable(`Invalid range end: ${end} (start ${start})`)
  }
}

/** The inclusive bytes range selects in an object of size bytes; an end past the last byte is cut, as in HTTP. */
export function resolveByteRange(range: ByteRange | undefined, size: number): { start: number; end: number } {
  if (range === undefined) return { start: 0, end: size - 1 }
  assertByteRange(range)
  if (range.start >= size) {
    throw rangeNotSatisfiable(`Range starts at byte ${range.start} of a ${size}-byte object`)
  }
  return { start: range.start, end: Math.min(range.end ?? size - 1, size - 1) }
}

/** A list limit: a whole number from 0, or Infinity when absent. */
export function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return Number.POSITIVE_INFINITY
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new AppError(400, 'invalid_limit', `limit must be a whole number from 0, got ${limit}`)
  }
  return limit
}

const MAX_KEY_LENGTH = 1024

/** Throws AppError 400 `invalid_blob_key` unless key is a safe relative path. */
export function assertBlobKey(key: string): void {
  const reject = (why: string) => {
    throw new AppError(400, 'invalid_blob_key', `Invalid blob key: ${why}`)
  }
  if (typeof key !== 'string' || key.length === 0) reject('empty')
  if (key.length > MAX_KEY_LENGTH) reject(`longer than ${MAX_KEY_LENGTH} characters`)
  if (key.includes('\0')) reject('contains a NUL byte')
  if (key.includes('\\')) reject('contains a backslash')
  if (key.startsWith('/')) reject('absolute path')
  if (/^[A-Za-z]:/.test(key)) reject('drive-letter path')
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      reject(`empty, "." or ".." path segment in "${key}"`)
    }
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  if (/[\u0000-\u001f\u007f]/.test(key)) reject('contains a control character')
}

/** Prefixes may be empty or end in a partial segment, but never climb out of the store. */
export function assertBlobPrefix(prefix: string): void {
  if (prefix === '') return
  assertBlobKey(prefix.endsWith('/') ? `${prefix}x` : prefix)
}
