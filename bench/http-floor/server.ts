// One side of the http-floor comparison, in its own process: `platform` (reel's /healthz with all
// its hooks) or `bare` (a plain Fastify route). Prints the URL once listening.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Fastify from 'fastify'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'

const mode = process.argv[2]
if (mode === 'bare') {
  const app = Fastify()
  app.get('/healthz', async () => ({ status: 'ok' }))
  console.log(await app.listen({ port: 0, host: '127.0.0.1' }))
} else {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-'))
  const reel = await createReel({
    config: loadConfig({
      REEL_DATA_DIR: dataDir,
      REEL_PORT: '0',
      REEL_HOST: '127.0.0.1',
      REEL_LOG_LEVEL: 'info',
    }),
  })
  console.log(await reel.start())
}
