import fs from 'node:fs/promises'
import path from 'node:path'
import { GOP_SECONDS, type Rendition, SEGMENT_SECONDS } from './ladder.js'
import type { MediaTools, RunOptions } from './tools.js'

/**
 * The ffmpeg commands of the pipeline. Every chunk of every rendition is encoded with the same
 * settings, IDRs forced on the GOP_SECONDS grid (closed GOPs, no scene-cut keyframes), so that the
 * stream-copied concatenation of the chunks is one continuous stream whose keyframes line up across
 * renditions.
 */

export interface EncoderSettings {
  /** x264 preset (speed/size trade-off), the same for every chunk. */
  preset: string
  /** Encoder threads per ffmpeg; 1 when the worker pool already keeps every core busy. */
  threads: number
}

/** Capped VBR: the peak a rendition may reach over its average, and the decoder buffer it fills. */
const MAXRATE_FACTOR = 1.1
const BUFSIZE_FACTOR = 1.5
export const AUDIO_KBPS = 128

/** The x264 options of a rendition, shared by the chunked pipeline and the single-command baseline. */
export function videoEncoderArgs(rendition: Rendition, settings: EncoderSettings): string[] {
  return [
    '-c:v',
    'libx264',
    '-profile:v',
    'high',
    '-preset',
    settings.preset,
    '-threads',
    String(settings.threads),
    '-pix_fmt',
    'yuv420p',
    '-b:v',
    `${rendition.kbps}k`,
    '-maxrate',
    `${Math.round(rendition.kbps * MAXRATE_FACTOR)}k`,
    '-bufsize',
    `${Math.round(rendition.kbps * BUFSIZE_FACTOR)}k`,
    '-force_key_frames',
    `expr:gte(t,n_forced*${GOP_SECONDS})`,
    '-sc_threshold',
    '0',
    '-flags',
    '+cgop',
    '-x264-params',
    'open-gop=0',
  ]
}

/** Scale (and cap the frame rate) to a rendition's picture. */
export function videoFilter(rendition: Rendition): string {
  const fps = rendition.maxFrameRate ? `,fps=${rendition.maxFrameRate}` : ''
  return `scale=${rendition.width}:${rendition.height}:flags=bicubic,setsar=1${fps},format=yuv420p`
}

export interface ChunkJob {
  source: string
  /** Absolute timestamps (s) in the source: frames with start <= pts < end. */
  start: number
  end?: number
  /** Field-based source: deinterlaced (one frame per frame) before scaling. */
  deinterlace?: boolean
  /** Every rendition of the chunk, each to its own MP4. */
  outputs: { rendition: Rendition; file: string }[]
}

/**
 * Encodes frames [start, end) of the source to every rendition from one decode, first frame at
 * timestamp 0 in each. (Measured on the 60 s 1080p bench source: one task per chunk × rendition
 * decoded the source once per rendition and spent ~1.35× the CPU of one decode feeding them all.)
 */
export async function encodeChunk(
  tools: MediaTools,
  job: ChunkJob,
  settings: EncoderSettings,
  run: RunOptions,
) {
  // -copyts keeps the source's timestamps so that trim selects frames by them exactly: a frame on a
  // boundary belongs to the chunk that starts there, never to both or neither.
  const trim = `trim=start=${job.start.toFixed(6)}${job.end === undefined ? '' : `:end=${job.end.toFixed(6)}`}`
  const labels = job.outputs.map((_, i) => `[s${i}]`).join('')
  const graph = [
    `[0:v:0]${job.deinterlace ? 'bwdif=mode=send_frame:deint=interlaced,' : ''}${trim},setpts=PTS-STARTPTS,split=${job.outputs.length}${labels}`,
    ...job.outputs.map((o, i) => `[s${i}]${videoFilter(o.rendition)}[o${i}]`),
  ].join(';')
  const outputs = job.outputs.flatMap((o, i) => [
    '-map',
    `[o${i}]`,
    '-an',
    '-sn',
    '-dn',
    '-fps_mode',
    'passthrough',
    ...videoEncoderArgs(o.rendition, settings),
    '-movflags',
    '+faststart',
    '-f',
    'mp4',
    o.file,
  ])
  await tools.ffmpeg(
    [
      '-v',
      'error',
      '-threads',
      String(settings.threads),
      '-noaccurate_seek',
      '-ss',
      Math.max(0, job.start).toFixed(6),
      '-copyts',
      '-i',
      job.source,
      '-filter_threads',
      '1',
      '-filter_complex',
      graph,
      ...outputs,
    ],
    run,
  )
}

/** Encodes the title's audio once (AAC-LC stereo), aligned to the start of its video. */
export async function encodeAudio(
  tools: MediaTools,
  job: { source: string; offset: number; output: string },
  settings: EncoderSettings,
  run: RunOptions,
) {
  // Audio that starts after the video is delayed by its offset; audio before the video is cut.
  const align =
    job.offset > 0
      ? `adelay=delays=${Math.round(job.offset * 1000)}:all=1,`
      : job.offset < 0
        ? `atrim=start=${(-job.offset).toFixed(6)},asetpts=PTS-STARTPTS,`
        : ''
  await tools.ffmpeg(
    [
      '-v',
      'error',
      '-threads',
      String(settings.threads),
      '-i',
      job.source,
      '-map',
      '0:a:0',
      '-vn',
      '-sn',
      '-dn',
      '-af',
      `${align}aresample=48000:async=1:first_pts=0`,
      '-c:a',
      'aac',
      '-profile:a',
      'aac_low',
      '-b:a',
      `${AUDIO_KBPS}k`,
      '-ac',
      '2',
      '-ar',
      '48000',
      '-f',
      'mp4',
      job.output,
    ],
    run,
  )
}

export interface PackagedSegment {
  file: string
  /** Seconds. */
  duration: number
  bytes: number
}

export interface PackagedRendition {
  dir: string
  init: string
  segments: PackagedSegment[]
}

/**
 * Packages MP4 pieces (the chunks of one rendition, or the audio) into fMP4 HLS: their
 * stream-copied concatenation, so timestamps run on across chunk joins, cut at keyframes into
 * SEGMENT_SECONDS segments with one init segment.
 */
export async function packageHls(
  tools: MediaTools,
  pieces: string[],
  dir: string,
  run: RunOptions,
): Promise<PackagedRendition> {
  await fs.mkdir(dir, { recursive: true })
  const list = path.join(dir, 'pieces.txt')
  await fs.writeFile(list, pieces.map((p) => `file '${p.replaceAll("'", "'\\''")}'\n`).join(''))
  const playlist = path.join(dir, 'ffmpeg.m3u8')
  await tools.ffmpeg(
    [
      '-v',
      'error',
      '-f',
      'concat',
      '-safe',
      '0',
      '-i',
      list,
      '-map',
      '0',
      '-c',
      'copy',
      // Keep B-frame delay in the init segment's edit list (media_time), so the first frame is
      // presented at 0, in step with the audio; the default shift would start the video late.
      '-avoid_negative_ts',
      'disabled',
      '-f',
      'hls',
      '-hls_time',
      String(SEGMENT_SECONDS),
      '-hls_playlist_type',
      'vod',
      '-hls_segment_type',
      'fmp4',
      '-hls_flags',
      'independent_segments',
      '-hls_fmp4_init_filename',
      'init.mp4',
      '-hls_segment_filename',
      path.join(dir, '%05d.m4s'),
      playlist,
    ],
    run,
  )
  const segments: PackagedSegment[] = []
  let duration: number | undefined
  for (const line of (await fs.readFile(playlist, 'utf8')).split('\n')) {
    const inf = /^#EXTINF:([\d.]+)/.exec(line)
    if (inf) duration = Number(inf[1])
    else if (line && !line.startsWith('#') && duration !== undefined) {
      const file = path.join(dir, line.trim())
      segments.push({ file, duration, bytes: (await fs.stat(file)).size })
      duration = undefined
    }
  }
  await Promise.all([fs.rm(list), fs.rm(playlist)])
  return { dir, init: path.join(dir, 'init.mp4'), segments }
}

/** One still of the source, to stand for the title. */
export async function makePoster(
  tools: MediaTools,
  source: string,
  at: number,
  output: string,
  run: RunOptions,
) {
  await tools.ffmpeg(
    [
      '-v',
      'error',
      '-ss',
      at.toFixed(3),
      '-i',
      source,
      '-map',
      '0:v:0',
      '-frames:v',
      '1',
      '-vf',
      "scale='min(1280,iw)':-2,setsar=1",
      '-q:v',
      '3',
      '-f',
      'image2',
      output,
    ],
    run,
  )
}

export const THUMB_WIDTH = 160
export const THUMB_COLUMNS = 10
export const THUMB_ROWS = 10

/** Trick-play thumbnails: one frame every interval seconds, tiled into sprite sheets. */
export async function makeSprites(
  tools: MediaTools,
  inputArgs: string[],
  intervalSeconds: number,
  thumbHeight: number,
  dir: string,
  run: RunOptions,
): Promise<string[]> {
  await fs.mkdir(dir, { recursive: true })
  await tools.ffmpeg(
    [
      '-v',
      'error',
      ...inputArgs,
      '-map',
      '0:v:0',
      '-vf',
      `fps=1/${intervalSeconds},scale=${THUMB_WIDTH}:${thumbHeight},setsar=1,tile=${THUMB_COLUMNS}x${THUMB_ROWS}`,
      '-q:v',
      '5',
      '-f',
      'image2',
      path.join(dir, 'sprite-%03d.jpg'),
    ],
    run,
  )
  return (await fs.readdir(dir)).filter((f) => f.startsWith('sprite-')).sort()
}
