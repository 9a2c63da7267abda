/**
 * HLS playlists written by reel (RFC 8216, version 7, fMP4): media playlists from the packaged
 * segments and the multivariant playlist from what the encodes measured.
 */

export interface PlaylistSegment {
  uri: string
  /** Seconds. */
  duration: number
}

/** EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer is at most this (RFC 8216 4.3.3.1). */
export function targetDuration(durations: number[]): number {
  return Math.max(1, ...durations.map((d) => Math.round(d)))
}

export function mediaPlaylist(init: string, segments: PlaylistSegment[]): string {
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${targetDuration(segments.map((s) => s.duration))}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    '#EXT-X-INDEPENDENT-SEGMENTS',
    `#EXT-X-MAP:URI="${init}"`,
  ]
  for (const s of segments) lines.push(`#EXTINF:${s.duration.toFixed(6)},`, s.uri)
  lines.push('#EXT-X-ENDLIST', '')
  return lines.join('\n')
}

export interface VariantStream {
  uri: string
  /** Peak bits per second over the segments (video plus the audio it plays with). */
  bandwidth: number
  averageBandwidth: number
  codecs: string
  width: number
  height: number
  frameRate: number
}

export interface AudioRendition {
  uri: string
  channels: number
}

export const AUDIO_GROUP = 'audio'

export function masterPlaylist(variants: VariantStream[], audio: AudioRendition | undefined): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS']
  if (audio)
    lines.push(
      `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="${AUDIO_GROUP}",NAME="Main",LANGUAGE="und",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="${audio.channels}",URI="${audio.uri}"`,
    )
  for (const v of variants) {
    const attributes = [
      `BANDWIDTH=${v.bandwidth}`,
      `AVERAGE-BANDWIDTH=${v.averageBandwidth}`,
      `CODECS="${v.codecs}"`,
      `RESOLUTION=${v.width}x${v.height}`,
      `FRAME-RATE=${v.frameRate.toFixed(3)}`,
      ...(audio ? [`AUDIO="${AUDIO_GROUP}"`] : []),
    ]
    lines.push(`#EXT-X-STREAM-INF:${attributes.join(',')}`, v.uri)
  }
  lines.push('')
  return lines.join('\n')
}

/** Peak and average bits per second of a rendition, measured on its segments. */
export function measureBandwidth(segments: { duration: number; bytes: number }[]): {
  peak: number
  average: number
} {
  let bytes = 0
  let seconds = 0
  let peak = 0
  for (const s of segments) {
    bytes += s.bytes
    seconds += s.duration
    if (s.duration > 0) peak = Math.max(peak, (s.bytes * 8) / s.duration)
  }
  return { peak: Math.ceil(peak), average: seconds > 0 ? Math.ceil((bytes * 8) / seconds) : 0 }
}

/** The RFC 6381 codec string of an H.264 stream, read from the avcC box of its init segment. */
export function avcCodecString(init: Buffer): string {
  const at = init.indexOf('avcC', 0, 'latin1')
  if (at < 0 || at + 8 > init.length) throw new Error('no avcC box in the init segment')
  const hex = (n: number | undefined) => (n ?? 0).toString(16).padStart(2, '0')
  return `avc1.${hex(init[at + 5])}${hex(init[at + 6])}${hex(init[at + 7])}`
}

/** AAC-LC in MP4. */
export const AAC_LC_CODEC = 'mp4a.40.2'

/** WebVTT that maps each stretch of the title to its thumbnail in a sprite sheet (`#xywh=`). */
export function thumbnailsVtt(options: {
  duration: number
  interval: number
  sprites: string[]
  width: number
  height: number
  columns: number
  rows: number
}): string {
  const { duration, interval, sprites, width, height, columns, rows } = options
  const stamp = (s: number) => {
    const ms = Math.round(s * 1000)
    const h = Math.floor(ms / 3_600_000)
    const m = Math.floor((ms % 3_600_000) / 60_000)
    const sec = (ms % 60_000) / 1000
    return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${sec.toFixed(3).padStart(6, '0')}`
  }
  const perSheet = columns * rows
  const cues = ['WEBVTT', '']
  for (let n = 0; n * interval < duration; n++) {
    const sheet = sprites[Math.floor(n / perSheet)]
    if (!sheet) break
    const tile = n % perSheet
    const x = (tile % columns) * width
    const y = Math.floor(tile / columns) * height
    cues.push(
      `${stamp(n * interval)} --> ${stamp(Math.min(duration, (n + 1) * interval))}`,
      `${sheet}#xywh=${x},${y},${width},${height}`,
      '',
    )
  }
  return cues.join('\n')
}
