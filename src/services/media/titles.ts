import type { MediaStatus, MediaStore } from './store.js'

export interface TitleRecord {
  id: string
  title: string
  year: number | null
  durationMs: number | null
  mediaStatus: MediaStatus
}

/**
 * The little the pipeline knows of a title: created at upload, told its media status and duration.
 * The catalog owns titles; until its in-process API offers these calls, media keeps them in its own
 * `media_titles` table. Swapping in the catalog means implementing this interface over it.
 */
export interface TitleDirectory {
  create(input: { id: string; title: string; year?: number }): Promise<TitleRecord>
  get(id: string): Promise<TitleRecord | undefined>
  setMediaStatus(id: string, status: MediaStatus, durationMs?: number): Promise<void>
}

export class MediaTitles implements TitleDirectory {
  constructor(
    private readonly store: MediaStore,
    private readonly now: () => number,
  ) {}

  async create(input: { id: string; title: string; year?: number }): Promise<TitleRecord> {
    const now = this.now()
    await this.store.insertTitle({
      id: input.id,
      title: input.title,
      year: input.year ?? null,
      duration_ms: null,
      media_status: 'uploading',
      created_at: now,
      updated_at: now,
    })
    const created = await this.get(input.id)
    if (!created) throw new Error(`title ${input.id} vanished after insert`)
    return created
  }

  async get(id: string): Promise<TitleRecord | undefined> {
    const row = await this.store.title(id)
    return row
      ? {
          id: row.id,
          title: row.title,
          year: row.year,
          durationMs: row.duration_ms,
          mediaStatus: row.media_status,
        }
      : undefined
  }

  async setMediaStatus(id: string, status: MediaStatus, durationMs?: number): Promise<void> {
    await this.store.updateTitle(id, {
      media_status: status,
      ...(durationMs === undefined ? {} : { duration_ms: durationMs }),
      updated_at: this.now(),
    })
  }
}
