import fs from 'node:fs/promises'
import path from 'node:path'
import { type MediaTools, ToolError } from './tools.js'

/**
 * Short generated videos for the demo catalog (`reel seed`): one of ffmpeg's test sources with a
 * sine tone, the title drawn in the middle and a running clock in the corner, encoded fast (the
 * pipeline transcodes it again like any upload).
 */

export type ClipPattern = 'gradients' | 'bars' | 'testsrc'

export interface DemoClip {
  /** The MP4 to write. */
  file: string
  /** Drawn in the middle of the picture (a second line under it, smaller). */
  text: string
  subtitle?: string
  seconds: number
  height: number
  pattern: ClipPattern
  /** Two colors (#rrggbb) for the gradient, and a hue shift for the test pattern. */
  colors: [string, string]
  /** Tone of the audio track, in Hz. */
  tone: number
}

export interface ClipResult {
  /** False when this ffmpeg could not draw text (no drawtext or no font): the clip has none. */
  withText: boolean
}

const FRAME_RATE = 24

/** Font files found on common Linux distributions; without one, ffmpeg's fontconfig default is tried. */
const FONT_FILES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf',
  '/usr/share/fonts/liberation-sans/LiberationSans-Bold.ttf',
  '/usr/share/fonts/TTF/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/truetype/freefont/FreeSansBold.ttf',
  '/System/Library/Fonts/Supplemental/Arial Bold.ttf',
]

let fontFile: Promise<string | undefined> | undefined

function findFont(): Promise<string | undefined> {
  fontFile ??= (async () => {
    for (const file of FONT_FILES) {
      if (
        await fs
          .stat(file)
          .then((s) => s.isFile())
          .catch(() => false)
      )
        return file
    }
    return undefined
  })()
  return fontFile
}

/**
 * A value inside a filter option of a filtergraph: escaped for the option (backslash, quote, colon),
 * then again for the graph (backslash, quote, brackets, comma, semicolon), as ffmpeg reads it.
 */
const filterValue = (s: string) =>
  s.replace(/[\\':]/g, (c) => `\\${c}`).replace(/[\\'[\],;]/g, (c) => `\\${c}`)

const hex = (color: string) => `0x${color.replace(/^#/, '')}`

function source(clip: DemoClip, width: number, pattern: ClipPattern): string {
  const size = `size=${width}x${clip.height}:rate=${FRAME_RATE}`
  if (pattern === 'gradients')
    return `gradients=${size}:c0=${hex(clip.colors[0])}:c1=${hex(clip.colors[1])}:speed=0.015`
  if (pattern === 'bars') return `smptehdbars=${size}`
  const hue = Number.parseInt(clip.colors[0].slice(1, 3), 16) % 360
  return `testsrc2=${size},hue=h=${hue}`
}

function textFilters(titleFile: string, subtitleFile: string | undefined, font?: string) {
  const face = font ? `fontfile=${filterValue(font)}:` : ''
  const outline = 'fontcolor=white:borderw=3:bordercolor=black@0.6'
  const filters = [
    `drawtext=${face}textfile=${filterValue(titleFile)}:expansion=none:fontsize=h/11:${outline}:x=(w-tw)/2:y=(h-th)/2-h/20`,
    `drawtext=${face}text='%{pts\\:hms}':fontsize=h/22:fontcolor=white:box=1:boxcolor=black@0.5:boxborderw=6:x=w-tw-h/30:y=h-th-h/30`,
  ]
  if (subtitleFile)
    filters.push(
      `drawtext=${face}textfile=${filterValue(subtitleFile)}:expansion=none:fontsize=h/22:${outline}:x=(w-tw)/2:y=(h)/2+h/12`,
    )
  return filters
}

/**
 * Writes the clip. When drawing text fails (an ffmpeg without drawtext or fonts) or the pattern's
 * source is missing (older ffmpeg builds lack `gradients`), it falls back to the plain test pattern.
 */
export async function makeDemoClip(
  tools: MediaTools,
  clip: DemoClip,
  signal?: AbortSignal,
): Promise<ClipResult> {
  const width = Math.round((clip.height * 16) / 9 / 2) * 2
  const dir = path.dirname(clip.file)
  await fs.mkdir(dir, { recursive: true })
  // Text goes through files, taken as it is (no %{} expansion): a title needs no escaping there.
  const titleFile = `${clip.file}.title.txt`
  const subtitleFile = clip.subtitle ? `${clip.file}.subtitle.txt` : undefined
  await fs.writeFile(titleFile, clip.text)
  if (subtitleFile) await fs.writeFile(subtitleFile, clip.subtitle ?? '')
  const font = await findFont()
  const encode = (pattern: ClipPattern, text: boolean) =>
    tools.ffmpeg(
      [
        '-loglevel',
        'error',
        '-f',
        'lavfi',
        '-i',
        source(clip, width, pattern),
        '-f',
        'lavfi',
        '-i',
        `sine=frequency=${Math.round(clip.tone)}:sample_rate=48000`,
        '-t',
        String(clip.seconds),
        ...(text ? ['-vf', textFilters(titleFile, subtitleFile, font).join(',')] : []),
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-crf',
        '20',
        '-pix_fmt',
        'yuv420p',
        '-c:a',
        'aac',
        '-b:a',
        '96k',
        '-movflags',
        '+faststart',
        clip.file,
      ],
      { signal, timeoutMs: 120_000 },
    )
  try {
    await encode(clip.pattern, true)
    return { withText: true }
  } catch (e) {
    if (!(e instanceof ToolError) || signal?.aborted) throw e
    await encode('testsrc', false)
    return { withText: false }
  } finally {
    await fs.rm(titleFile, { force: true })
    if (subtitleFile) await fs.rm(subtitleFile, { force: true })
  }
}
