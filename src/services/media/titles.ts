import type { CatalogService } from '../catalog/service.js'

/** Where a title's media is, as the pipeline sees it. */
export type MediaStatus = 'uploading' | 'processing' | 'available' | 'failed'

export interface TitleRecord {
  id: string
  title: string
  year: number | null
  durationMs: number | null
}

/**
 * The little the pipeline needs of a title: created at upload, told its media status and duration.
 * The catalog owns titles; this is the one place media talks to it about them.
 */
export interface TitleDirectory {
  create(input: { id: string; title: string; year?: number }): Promise<TitleRecord>
  setMediaStatus(id: string, status: MediaStatus, durationMs?: number): Promise<void>
}

/** The catalog's words for the same states: an upload in progress is `pending` media. */
const CATALOG_STATUS = {
  uploading: 'pending',
  processing: 'processing',
  available: 'available',
  failed: 'failed',
} as const

/** Titles kept by the catalog, through its in-process API (`upsertMedia`). */
export class CatalogTitles implements TitleDirectory {
  constructor(private readonly catalog: () => CatalogService) {}

  async create(input: { id: string; title: string; year?: number }): Promise<TitleRecord> {
    // Media for a title or episode the catalog has (the demo seed's) attaches to it.
    const target = await this.catalog().mediaTarget(input.id)
    await this.catalog().upsertMedia(
      target
        ? { ...target, status: CATALOG_STATUS.uploading }
        : {
            // The external id makes a retried create find the same title instead of making a second.
            newTitle: {
              id: input.id,
              title: input.title,
              year: input.year,
              externalId: `reel-upload:${input.id}`,
            },
            status: CATALOG_STATUS.uploading,
          },
    )
    return { id: input.id, title: input.title, year: input.year ?? null, durationMs: null }
  }

  async setMediaStatus(id: string, status: MediaStatus, durationMs?: number): Promise<void> {
    const target = (await this.catalog().mediaTarget(id)) ?? { titleId: id }
    await this.catalog().upsertMedia({ ...target, status: CATALOG_STATUS[status], durationMs })
  }
}
