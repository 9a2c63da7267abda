// The web bench's server: reel all-in-one on a fresh data dir, serving the built app (dist/web) and
// a blank page next to it (same server, same static files route), with a member whose home page has
// rows: 120 titles across genres. The member's email and password come from BENCH_WEB_EMAIL and
// BENCH_WEB_PASSWORD. Prints the URL once ready.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'

import { BLANK_PAGE } from './constants.js'

const webRoot = path.resolve('dist/web')
const blankFile = path.join(webRoot, BLANK_PAGE)
// The floor: a page with one painted row and nothing else, marked like the home page's rows.
fs.writeFileSync(
  blankFile,
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>blank</title></head>' +
    '<body><section><h2 elementtiming="home-row">A row</h2></section></body></html>\n',
)

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-web-'))
const reel = await createReel({
  config: loadConfig({
    REEL_LOG_LEVEL: 'warn',
    ...process.env,
    REEL_DATA_DIR: dataDir,
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
    REEL_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '1000000',
  }),
})
const stop = () =>
  reel.stop().finally(() => {
    fs.rmSync(dataDir, { recursive: true, force: true })
    fs.rmSync(blankFile, { force: true })
    process.exit(0)
  })
process.once('SIGTERM', stop)
try {
  const url = await reel.start()
  const catalog = reel.use('catalog')
  const genres = (await catalog.genres()).map((g) => g.id)
  for (let i = 0; i < 120; i++)
    await catalog.create({
      type: 'movie',
      title: `Bench title ${i}`,
      year: 1990 + (i % 35),
      runtimeMin: 90 + (i % 40),
      maturityRating: (['G', 'PG', 'PG-13', 'R'] as const)[i % 4] ?? 'PG',
      genres: [genres[i % 6] ?? 'drama'],
      availability: [{ region: '*' }],
      popularity: i,
    })
  await reel.use('accounts').signUp(
    {
      email: process.env.BENCH_WEB_EMAIL ?? '',
      password: process.env.BENCH_WEB_PASSWORD ?? '',
      plan: 'premium',
    },
    { name: 'bench', address: '127.0.0.1' },
  )
  console.log(url)
} catch (e) {
  console.error(e)
  await stop()
}
