import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Blobs } from '../../platform/blobs/blobs.js'
import type { Bus, Subscription } from '../../platform/bus/bus.js'
import type { Cache } from '../../platform/cache/cache.js'
import { errorMessage } from '../../platform/errors.js'
import type { Logger } from '../../platform/log.js'
import {
  type EncoderSettings,
  encodeAudio,
  encodeChunk,
  makePoster,
  makeSprites,
  type PackagedRendition,
  packageHls,
  THUMB_COLUMNS,
  THUMB_ROWS,
  THUMB_WIDTH,
} from './encode.js'
import {
  TASK_TYPE,
  type TaskMessage,
  TITLE_FAILED,
  TITLE_PUBLISHED,
  type TitleFailed,
  type TitlePublished,
  TRANSCODE_QUEUE,
} from './events.js'
import { blobKeys, pad } from './keys.js'
import { type Chunk, chunkPlan, type Rendition, type Rung, renditionLadder } from './ladder.js'
import {
  AAC_LC_CODEC,
  avcCodecString,
  masterPlaylist,
  measureBandwidth,
  mediaPlaylist,
  thumbnailsVtt,
  type VariantStream,
} from './playlists.js'
import { probeSource, RejectedSource } from './probe.js'
import type { JobRow, JobStage, MediaStore, PartRow, RenditionRow, TaskKind, TaskRow } from './store.js'
import type { TitleDirectory } from './titles.js'
import { type MediaTools, ToolError } from './tools.js'
import { MediaViews, type PartView, type RenditionView, renditionView, type TitleMediaView } from './views.js'

export interface MediaSettings {
  chunkSeconds: number
  ladder: readonly Rung[]
  maxUploadBytes: number
  maxDurationSeconds: number
  preset: string
  /** Waits between a failed task's attempts; the last one repeats. */
  retryBackoffMs: readonly number[]
  /** Tasks each worker process runs at once (0: this process runs none). */
  workers: number
  /** Local scratch space: cached sources, encodes on their way to the blob store. */
  workDir: string
}

export interface MediaDeps {
  store: MediaStore
  titles: TitleDirectory
  cache: Cache
  bus: Bus
  blobs: Blobs
  tools: MediaTools
  log: Logger
  now: () => number
  settings: MediaSettings
}

/** The plan a probe makes: what to encode, in which pieces. */
export interface TitlePlan {
  duration: number
  videoStart: number
  /** Seconds the audio starts after the video (negative: before). */
  audioOffset: number
  audio: boolean
  /** The source is field-based (interlaced): every chunk deinterlaces it. */
  deinterlace?: boolean
  renditions: Rendition[]
  chunks: Chunk[]
}

/** Attempts a task gets (crashes included) before its title fails. */
export const TASK_ATTEMPTS = 5
/** No live handler is cut short by the bus; a crashed worker's task returns after the lease. */
const TASK_ACK_WAIT_MS = 6 * 3600_000
const PROGRESS_WRITE_MS = 1000
const TERMINAL: readonly JobStage[] = ['available', 'failed']
const LIVE: readonly JobStage[] = ['probing', 'transcoding', 'packaging']

/** Maps items with at most `limit` calls running at once; results in the items' order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i] as T)
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane))
  return results
}

const AUDIO = 'audio'
const taskKey = {
  probe: 'probe',
  audio: 'audio',
  package: 'package',
  encode: (chunk: number) => `encode-${pad(chunk)}`,
}

class Cancelled extends Error {}

/**
 * The media pipeline: uploads become titles; a probe plans one encode per chunk (every rendition
 * from one decode) and one audio encode, which workers anywhere run from the work queue; the last of them enqueues packaging,
 * which writes HLS, the parts index and the playlists, and announces the title.
 */
export class MediaService {
  private readonly sources = new Map<string, Promise<string>>()
  private readonly workerId = `${os.hostname()}:${process.pid}`
  private readonly views: MediaViews

  constructor(private readonly deps: MediaDeps) {
    this.views = new MediaViews(deps.store, deps.cache)
  }

  get settings(): MediaSettings {
    return this.deps.settings
  }

  // ---- uploads ----------------------------------------------------------------------------------

  /** An upload starts: its title exists from now on, `uploading`. */
  async beginUpload(input: {
    titleId: string
    title: string
    year?: number
    filename?: string
    createdBy?: string
  }) {
    const { store, titles, now } = this.deps
    await titles.create({ id: input.titleId, title: input.title, year: input.year })
    const at = now()
    await store.insertJob({
      title_id: input.titleId,
      stage: 'uploading',
      title: input.title,
      year: input.year ?? null,
      duration_ms: null,
      source_key: blobKeys.source(input.titleId),
      source_name: input.filename ?? null,
      source_bytes: null,
      source: null,
      plan: null,
      error_code: null,
      error_message: null,
      created_by: input.createdBy ?? null,
      created_at: at,
      updated_at: at,
      finished_at: null,
    })
  }

  /** The upload's bytes are all here: they move to the blob store and the probe is queued. */
  async finishUpload(titleId: string, file: string): Promise<void> {
    const { store, blobs, now } = this.deps
    const job = await store.job(titleId)
    if (job?.stage !== 'uploading') return
    const stat = await fs.stat(file)
    await blobs.put(job.source_key, createReadStream(file), { contentType: 'application/octet-stream' })
    await store.insertTasks([this.taskRow(titleId, 'probe', null, null, 1)])
    await store.updateJob(titleId, { stage: 'probing', source_bytes: stat.size, updated_at: now() }, [
      'uploading',
    ])
    await this.deps.titles.setMediaStatus(titleId, 'processing')
    await this.enqueue(titleId, taskKey.probe)
  }

  /**
   * A file on this machine through the same pipeline as an upload, as the media of `mediaId`: a
   * catalog title or episode (the demo seed's), or a new title. The file is copied; the caller keeps it.
   */
  async ingestFile(input: { mediaId: string; title: string; year?: number; file: string }): Promise<void> {
    const job = await this.deps.store.job(input.mediaId)
    if (!job)
      await this.beginUpload({
        titleId: input.mediaId,
        title: input.title,
        year: input.year,
        filename: path.basename(input.file),
      })
    await this.finishUpload(input.mediaId, input.file)
  }

  /** Titles whose upload has not been handed to the pipeline yet. */
  async uploadsInProgress(): Promise<{ titleId: string; startedAt: number }[]> {
    return (await this.deps.store.jobsIn(['uploading'])).map((j) => ({
      titleId: j.title_id,
      startedAt: j.created_at,
    }))
  }

  // ---- workers ----------------------------------------------------------------------------------

  /** Runs `concurrency` tasks of the work queue at once in this process until stopped. */
  async startWorkers(concurrency: number): Promise<Subscription> {
    const stopping = new AbortController()
    await this.sweepWorkDir()
    const subscription = await this.deps.bus.work<TaskMessage>(TRANSCODE_QUEUE, {
      concurrency,
      maxAttempts: TASK_ATTEMPTS,
      ackWaitMs: TASK_ACK_WAIT_MS,
      backoffMs: [...this.deps.settings.retryBackoffMs],
      handler: (event, info) => this.runTask(event.data, info.attempt, stopping.signal),
    })
    this.deps.log.info({ concurrency, worker: this.workerId }, 'media workers started')
    return {
      async stop() {
        // Running encodes are cut short: their tasks go back to the queue for the next worker.
        stopping.abort()
        await subscription.stop()
      },
    }
  }

  /** One task of the work queue. Throws to have it retried (with backoff) by any worker. */
  async runTask(message: TaskMessage, attempt: number, signal: AbortSignal): Promise<void> {
    const { store, now, log } = this.deps
    const { titleId, key } = message
    const job = await store.job(titleId)
    const task = await store.task(titleId, key)
    if (!job || !task) return
    // A task delivered again after its title ended: finish what the ending may have left undone.
    if (job.stage === 'failed') return this.cleanUpFailed(job)
    if (job.stage === 'available') {
      if (task.kind === 'package') await this.announce(job)
      return
    }
    if (task.state === 'done') {
      await this.afterTask(job, task)
      return
    }
    await store.updateTask(titleId, key, {
      state: 'running',
      attempts: attempt,
      worker: this.workerId,
      started_at: now(),
      progress_permille: 0,
      error: null,
      updated_at: now(),
    })
    try {
      await this.perform(job, task, signal)
      await store.updateTask(titleId, key, {
        state: 'done',
        progress_permille: 1000,
        finished_at: now(),
        updated_at: now(),
      })
      await this.afterTask(job, task)
    } catch (e) {
      if (e instanceof RejectedSource) {
        await this.fail(titleId, e.code, e.message)
        return
      }
      const message =
        e instanceof Cancelled || signal.aborted ? 'interrupted: the worker stopped' : errorMessage(e)
      log.warn({ titleId, task: key, attempt, err: message }, 'media task failed')
      if (!signal.aborted && attempt >= TASK_ATTEMPTS) {
        await store.updateTask(titleId, key, { state: 'failed', error: message, updated_at: now() })
        await this.fail(titleId, 'transcode_failed', `Task ${key} failed ${attempt} times: ${message}`)
        return
      }
      await store.updateTask(titleId, key, { state: 'queued', error: message, updated_at: now() })
      throw e
    }
  }

  private async perform(job: JobRow, task: TaskRow, signal: AbortSignal): Promise<void> {
    switch (task.kind) {
      case 'probe':
        return this.probe(job, signal)
      case 'encode':
        return this.encode(job, task, signal)
      case 'audio':
        return this.encodeAudioTask(job, task, signal)
      case 'package':
        return this.package(job, signal)
    }
  }

  /** What follows a finished task: once every encode is done, packaging. */
  private async afterTask(job: JobRow, task: TaskRow): Promise<void> {
    if (task.kind !== 'encode' && task.kind !== 'audio') return
    if ((await this.deps.store.unfinishedTasks(job.title_id, ['encode', 'audio'])) > 0) return
    if (
      await this.deps.store.updateJob(job.title_id, { stage: 'packaging', updated_at: this.deps.now() }, [
        'transcoding',
      ])
    ) {
      this.deps.log.info({ titleId: job.title_id }, 'every chunk encoded; packaging')
    }
    await this.enqueue(job.title_id, taskKey.package)
  }

  private async enqueue(titleId: string, key: string): Promise<void> {
    await this.deps.bus.enqueue<TaskMessage>(TRANSCODE_QUEUE, {
      id: `${titleId}.${key}`,
      type: TASK_TYPE,
      key: titleId,
      data: { titleId, key },
    })
  }

  // ---- probe and plan ---------------------------------------------------------------------------

  private async probe(job: JobRow, signal: AbortSignal): Promise<void> {
    const { store, settings, now, log } = { ...this.deps, settings: this.deps.settings }
    const source = await this.localSource(job, signal)
    const info = await probeSource(this.deps.tools, source, {
      maxBytes: settings.maxUploadBytes,
      maxDurationSeconds: settings.maxDurationSeconds,
    })
    const plan: TitlePlan = {
      duration: info.duration,
      videoStart: info.videoStart,
      audioOffset: info.audio ? info.audio.start - info.videoStart : 0,
      audio: !!info.audio,
      deinterlace: info.video.interlaced,
      renditions: renditionLadder(info.video, settings.ladder),
      chunks: chunkPlan(info.duration, settings.chunkSeconds),
    }
    const tasks: TaskRow[] = []
    if (plan.audio)
      tasks.push(this.taskRow(job.title_id, 'audio', null, null, Math.ceil(plan.duration / 5) + 1))
    // One task per chunk makes every rendition of it from one decode; in order, so the first
    // chunk of every rendition is ready first.
    const pixels = plan.renditions.reduce((sum, r) => sum + r.width * r.height, 0)
    for (const chunk of plan.chunks) {
      const weight = Math.ceil((chunkSeconds(chunk, plan.duration) * pixels) / (640 * 360)) + 1
      tasks.push(this.taskRow(job.title_id, 'encode', null, chunk.index, weight))
    }
    tasks.push(this.taskRow(job.title_id, 'package', null, null, Math.ceil(plan.duration / 2) + 1))
    await store.insertTasks(tasks)
    const moved = await store.updateJob(
      job.title_id,
      { stage: 'transcoding', source: JSON.stringify(info), plan: JSON.stringify(plan), updated_at: now() },
      ['probing'],
    )
    if (moved)
      log.info(
        { titleId: job.title_id, chunks: plan.chunks.length, renditions: plan.renditions.map((r) => r.name) },
        'media planned',
      )
    // Also when a probe that planned already runs again (its worker died before the queue heard of
    // it): whatever is not done is queued, and ids the queue holds already are no-ops.
    if ((await store.job(job.title_id))?.stage !== 'transcoding') return
    for (const t of await store.tasks(job.title_id))
      if ((t.kind === 'encode' || t.kind === 'audio') && t.state !== 'done')
        await this.enqueue(job.title_id, t.key)
  }

  private taskRow(
    titleId: string,
    kind: TaskKind,
    rendition: string | null,
    chunk: number | null,
    weight: number,
  ): TaskRow {
    const key = kind === 'encode' && chunk !== null ? taskKey.encode(chunk) : (kind as string)
    return {
      title_id: titleId,
      key,
      kind,
      rendition,
      chunk,
      weight,
      state: 'queued',
      attempts: 0,
      progress_permille: 0,
      error: null,
      worker: null,
      started_at: null,
      finished_at: null,
      updated_at: this.deps.now(),
    }
  }

  // ---- encodes ----------------------------------------------------------------------------------

  private encoderSettings(): EncoderSettings {
    const cores = os.availableParallelism()
    const workers = Math.max(1, this.deps.settings.workers)
    return { preset: this.deps.settings.preset, threads: Math.max(1, Math.floor(cores / workers)) }
  }

  private async encode(job: JobRow, task: TaskRow, signal: AbortSignal): Promise<void> {
    const plan = planOf(job)
    const chunk = plan.chunks.find((c) => c.index === task.chunk)
    if (!chunk) throw new Error(`task ${task.key} is not in the plan`)
    const source = await this.localSource(job, signal)
    const outputs = await Promise.all(
      plan.renditions.map(async (rendition) => ({
        rendition,
        file: await this.scratchFile(job.title_id, `${task.key}-${rendition.name}.mp4`),
      })),
    )
    try {
      await encodeChunk(
        this.deps.tools,
        {
          source,
          start: plan.videoStart + chunk.start,
          end: chunk.end === undefined ? undefined : plan.videoStart + chunk.end,
          deinterlace: plan.deinterlace,
          outputs,
        },
        this.encoderSettings(),
        { signal, onProgress: this.progressReporter(task, chunkSeconds(chunk, plan.duration)) },
      )
      for (const o of outputs)
        await this.putOutput(
          job.title_id,
          blobKeys.piece(job.title_id, o.rendition.name, chunk.index),
          o.file,
        )
    } finally {
      await Promise.all(outputs.map((o) => fs.rm(o.file, { force: true })))
    }
  }

  private async encodeAudioTask(job: JobRow, task: TaskRow, signal: AbortSignal): Promise<void> {
    const plan = planOf(job)
    const source = await this.localSource(job, signal)
    const output = await this.scratchFile(job.title_id, 'audio.mp4')
    try {
      await encodeAudio(
        this.deps.tools,
        { source, offset: plan.audioOffset, output },
        this.encoderSettings(),
        { signal, onProgress: this.progressReporter(task, plan.duration) },
      )
      await this.putOutput(job.title_id, blobKeys.audioPiece(job.title_id), output)
    } finally {
      await fs.rm(output, { force: true })
    }
  }

  /** Stores a task's output, unless the title failed meanwhile (then nothing is left behind). */
  private async putOutput(titleId: string, key: string, file: string): Promise<void> {
    const { blobs, store } = this.deps
    await blobs.put(key, createReadStream(file))
    const job = await store.job(titleId)
    if (!job || job.stage === 'failed') {
      await blobs.delete(key)
      throw new Cancelled(`title ${titleId} failed meanwhile`)
    }
  }

  private progressReporter(task: TaskRow, seconds: number): (done: number) => void {
    let last = 0
    return (done) => {
      const at = Date.now()
      if (at - last < PROGRESS_WRITE_MS) return
      last = at
      const permille = Math.max(0, Math.min(999, Math.round((done / Math.max(seconds, 0.001)) * 1000)))
      this.deps.store
        .taskProgress(task.title_id, task.key, permille, this.deps.now())
        .catch((e: unknown) => this.deps.log.debug({ err: errorMessage(e) }, 'progress write failed'))
    }
  }

  // ---- packaging --------------------------------------------------------------------------------

  private async package(job: JobRow, signal: AbortSignal): Promise<void> {
    const { blobs, store, tools, now, log } = this.deps
    const titleId = job.title_id
    const plan = planOf(job)
    const dir = await this.scratchDir(titleId, `package-${randomUUID()}`)
    try {
      const renditions: RenditionRow[] = []
      const parts: PartRow[] = []
      const upload = async (name: string, packaged: PackagedRendition) => {
        const prefix = blobKeys.rendition(titleId, name)
        await blobs.put(`${prefix}init.mp4`, createReadStream(packaged.init))
        let start = 0
        const segments = []
        for (const [n, s] of packaged.segments.entries()) {
          if (signal.aborted) throw new Cancelled('stopped')
          const uri = `${pad(n)}.m4s`
          await blobs.put(`${prefix}${uri}`, createReadStream(s.file))
          const durationUs = Math.round(s.duration * 1e6)
          parts.push({
            title_id: titleId,
            rendition: name,
            part_no: n,
            blob_key: `${prefix}${uri}`,
            start_us: start,
            duration_us: durationUs,
            bytes: s.bytes,
          })
          start += durationUs
          segments.push({ uri, duration: s.duration })
        }
        await blobs.put(`${prefix}index.m3u8`, mediaPlaylist('init.mp4', segments), {
          contentType: 'application/vnd.apple.mpegurl',
        })
        return { playlistKey: `${prefix}index.m3u8`, initKey: `${prefix}init.mp4`, durationUs: start }
      }

      let audioRow: RenditionRow | undefined
      if (plan.audio) {
        const piece = path.join(dir, 'audio-source.mp4')
        await this.download(blobKeys.audioPiece(titleId), piece)
        const packaged = await packageHls(tools, [piece], path.join(dir, AUDIO), { signal })
        const stored = await upload(AUDIO, packaged)
        const bandwidth = measureBandwidth(packaged.segments)
        audioRow = {
          title_id: titleId,
          name: AUDIO,
          kind: 'audio',
          width: null,
          height: null,
          frame_rate: null,
          codecs: AAC_LC_CODEC,
          bandwidth: bandwidth.peak,
          average_bandwidth: bandwidth.average,
          playlist_key: stored.playlistKey,
          init_key: stored.initKey,
          parts: packaged.segments.length,
          duration_us: stored.durationUs,
        }
      }

      // The poster and thumbnails are made while the renditions are packaged side by side (mostly
      // copying); the variants keep the ladder's order.
      const stills = this.stills(job, plan, dir, signal)
      stills.catch(() => {})
      const packagedVideo = await mapLimit(plan.renditions, os.availableParallelism(), async (r) => {
        const pieces: string[] = []
        for (const chunk of plan.chunks) {
          const piece = path.join(dir, 'pieces', r.name, `${pad(chunk.index)}.mp4`)
          await this.download(blobKeys.piece(titleId, r.name, chunk.index), piece)
          pieces.push(piece)
        }
        const packaged = await packageHls(tools, pieces, path.join(dir, r.name), { signal })
        const stored = await upload(r.name, packaged)
        return {
          name: r.name,
          stored,
          segments: packaged.segments.length,
          bandwidth: measureBandwidth(packaged.segments),
          codecs: avcCodecString(await fs.readFile(packaged.init)),
          picture: await probePicture(tools, pieces[0] ?? ''),
        }
      })
      const variants: VariantStream[] = []
      for (const v of packagedVideo) {
        renditions.push({
          title_id: titleId,
          name: v.name,
          kind: 'video',
          width: v.picture.width,
          height: v.picture.height,
          frame_rate: v.picture.frameRate.toFixed(3),
          codecs: v.codecs,
          bandwidth: v.bandwidth.peak,
          average_bandwidth: v.bandwidth.average,
          playlist_key: v.stored.playlistKey,
          init_key: v.stored.initKey,
          parts: v.segments,
          duration_us: v.stored.durationUs,
        })
        variants.push({
          uri: `${v.name}/index.m3u8`,
          bandwidth: v.bandwidth.peak + (audioRow?.bandwidth ?? 0),
          averageBandwidth: v.bandwidth.average + (audioRow?.average_bandwidth ?? 0),
          codecs: audioRow ? `${v.codecs},${AAC_LC_CODEC}` : v.codecs,
          width: v.picture.width,
          height: v.picture.height,
          frameRate: v.picture.frameRate,
        })
      }
      const videoDurationUs = Math.max(0, ...packagedVideo.map((v) => v.stored.durationUs))
      await blobs.put(
        blobKeys.master(titleId),
        masterPlaylist(variants, audioRow ? { uri: 'audio/index.m3u8', channels: 2 } : undefined),
        {
          contentType: 'application/vnd.apple.mpegurl',
        },
      )

      await stills

      await store.replaceIndex(titleId, audioRow ? [...renditions, audioRow] : renditions, parts)
      await this.views.forget(titleId, [...plan.renditions.map((r) => r.name), AUDIO])
      const durationMs = Math.round(videoDurationUs / 1000)
      // Done before the title shows as available, so whoever sees it available sees every task done.
      await store.updateTask(titleId, taskKey.package, {
        state: 'done',
        progress_permille: 1000,
        finished_at: now(),
        updated_at: now(),
      })
      // The catalog first: if it refuses, the task is retried (and the title fails in the end).
      await this.deps.titles.setMediaStatus(titleId, 'available', durationMs)
      const moved = await store.updateJob(
        titleId,
        { stage: 'available', duration_ms: durationMs, finished_at: now(), updated_at: now() },
        ['packaging'],
      )
      if (moved) log.info({ titleId, durationMs, renditions: renditions.length }, 'title available')
      const available = await store.job(titleId)
      if (available?.stage === 'available') await this.announce(available)
    } finally {
      await fs.rm(dir, { recursive: true, force: true })
    }
  }

  /** The poster (from the source) and the trick-play sprites with their WebVTT map (from the smallest rendition). */
  private async stills(job: JobRow, plan: TitlePlan, dir: string, signal: AbortSignal) {
    const { blobs, tools } = this.deps
    const titleId = job.title_id
    const duration = plan.duration
    const source = await this.localSource(job, signal)
    const poster = path.join(dir, 'poster.jpg')
    await makePoster(tools, source, plan.videoStart + Math.min(duration * 0.2, 30), poster, { signal })
    await blobs.put(blobKeys.poster(titleId), createReadStream(poster))

    const smallest = plan.renditions[plan.renditions.length - 1]
    if (!smallest) return
    const pieces: string[] = []
    for (const chunk of plan.chunks) {
      const piece = path.join(dir, 'stills', `${pad(chunk.index)}.mp4`)
      await this.download(blobKeys.piece(titleId, smallest.name, chunk.index), piece)
      pieces.push(piece)
    }
    const thumbHeight = 2 * Math.round((THUMB_WIDTH * smallest.height) / smallest.width / 2)
    const interval = duration < 100 ? Math.max(1, Math.ceil(duration / 10)) : 10
    const list = path.join(dir, 'smallest.txt')
    await fs.writeFile(list, pieces.map((p) => `file '${p}'\n`).join(''))
    const spritesDir = path.join(dir, 'thumbs')
    const sprites = await makeSprites(
      tools,
      ['-f', 'concat', '-safe', '0', '-i', list],
      interval,
      thumbHeight,
      spritesDir,
      { signal },
    )
    for (const sprite of sprites) {
      await blobs.put(
        `${blobKeys.thumbsPrefix(titleId)}${sprite}`,
        createReadStream(path.join(spritesDir, sprite)),
      )
    }
    const vtt = thumbnailsVtt({
      duration,
      interval,
      sprites,
      width: THUMB_WIDTH,
      height: thumbHeight,
      columns: THUMB_COLUMNS,
      rows: THUMB_ROWS,
    })
    await blobs.put(blobKeys.thumbnails(titleId), vtt, { contentType: 'text/vtt' })
  }

  /** Frees the scratch work of an available title and publishes it (the event id makes a repeat a no-op). */
  private async announce(job: JobRow): Promise<void> {
    const titleId = job.title_id
    await this.deleteWork(titleId)
    const all = await this.deps.store.renditions(titleId)
    const parts = await Promise.all(all.map((r) => this.deps.store.parts(titleId, r.name)))
    await this.deps.bus.publish<TitlePublished>({
      id: `${TITLE_PUBLISHED}.${titleId}`,
      type: TITLE_PUBLISHED,
      key: titleId,
      data: {
        titleId,
        title: job.title,
        durationMs: job.duration_ms ?? 0,
        masterPlaylistKey: blobKeys.master(titleId),
        prefix: blobKeys.prefix(titleId),
        posterKey: blobKeys.poster(titleId),
        thumbnailsKey: blobKeys.thumbnails(titleId),
        renditions: all.map(renditionView),
        bytes: parts.flat().reduce((sum, p) => sum + p.bytes, 0),
      },
    })
  }

  // ---- failure ----------------------------------------------------------------------------------

  /** The title fails with a stable code: its blobs, index and scratch files go; the record stays. */
  async fail(titleId: string, code: string, message: string): Promise<void> {
    const { store, now, log } = this.deps
    const moved = await store.updateJob(
      titleId,
      { stage: 'failed', error_code: code, error_message: message, finished_at: now(), updated_at: now() },
      ['uploading', ...LIVE],
    )
    if (!moved) return
    log.warn({ titleId, code, message }, 'title failed')
    const job = await store.job(titleId)
    if (job) await this.cleanUpFailed(job)
  }

  /** Removes what a failed title had made and tells the catalog and the event log; safe to repeat. */
  private async cleanUpFailed(job: JobRow): Promise<void> {
    const titleId = job.title_id
    await this.deleteBlobs(blobKeys.prefix(titleId))
    await this.deps.store.deleteIndex(titleId)
    await this.views.forget(titleId, [])
    await fs.rm(path.join(this.deps.settings.workDir, titleId), { recursive: true, force: true })
    try {
      await this.deps.titles.setMediaStatus(titleId, 'failed')
    } catch (e) {
      // The catalog may have deleted the title meanwhile; the media side is cleaned up regardless.
      this.deps.log.warn({ titleId, err: errorMessage(e) }, 'the catalog did not take the failed status')
    }
    await this.deps.bus.publish<TitleFailed>({
      id: `${TITLE_FAILED}.${titleId}`,
      type: TITLE_FAILED,
      key: titleId,
      data: { titleId, code: job.error_code ?? 'failed', message: job.error_message ?? '' },
    })
  }

  private async deleteBlobs(prefix: string): Promise<void> {
    for (;;) {
      const batch = await this.deps.blobs.list(prefix, { limit: 500 })
      if (batch.length === 0) return
      for (const blob of batch) await this.deps.blobs.delete(blob.key)
    }
  }

  private async deleteWork(titleId: string): Promise<void> {
    await this.deleteBlobs(blobKeys.workPrefix(titleId))
    await fs.rm(path.join(this.deps.settings.workDir, titleId), { recursive: true, force: true })
  }

  /**
   * Safety net, run periodically: a title whose tasks were parked as dead letters (a task that
   * crashed its worker every time) fails instead of waiting forever.
   */
  async reconcile(): Promise<void> {
    const letters = await this.deps.bus.deadLetters(TRANSCODE_QUEUE, 1000)
    for (const letter of letters) {
      const data = letter.event.data as Partial<TaskMessage>
      if (typeof data.titleId !== 'string') continue
      const job = await this.deps.store.job(data.titleId)
      if (job && LIVE.includes(job.stage))
        await this.fail(
          data.titleId,
          'transcode_failed',
          `Task ${data.key} failed ${letter.attempts} times: ${letter.error}`,
        )
    }
  }

  /** Scratch space of titles that are finished (here or elsewhere) is freed when a worker starts. */
  private async sweepWorkDir(): Promise<void> {
    const entries = await fs.readdir(this.deps.settings.workDir).catch(() => [] as string[])
    for (const titleId of entries) {
      const job = await this.deps.store.job(titleId)
      if (!job || TERMINAL.includes(job.stage))
        await fs.rm(path.join(this.deps.settings.workDir, titleId), { recursive: true, force: true })
    }
  }

  // ---- local files ------------------------------------------------------------------------------

  /** The source on local disk, fetched from the blob store once per title and process (shared by its tasks). */
  private localSource(job: JobRow, signal: AbortSignal): Promise<string> {
    const file = path.join(this.deps.settings.workDir, job.title_id, 'source')
    let pending = this.sources.get(job.title_id)
    if (!pending) {
      pending = (async () => {
        const stat = await fs.stat(file).catch(() => undefined)
        if (stat && (job.source_bytes === null || stat.size === job.source_bytes)) return file
        await this.download(job.source_key, file)
        return file
      })()
      this.sources.set(job.title_id, pending)
      pending.catch(() => this.sources.delete(job.title_id))
    }
    if (signal.aborted) throw new Cancelled('stopped')
    return pending
  }

  /** Copies a blob to a local file, atomically (a crash never leaves a partial file under that name). */
  private async download(key: string, file: string): Promise<void> {
    await fs.mkdir(path.dirname(file), { recursive: true })
    const tmp = `${file}.${randomUUID()}.part`
    try {
      const read = await this.deps.blobs.get(key)
      await pipeline(read.body, createWriteStream(tmp))
      await fs.rename(tmp, file)
    } finally {
      await fs.rm(tmp, { force: true })
    }
  }

  private async scratchDir(titleId: string, name: string): Promise<string> {
    const dir = path.join(this.deps.settings.workDir, titleId, name)
    await fs.mkdir(dir, { recursive: true })
    return dir
  }

  private async scratchFile(titleId: string, name: string): Promise<string> {
    const dir = await this.scratchDir(titleId, 'out')
    return path.join(dir, `${randomUUID()}-${name}`)
  }

  // ---- reads ------------------------------------------------------------------------------------

  /** Status, progress, tasks and results of a title's media, for operators. */
  titleMedia(titleId: string): Promise<TitleMediaView> {
    return this.views.titleMedia(titleId)
  }

  /** The renditions of an available title (read through the cache). */
  renditions(titleId: string): Promise<RenditionView[]> {
    return this.views.renditions(titleId)
  }

  /** The parts index of one rendition: part number → blob key, start, duration, bytes (read through the cache). */
  parts(titleId: string, rendition: string): Promise<PartView[]> {
    return this.views.parts(titleId, rendition)
  }
}

function planOf(job: JobRow): TitlePlan {
  if (!job.plan) throw new Error(`title ${job.title_id} has no plan yet`)
  return JSON.parse(job.plan) as TitlePlan
}

function chunkSeconds(chunk: Chunk, duration: number): number {
  return (chunk.end ?? duration) - chunk.start
}

async function probePicture(
  tools: MediaTools,
  file: string,
): Promise<{ width: number; height: number; frameRate: number }> {
  const out = JSON.parse(
    await tools.ffprobe([
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=width,height,avg_frame_rate',
      '-of',
      'json',
      file,
    ]),
  ) as { streams?: { width?: number; height?: number; avg_frame_rate?: string }[] }
  const s = out.streams?.[0]
  const [n, d] = (s?.avg_frame_rate ?? '0/1').split('/').map(Number)
  if (!s?.width || !s.height) throw new ToolError('ffprobe', `no picture in ${file}`, '')
  return { width: s.width, height: s.height, frameRate: d ? (n ?? 0) / d : 0 }
}
