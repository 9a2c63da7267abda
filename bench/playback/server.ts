// The playback bench's server: reel all-in-one on a fresh data dir with one real title (a 4 s clip
// through the media pipeline). Prints `{"url":…,"titleId":…}` once ready.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'
import type { ServiceName } from '../../src/platform/modules.js'
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
const stalls = monitorEventLoopDelay({ resolution: 10 })
stalls.enable()
console.log(JSON.stringify({ url, titleId }))
process.once('SIGTERM', () => {
  stalls.disable()
  console.error(
    `  server event loop: delay p99 ${(stalls.percentile(99) / 1e6).toFixed(1)} ms, max ${(stalls.max / 1e6).toFixed(1)} ms over the whole run`,
  )
  reel.stop().finally(() => {
    fs.rmSync(dataDir, { recursive: true, force: true })
    process.exit(0)
  })
})
