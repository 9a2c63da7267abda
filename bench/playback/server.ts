// The playback bench's server: reel all-in-one on a fresh data dir with one real title (a 4 s clip
// through the media pipeline). Prints `{"url":…,"titleId":…}` once ready.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { constants, PerformanceObserver } from 'node:perf_hooks'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import type { ServiceName } from '../../src/platform/modules.js'
import { loopStalls } from '../lib.js'
import { benchTitle } from './title.js'

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-playback-'))
// BENCH_ROLES: only these services in this process (the scaled-out API shape); default all-in-one.
const roles = process.env.BENCH_ROLES ? (process.env.BENCH_ROLES.split(',') as ServiceName[]) : undefined
const reel = await createReel({
  ...(roles ? { roles } : {}),
  config: loadConfig({
    REEL_LOG_LEVEL: 'warn',
    ...process.env,
    REEL_DATA_DIR: dataDir,
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
    REEL_MEDIA_LADDER: '360p-365k,234p-145k',
    REEL_MEDIA_PRESET: 'superfast',
    REEL_MEDIA_WORKERS: '1',
  }),
})
const url = await reel.start()
const titleId = await benchTitle(reel, dataDir)
// Event-loop stalls while the bench runs (a stall delays every request in flight).
const stalls = loopStalls()
stalls.enable()
// And within a window the bench marks with SIGUSR2 (start, then end): the event-loop stalls and the
// garbage collector's pauses, printed as one `{"window":…}` line on stdout at the end.
const window = loopStalls()
const pauses = { minor: [] as number[], major: [] as number[] }
const gc = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) pauses.minor.push(entry.duration)
    else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) pauses.major.push(entry.duration)
  }
})
let open = false
process.on('SIGUSR2', () => {
  if (!open) {
    window.reset()
    window.enable()
    pauses.minor = []
    pauses.major = []
    gc.observe({ entryTypes: ['gc'] })
  } else {
    window.disable()
    gc.disconnect()
    const longest = (list: number[]) => Number(Math.max(0, ...list).toFixed(1))
    console.log(
      JSON.stringify({
        window: {
          stallP99Ms: Number(window.p99Ms().toFixed(1)),
          stallMaxMs: Number(window.maxMs().toFixed(1)),
          minorGcs: pauses.minor.length,
          minorGcMaxMs: longest(pauses.minor),
          majorGcs: pauses.major.length,
          majorGcMaxMs: longest(pauses.major),
        },
      }),
    )
  }
  open = !open
})
console.log(JSON.stringify({ url, titleId }))
process.once('SIGTERM', () => {
  stalls.disable()
  console.error(
    `  server event loop: stalls p99 ${stalls.p99Ms().toFixed(1)} ms, max ${stalls.maxMs().toFixed(1)} ms over the whole run`,
  )
  reel.stop().finally(() => {
    fs.rmSync(dataDir, { recursive: true, force: true })
    process.exit(0)
  })
})
