import { type ChildProcess, execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import * as HLS from 'hls-parser'
import { sql } from 'kysely'
import * as tus from 'tus-js-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uploadFingerprint } from '../src/cli/media.js'
import { createReel, type Reel } from '../src/platform/app.js'
import type { Blobs } from '../src/platform/blobs/blobs.js'
import { createBlobs } from '../src/platform/blobs/index.js'
import type { EventEnvelope } from '../src/platform/bus/bus.js'
import { loadConfig } from '../src/platform/config.js'
import { createDb } from '../src/platform/db/db.js'
import { createLogger } from '../src/platform/log.js'
import type { TitleFailed, TitlePublished } from '../src/services/media/events.js'
import { engines, hasNats, hasPostgres, tempDir, uniqueName } from './engines.js'
import { startReel, type TestReel } from './harness.js'

/**
 * The media pipeline end to end: sources made with ffmpeg's test patterns are uploaded through tus,
 * transcoded by the real workers, and the packaged HLS is checked with ffprobe (packets, keyframes),
 * hls-parser (strict) and a real player (hls.js in headless Chromium).
 */

const run = promisify(execFile)
const PASSWORD = 'correct horse battery'
const JWT = 'test-secret-test-secret-test-secret-0123456789'
/** Small ladder and 6 s chunks keep the suite within minutes on two cores. */
const MEDIA_ENV = {
  REEL_MEDIA_CHUNK_SECONDS: '6',
  REEL_MEDIA_LADDER: '1080p-6000k,360p-365k,234p-145k',
  REEL_MEDIA_PRESET: 'superfast',
}
const CHROMIUM = '/usr/bin/chromium'
const requireEngines = process.env.REEL_TEST_REQUIRE_ENGINES === '1'

const fixtures = tempDir('reel-media-fixtures-')
afterAll(() => fixtures.cleanup())

// ---- fixtures ----------------------------------------------------------------------------------

interface SourceShape {
  width: number
  height: number
  /** ffmpeg rate, e.g. 24 or 30000/1001. */
  rate: string
  seconds: number
  audio: boolean
}

/** A test-pattern video (testsrc2 + a sine tone), made once per shape. */
async function makeSource(name: string, shape: SourceShape): Promise<string> {
  const file = path.join(fixtures.dir, `${name}.mp4`)
  if (fs.existsSync(file)) return file
  const { width, height, rate, seconds, audio } = shape
  await run('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${width}x${height}:rate=${rate}:duration=${seconds}`,
    ...(audio ? ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`] : []),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    '-g',
    '48',
    ...(audio ? ['-c:a', 'aac', '-shortest'] : []),
    file,
  ])
  return file
}

async function sourceFacts(file: string): Promise<{ frames: number; duration: number; frameRate: number }> {
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-count_packets',
    '-show_entries',
    'stream=nb_read_packets,duration,avg_frame_rate',
    '-of',
    'json',
    file,
  ])
  const s = (
    JSON.parse(stdout) as { streams: { nb_read_packets: string; duration: string; avg_frame_rate: string }[] }
  ).streams[0]
  if (!s) throw new Error(`no video in ${file}`)
  const [n, d] = s.avg_frame_rate.split('/').map(Number)
  return { frames: Number(s.nb_read_packets), duration: Number(s.duration), frameRate: (n ?? 0) / (d || 1) }
}

// ---- a reel, its admin, uploads -----------------------------------------------------------------

interface Media {
  titleId: string
  status: string
  stage: string
  percent: number
  durationMs: number | null
  error: { code: string; message: string } | null
  tasks: {
    key: string
    kind: string
    state: string
    attempts: number
    percent: number
    error: string | null
  }[]
  renditions: {
    name: string
    kind: string
    width: number | null
    height: number | null
    codecs: string
    bandwidth: number
    averageBandwidth: number
    playlistKey: string
    parts: number
  }[]
  masterPlaylistKey: string | null
  posterKey: string | null
  thumbnailsKey: string | null
}

function baseUrl(server: http.Server): string {
  const address = server.address() as AddressInfo
  return `http://127.0.0.1:${address.port}`
}

async function adminToken(base: string, email: string): Promise<string> {
  const res = await fetch(`${base}/api/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  })
  expect(res.status).toBe(201)
  return ((await res.json()) as { accessToken: string }).accessToken
}

/** Uploads with tus-js-client (as a browser or the CLI would); resolves with the title id. */
function upload(
  base: string,
  token: string,
  file: string,
  metadata: Record<string, string>,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(fs.readFileSync(file), {
      endpoint: `${base}/api/v1/uploads`,
      headers: { authorization: `Bearer ${token}` },
      metadata,
      retryDelays: null,
      onError: reject,
      onSuccess: () => resolve((up.url ?? '').split('/').pop() ?? ''),
    })
    up.start()
  })
}

async function media(base: string, token: string, titleId: string): Promise<Media> {
  const res = await fetch(`${base}/api/v1/admin/titles/${titleId}/media`, {
    headers: { authorization: `Bearer ${token}` },
  })
  expect(res.status).toBe(200)
  return (await res.json()) as Media
}

async function waitFor(
  base: string,
  token: string,
  titleId: string,
  until: (m: Media) => boolean,
  timeoutMs = 240_000,
): Promise<Media> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const m = await media(base, token, titleId)
    if (until(m)) return m
    if (finished(m)) throw new Error(`title ${m.status} before the awaited state: ${JSON.stringify(m.error)}`)
    if (Date.now() > deadline) throw new Error(`timed out; last: ${JSON.stringify(m).slice(0, 800)}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** Opens a tus upload of `length` bytes by hand (no bytes sent): its location and the new title's id. */
async function createUpload(
  base: string,
  token: string,
  length: number,
  title: string,
): Promise<{ location: string; titleId: string }> {
  const created = await fetch(`${base}/api/v1/uploads`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'tus-resumable': '1.0.0',
      'upload-length': String(length),
      'upload-metadata': `title ${Buffer.from(title).toString('base64')}`,
    },
  })
  expect(created.status).toBe(201)
  const location = created.headers.get('location') ?? ''
  return { location, titleId: location.split('/').pop() ?? '' }
}

const finished = (m: Media) => m.status === 'available' || m.status === 'failed'

/** Serves the blob store over HTTP (with ranges), plus a player page and hls.js: what a CDN edge would do. */
async function blobServer(blobs: Blobs): Promise<{ url: string; close: () => Promise<void> }> {
  const hlsJs = fs.readFileSync(path.join('node_modules', 'hls.js', 'dist', 'hls.min.js'))
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://localhost')
    if (pathname === '/player.html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PLAYER_PAGE)
      return
    }
    if (pathname === '/hls.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(hlsJs)
      return
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''))
    const range = m ? { start: Number(m[1]), end: m[2] ? Number(m[2]) : undefined } : undefined
    try {
      const read = await blobs.get(decodeURIComponent(pathname.slice(1)), range)
      res.writeHead(range ? 206 : 200, {
        'content-type': read.info.contentType ?? 'application/octet-stream',
        'content-length': String(read.end - read.start + 1),
        ...(range ? { 'content-range': `bytes ${read.start}-${read.end}/${read.info.size}` } : {}),
      })
      res.on('close', () => read.body.destroy())
      read.body.pipe(res)
    } catch {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: baseUrl(server),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

async function blobText(blobs: Blobs, key: string): Promise<string> {
  const read = await blobs.get(key)
  const chunks: Buffer[] = []
  for await (const chunk of read.body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

async function blobBytes(blobs: Blobs, key: string): Promise<Buffer> {
  const read = await blobs.get(key)
  const chunks: Buffer[] = []
  for await (const chunk of read.body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function parseStrict(text: string): HLS.types.MasterPlaylist | HLS.types.MediaPlaylist {
  HLS.setOptions({ strictMode: true })
  return HLS.parse(text)
}

interface Packet {
  pts: number
  duration: number
  key: boolean
}

async function packets(url: string, stream: 'v:0' | 'a:0'): Promise<Packet[]> {
  const { stdout } = await run(
    'ffprobe',
    [
      '-v',
      'error',
      '-select_streams',
      stream,
      '-show_entries',
      'packet=pts_time,duration_time,flags',
      '-of',
      'csv=p=0',
      url,
    ],
    { maxBuffer: 64 << 20 },
  )
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pts, duration, flags] = line.split(',')
      return { pts: Number(pts), duration: Number(duration), key: (flags ?? '').includes('K') }
    })
    .sort((a, b) => a.pts - b.pts)
}

async function startTime(url: string, stream: 'v:0' | 'a:0'): Promise<number> {
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    stream,
    '-show_entries',
    'stream=start_time',
    '-of',
    'json',
    url,
  ])
  return Number((JSON.parse(stdout) as { streams: { start_time: string }[] }).streams[0]?.start_time)
}

/** The first frame of a segment (with its init segment): an IDR. */
async function firstFrame(
  blobs: Blobs,
  initKey: string,
  segmentKey: string,
): Promise<{ key: boolean; type: string }> {
  const file = path.join(fixtures.dir, `${uniqueName('seg')}.mp4`)
  fs.writeFileSync(file, Buffer.concat([await blobBytes(blobs, initKey), await blobBytes(blobs, segmentKey)]))
  try {
    const { stdout } = await run('ffprobe', [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-read_intervals',
      '%+#1',
      '-show_entries',
      'frame=key_frame,pict_type',
      '-of',
      'csv=p=0',
      file,
    ])
    const [key, type] = (stdout.trim().split('\n')[0] ?? '').split(',')
    return { key: key === '1', type: type ?? '' }
  } finally {
    fs.rmSync(file, { force: true })
  }
}

/**
 * Everything the issue asks of a packaged title, read from the blobs: playlists (strict, target
 * duration), frames (count, continuity across chunk joins), IDRs (segment starts, same times in
 * every variant), audio (continuous, in sync), the parts index, poster and thumbnails.
 */
async function verifyTitle(
  reel: Reel,
  files: string,
  m: Media,
  source: { file: string; audio: boolean; renditions: { width: number; height: number }[] },
): Promise<void> {
  const blobs = reel.ports.blobs
  const facts = await sourceFacts(source.file)
  const frame = 1 / facts.frameRate
  expect(m.status).toBe('available')
  expect(m.percent).toBe(100)
  expect(Math.abs((m.durationMs ?? 0) / 1000 - facts.duration)).toBeLessThanOrEqual(frame + 1e-3)

  // Master playlist: strict parse, every variant described from the real encodes.
  const masterKey = m.masterPlaylistKey ?? ''
  const masterText = await blobText(blobs, masterKey)
  expect(masterText).toContain('#EXT-X-INDEPENDENT-SEGMENTS')
  expect(masterText).toContain('#EXT-X-VERSION:7')
  const master = parseStrict(masterText)
  if (!master.isMasterPlaylist) throw new Error('not a master playlist')
  expect(master.variants.map((v) => v.resolution)).toEqual(source.renditions)
  const dir = path.posix.dirname(masterKey)
  for (const v of master.variants) {
    expect(v.bandwidth).toBeGreaterThan(0)
    expect(v.averageBandwidth ?? 0).toBeGreaterThan(0)
    expect(v.averageBandwidth ?? 0).toBeLessThanOrEqual(v.bandwidth)
    expect(v.frameRate).toBeCloseTo(facts.frameRate, 2)
    expect(v.codecs).toMatch(source.audio ? /^avc1\.64[0-9a-f]{4},mp4a\.40\.2$/ : /^avc1\.64[0-9a-f]{4}$/)
    expect(v.audio.length).toBe(source.audio ? 1 : 0)
    // Capped VBR: the video's average stays near its rung's bitrate (the index has the video alone).
    const rung = /^\d+p-(\d+)k\//.exec(v.uri)
    const video = m.renditions.find((r) => `${r.name}/index.m3u8` === v.uri)
    if (rung && video) expect(video.averageBandwidth).toBeLessThanOrEqual(Number(rung[1]) * 1000 * 1.25)
  }

  // Media playlists: strict, VOD, version 7, every EXTINF rounded within the target duration.
  const videoPlaylists = master.variants.map((v) => `${dir}/${v.uri}`)
  const audioPlaylist = master.variants[0]?.audio[0]?.uri
  const playlists = [...videoPlaylists, ...(audioPlaylist ? [`${dir}/${audioPlaylist}`] : [])]
  const segmentStarts: number[][] = []
  for (const key of playlists) {
    const text = await blobText(blobs, key)
    expect(text).toContain('#EXT-X-VERSION:7')
    const playlist = parseStrict(text)
    if (playlist.isMasterPlaylist) throw new Error('not a media playlist')
    expect(playlist.playlistType).toBe('VOD')
    expect(playlist.endlist).toBe(true)
    for (const s of playlist.segments)
      expect(Math.round(s.duration)).toBeLessThanOrEqual(playlist.targetDuration)
    expect(playlist.targetDuration).toBe(Math.max(...playlist.segments.map((x) => Math.round(x.duration))))
    expect(playlist.targetDuration).toBeLessThanOrEqual(6)
    const total = playlist.segments.reduce((sum, s) => sum + s.duration, 0)
    expect(Math.abs(total - facts.duration)).toBeLessThan(
      key === playlists[playlists.length - 1] && source.audio ? 0.1 : frame + 1e-3,
    )
    if (!(source.audio && key === playlists[playlists.length - 1])) {
      let at = 0
      const starts: number[] = []
      for (const s of playlist.segments) {
        starts.push(Math.round(at * 1000))
        at += s.duration
      }
      segmentStarts.push(starts)
      // Every segment starts with an IDR.
      const rdir = path.posix.dirname(key)
      for (const s of playlist.segments) {
        const first = await firstFrame(blobs, `${rdir}/init.mp4`, `${rdir}/${s.uri}`)
        expect(first, `${rdir}/${s.uri}`).toEqual({ key: true, type: 'I' })
      }
    }

    // The parts index agrees with the playlist, and every part is in the blob store.
    const rendition = path.posix.basename(path.posix.dirname(key))
    const parts = await reel.use('media').parts(m.titleId, rendition)
    expect(parts.map((p) => p.partNo)).toEqual(playlist.segments.map((_, i) => i))
    for (const [i, p] of parts.entries()) {
      expect(p.blobKey).toBe(`${path.posix.dirname(key)}/${playlist.segments[i]?.uri}`)
      expect((await blobs.head(p.blobKey))?.size).toBe(p.bytes)
      expect(p.durationMs).toBeCloseTo((playlist.segments[i]?.duration ?? 0) * 1000, 0)
    }
    // No stray segments beside the indexed ones.
    const stored = (await blobs.list(`${path.posix.dirname(key)}/`)).map((b) => path.posix.basename(b.key))
    expect(stored.sort()).toEqual(['index.m3u8', 'init.mp4', ...playlist.segments.map((s) => s.uri)].sort())
  }
  // Segments start at the same times in every variant.
  for (const starts of segmentStarts) expect(starts).toEqual(segmentStarts[0])

  // Frames: all of them, evenly spaced across the chunk joins, first at 0; keyframes line up across variants.
  const keyframeTimes: number[][] = []
  for (const key of videoPlaylists) {
    const url = `${files}/${key}`
    const video = await packets(url, 'v:0')
    expect(video.length).toBe(facts.frames)
    expect(await startTime(url, 'v:0')).toBeCloseTo(0, 3)
    for (let i = 1; i < video.length; i++) {
      const gap = (video[i]?.pts ?? 0) - (video[i - 1]?.pts ?? 0)
      expect(Math.abs(gap - frame), `gap at ${video[i]?.pts}`).toBeLessThan(1e-3)
    }
    keyframeTimes.push(video.filter((p) => p.key).map((p) => Math.round(p.pts * 1000)))
  }
  for (const times of keyframeTimes) expect(times).toEqual(keyframeTimes[0])
  // An IDR every 2 s at least (the forced grid).
  const kf = keyframeTimes[0] ?? []
  for (let i = 1; i < kf.length; i++)
    expect((kf[i] ?? 0) - (kf[i - 1] ?? 0)).toBeLessThanOrEqual(2000 + 1000 * frame + 1)

  if (audioPlaylist) {
    const url = `${files}/${dir}/${audioPlaylist}`
    const audio = await packets(url, 'a:0')
    const aacFrame = 1024 / 48_000
    for (let i = 1; i < audio.length; i++) {
      const gap = (audio[i]?.pts ?? 0) - (audio[i - 1]?.pts ?? 0)
      expect(Math.abs(gap - aacFrame), `audio gap at ${audio[i]?.pts}`).toBeLessThan(1e-3)
    }
    // In sync: both tracks start together and end together (within an AAC frame or two).
    const videoStart = await startTime(`${files}/${videoPlaylists[0]}`, 'v:0')
    expect(Math.abs((await startTime(url, 'a:0')) - videoStart)).toBeLessThan(0.03)
    const audioEnd = (audio[audio.length - 1]?.pts ?? 0) + aacFrame
    expect(Math.abs(audioEnd - facts.duration)).toBeLessThan(0.06)
  }

  // Poster and trick-play thumbnails.
  expect((await blobs.head(m.posterKey ?? ''))?.size).toBeGreaterThan(1000)
  const vtt = await blobText(blobs, m.thumbnailsKey ?? '')
  expect(vtt.startsWith('WEBVTT')).toBe(true)
  const sprite = /\n(sprite-\d+\.jpg)#xywh=\d+,\d+,\d+,\d+/.exec(vtt)?.[1]
  expect((await blobs.head(`${path.posix.dirname(m.thumbnailsKey ?? '')}/${sprite}`))?.size).toBeGreaterThan(
    500,
  )
}

const PLAYER_PAGE = `<!doctype html><html><body><video id="v" muted playsinline></video>
<script src="/hls.js"></script>
<script>
window.report = { levels: [], errors: [], events: [] };
window.play = (src) => new Promise((resolve) => {
  const video = document.getElementById('v');
  const hls = new Hls({ enableWorker: true });
  hls.on(Hls.Events.ERROR, (_e, d) => { window.report.errors.push((d.fatal ? 'FATAL ' : '') + d.type + ' ' + d.details); });
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => {
    window.report.levels = d.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate }));
    video.play().catch((e) => window.report.errors.push('play ' + e));
  });
  video.addEventListener('error', () => window.report.errors.push('video ' + (video.error && video.error.message)));
  hls.loadSource(src);
  hls.attachMedia(video);
  resolve();
});
</script></body></html>`

// ---- the suite ---------------------------------------------------------------------------------

describe('media pipeline on sqlite', () => {
  let t: TestReel
  let base: string
  let token: string
  let files: { url: string; close: () => Promise<void> }
  const published: EventEnvelope<TitlePublished>[] = []
  const failed: EventEnvelope<TitleFailed>[] = []

  beforeAll(async () => {
    t = await startReel('sqlite', {
      ...MEDIA_ENV,
      REEL_MEDIA_MAX_UPLOAD: '40mb',
      REEL_MEDIA_MAX_DURATION_S: '60',
    })
    base = baseUrl(t.reel.http.server)
    await t.reel.use('accounts').createAdmin('media-admin@example.com', PASSWORD)
    token = await adminToken(base, 'media-admin@example.com')
    files = await blobServer(t.reel.ports.blobs)
    await t.reel.ports.bus.subscribe<TitlePublished>({
      name: 'test-media-published',
      types: ['media.title.published'],
      handler: async (e) => {
        published.push(e)
      },
    })
    await t.reel.ports.bus.subscribe<TitleFailed>({
      name: 'test-media-failed',
      types: ['media.title.failed'],
      handler: async (e) => {
        failed.push(e)
      },
    })
  })
  afterAll(async () => {
    await files?.close()
    await t?.stop()
  })

  const titles: Record<string, string> = {}

  async function ingest(name: string, shape: SourceShape): Promise<{ m: Media; file: string }> {
    const file = await makeSource(name, shape)
    const titleId = await upload(base, token, file, {
      title: `Test ${name}`,
      year: '2024',
      filename: `${name}.mp4`,
    })
    titles[name] = titleId
    const m = await waitFor(base, token, titleId, finished)
    return { m, file }
  }

  it('makes a multi-chunk 1080p landscape title: frames, joins, IDRs, playlists, parts, event', async () => {
    const { m, file } = await ingest('landscape', {
      width: 1920,
      height: 1080,
      rate: '24',
      seconds: 13,
      audio: true,
    })
    expect(m.error).toBeNull()
    // 13 s in 6 s chunks: three chunk tasks (each makes the three renditions), audio, probe, package.
    expect(m.tasks.filter((x) => x.kind === 'encode')).toHaveLength(3)
    expect(m.tasks).toHaveLength(6)
    expect(m.tasks.every((x) => x.state === 'done')).toBe(true)
    await verifyTitle(t.reel, files.url, m, {
      file,
      audio: true,
      renditions: [
        { width: 1920, height: 1080 },
        { width: 640, height: 360 },
        { width: 416, height: 234 },
      ],
    })
    await expect.poll(() => published.find((e) => e.key === m.titleId)).toBeDefined()
    const event = published.find((e) => e.key === m.titleId)
    expect(event?.data).toMatchObject({
      titleId: m.titleId,
      title: 'Test landscape',
      masterPlaylistKey: m.masterPlaylistKey,
      prefix: `titles/${m.titleId}/`,
    })
    expect(event?.data.renditions.map((r) => r.name)).toEqual([
      '1080p-6000k',
      '360p-365k',
      '234p-145k',
      'audio',
    ])
    // The catalog knows the title, its media status and duration.
    const inCatalog = (await t.reel.use('catalog').titlesById([m.titleId])).get(m.titleId)
    expect(inCatalog).toMatchObject({
      title: 'Test landscape',
      year: 2024,
      mediaStatus: 'available',
      durationMs: m.durationMs,
    })
    // The work pieces are gone once packaged; the source stays for re-encodes.
    expect(await t.reel.ports.blobs.list(`titles/${m.titleId}/work/`)).toEqual([])
    expect(await t.reel.ports.blobs.head(`titles/${m.titleId}/source`)).toBeDefined()
  }, 300_000)

  it('makes a portrait title (the ladder turned, aspect kept)', async () => {
    const { m, file } = await ingest('portrait', {
      width: 360,
      height: 640,
      rate: '30',
      seconds: 7,
      audio: true,
    })
    await verifyTitle(t.reel, files.url, m, {
      file,
      audio: true,
      renditions: [
        { width: 360, height: 640 },
        { width: 234, height: 416 },
      ],
    })
  }, 300_000)

  it('makes a 4:3 title at 29.97 fps across chunk joins', async () => {
    const { m, file } = await ingest('four-three', {
      width: 640,
      height: 480,
      rate: '30000/1001',
      seconds: 13,
      audio: true,
    })
    expect(m.tasks.filter((x) => x.kind === 'encode')).toHaveLength(3)
    await verifyTitle(t.reel, files.url, m, {
      file,
      audio: true,
      renditions: [
        { width: 480, height: 360 },
        { width: 312, height: 234 },
      ],
    })
  }, 300_000)

  it('makes a title without audio (no audio group)', async () => {
    const { m, file } = await ingest('silent', {
      width: 640,
      height: 360,
      rate: '25',
      seconds: 7,
      audio: false,
    })
    expect(m.tasks.some((x) => x.kind === 'audio')).toBe(false)
    await verifyTitle(t.reel, files.url, m, {
      file,
      audio: false,
      renditions: [
        { width: 640, height: 360 },
        { width: 416, height: 234 },
      ],
    })
  }, 300_000)

  it('makes a title shorter than a chunk', async () => {
    const { m, file } = await ingest('short', {
      width: 426,
      height: 240,
      rate: '24',
      seconds: 3,
      audio: true,
    })
    expect(m.tasks.filter((x) => x.kind === 'encode')).toHaveLength(1)
    await verifyTitle(t.reel, files.url, m, {
      file,
      audio: true,
      renditions: [{ width: 416, height: 234 }],
    })
  }, 300_000)

  it('plays in a real player: hls.js in headless Chromium loads every level, plays, seeks to the middle', async () => {
    if (!fs.existsSync(CHROMIUM)) {
      if (requireEngines)
        throw new Error(`Chromium is required (REEL_TEST_REQUIRE_ENGINES=1) but ${CHROMIUM} is missing`)
      console.warn(`SKIPPED: browser playback test (install Debian's chromium at ${CHROMIUM})`)
      return
    }
    const titleId =
      titles.landscape ??
      (await ingest('landscape', { width: 1920, height: 1080, rate: '24', seconds: 13, audio: true })).m
        .titleId
    const { chromium } = await import('playwright-core')
    const profile = tempDir('reel-chromium-')
    const browser = await chromium.launchPersistentContext(profile.dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
      ],
    })
    try {
      const page = await browser.newPage()
      const pageErrors: string[] = []
      page.on('pageerror', (e) => pageErrors.push(e.message))
      await page.goto(`${files.url}/player.html`)
      await page.evaluate(`window.play(${JSON.stringify(`/titles/${titleId}/hls/master.m3u8`)})`)
      interface PlayerReport {
        levels: { height: number }[]
        errors: string[]
        time: number
        duration: number
      }
      // Runs in the page (this project compiles without the DOM types, hence a script string).
      const report = () =>
        page.evaluate(
          `({ levels: window.report.levels, errors: window.report.errors, time: document.getElementById('v').currentTime, duration: document.getElementById('v').duration })`,
        ) as Promise<PlayerReport>
      await expect
        .poll(async () => (await report()).time, { timeout: 60_000, interval: 250 })
        .toBeGreaterThan(1)
      const playing = await report()
      expect(playing.levels.map((l) => l.height).sort((a, b) => a - b)).toEqual([234, 360, 1080])
      const middle = playing.duration / 2
      await page.evaluate(`document.getElementById('v').currentTime = ${middle}`)
      await expect
        .poll(async () => (await report()).time, { timeout: 60_000, interval: 250 })
        .toBeGreaterThan(middle + 1)
      const after = await report()
      expect(after.errors).toEqual([])
      expect(pageErrors).toEqual([])
      expect(after.duration).toBeCloseTo(13, 0)
    } finally {
      await browser.close()
      profile.cleanup()
    }
  }, 180_000)

  describe('rejects bad uploads with a stable code, a failed status and nothing left behind', () => {
    const cases: { name: string; code: string; make: (file: string) => Promise<void> }[] = [
      { name: 'empty.mp4', code: 'empty_file', make: async (f) => fs.writeFileSync(f, '') },
      {
        name: 'notes.mp4',
        code: 'not_media',
        make: async (f) => fs.writeFileSync(f, 'This is a shopping list, not a movie.\n'.repeat(50)),
      },
      {
        name: 'truncated.mp4',
        code: 'undecodable',
        make: async (f) => {
          const whole = await makeSource('whole', {
            width: 320,
            height: 240,
            rate: '24',
            seconds: 6,
            audio: true,
          })
          // Index at the front (faststart), media data cut in half: headers promise what the file lacks.
          const faststart = path.join(fixtures.dir, 'faststart.mp4')
          await run('ffmpeg', [
            '-v',
            'error',
            '-y',
            '-i',
            whole,
            '-c',
            'copy',
            '-movflags',
            '+faststart',
            faststart,
          ])
          const bytes = fs.readFileSync(faststart)
          fs.writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length / 2)))
        },
      },
      {
        name: 'audio-only.m4a',
        code: 'no_video_stream',
        make: async (f) => {
          await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=duration=3', '-c:a', 'aac', f])
        },
      },
      {
        name: 'wider-than-8k.mp4',
        code: 'resolution_too_high',
        make: async (f) => {
          await run('ffmpeg', [
            '-v',
            'error',
            '-y',
            '-f',
            'lavfi',
            '-i',
            'testsrc2=size=7696x64:duration=1',
            '-c:v',
            'libx264',
            '-preset',
            'ultrafast',
            f,
          ])
        },
      },
      {
        name: 'too-long.mp4',
        code: 'too_long',
        make: async (f) => {
          await run('ffmpeg', [
            '-v',
            'error',
            '-y',
            '-f',
            'lavfi',
            '-i',
            'testsrc2=size=64x64:rate=5:duration=61',
            '-c:v',
            'libx264',
            '-preset',
            'ultrafast',
            f,
          ])
        },
      },
      {
        name: 'still.png',
        code: 'no_duration',
        make: async (f) => {
          await run('ffmpeg', [
            '-v',
            'error',
            '-y',
            '-f',
            'lavfi',
            '-i',
            'testsrc2=size=320x240',
            '-frames:v',
            '1',
            f,
          ])
        },
      },
    ]
    for (const c of cases) {
      it(`${c.name} → ${c.code}`, async () => {
        const file = path.join(fixtures.dir, c.name)
        await c.make(file)
        const titleId = await upload(base, token, file, { title: c.name, filename: c.name })
        const m = await waitFor(base, token, titleId, finished, 60_000)
        expect(m.status).toBe('failed')
        expect(m.stage).toBe('failed')
        expect(m.error?.code).toBe(c.code)
        expect(m.renditions).toEqual([])
        // The job fails first; the clean-up and the catalog's status follow, then the event says so.
        await expect.poll(() => failed.find((e) => e.key === titleId)?.data.code).toBe(c.code)
        expect((await t.reel.use('catalog').titlesById([titleId])).get(titleId)?.mediaStatus).toBe('failed')
        expect(await t.reel.ports.blobs.list(`titles/${titleId}/`)).toEqual([])
        expect(
          fs.readdirSync(path.join(t.reel.config.dataDir, 'uploads')).filter((f) => f.startsWith(titleId)),
        ).toEqual([])
      }, 120_000)
    }
  })

  it('refuses uploads from members and strangers, without a title, or over the size limit (never 500)', async () => {
    const create = (headers: Record<string, string>) =>
      fetch(`${base}/api/v1/uploads`, { method: 'POST', headers: { 'tus-resumable': '1.0.0', ...headers } })
    const meta = (o: Record<string, string>) =>
      Object.entries(o)
        .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
        .join(',')
    const anonymous = await create({ 'upload-length': '10', 'upload-metadata': meta({ title: 'x' }) })
    expect(anonymous.status).toBe(401)
    const member = await t.call('POST', '/api/v1/accounts', {
      body: { email: `member.${Date.now()}@example.com`, password: PASSWORD },
    })
    const memberToken = member.json().tokens.accessToken as string
    const forbidden = await create({
      authorization: `Bearer ${memberToken}`,
      'upload-length': '10',
      'upload-metadata': meta({ title: 'x' }),
    })
    expect(forbidden.status).toBe(403)
    expect(((await forbidden.json()) as { error: { code: string } }).error.code).toBe('admin_only')
    const untitled = await create({ authorization: `Bearer ${token}`, 'upload-length': '10' })
    expect(untitled.status).toBe(400)
    expect(((await untitled.json()) as { error: { code: string } }).error.code).toBe('invalid_title')
    const badYear = await create({
      authorization: `Bearer ${token}`,
      'upload-length': '10',
      'upload-metadata': meta({ title: 'x', year: 'soon' }),
    })
    expect(((await badYear.json()) as { error: { code: string } }).error.code).toBe('invalid_year')
    const huge = await create({
      authorization: `Bearer ${token}`,
      'upload-length': String(41 * 1024 ** 2),
      'upload-metadata': meta({ title: 'x' }),
    })
    expect(huge.status).toBe(413)
    expect(((await huge.json()) as { error: { code: string } }).error.code).toBe('too_large')
    const tus = (method: string, url: string, headers: Record<string, string> = {}, body?: Buffer) =>
      fetch(new URL(url, base), {
        method,
        headers: { authorization: `Bearer ${token}`, 'tus-resumable': '1.0.0', ...headers },
        body,
      })
    const missing = await tus('HEAD', '/api/v1/uploads/no-such-upload')
    expect(missing.status).toBe(404)
    const created = await tus('POST', '/api/v1/uploads', {
      'upload-length': '100',
      'upload-metadata': meta({ title: 'x' }),
    })
    expect(created.status).toBe(201)
    const location = created.headers.get('location') ?? ''
    const wrongOffset = await tus(
      'PATCH',
      location,
      { 'upload-offset': '50', 'content-type': 'application/offset+octet-stream' },
      Buffer.alloc(10),
    )
    expect(wrongOffset.status).toBe(409)
    expect(((await wrongOffset.json()) as { error: { code: string } }).error.code).toBe(
      'upload_offset_mismatch',
    )
    // Cancelling an upload fails its title, and leaves nothing behind.
    const titleId = location.split('/').pop() ?? ''
    expect((await media(base, token, titleId)).status).toBe('uploading')
    expect((await tus('DELETE', location)).status).toBe(204)
    const cancelled = await waitFor(base, token, titleId, finished, 10_000)
    expect(cancelled.error?.code).toBe('upload_cancelled')
    expect(
      fs.readdirSync(path.join(t.reel.config.dataDir, 'uploads')).filter((f) => f.startsWith(titleId)),
    ).toEqual([])
    const unknown = await t.call('GET', '/api/v1/admin/titles/nope/media', { token })
    expect(unknown.statusCode).toBe(404)
    expect(unknown.json().error.code).toBe('title_not_found')
  })

  it('reel ingest uploads with a progress bar, resumes an interrupted upload, and --wait follows to the end', async () => {
    const file = await makeSource('cli', { width: 320, height: 180, rate: '24', seconds: 4, audio: true })
    const configHome = tempDir('reel-cli-home-')
    try {
      // An earlier run sent the first half, then died: the server holds those bytes, this machine the URL.
      const bytes = fs.readFileSync(file)
      const half = Math.floor(bytes.length / 2)
      const meta = `title ${Buffer.from('CLI title').toString('base64')}`
      const created = await fetch(`${base}/api/v1/uploads`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'tus-resumable': '1.0.0',
          'upload-length': String(bytes.length),
          'upload-metadata': meta,
        },
      })
      expect(created.status).toBe(201)
      const location = created.headers.get('location') ?? ''
      const titleId = location.split('/').pop() ?? ''
      const patched = await fetch(new URL(location, base), {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${token}`,
          'tus-resumable': '1.0.0',
          'upload-offset': '0',
          'content-type': 'application/offset+octet-stream',
        },
        body: bytes.subarray(0, half),
      })
      expect(patched.status).toBe(204)
      fs.mkdirSync(path.join(configHome.dir, 'reel'), { recursive: true })
      fs.writeFileSync(
        path.join(configHome.dir, 'reel', 'uploads.json'),
        JSON.stringify({
          [uploadFingerprint(file, base)]: { url: location, titleId, startedAt: new Date().toISOString() },
        }),
      )
      const cli = await runCli(['ingest', file, '--title', 'CLI title', '--year', '2023', '--wait'], {
        REEL_URL: base,
        REEL_TOKEN: token,
        XDG_CONFIG_HOME: configHome.dir,
      })
      expect(cli.code, cli.stderr).toBe(0)
      expect(cli.stdout.trim()).toBe(titleId)
      expect(cli.stderr).toContain(`resuming the upload of title ${titleId}`)
      expect(cli.stderr).toMatch(/upload +\[#+\] 100\.0%/)
      expect(cli.stderr).toContain('available')
      const m = await media(base, token, titleId)
      expect(m.status).toBe('available')
      // The resumed upload is byte for byte the file.
      expect((await blobBytes(t.reel.ports.blobs, `titles/${titleId}/source`)).equals(bytes)).toBe(true)
      expect(JSON.parse(fs.readFileSync(path.join(configHome.dir, 'reel', 'uploads.json'), 'utf8'))).toEqual(
        {},
      )

      // A failing title: --wait exits non-zero with the error code.
      const notes = path.join(fixtures.dir, 'cli-notes.mp4')
      fs.writeFileSync(notes, 'not a movie\n'.repeat(20))
      const bad = await runCli(['ingest', notes, '--title', 'Nope', '--wait'], {
        REEL_URL: base,
        REEL_TOKEN: token,
        XDG_CONFIG_HOME: configHome.dir,
      })
      expect(bad.code).toBe(1)
      expect(bad.stderr).toContain('not_media')
    } finally {
      configHome.cleanup()
    }
  }, 180_000)
})

// ---- processes ---------------------------------------------------------------------------------

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/reel.js', ...args], {
      env: { ...process.env, REEL_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => {
      stdout += String(c)
    })
    child.stderr.on('data', (c: Buffer) => {
      stderr += String(c)
    })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

function spawnReel(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['bin/reel.js', ...args], {
    env: { ...process.env, REEL_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  return child
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

async function freePort(): Promise<number> {
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((r) => server.close(r))
  return port
}

async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if ((await fetch(url)).ok) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url} did not answer`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe('media pipeline faults', () => {
  it('a worker process killed mid-task costs only that task; another worker finishes the title', async () => {
    // An API-only reel (no in-process workers) and `reel worker` processes sharing its data dir.
    const t = await startReel('sqlite', { ...MEDIA_ENV, REEL_MEDIA_WORKERS: '0' })
    const files = await blobServer(t.reel.ports.blobs)
    const workers: ChildProcess[] = []
    try {
      const base = baseUrl(t.reel.http.server)
      await t.reel.use('accounts').createAdmin('worker-admin@example.com', PASSWORD)
      const token = await adminToken(base, 'worker-admin@example.com')
      const workerEnv = { ...MEDIA_ENV, REEL_DATA_DIR: t.reel.config.dataDir, REEL_JWT_SECRET: JWT }
      const file = await makeSource('landscape', {
        width: 1920,
        height: 1080,
        rate: '24',
        seconds: 13,
        audio: true,
      })
      const titleId = await upload(base, token, file, { title: 'Killed worker' })
      workers.push(spawnReel(['worker', '--concurrency', '1'], workerEnv))
      // A chunk of 1080p runs for seconds: kill the worker in the middle of one, once ffmpeg's own
      // progress shows in the task's percent and the title's.
      const running = await waitFor(base, token, titleId, (m) =>
        m.tasks.some((x) => x.kind === 'encode' && x.state === 'running' && x.percent > 0),
      )
      expect(running.percent).toBeGreaterThan(0)
      expect(running.percent).toBeLessThan(100)
      const victim = running.tasks.find((x) => x.kind === 'encode' && x.state === 'running')
      const first = workers[0]
      if (!first) throw new Error('no worker')
      await kill(first)
      workers.push(spawnReel(['worker', '--concurrency', '2'], workerEnv))
      const m = await waitFor(base, token, titleId, finished)
      expect(m.status).toBe('available')
      const retried = m.tasks.find((x) => x.key === victim?.key)
      expect(retried?.attempts).toBeGreaterThanOrEqual(2)
      // Only the killed task ran twice.
      expect(m.tasks.filter((x) => x.attempts > 1).map((x) => x.key)).toEqual([victim?.key])
      await verifyParts(readerOf(t.reel), files.url, m, file)
    } finally {
      for (const w of workers) await kill(w)
      await files.close()
      await t.stop()
    }
  }, 300_000)

  it('a failing task is retried with backoff and the title still completes', async () => {
    // An ffmpeg whose first two encodes crash, as a flaky machine's would.
    const counter = path.join(fixtures.dir, uniqueName('crashes'))
    const wrapper = path.join(fixtures.dir, uniqueName('ffmpeg'))
    fs.writeFileSync(
      wrapper,
      `#!/bin/sh
case "$*" in *libx264*)
  n=$(cat '${counter}' 2>/dev/null || echo 0)
  if [ "$n" -lt 2 ]; then echo $((n + 1)) > '${counter}'; echo 'simulated encoder crash' >&2; exit 1; fi;;
esac
exec ffmpeg "$@"
`,
      { mode: 0o755 },
    )
    const t = await startReel('sqlite', { ...MEDIA_ENV, REEL_FFMPEG: wrapper })
    try {
      const base = baseUrl(t.reel.http.server)
      await t.reel.use('accounts').createAdmin('retry-admin@example.com', PASSWORD)
      const token = await adminToken(base, 'retry-admin@example.com')
      const file = await makeSource('short', { width: 426, height: 240, rate: '24', seconds: 3, audio: true })
      const titleId = await upload(base, token, file, { title: 'Flaky' })
      const failing = await waitFor(base, token, titleId, (m) =>
        m.tasks.some((x) => x.kind === 'encode' && (x.error ?? '').includes('simulated encoder crash')),
      )
      expect(failing.status).toBe('processing')
      const m = await waitFor(base, token, titleId, finished, 120_000)
      expect(m.status).toBe('available')
      const encode = m.tasks.find((x) => x.kind === 'encode')
      expect(encode).toMatchObject({ state: 'done', attempts: 3, error: null })
      expect(m.tasks.filter((x) => x.kind !== 'encode').every((x) => x.attempts === 1)).toBe(true)
    } finally {
      await t.stop()
    }
  }, 180_000)

  it('an encode that keeps failing fails its title with transcode_failed after 5 attempts, leaving nothing', async () => {
    // An ffmpeg that can still cut the audio and the poster but whose every H.264 encode crashes.
    const wrapper = path.join(fixtures.dir, uniqueName('ffmpeg'))
    fs.writeFileSync(
      wrapper,
      `#!/bin/sh
case "$*" in *libx264*) echo 'simulated broken encoder' >&2; exit 1;; esac
exec ffmpeg "$@"
`,
      { mode: 0o755 },
    )
    const t = await startReel('sqlite', {
      ...MEDIA_ENV,
      REEL_FFMPEG: wrapper,
      REEL_MEDIA_RETRY_BACKOFF_MS: '100,200,300',
    })
    const failed: EventEnvelope<TitleFailed>[] = []
    try {
      await t.reel.ports.bus.subscribe<TitleFailed>({
        name: 'test-media-failed-retries',
        types: ['media.title.failed'],
        handler: async (e) => {
          failed.push(e)
        },
      })
      const base = baseUrl(t.reel.http.server)
      await t.reel.use('accounts').createAdmin('broken-admin@example.com', PASSWORD)
      const token = await adminToken(base, 'broken-admin@example.com')
      const file = await makeSource('short', { width: 426, height: 240, rate: '24', seconds: 3, audio: true })
      const titleId = await upload(base, token, file, { title: 'Never encodes' })
      const m = await waitFor(base, token, titleId, finished, 120_000)
      expect(m.status).toBe('failed')
      expect(m.error?.code).toBe('transcode_failed')
      expect(m.error?.message).toContain('5 times')
      expect(m.error?.message).toContain('simulated broken encoder')
      const encode = m.tasks.find((x) => x.kind === 'encode')
      expect(encode).toMatchObject({ state: 'failed', attempts: 5 })
      expect(m.renditions).toEqual([])
      // The job turns failed first (once, whoever gets there); the clean-up follows, then the event.
      await expect.poll(() => failed.find((e) => e.key === titleId)?.data.code).toBe('transcode_failed')
      expect((await t.reel.use('catalog').titlesById([titleId])).get(titleId)?.mediaStatus).toBe('failed')
      expect(await t.reel.ports.blobs.list(`titles/${titleId}/`)).toEqual([])
      expect(fs.existsSync(path.join(t.reel.config.dataDir, 'media-work', titleId))).toBe(false)
    } finally {
      await t.stop()
    }
  }, 180_000)

  it('an upload nobody finishes for 7 days fails with upload_abandoned and its bytes go', async () => {
    const data = tempDir()
    const env = { ...MEDIA_ENV, REEL_DATA_DIR: data.dir }
    const file = await makeSource('short', { width: 426, height: 240, rate: '24', seconds: 3, audio: true })
    const bytes = fs.readFileSync(file)
    let t = await startReel('sqlite', env)
    try {
      const base = baseUrl(t.reel.http.server)
      await t.reel.use('accounts').createAdmin('abandon-admin@example.com', PASSWORD)
      const token = await adminToken(base, 'abandon-admin@example.com')
      const { location, titleId } = await createUpload(base, token, bytes.length, 'Never finished')
      const half = bytes.subarray(0, Math.floor(bytes.length / 2))
      const patched = await fetch(new URL(location, base), {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${token}`,
          'tus-resumable': '1.0.0',
          'upload-offset': '0',
          'content-type': 'application/offset+octet-stream',
        },
        body: half,
      })
      expect(patched.status).toBe(204)
      // Six days idle: still resumable.
      const stored = path.join(data.dir, 'uploads', titleId)
      const sixDays = new Date(Date.now() - 6 * 24 * 3600_000)
      fs.utimesSync(stored, sixDays, sixDays)
      await t.stop()
      t = await startReel('sqlite', env)
      let m = await media(baseUrl(t.reel.http.server), token, titleId)
      expect(m.status).toBe('uploading')
      expect(fs.existsSync(stored)).toBe(true)
      // Eight days idle: the next sweep (at start) gives up on it.
      const eightDays = new Date(Date.now() - 8 * 24 * 3600_000)
      fs.utimesSync(stored, eightDays, eightDays)
      await t.stop()
      t = await startReel('sqlite', env)
      m = await media(baseUrl(t.reel.http.server), token, titleId)
      expect(m.status).toBe('failed')
      expect(m.error?.code).toBe('upload_abandoned')
      expect(fs.readdirSync(path.join(data.dir, 'uploads')).filter((f) => f.startsWith(titleId))).toEqual([])
      expect(await t.reel.ports.blobs.list(`titles/${titleId}/`)).toEqual([])
      // A client that comes back to it learns the upload is gone.
      const resumed = await fetch(new URL(location, baseUrl(t.reel.http.server)), {
        method: 'HEAD',
        headers: { authorization: `Bearer ${token}`, 'tus-resumable': '1.0.0' },
      })
      expect([404, 410]).toContain(resumed.status)
    } finally {
      await t.stop()
      data.cleanup()
    }
  }, 180_000)

  it('finishes an upload whose last byte arrived but whose hand-over to the pipeline did not', async () => {
    const data = tempDir()
    const env = { ...MEDIA_ENV, REEL_DATA_DIR: data.dir }
    const file = await makeSource('short', { width: 426, height: 240, rate: '24', seconds: 3, audio: true })
    const bytes = fs.readFileSync(file)
    let t = await startReel('sqlite', env)
    try {
      await t.reel.use('accounts').createAdmin('handover-admin@example.com', PASSWORD)
      const token = await adminToken(baseUrl(t.reel.http.server), 'handover-admin@example.com')
      const { titleId } = await createUpload(
        baseUrl(t.reel.http.server),
        token,
        bytes.length,
        'Handed over late',
      )
      await t.stop()
      // The bytes all arrived, then the process stopped before the hand-over: as a crash leaves it.
      const stored = path.join(data.dir, 'uploads', titleId)
      fs.writeFileSync(stored, bytes)
      const past = new Date(Date.now() - 5 * 60_000)
      fs.utimesSync(stored, past, past)
      t = await startReel('sqlite', env)
      const m = await waitFor(baseUrl(t.reel.http.server), token, titleId, finished, 120_000)
      expect(m.status).toBe('available')
      expect((await blobBytes(t.reel.ports.blobs, `titles/${titleId}/source`)).equals(bytes)).toBe(true)
    } finally {
      await t.stop()
      data.cleanup()
    }
  }, 180_000)

  it('the whole process restarted mid-title resumes and completes it, no segment missing or doubled', async () => {
    const tmp = tempDir()
    const port = await freePort()
    const env = {
      ...MEDIA_ENV,
      REEL_DATA_DIR: tmp.dir,
      REEL_PORT: String(port),
      REEL_HOST: '127.0.0.1',
      REEL_JWT_SECRET: JWT,
    }
    const setup = await createReel({ config: loadConfig(env), roles: [], log: createLogger('silent') })
    await setup.use('accounts').createAdmin('restart-admin@example.com', PASSWORD)
    await setup.stop()
    const base = `http://127.0.0.1:${port}`
    let server = spawnReel(['start'], env)
    // The server's files, read beside it (its own blob store adapter over its data dir).
    const blobs = createBlobs({ dir: path.join(tmp.dir, 'blobs') })
    const files = await blobServer(blobs)
    try {
      await waitForHttp(`${base}/readyz`)
      const token = await adminToken(base, 'restart-admin@example.com')
      const file = await makeSource('landscape', {
        width: 1920,
        height: 1080,
        rate: '24',
        seconds: 13,
        audio: true,
      })
      const titleId = await upload(base, token, file, { title: 'Restarted' })
      const before = await waitFor(base, token, titleId, (m) =>
        m.tasks.some((x) => x.kind === 'encode' && x.state === 'done'),
      )
      expect(before.status).toBe('processing')
      await kill(server)
      server = spawnReel(['start'], env)
      await waitForHttp(`${base}/readyz`)
      const m = await waitFor(base, token, titleId, finished)
      expect(m.status).toBe('available')
      const index: IndexReader = {
        blobs,
        parts: async (id, rendition) => {
          const res = await fetch(`${base}/api/v1/admin/titles/${id}/media/parts?rendition=${rendition}`, {
            headers: { authorization: `Bearer ${token}` },
          })
          return ((await res.json()) as { parts: { partNo: number; blobKey: string; durationMs: number }[] })
            .parts
        },
      }
      await verifyParts(index, files.url, m, file)
    } finally {
      await kill(server)
      await files.close()
      tmp.cleanup()
    }
  }, 300_000)
})

interface IndexReader {
  blobs: Blobs
  parts(
    titleId: string,
    rendition: string,
  ): Promise<{ partNo: number; blobKey: string; durationMs: number }[]>
}

const readerOf = (reel: Reel): IndexReader => ({
  blobs: reel.ports.blobs,
  parts: (titleId, rendition) => reel.use('media').parts(titleId, rendition),
})

/** After a fault: every rendition has each segment exactly once, and all the frames of the source. */
async function verifyParts(index: IndexReader, files: string, m: Media, file: string): Promise<void> {
  const facts = await sourceFacts(file)
  for (const r of m.renditions) {
    const parts = await index.parts(m.titleId, r.name)
    expect(parts.map((p) => p.partNo)).toEqual(parts.map((_, i) => i))
    const stored = (await index.blobs.list(`titles/${m.titleId}/hls/${r.name}/`)).map((b) => b.key)
    expect(stored.filter((k) => k.endsWith('.m4s')).sort()).toEqual(parts.map((p) => p.blobKey).sort())
    const total = parts.reduce((s, p) => s + p.durationMs, 0) / 1000
    expect(Math.abs(total - facts.duration)).toBeLessThan(
      r.kind === 'audio' ? 0.1 : 1 / facts.frameRate + 1e-3,
    )
    if (r.kind === 'video')
      expect((await packets(`${files}/${r.playlistKey}`, 'v:0')).length).toBe(facts.frames)
  }
  expect(await index.blobs.list(`titles/${m.titleId}/work/`)).toEqual([])
}

const scaled: [string, Record<string, string>][] = []
if (hasPostgres()) {
  scaled.push(['PostgreSQL', {}])
  if (hasNats())
    scaled.push([
      'PostgreSQL and a NATS JetStream work queue',
      { REEL_NATS_URL: engines.natsUrl ?? '', REEL_NATS_PREFIX: uniqueName('media') },
    ])
}

describe.skipIf(scaled.length === 0).each(scaled)('media pipeline on %s', (_name, engineEnv) => {
  it('ingests, indexes and rejects', async () => {
    const t = await startReel('postgres', { ...MEDIA_ENV, ...engineEnv })
    const files = await blobServer(t.reel.ports.blobs)
    try {
      const base = baseUrl(t.reel.http.server)
      await t.reel.use('accounts').createAdmin('pg-admin@example.com', PASSWORD)
      const token = await adminToken(base, 'pg-admin@example.com')
      const file = await makeSource('pg', { width: 640, height: 360, rate: '24', seconds: 8, audio: true })
      const titleId = await upload(base, token, file, { title: 'On PostgreSQL', year: '1999' })
      const m = await waitFor(base, token, titleId, finished)
      expect(m.status).toBe('available')
      await verifyParts(readerOf(t.reel), files.url, m, file)
      const notes = path.join(fixtures.dir, 'pg-notes.mp4')
      fs.writeFileSync(notes, 'plain text\n'.repeat(30))
      const badId = await upload(base, token, notes, { title: 'Text' })
      expect((await waitFor(base, token, badId, finished, 60_000)).error?.code).toBe('not_media')
      // The stored rows are the source of truth under the cache.
      const db = createDb({ databaseUrl: engines.databaseUrl, schema: t.reel.config.databaseSchema })
      try {
        const rows = await sql<{
          n: number
        }>`select count(*)::int as n from media_parts where title_id = ${titleId}`.execute(db.kysely)
        expect(rows.rows[0]?.n).toBe(m.renditions.reduce((s, r) => s + r.parts, 0))
      } finally {
        await db.close()
      }
    } finally {
      await files.close()
      await t.stop()
    }
  }, 300_000)
})
