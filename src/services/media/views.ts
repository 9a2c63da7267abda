import { type Cache, readThrough } from '../../platform/cache/cache.js'
import { notFound } from '../../platform/errors.js'
import { blobKeys } from './keys.js'
import type { SourceInfo } from './probe.js'
import type { JobStage, MediaStore, RenditionRow, TaskKind, TaskRow } from './store.js'
import type { MediaStatus } from './titles.js'

/** What operators and other services read of a title's media: views over the store, the index through the cache. */

export interface TaskView {
  key: string
  kind: TaskKind
  rendition: string | null
  chunk: number | null
  state: TaskRow['state']
  attempts: number
  percent: number
  error: string | null
  worker: string | null
  startedAt: string | null
  finishedAt: string | null
}

export interface RenditionView {
  name: string
  kind: 'video' | 'audio'
  width: number | null
  height: number | null
  frameRate: number | null
  codecs: string
  bandwidth: number
  averageBandwidth: number
  playlistKey: string
  initKey: string
  parts: number
  durationMs: number
}

export interface TitleMediaView {
  titleId: string
  title: string
  year: number | null
  status: string
  stage: JobStage
  percent: number
  durationMs: number | null
  error: { code: string; message: string } | null
  source: {
    name: string | null
    bytes: number | null
    container: string | null
    width: number | null
    height: number | null
    frameRate: number | null
    durationMs: number | null
    audio: boolean | null
  }
  tasks: TaskView[]
  renditions: RenditionView[]
  masterPlaylistKey: string | null
  posterKey: string | null
  thumbnailsKey: string | null
  createdAt: string
  updatedAt: string
}

export interface PartView {
  partNo: number
  blobKey: string
  startMs: number
  durationMs: number
  bytes: number
}

/** The title's media status (as the catalog is told it) for each stage of its job. */
function statusOf(stage: JobStage): MediaStatus {
  if (stage === 'uploading' || stage === 'available' || stage === 'failed') return stage
  return 'processing'
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

export function renditionView(r: RenditionRow): RenditionView {
  return {
    name: r.name,
    kind: r.kind,
    width: r.width,
    height: r.height,
    frameRate: r.frame_rate === null ? null : Number(r.frame_rate),
    codecs: r.codecs,
    bandwidth: r.bandwidth,
    averageBandwidth: r.average_bandwidth,
    playlistKey: r.playlist_key,
    initKey: r.init_key,
    parts: r.parts,
    durationMs: Math.round(r.duration_us / 1000),
  }
}

const cacheKeys = {
  renditions: (t: string) => `media:renditions:${t}`,
  parts: (t: string, r: string) => `media:parts:${t}:${r}`,
}

const INDEX_TTL_MS = 3600_000

export class MediaViews {
  constructor(
    private readonly store: MediaStore,
    private readonly cache: Cache,
  ) {}

  /** Status, progress, tasks and results of a title's media, for operators. */
  async titleMedia(titleId: string): Promise<TitleMediaView> {
    const { store } = this
    const job = await store.job(titleId)
    if (!job) throw notFound('title_not_found', `No title ${titleId} with media`)
    const [tasks, renditions] = await Promise.all([store.tasks(titleId), store.renditions(titleId)])
    const source = job.source ? (JSON.parse(job.source) as SourceInfo) : undefined
    const total = tasks.reduce((sum, t) => sum + t.weight, 0)
    const done = tasks.reduce(
      (sum, t) => sum + (t.weight * (t.state === 'done' ? 1000 : t.progress_permille)) / 1000,
      0,
    )
    const percent =
      job.stage === 'available'
        ? 100
        : job.stage === 'uploading' || total === 0
          ? 0
          : Math.min(99.9, (done / total) * 100)
    const available = job.stage === 'available'
    return {
      titleId,
      title: job.title,
      year: job.year,
      status: statusOf(job.stage),
      stage: job.stage,
      percent: Math.round(percent * 10) / 10,
      durationMs: job.duration_ms,
      error: job.error_code ? { code: job.error_code, message: job.error_message ?? '' } : null,
      source: {
        name: job.source_name,
        bytes: job.source_bytes,
        container: source?.container ?? null,
        width: source?.video.width ?? null,
        height: source?.video.height ?? null,
        frameRate: source?.video.frameRate ?? null,
        durationMs: source ? Math.round(source.duration * 1000) : null,
        audio: source ? !!source.audio : null,
      },
      tasks: tasks.map((t) => ({
        key: t.key,
        kind: t.kind,
        rendition: t.rendition,
        chunk: t.chunk,
        state: t.state,
        attempts: t.attempts,
        percent: t.state === 'done' ? 100 : t.progress_permille / 10,
        error: t.error,
        worker: t.worker,
        startedAt: iso(t.started_at),
        finishedAt: iso(t.finished_at),
      })),
      renditions: renditions.map(renditionView),
      masterPlaylistKey: available ? blobKeys.master(titleId) : null,
      posterKey: available ? blobKeys.poster(titleId) : null,
      thumbnailsKey: available ? blobKeys.thumbnails(titleId) : null,
      createdAt: new Date(job.created_at).toISOString(),
      updatedAt: new Date(job.updated_at).toISOString(),
    }
  }

  /** The renditions of an available title (read through the cache). */
  async renditions(titleId: string): Promise<RenditionView[]> {
    return (
      (await readThrough(this.cache, cacheKeys.renditions(titleId), INDEX_TTL_MS, async () => {
        const rows = await this.store.renditions(titleId)
        return rows.length > 0 ? rows.map(renditionView) : undefined
      })) ?? []
    )
  }

  /** The parts index of one rendition: part number → blob key, start, duration, bytes (read through the cache). */
  async parts(titleId: string, rendition: string): Promise<PartView[]> {
    return (
      (await readThrough(this.cache, cacheKeys.parts(titleId, rendition), INDEX_TTL_MS, async () => {
        const rows = await this.store.parts(titleId, rendition)
        return rows.length > 0
          ? rows.map((p) => ({
              partNo: p.part_no,
              blobKey: p.blob_key,
              startMs: p.start_us / 1000,
              durationMs: p.duration_us / 1000,
              bytes: p.bytes,
            }))
          : undefined
      })) ?? []
    )
  }

  async forget(titleId: string, renditions: string[]): Promise<void> {
    await this.cache.del(cacheKeys.renditions(titleId), ...renditions.map((r) => cacheKeys.parts(titleId, r)))
  }
}
