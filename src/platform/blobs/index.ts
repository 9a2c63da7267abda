import type { Blobs } from './blobs.js'
import { LocalBlobs } from './local.js'
import { S3Blobs, type S3BlobsOptions } from './s3.js'

export {
  assertBlobKey,
  assertBlobPrefix,
  type BlobBody,
  type BlobInfo,
  BlobNotFoundError,
  type BlobRead,
  type Blobs,
  type ByteRange,
} from './blobs.js'
export { contentTypeFor } from './content-type.js'
export { LOCAL_INTERNAL_DIR, LocalBlobs } from './local.js'
export { S3Blobs, type S3BlobsOptions } from './s3.js'

/** An S3 bucket when `s3` is given, else files under `dir`. */
export function createBlobs(options: { dir: string } | { s3: S3BlobsOptions }): Blobs {
  return 's3' in options ? new S3Blobs(options.s3) : new LocalBlobs({ dir: options.dir })
}
