// The reel that bench/trends loads: all-in-one on the data dir it is given (REEL_DATA_DIR), so it
// serves the counters the in-process run left there. Prints the URL once listening.
import { createReel } from '../../src/platform/app.js'
import { loadConfig } from '../../src/platform/config.js'

const reel = await createReel({
  config: loadConfig({ ...process.env, REEL_PORT: '0', REEL_HOST: '127.0.0.1' }),
})
console.log(await reel.start())
process.once('SIGTERM', () => {
  reel.stop().finally(() => process.exit(0))
})
