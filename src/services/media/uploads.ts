import fs from 'node:fs/promises'
import path from 'node:path'
import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'
import { errorMessage, isAppError } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import type { Logger } from '../../platform/log.js'
import type { MediaService } from './service.js'

export const UPLOADS_PATH = '/api/v1/uploads'
const RECOVER_AFTER_MS = 60_000
const ABANDONED_AFTER_MS = 7 * 24 * 3600_000

interface TusFailure {
  status_code: number
  body: string
}

const failure = (status: number, code: string, message: string): TusFailure => ({
  status_code: status,
  body: JSON.stringify({ error: { code, message } }),
})

/** The tus server's own refusals, as reel's error shape. */
const TUS_CODES: Record<number, string> = {
  400: 'invalid_upload',
  403: 'upload_forbidden',
  404: 'upload_not_found',
  409: 'upload_offset_mismatch',
  410: 'upload_gone',
  412: 'tus_version_unsupported',
  413: 'too_large',
  415: 'unsupported_media_type',
  460: 'upload_checksum_mismatch',
}

export interface UploadMetadata {
  title: string
  year?: number
  filename?: string
}

/** Checks the Upload-Metadata of a new upload: a title is required, a year is optional. */
export function uploadMetadata(metadata: Record<string, string | null> | undefined): UploadMetadata {
  const title = metadata?.title?.trim()
  if (!title || title.length > 500)
    throw failure(400, 'invalid_title', 'Upload-Metadata needs a title of 1 to 500 characters')
  const rawYear = metadata?.year?.trim()
  let year: number | undefined
  if (rawYear) {
    year = Number(rawYear)
    if (!/^\d{4}$/.test(rawYear) || year < 1870 || year > 2200)
      throw failure(400, 'invalid_year', `year must be a four-digit year, got "${rawYear}"`)
  }
  const filename = metadata?.filename?.trim().slice(0, 500) || undefined
  return { title, year, filename }
}

export interface Uploads {
  server: Server
  /**
   * Finishes uploads whose last byte arrived but whose hand-over to the pipeline did not (the
   * process stopped in between): the client saw its upload complete, so nobody would retry it.
   */
  recover(): Promise<void>
}

/**
 * Resumable uploads (tus 1.0.0): bytes are kept in uploadDir until the last one arrives, then move
 * to the blob store and the pipeline starts. The upload id is the new title's id.
 */
export function uploadServer(
  service: MediaService,
  uploadDir: string,
  maxBytes: number,
  log: Logger,
): Uploads {
  const datastore = new FileStore({ directory: uploadDir })
  const finish = async (id: string) => {
    await service.finishUpload(id, path.join(uploadDir, id))
    await datastore
      .remove(id)
      .catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'removing a finished upload failed'))
  }
  const recover = async () => {
    for (const { titleId: id, startedAt } of await service.uploadsInProgress()) {
      const upload = await datastore.getUpload(id).catch(() => undefined)
      // A file written to in the last minute may be in its own hand-over right now.
      const written = await fs.stat(path.join(uploadDir, id)).catch(() => undefined)
      const idleMs = Date.now() - (written?.mtimeMs ?? startedAt)
      if (upload?.size !== undefined && upload.offset === upload.size && idleMs > RECOVER_AFTER_MS) {
        log.info({ titleId: id }, 'finishing an upload whose hand-over was interrupted')
        await finish(id)
      } else if (idleMs > ABANDONED_AFTER_MS) {
        // Nobody resumed it for days: its bytes go, and its title fails.
        await datastore.remove(id).catch(() => undefined)
        await service.fail(id, 'upload_abandoned', 'The upload was not finished in time')
      }
    }
  }
  const server = new Server({
    path: UPLOADS_PATH,
    datastore,
    maxSize: maxBytes,
    relativeLocation: true,
    respectForwardedHeaders: true,
    exposedHeaders: ['Reel-Title-Id'],
    namingFunction: () => newId(),
    async onUploadCreate(_req, upload) {
      if (upload.sizeIsDeferred)
        throw failure(400, 'upload_length_required', 'Send Upload-Length: reel needs the size up front')
      const meta = uploadMetadata(upload.metadata)
      try {
        await service.beginUpload({ titleId: upload.id, ...meta })
      } catch (e) {
        // The catalog refusing the title (a bad year, say) is the client's error, not the server's.
        if (isAppError(e) && e.status < 500) throw failure(e.status, e.code, e.message)
        throw e
      }
      return {}
    },
    async onUploadFinish(_req, upload) {
      await finish(upload.id)
      return { headers: { 'Reel-Title-Id': upload.id } }
    },
    onResponseError(_req, err) {
      if ('status_code' in err && err.body.startsWith('{')) return err
      const status = 'status_code' in err ? err.status_code : 500
      if (status >= 500) log.error({ err: errorMessage(err) }, 'upload failed')
      const message = 'status_code' in err ? err.body.trim() : 'The upload failed on the server'
      return failure(status, TUS_CODES[status] ?? 'upload_failed', message)
    },
  })
  // A client that gives up (DELETE) ends its title too, with nothing left behind.
  server.on('POST_TERMINATE', (_req: unknown, _res: unknown, id: string) => {
    service
      .fail(id, 'upload_cancelled', 'The upload was cancelled by the uploader')
      .catch((e: unknown) =>
        log.error({ err: errorMessage(e), titleId: id }, 'failing a cancelled upload failed'),
      )
  })
  return { server, recover }
}
