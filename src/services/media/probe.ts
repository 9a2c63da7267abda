import fs from 'node:fs/promises'
import type { SourceVideo } from './ladder.js'
import type { MediaTools } from './tools.js'

/** Why a source cannot be transcoded: the stable code a client branches on and a message a person can act on. */
export class RejectedSource extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message)
    this.name = 'RejectedSource'
  }
}

export type RejectionCode =
  | 'empty_file'
  | 'not_media'
  | 'no_video_stream'
  | 'undecodable'
  | 'no_duration'
  | 'too_long'
  | 'too_large'
  | 'resolution_too_high'
  | 'transcode_failed'

/** What the pipeline keeps of a probed source. */
export interface SourceInfo {
  bytes: number
  container: string
  /** Seconds of the video stream. */
  duration: number
  /** Timestamp (s) of the video stream's first frame: chunk boundaries count from it. */
  videoStart: number
  /** As displayed: rotation and pixel aspect ratio applied. */
  video: SourceVideo & { codec: string; interlaced?: boolean }
  audio?: { codec: string; channels: number; sampleRate: number; start: number }
}

export interface ProbeLimits {
  maxBytes: number
  maxDurationSeconds: number
}

/** 8K UHD: the largest picture reel accepts. */
export const MAX_WIDTH = 7680
export const MAX_HEIGHT = 4320

interface FfprobeStream {
  index?: number
  codec_type?: string
  codec_name?: string
  width?: number
  height?: number
  sample_aspect_ratio?: string
  avg_frame_rate?: string
  r_frame_rate?: string
  start_time?: string
  duration?: string
  nb_frames?: string
  field_order?: string
  channels?: number
  sample_rate?: string
  disposition?: { attached_pic?: number }
  tags?: Record<string, string>
  side_data_list?: { rotation?: number }[]
}

interface FfprobeOutput {
  streams?: FfprobeStream[]
  format?: { format_name?: string; duration?: string; start_time?: string }
}

const IMAGE_FORMATS =
  /(^|,)(image2|png_pipe|jpeg_pipe|bmp_pipe|webp_pipe|gif|tiff_pipe|svg_pipe|.*_pipe)(,|$)/

const num = (s: string | undefined): number | undefined => {
  if (s === undefined || s === 'N/A') return undefined
  const n = Number(s)
  return Number.isFinite(n) ? n : undefined
}

const ratio = (s: string | undefined): number | undefined => {
  const m = /^(\d+)\/(\d+)$/.exec(s ?? '')
  if (!m) return num(s)
  const d = Number(m[2])
  return d === 0 ? undefined : Number(m[1]) / d
}

/** True when the file begins like an ISO-BMFF (MP4/MOV) or another container: data we should have decoded. */
async function looksLikeContainer(file: string): Promise<boolean> {
  const handle = await fs.open(file, 'r')
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(12), 0, 12, 0)
    const head = buffer.subarray(0, bytesRead)
    const box = head.subarray(4, 8).toString('latin1')
    if (['ftyp', 'moov', 'mdat', 'free', 'wide', 'skip'].includes(box)) return true
    // Matroska/WebM, RIFF (AVI), FLV, Ogg
    if (head.subarray(0, 4).equals(Buffer.from([0x1a, 0x45, 0xdf, 0xa3]))) return true
    return ['RIFF', 'FLV\u0001', 'OggS'].includes(head.subarray(0, 4).toString('latin1'))
  } finally {
    await handle.close()
  }
}

/**
 * Probes a source file and checks that the pipeline can make a title of it; throws RejectedSource
 * with a stable code otherwise. Besides reading the headers it decodes a frame at the start, the
 * middle and near the end, which catches truncated and corrupt files before any chunk is planned.
 */
export async function probeSource(tools: MediaTools, file: string, limits: ProbeLimits): Promise<SourceInfo> {
  const bytes = (await fs.stat(file)).size
  if (bytes === 0) throw new RejectedSource('empty_file', 'The upload is empty (0 bytes)')
  if (bytes > limits.maxBytes)
    throw new RejectedSource('too_large', `The upload is ${bytes} bytes; the limit is ${limits.maxBytes}`)

  let probed: FfprobeOutput
  try {
    probed = JSON.parse(
      await tools.ffprobe(['-v', 'error', '-show_format', '-show_streams', '-of', 'json', file], {
        timeoutMs: 120_000,
      }),
    ) as FfprobeOutput
  } catch {
    if (await looksLikeContainer(file))
      throw new RejectedSource(
        'undecodable',
        'The file looks like a video container but cannot be read (truncated or corrupt?)',
      )
    throw new RejectedSource('not_media', 'The file is not audio or video that reel can read')
  }
  const format = probed.format?.format_name ?? ''
  const streams = probed.streams ?? []
  const video = streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1)
  if (!video) {
    if (streams.length === 0)
      throw new RejectedSource('not_media', 'The file is not audio or video that reel can read')
    throw new RejectedSource('no_video_stream', 'The file has no video stream (audio only?)')
  }
  if (IMAGE_FORMATS.test(format))
    throw new RejectedSource(
      'no_duration',
      `The file is a still image (${video.codec_name ?? format}), it has no duration`,
    )

  const duration = num(video.duration) ?? num(probed.format?.duration)
  if (duration === undefined || duration <= 0)
    throw new RejectedSource('no_duration', 'The video has no known duration')
  if (duration > limits.maxDurationSeconds)
    throw new RejectedSource(
      'too_long',
      `The video lasts ${Math.round(duration)} s; the limit is ${limits.maxDurationSeconds} s`,
    )

  const codedWidth = video.width ?? 0
  const codedHeight = video.height ?? 0
  if (codedWidth <= 0 || codedHeight <= 0)
    throw new RejectedSource('undecodable', 'The video stream has no picture size')
  const sar = ratio(video.sample_aspect_ratio) || 1
  const rotation =
    Math.abs(
      num(video.tags?.rotate) ?? video.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? 0,
    ) % 180
  const displayWidth = Math.round(codedWidth * (sar > 0 ? sar : 1))
  const [width, height] = rotation === 90 ? [codedHeight, displayWidth] : [displayWidth, codedHeight]
  if (Math.max(width, height) > MAX_WIDTH || Math.min(width, height) > MAX_HEIGHT)
    throw new RejectedSource(
      'resolution_too_high',
      `The video is ${width}×${height}; the largest accepted is 8K (7680×4320)`,
    )

  const frameRate = ratio(video.avg_frame_rate) || ratio(video.r_frame_rate) || 0
  if (!(frameRate > 0 && frameRate <= 1000))
    throw new RejectedSource('undecodable', 'The video stream has no usable frame rate')

  const videoStart = num(video.start_time) ?? num(probed.format?.start_time) ?? 0
  const audioStream = streams.find((s) => s.codec_type === 'audio')
  const info: SourceInfo = {
    bytes,
    container: format,
    duration,
    videoStart,
    video: {
      width,
      height,
      frameRate,
      codec: video.codec_name ?? 'unknown',
      // tt, bb, tb, bt: fields, which every rendition deinterlaces (progressive: `progressive` or unknown).
      interlaced: ['tt', 'bb', 'tb', 'bt'].includes(video.field_order ?? ''),
    },
    audio: audioStream
      ? {
          codec: audioStream.codec_name ?? 'unknown',
          channels: audioStream.channels ?? 2,
          sampleRate: num(audioStream.sample_rate) ?? 48_000,
          start: num(audioStream.start_time) ?? videoStart,
        }
      : undefined,
  }
  await decodeCheck(tools, file, info)
  return info
}

/** Decodes one frame at a few points; a file whose data stops short of its headers fails here. */
async function decodeCheck(tools: MediaTools, file: string, info: SourceInfo): Promise<void> {
  const points = [0, info.duration / 2, Math.max(0, info.duration - 1)]
  for (const at of points) {
    let out: string
    try {
      out = await tools.ffmpeg(
        [
          '-v',
          'error',
          '-ss',
          at.toFixed(3),
          '-i',
          file,
          '-map',
          '0:v:0',
          '-frames:v',
          '1',
          '-f',
          'framecrc',
          '-',
        ],
        { timeoutMs: 120_000 },
      )
    } catch {
      throw new RejectedSource('undecodable', `The video cannot be decoded at ${at.toFixed(1)} s`)
    }
    if (!out.split('\n').some((line) => /^\d+,/.test(line)))
      throw new RejectedSource('undecodable', `The video holds no picture at ${at.toFixed(1)} s (truncated?)`)
  }
}
