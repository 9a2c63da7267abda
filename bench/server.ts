// A benchmark's server, in its own process so the load generator does not share its event loop:
// `platform` is reel all-in-one on a fresh data dir (REEL_* variables of this process apply),
// `bare` a plain Fastify /healthz. Prints the URL once listening.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Fastify from 'fastify'
import { createReel } from '../src/platform/app.js'
import { loadConfig } from '../src/platform/config.js'

const mode = process.argv[2]
if (mode === 'bare') {
  const app = Fastify()
  app.get('/healthz', async () => ({ status: 'ok' }))
  console.log(await app.listen({ port: 0, host: '127.0.0.1' }))
} else {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-'))
  const reel = await createReel({
    config: loadConfig({
      REEL_LOG_LEVEL: 'info',
      ...process.env,
      REEL_DATA_DIR: dataDir,
      REEL_PORT: '0',
      REEL_HOST: '127.0.0.1',
    }),
  })
  console.log(await reel.start())
  process.once('SIGTERM', () => {
    reel.stop().finally(() => {
      fs.rmSync(dataDir, { recursive: true, force: true })
      process.exit(0)
    })
  })
}
