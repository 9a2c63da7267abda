// The reel that bench/trends loads, on the data dir it is given (REEL_DATA_DIR), so it serves the
// counters the in-process run left there. Prints the URL once listening. It runs the services a
// trending answer needs (trends, accounts for the profile, catalog for the titles), as a trends
// node of the scaled shape would: in the all-in-one shape, services that consume playback events
// (reco) would spend the load working through the bench's 100 000 of them.
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'

const reel = await createReel({
  config: loadConfig({ ...process.env, REEL_PORT: '0', REEL_HOST: '127.0.0.1' }),
  roles: ['trends', 'accounts', 'catalog'],
})
const url = await reel.start()
// As the trends-seal job does a minute after start: the hours closed to streaming get their hourly
// rollups, so windows read those (one set an hour) as in any reel that has run a minute, rather than
// twelve 5-minute sets an hour.
await reel.use('trends').seal()
console.log(url)
process.once('SIGTERM', () => {
  reel.stop().finally(() => process.exit(0))
})
