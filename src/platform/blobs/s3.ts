import { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
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
  rangeNotSatisfiable,
} from './blobs.js'
import { contentTypeFor } from './content-type.js'

export interface S3BlobsOptions {
  bucket: string
  /** An S3-compatible server (MinIO, Ceph, R2…); absent for AWS. */
  endpoint?: string
  region: string
  /** Both or neither: without them the AWS default credential chain is used. */
  accessKeyId?: string
  secretAccessKey?: string
  forcePathStyle: boolean
  /** Bodies larger than this go up as a multipart upload of parts this size (at least 5 MiB). */
  partSizeBytes?: number
  /** Keys asked for per ListObjectsV2 call (S3 gives at most 1000). */
  listPageSize?: number
}

/**
 * The scaled Blobs: an S3 bucket. A put streams through lib-storage's Upload (multipart beyond one
 * part); S3 shows an object only once its upload completes, and a failed multipart upload is
 * aborted, so a put that fails leaves nothing readable and the previous version in place.
 */
export class S3Blobs implements Blobs {
  readonly kind = 's3'
  readonly #client: S3Client
  readonly #bucket: string
  readonly #partSize: number
  readonly #listPageSize: number

  constructor(options: S3BlobsOptions) {
    const { accessKeyId, secretAccessKey } = options
    this.#bucket = options.bucket
    this.#listPageSize = options.listPageSize ?? 1000
    this.#partSize = Math.max(options.partSizeBytes ?? 8 * 1024 * 1024, 5 * 1024 * 1024)
    this.#client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
      // The SDK's default CRC checksums on every request are refused by many S3-compatible servers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    })
  }

  async put(key: string, body: BlobBody, options: { contentType?: string } = {}): Promise<BlobInfo> {
    assertBlobKey(key)
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: this.#bucket,
        Key: key,
        Body: typeof body === 'string' ? Buffer.from(body) : body,
        ContentType: options.contentType ?? contentTypeFor(key),
      },
      partSize: this.#partSize,
      queueSize: 4,
      // Upload's own abort lets a failed abort replace the error that caused it; we abort below instead.
      leavePartsOnError: true,
    })
    try {
      await upload.done()
    } catch (e) {
      const UploadId = upload.uploadId
      if (UploadId) {
        await this.#client
          .send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId }))
          .catch(() => undefined)
      }
      throw e
    }
    const info = await this.head(key)
    if (!info) throw new Error(`S3 object "${key}" missing right after its upload completed`)
    return info
  }

  async get(key: string, range?: ByteRange): Promise<BlobRead> {
    assertBlobKey(key)
    if (range) assertByteRange(range)
    try {
      const res = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined,
        }),
      )
      const body = res.Body
      if (!(body instanceof Readable)) throw new Error('S3 returned a body that is not a Node.js stream')
      const length = res.ContentLength ?? 0
      const served = parseContentRange(res.ContentRange)
      if (range && (served?.size ?? length) === 0) {
        // S3 answers 416 to any range of an empty object; some compatible servers send it whole.
        body.destroy()
        throw rangeNotSatisfiable(`"${key}" is empty`)
      }
      const info: BlobInfo = {
        key,
        size: served?.size ?? length,
        etag: res.ETag ?? '""',
        contentType: res.ContentType,
        modifiedAt: res.LastModified ?? new Date(0),
      }
      return { info, start: served?.start ?? 0, end: served?.end ?? length - 1, body }
    } catch (e) {
      if (statusOf(e) === 404) throw new BlobNotFoundError(key)
      if (statusOf(e) === 416)
        throw rangeNotSatisfiable(`Range ${range?.start}-${range?.end ?? ''} is outside "${key}"`)
      throw e
    }
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    assertBlobKey(key)
    try {
      const res = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }))
      return {
        key,
        size: res.ContentLength ?? 0,
        etag: res.ETag ?? '""',
        contentType: res.ContentType,
        modifiedAt: res.LastModified ?? new Date(0),
      }
    } catch (e) {
      if (statusOf(e) === 404) return undefined
      throw e
    }
  }

  async list(prefix: string, options: { limit?: number; startAfter?: string } = {}): Promise<BlobInfo[]> {
    assertBlobPrefix(prefix)
    const limit = checkLimit(options.limit)
    const infos: BlobInfo[] = []
    let continuationToken: string | undefined
    while (infos.length < limit) {
      const page = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: prefix || undefined,
          StartAfter: continuationToken ? undefined : options.startAfter,
          ContinuationToken: continuationToken,
          MaxKeys: Math.min(this.#listPageSize, limit - infos.length),
        }),
      )
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue
        infos.push({
          key: object.Key,
          size: object.Size ?? 0,
          etag: object.ETag ?? '""',
          modifiedAt: object.LastModified ?? new Date(0),
        })
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined
      if (!continuationToken) break
    }
    return infos.slice(0, limit)
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key)
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }))
  }

  async ping(): Promise<void> {
    await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }))
  }

  async close(): Promise<void> {
    this.#client.destroy()
  }
}

function statusOf(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null || !('$metadata' in e)) return undefined
  const metadata = e.$metadata
  if (typeof metadata !== 'object' || metadata === null || !('httpStatusCode' in metadata)) return undefined
  return typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined
}

/** `bytes 0-99/1234` → the served bytes and the object's size. */
function parseContentRange(
  header: string | undefined,
): { start: number; end: number; size: number } | undefined {
  const m = header ? /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header) : null
  if (!m) return undefined
  return { start: Number(m[1]), end: Number(m[2]), size: Number(m[3]) }
}
