// The media pipeline against one ffmpeg command, measured in the same run on the same machine:
// a 60 s 1080p24 source (testsrc2 + sine) to a 4-rung ladder (1080p/720p/540p/360p) plus audio.
//  - single: one ffmpeg (all cores, its own threading) writing the ladder as fMP4 HLS, with the
//    pipeline's encoder settings (same x264 options, same forced IDR grid, same capped VBR);
//  - pipeline: upload through tus to an all-in-one reel, probe, one task per chunk (every rendition
//    from one decode) on the work queue, run by its in-process worker pool (one task per core),
//    packaging, index, playlists, poster and thumbnails.
// Prints both wall times, the ratio (target ≤ 0.85), CPU use, and when the first chunk (pipeline)
// or first segment (single command) of every rendition was ready.
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import * as tus from 'tus-js-client'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import { createLogger } from '../../src/platform/log.js'
import { AUDIO_KBPS, videoEncoderArgs, videoFilter } from '../../src/services/media/encode.js'
import { parseLadder, renditionLadder } from '../../src/services/media/ladder.js'
import { ratio, verdict } from '../lib.js'

const run = promisify(execFile)
const SECONDS = Number(process.env.BENCH_SOURCE_SECONDS ?? 60)
const CHUNK_SECONDS = process.env.BENCH_CHUNK_SECONDS ?? '6'
const LADDER = '1080p-6000k,720p-3000k,540p-2000k,360p-365k'
const PRESET = process.env.BENCH_PRESET ?? 'veryfast'
const TARGET = 0.85
const SOURCE_GOP = Number(process.env.BENCH_SOURCE_GOP ?? 48)

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-transcode-'))
const source = path.join(work, 'source.mp4')

/** CPU seconds of this process and its finished children (the ffmpeg runs), from /proc. */
function cpuSeconds(): number {
  const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? []
  // utime, stime, cutime, cstime are fields 14-17 of stat; after "pid (comm) " they start at index 11.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0)
  return ticks / 100
}

const fmt = (s: number) => `${s.toFixed(1)} s`

async function makeSource(): Promise<void> {
  await run('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=1920x1080:rate=24:duration=${SECONDS}`,
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:sample_rate=48000:duration=${SECONDS}`,
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-crf',
    '16',
    // A keyframe every 2 s, as streaming mezzanines have: a chunk then starts decoding at its own
    // first frame. (With x264's default 10 s GOP each chunk decodes up to 10 s before it: +20% CPU.)
    '-g',
    String(SOURCE_GOP),
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-b:a',
    '192k',
    '-shortest',
    source,
  ])
}

/** One ffmpeg, every rendition and the audio as fMP4 HLS; resolves with wall, CPU and first-segment times. */
async function single(): Promise<{ wall: number; cpu: number; first: Record<string, number> }> {
  const renditions = renditionLadder({ width: 1920, height: 1080, frameRate: 24 }, parseLadder(LADDER))
  const out = path.join(work, 'single')
  const hls = (dir: string) => [
    '-f',
    'hls',
    '-hls_time',
    '6',
    '-hls_playlist_type',
    'vod',
    '-hls_segment_type',
    'fmp4',
    '-hls_segment_filename',
    path.join(out, dir, '%05d.m4s'),
    path.join(out, dir, 'index.m3u8'),
  ]
  const split = renditions.map((_, i) => `[v${i}]`).join('')
  const graph = [
    `[0:v]split=${renditions.length}${split}`,
    ...renditions.map((r, i) => `[v${i}]${videoFilter(r)}[o${i}]`),
  ].join(';')
  const args = ['-v', 'error', '-y', '-i', source, '-filter_complex', graph]
  for (const [i, r] of renditions.entries()) {
    fs.mkdirSync(path.join(out, r.name), { recursive: true })
    // Default threading: what one ffmpeg does with this machine on its own.
    args.push(
      '-map',
      `[o${i}]`,
      '-an',
      ...videoEncoderArgs(r, { preset: PRESET, threads: 0 }),
      ...hls(r.name),
    )
  }
  fs.mkdirSync(path.join(out, 'audio'), { recursive: true })
  args.push(
    '-map',
    '0:a:0',
    '-vn',
    '-c:a',
    'aac',
    '-b:a',
    `${AUDIO_KBPS}k`,
    '-ac',
    '2',
    '-ar',
    '48000',
    ...hls('audio'),
  )

  const first: Record<string, number> = {}
  const cpu0 = cpuSeconds()
  const t0 = performance.now()
  const watch = setInterval(() => {
    for (const name of [...renditions.map((r) => r.name), 'audio']) {
      if (first[name] === undefined && fs.existsSync(path.join(out, name, '00000.m4s')))
        first[name] = (performance.now() - t0) / 1000
    }
  }, 50)
  await new Promise<void>((resolve, reject) => {
    const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'inherit'] })
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}`))))
  })
  clearInterval(watch)
  return { wall: (performance.now() - t0) / 1000, cpu: cpuSeconds() - cpu0, first }
}

interface PipelineResult {
  wall: number
  upload: number
  cpu: number
  /** CPU of this (reel's) process alone; the rest is ffmpeg/ffprobe. */
  selfCpu: number
  workers: number
  tasks: number
  first: Record<string, number>
  stages: Record<string, number>
}

async function pipeline(): Promise<PipelineResult> {
  const dataDir = path.join(work, 'reel')
  const config = loadConfig({
    REEL_DATA_DIR: dataDir,
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
    REEL_JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
    REEL_MEDIA_LADDER: LADDER,
    REEL_MEDIA_CHUNK_SECONDS: CHUNK_SECONDS,
    REEL_MEDIA_PRESET: PRESET,
  })
  const reel = await createReel({ config, log: createLogger('warn') })
  await reel.start()
  try {
    const { port } = reel.http.server.address() as AddressInfo
    const base = `http://127.0.0.1:${port}`
    await reel.use('accounts').createAdmin('bench@example.com', 'correct horse battery')
    const login = await fetch(`${base}/api/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.com', password: 'correct horse battery' }),
    })
    const { accessToken } = (await login.json()) as { accessToken: string }
    const cpu0 = cpuSeconds()
    const self0 = process.cpuUsage()
    const t0 = Date.now()
    const titleId = await new Promise<string>((resolve, reject) => {
      const up = new tus.Upload(fs.createReadStream(source) as unknown as Buffer, {
        endpoint: `${base}/api/v1/uploads`,
        headers: { authorization: `Bearer ${accessToken}` },
        metadata: { title: 'Bench', filename: 'source.mp4' },
        chunkSize: 64 * 1024 ** 2,
        onError: reject,
        onSuccess: () => resolve((up.url ?? '').split('/').pop() ?? ''),
      })
      up.start()
    })
    const uploaded = Date.now()
    const media = reel.use('media')
    for (;;) {
      const m = await media.titleMedia(titleId)
      if (m.status === 'failed') throw new Error(`pipeline failed: ${m.error?.code} ${m.error?.message}`)
      if (m.status === 'available') {
        const wall = (Date.now() - t0) / 1000
        const since = (iso: string | null) => (iso ? (Date.parse(iso) - t0) / 1000 : Number.NaN)
        const first: Record<string, number> = {}
        const stages: Record<string, number> = {}
        for (const task of m.tasks) {
          const done = since(task.finishedAt)
          if (task.kind === 'encode')
            for (const r of m.renditions.filter((x) => x.kind === 'video'))
              first[r.name] = Math.min(first[r.name] ?? done, done)
          if (task.kind === 'audio') first.audio = done
          if (task.kind === 'probe' || task.kind === 'package') stages[task.kind] = done
        }
        return {
          wall,
          upload: (uploaded - t0) / 1000,
          cpu: cpuSeconds() - cpu0,
          selfCpu: (() => {
            const u = process.cpuUsage(self0)
            return (u.user + u.system) / 1e6
          })(),
          workers: config.mediaWorkers,
          tasks: m.tasks.length,
          first,
          stages,
        }
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  } finally {
    await reel.stop()
  }
}

try {
  await makeSource()
  const load = () => os.loadavg()[0]?.toFixed(2)
  console.log(
    `transcode: ${SECONDS} s 1080p24 testsrc2+sine (source GOP ${SOURCE_GOP} frames) → ${LADDER} + AAC ${AUDIO_KBPS}k; x264 ${PRESET}; ${os.availableParallelism()} cores; load ${load()} at start`,
  )
  const s = await single()
  const p = await pipeline()
  const list = (first: Record<string, number>) =>
    Object.entries(first)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')
  console.log(
    `single ffmpeg command: wall ${fmt(s.wall)}, CPU ${fmt(s.cpu)} (${(s.cpu / s.wall).toFixed(2)} cores busy)`,
  )
  console.log(`  first segment ready: ${list(s.first)}`)
  console.log(
    `reel pipeline (${CHUNK_SECONDS} s chunks, one task per chunk making every rendition, ${p.tasks} tasks, ${p.workers} workers): wall ${fmt(p.wall)} (upload ${fmt(p.upload)}, probed at ${fmt(p.stages.probe ?? Number.NaN)}, packaged at ${fmt(p.stages.package ?? Number.NaN)}), CPU ${fmt(p.cpu)} (${(p.cpu / p.wall).toFixed(2)} cores busy; reel's own process ${fmt(p.selfCpu)})`,
  )
  console.log(`  first chunk ready: ${list(p.first)}`)
  // Wall times on a shared machine follow what else runs; the CPU each side spent does not.
  console.log(
    `pipeline / single CPU time: ${ratio(p.cpu, s.cpu).toFixed(2)}× (the work each did, whatever else ran)`,
  )
  // The single command starts with the file on disk; the pipeline's own clock starts when the upload
  // has put it in the blob store (the upload, over localhost here, is shown apart and in the second ratio).
  const r = ratio(p.wall - p.upload, s.wall)
  console.log(
    `pipeline / single wall time: ${r.toFixed(2)}× from the upload's end (target ≤ ${TARGET}: ${verdict(r, TARGET, 'lower')}), ${ratio(p.wall, s.wall).toFixed(2)}× with the upload; load ${load()} at end`,
  )
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
