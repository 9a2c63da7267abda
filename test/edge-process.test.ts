import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReel } from '../src/platform/app.js'
import { loadConfig } from '../src/platform/config.js'
import { createDb } from '../src/platform/db/db.js'
import { AppError } from '../src/platform/errors.js'
import { resolveTool } from '../src/platform/ffmpeg.js'
import { newId } from '../src/platform/ids.js'
import { createLogger } from '../src/platform/log.js'
import type { EdgeStats } from '../src/services/cdn/edge.js'
import type { CdnService } from '../src/services/cdn/service.js'
import { hasChromium, launchChromium } from './browser.js'
import { engines, hasPostgres, tempDir, uniqueName } from './engines.js'
import { startReel, type TestReel } from './harness.js'

// A separate `reel edge` process in front of a reel server that has no built-in edge and no NATS:
// it refuses a wrong URL key at start, learns about published titles by polling, pre-fills them
// from the origin, and serves a real player in Chromium (hls.js) with signed URLs, seeking included.

const run = promisify(execFile)
const PASSWORD = 'correct horse battery'
const URL_KEY = 'edge-process-test-url-key-0123456789abcdef'
const ARTIFACTS = path.resolve('test-artifacts')
const tmp = tempDir('reel-edge-process-')

type Video = { currentTime: number; duration: number; paused: boolean }
type PageGlobals = { document: { querySelector(selector: 'video'): Video | null } }
const videoPast = (seconds: number) =>
  ((globalThis as unknown as PageGlobals).document.querySelector('video')?.currentTime ?? 0) > seconds
const seekTo = (fraction: number) => {
  const v = (globalThis as unknown as PageGlobals).document.querySelector('video')
  if (v) v.currentTime = v.duration * fraction
  return v?.currentTime ?? 0
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((r) => server.close(r))
  return port
}

interface EdgeProcess {
  child: ChildProcess
  url: string
  output: () => string
  stop: () => Promise<void>
}

/** `reel edge` as its own process (bin/reel.js), with its log kept for the assertions. */
function startEdge(env: Record<string, string>, port: number): EdgeProcess {
  const child = spawn(process.execPath, ['bin/reel.js', 'edge'], {
    env: {
      ...process.env,
      REEL_LOG_LEVEL: 'info',
      REEL_HOST: '127.0.0.1',
      REEL_EDGE_PORT: String(port),
      REEL_EDGE_REGION: '*',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  child.stdout?.on('data', (c: Buffer) => {
    log += String(c)
  })
  child.stderr?.on('data', (c: Buffer) => {
    log += String(c)
  })
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => log,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await once(child, 'exit')
    },
  }
}

async function edgeStats(url: string): Promise<EdgeStats | undefined> {
  try {
    const res = await fetch(`${url}/stats`)
    return res.status === 200 ? ((await res.json()) as EdgeStats) : undefined
  } catch {
    return undefined
  }
}

describe('a separate reel edge process', () => {
  let t: TestReel
  let base: string
  let titleId: string
  let edgePort: number
  const edges: EdgeProcess[] = []

  beforeAll(async () => {
    edgePort = await freePort()
    t = await startReel('sqlite', {
      REEL_CDN_URL_KEY: URL_KEY,
      REEL_CDN_BUILTIN_EDGE: 'false',
      REEL_CDN_EDGE_ORIGINS: `http://127.0.0.1:${edgePort}`,
      REEL_CDN_EDGE_TIMEOUT_MS: '15000',
      REEL_MEDIA_CHUNK_SECONDS: '6',
      REEL_MEDIA_LADDER: '360p-365k,234p-145k',
      REEL_MEDIA_PRESET: 'superfast',
      REEL_MEDIA_WORKERS: '1',
    })
    base = `http://127.0.0.1:${(t.reel.http.server.address() as net.AddressInfo).port}`
    const ffmpeg = resolveTool('ffmpeg', undefined)
    if (!ffmpeg) throw new Error('ffmpeg is needed')
    const clip = path.join(tmp.dir, 'edge-clip.mp4')
    await run(ffmpeg.path, [
      ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=24:duration=12'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=12'],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '48'],
      ...['-c:a', 'aac', '-shortest', clip],
    ])
    const media = t.reel.use('media')
    titleId = newId()
    await media.beginUpload({ titleId, title: 'Edge Harbor' })
    await media.finishUpload(titleId, clip)
    const deadline = Date.now() + 240_000
    while ((await media.titleMedia(titleId)).status !== 'available') {
      if (Date.now() > deadline) throw new Error('title did not become available')
      await new Promise((r) => setTimeout(r, 250))
    }
    try {
      await t.reel.use('catalog').update(titleId, { maturityRating: 'PG', availability: [{ region: '*' }] })
    } catch (e) {
      if (!(e instanceof AppError && e.status === 404)) throw e
    }
  }, 300_000)
  afterAll(async () => {
    for (const e of edges) await e.stop()
    await t?.stop()
    tmp.cleanup()
  })

  it('refuses to start when the server rejects its URL key (exit 1, names REEL_CDN_URL_KEY)', async () => {
    const edge = startEdge(
      {
        REEL_CDN_URL_KEY: 'a-different-key-than-the-servers-0123456789',
        REEL_EDGE_ORIGIN_URL: base,
        REEL_EDGE_ID: 'wrong-key',
        REEL_DATA_DIR: path.join(tmp.dir, 'edge-wrong'),
      },
      await freePort(),
    )
    edges.push(edge)
    const [code] = (await Promise.race([
      once(edge.child, 'exit'),
      new Promise((_, reject) => setTimeout(() => reject(new Error(edge.output())), 30_000)),
    ])) as [number]
    expect(code).toBe(1)
    expect(edge.output()).toContain('REEL_CDN_URL_KEY')
    // It never joined steering.
    const admin = await t.reel.use('cdn').edges()
    expect(admin.map((e) => e.id)).not.toContain('wrong-key')
  }, 60_000)

  it('without NATS, learns about published titles by polling and pre-fills them from the origin', async () => {
    const edge = startEdge(
      {
        REEL_CDN_URL_KEY: URL_KEY,
        REEL_EDGE_ORIGIN_URL: base,
        REEL_EDGE_ID: 'edge-a',
        REEL_EDGE_POLL_MS: '1000',
        REEL_DATA_DIR: path.join(tmp.dir, 'edge-a'),
      },
      edgePort,
    )
    edges.push(edge)
    await expect
      .poll(() => edge.output().includes('push-filled a published title'), { timeout: 60_000, interval: 250 })
      .toBe(true)
    expect(edge.output()).toContain(titleId)
    const stats = (await edgeStats(edge.url)) as EdgeStats
    // Every object of the title came from the origin before any player asked: a push fill.
    expect(stats.objects).toBeGreaterThan(5)
    expect(stats.originFetches).toBe(stats.objects)
    expect(stats.hits).toBe(0)
    const live = (await t.reel.use('cdn').edges()).find((e) => e.id === 'edge-a')
    expect(live?.live).toBe(true)
  }, 90_000)

  it.skipIf(!hasChromium())(
    'in Chromium, hls.js plays through the edge with signed URLs; segments come from its cache; seeking works',
    async () => {
      const edge = edges.find((e) => e.url.endsWith(`:${edgePort}`))
      if (!edge) throw new Error('the polling test starts the edge this one plays through')
      const before = (await edgeStats(edge.url)) as EdgeStats
      const email = `edge.${Date.now()}@example.com`
      const signUp = await t.call('POST', '/api/v1/accounts', {
        body: { email, password: PASSWORD, plan: 'premium' },
      })
      expect(signUp.statusCode, signUp.body).toBe(201)
      const profiles = await t.call('GET', '/api/v1/profiles', { token: signUp.json().tokens.accessToken })
      const profileName = profiles.json().profiles[0].name as string

      fs.mkdirSync(ARTIFACTS, { recursive: true })
      const chromium = await launchChromium()
      const context = await chromium.browser.newContext()
      const page: Page = await context.newPage()
      page.setDefaultTimeout(30_000)
      const media: { status: number; url: string }[] = []
      const problems: string[] = []
      page.on('response', (r) => {
        if (/\.(m3u8|m4s|mp4)(\?|$)/.test(r.url())) media.push({ status: r.status(), url: r.url() })
        else if (r.status() >= 400 && !/\/api\/v1\/sessions\/refresh/.test(r.url()))
          problems.push(`${r.status()} ${r.url()}`)
      })
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
      try {
        await page.goto(`${base}/login`)
        await page.getByLabel('Email').fill(email)
        await page.getByLabel('Password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Sign in' }).click()
        await page.waitForURL((url) => !url.pathname.startsWith('/login'))
        await page.goto(`${base}/profiles`)
        await page.getByRole('heading', { name: 'Who’s watching?' }).waitFor()
        await page.getByRole('button', { name: new RegExp(profileName) }).click()
        await page.waitForURL(`${base}/`)
        await page.goto(`${base}/title/${titleId}`)
        await page.getByRole('link', { name: /Play/ }).click()
        await page.waitForFunction(videoPast, 1)
        await page.screenshot({ path: path.join(ARTIFACTS, 'edge-process-player.png') })

        // Seek past the middle, into segments the player had not asked for yet.
        const target = await page.evaluate(seekTo, 0.7)
        await page.waitForFunction(videoPast, target + 0.5)
      } catch (e) {
        await page.screenshot({ path: path.join(ARTIFACTS, 'edge-process-failure.png') })
        throw e
      } finally {
        await context.close()
        await chromium.close()
      }

      // Every playlist and segment came from the separate edge, signed, and was served.
      expect(media.length).toBeGreaterThan(3)
      for (const m of media) {
        expect(m.url.startsWith(`${edge.url}/t/`), m.url).toBe(true)
        expect(m.status).toBeLessThan(400)
      }
      expect(media.some((m) => m.url.endsWith('.m4s'))).toBe(true)
      // The pre-filled cache answered: hits, and no new origin fetch for this title.
      const after = (await edgeStats(edge.url)) as EdgeStats
      expect(after.hits - before.hits).toBeGreaterThanOrEqual(media.length - 1)
      expect(after.originFetches).toBe(before.originFetches)
      expect(problems).toEqual([])
      // The same counters in Prometheus form, labelled with the edge's id.
      const metrics = await (await fetch(`${edge.url}/metrics`)).text()
      expect(metrics).toContain(`reel_edge_hits{edge="edge-a"} ${after.hits}`)
      expect(metrics).toContain(`reel_edge_origin_fetches{edge="edge-a"} ${after.originFetches}`)

      // A URL with a forged token is refused by the edge itself (403), with the error shape.
      const forged = media[0]?.url.replace(
        /\/t\/([^/]+)\//,
        (_m, token: string) => `/t/${token.slice(0, -2)}xx/`,
      )
      const refused = await fetch(forged ?? '')
      expect(refused.status).toBe(403)
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('invalid_token')
    },
    180_000,
  )
})

describe.skipIf(!hasPostgres())(
  'API processes sharing a PostgreSQL database without REEL_CDN_URL_KEY',
  () => {
    it('sign media URLs with one key kept in the database (each has its own data dir)', async () => {
      const schema = uniqueName('reel_urlkey')
      const dirs = [tempDir('reel-urlkey-a-'), tempDir('reel-urlkey-b-')]
      const reels = await Promise.all(
        dirs.map((d) =>
          createReel({
            config: loadConfig({
              REEL_DATA_DIR: d.dir,
              REEL_PORT: '0',
              REEL_HOST: '127.0.0.1',
              REEL_JWT_SECRET: 'test-secret-test-secret-test-secret-0123456789',
              REEL_DATABASE_URL: engines.databaseUrl ?? '',
              REEL_DATABASE_SCHEMA: schema,
            }),
            log: createLogger('silent'),
            roles: ['cdn'],
          }),
        ),
      )
      try {
        const [a, b] = reels.map((r) => r.use('cdn')) as [CdnService, CdnService]
        await Promise.all([a.ready(), b.ready()])
        expect(a.signer.fingerprint).toBe(b.signer.fingerprint)
        const token = a.sign({
          sid: 's',
          prefix: 'titles/x/',
          exp: Math.floor(Date.now() / 1000) + 60,
          maxHeight: 0,
        })
        expect(b.signer.check(token, Date.now()).ok).toBe(true)
        // Nothing was written under either data dir: the key is the database's.
        for (const d of dirs) expect(fs.existsSync(path.join(d.dir, 'keys', 'cdn-url.key'))).toBe(false)
      } finally {
        for (const r of reels) await r.stop()
        const admin = createDb({ databaseUrl: engines.databaseUrl })
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin.kysely)
        await admin.close()
        for (const d of dirs) d.cleanup()
      }
    }, 60_000)
  },
)
