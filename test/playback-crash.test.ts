import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { createReel } from '../src/platform/app.js'
import { loadConfig } from '../src/platform/config.js'
import { AppError } from '../src/platform/errors.js'
import { newId } from '../src/platform/ids.js'
import { createLogger } from '../src/platform/log.js'
import { tempDir } from './engines.js'

const run = promisify(execFile)
const PASSWORD = 'correct horse battery'
const FLUSH_MS = 300
const data = tempDir('reel-playback-crash-')
afterAll(() => data.cleanup())

const ENV = {
  REEL_DATA_DIR: data.dir,
  REEL_HOST: '127.0.0.1',
  REEL_MEDIA_CHUNK_SECONDS: '6',
  REEL_MEDIA_LADDER: '234p-145k',
  REEL_MEDIA_PRESET: 'superfast',
  REEL_MEDIA_WORKERS: '1',
  REEL_PLAYBACK_FLUSH_MS: String(FLUSH_MS),
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((r) => server.close(r))
  return port
}

/** A title made in-process on the data dir the spawned servers will use. */
async function prepareTitle(): Promise<string> {
  const reel = await createReel({
    config: loadConfig({ ...ENV, REEL_PORT: '0' }),
    log: createLogger('silent'),
  })
  await reel.start()
  try {
    const file = path.join(data.dir, 'clip.mp4')
    await run('ffmpeg', [
      ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=416x234:rate=24:duration=4'],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', file],
    ])
    const media = reel.use('media')
    const titleId = newId()
    await media.beginUpload({ titleId, title: 'Crash clip' })
    await media.finishUpload(titleId, file)
    const deadline = Date.now() + 180_000
    while ((await media.titleMedia(titleId)).status !== 'available') {
      if (Date.now() > deadline) throw new Error('title did not become available')
      await new Promise((r) => setTimeout(r, 250))
    }
    try {
      await reel.use('catalog').update(titleId, { maturityRating: 'PG', availability: [{ region: '*' }] })
    } catch (e) {
      if (!(e instanceof AppError && e.status === 404)) throw e
    }
    return titleId
  } finally {
    await reel.stop()
  }
}

async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['bin/reel.js', 'start'], {
    env: { ...process.env, REEL_LOG_LEVEL: 'warn', ...ENV, REEL_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) return child
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('server did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('playback survives a killed process', () => {
  it('resumes from a position no older than the write-behind interval after SIGKILL between heartbeats', async () => {
    const titleId = await prepareTitle()
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    const json = { 'content-type': 'application/json' }
    let child = await startServer(port)
    try {
      const signUp = await fetch(`${base}/api/v1/accounts`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({
          email: `crash.${Date.now()}@example.com`,
          password: PASSWORD,
          plan: 'standard',
        }),
      })
      expect(signUp.status).toBe(201)
      const token = ((await signUp.json()) as { tokens: { accessToken: string } }).tokens.accessToken
      const auth = { ...json, authorization: `Bearer ${token}` }
      const profiles = (await (await fetch(`${base}/api/v1/profiles`, { headers: auth })).json()) as {
        profiles: { id: string }[]
      }
      const profileId = profiles.profiles[0]?.id
      const start = async () => {
        const res = await fetch(`${base}/api/v1/playback`, {
          method: 'POST',
          headers: auth,
          body: JSON.stringify({ profileId, titleId }),
        })
        expect(res.status).toBe(201)
        return (await res.json()) as { sessionId: string; resumeAtMs: number }
      }
      const s = await start()
      const beat = (positionMs: number) =>
        fetch(`${base}/api/v1/playback/${s.sessionId}/heartbeat`, {
          method: 'POST',
          headers: auth,
          body: JSON.stringify({ positionMs, state: 'playing' }),
        })
      expect((await beat(1000)).status).toBe(200)
      expect((await beat(2000)).status).toBe(200)
      await new Promise((r) => setTimeout(r, FLUSH_MS * 2 + 200))
      // This one lands only in memory and the (in-process) cache: the kill loses it.
      expect((await beat(2500)).status).toBe(200)
      child.kill('SIGKILL')
      await once(child, 'exit')
      child = await startServer(port)
      const resumed = await start()
      expect(resumed.resumeAtMs).toBeGreaterThanOrEqual(2000)
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await once(child, 'exit')
      }
    }
  }, 240_000)
})
