/**
 * The rendition ladder and the chunk plan: pure rules, no I/O.
 *
 * Rungs come from Apple's HLS authoring specification (H.264 table). A rung is named by its short
 * side and bitrate, so that the same rung fits landscape, portrait and 4:3 sources alike.
 */

export interface Rung {
  /** `720p-3000k`: short side in pixels and video bitrate. */
  name: string
  shortSide: number
  kbps: number
}

export const APPLE_LADDER: readonly Rung[] = [
  { name: '234p-145k', shortSide: 234, kbps: 145 },
  { name: '360p-365k', shortSide: 360, kbps: 365 },
  { name: '432p-730k', shortSide: 432, kbps: 730 },
  { name: '432p-1100k', shortSide: 432, kbps: 1100 },
  { name: '540p-2000k', shortSide: 540, kbps: 2000 },
  { name: '720p-3000k', shortSide: 720, kbps: 3000 },
  { name: '720p-4500k', shortSide: 720, kbps: 4500 },
  { name: '1080p-6000k', shortSide: 1080, kbps: 6000 },
  { name: '1080p-7800k', shortSide: 1080, kbps: 7800 },
]

export const DEFAULT_LADDER = '1080p-6000k,720p-3000k,540p-2000k,360p-365k,234p-145k'

/** Parses a comma-separated subset of rung names; throws naming the unknown ones. */
export function parseLadder(raw: string): Rung[] {
  const names = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const unknown = names.filter((n) => !APPLE_LADDER.some((r) => r.name === n))
  if (names.length === 0 || unknown.length > 0)
    throw new Error(
      `unknown rung ${unknown.join(', ') || '(none)'}; rungs are ${APPLE_LADDER.map((r) => r.name).join(', ')}`,
    )
  return APPLE_LADDER.filter((r) => names.includes(r.name))
}

/** What the planner needs to know of the source's video, as displayed (rotation and SAR applied). */
export interface SourceVideo {
  width: number
  height: number
  /** Frames per second (average). */
  frameRate: number
}

export interface Rendition {
  name: string
  width: number
  height: number
  kbps: number
  /** Output frame rate cap; undefined keeps the source's timing frame for frame. */
  maxFrameRate?: number
}

/** The highest frame rate a rendition carries; faster sources are halved until they fit. */
export const MAX_FRAME_RATE = 60

const even = (n: number) => Math.max(2, 2 * Math.round(n / 2))

/**
 * The renditions of a source: every rung of the ladder whose frame (16:9, `shortSide` high; turned
 * for portrait sources) the source fills without being enlarged, the source scaled to fit that
 * frame with its aspect ratio kept. So 4:3 and portrait sources take the rungs of their height,
 * and a wide (scope) source those of its width. A source smaller than the smallest rung gets one
 * rendition at its own size. Ordered from the highest to the lowest.
 */
export function renditionLadder(source: SourceVideo, ladder: readonly Rung[]): Rendition[] {
  const portrait = source.height > source.width
  const long = Math.max(source.width, source.height)
  const short = Math.min(source.width, source.height)
  const maxFrameRate = source.frameRate > MAX_FRAME_RATE ? MAX_FRAME_RATE : undefined
  const orient = (l: number, s: number) => (portrait ? { width: s, height: l } : { width: l, height: s })
  const renditions: Rendition[] = []
  for (const rung of [...ladder].sort((a, b) => b.shortSide - a.shortSide || b.kbps - a.kbps)) {
    const scale = Math.min((rung.shortSide * 16) / 9 / long, rung.shortSide / short)
    if (scale > 1) continue
    renditions.push({
      name: rung.name,
      ...orient(even(long * scale), even(short * scale)),
      kbps: rung.kbps,
      maxFrameRate,
    })
  }
  const smallest = [...ladder].sort((a, b) => a.shortSide - b.shortSide || a.kbps - b.kbps)[0]
  if (renditions.length === 0 && smallest)
    renditions.push({
      name: `${even(short)}p-${smallest.kbps}k`,
      ...orient(even(long), even(short)),
      kbps: smallest.kbps,
      maxFrameRate,
    })
  return renditions
}

/** HLS segment duration in seconds; IDRs fall every GOP_SECONDS, so segments are 3 GOPs. */
export const SEGMENT_SECONDS = 6
export const GOP_SECONDS = 2

export interface Chunk {
  index: number
  /** Seconds from the start of the source's video. */
  start: number
  /** Undefined for the last chunk: it runs to the end of the stream, whatever the container claims. */
  end?: number
}

/** A remainder shorter than this joins the chunk before it instead of standing alone. */
const MIN_LAST_CHUNK_SECONDS = 1

/**
 * Splits a duration into chunks of chunkSeconds (a multiple of SEGMENT_SECONDS), so that every
 * boundary is a segment boundary of the packaged title.
 */
export function chunkPlan(durationSeconds: number, chunkSeconds: number): Chunk[] {
  const size = Math.max(SEGMENT_SECONDS, Math.round(chunkSeconds / SEGMENT_SECONDS) * SEGMENT_SECONDS)
  const chunks: Chunk[] = []
  for (let start = 0; start === 0 || durationSeconds - start >= MIN_LAST_CHUNK_SECONDS; start += size) {
    chunks.push({ index: chunks.length, start, end: start + size })
  }
  const last = chunks[chunks.length - 1]
  if (last) last.end = undefined
  return chunks
}
