import { execFile } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EventEnvelope } from '../src/platform/bus/bus.js'
import { AppError } from '../src/platform/errors.js'
import { newId } from '../src/platform/ids.js'
import { createLogger } from '../src/platform/log.js'
import { Edge } from '../src/services/cdn/edge.js'
import { type EdgeServer, SteeringClient, startEdgeServer } from '../src/services/cdn/edge-server.js'
import { HttpOrigin } from '../src/services/cdn/origin.js'
import { contentSecurityPolicy } from '../src/services/gateway/index.js'
import type { TitlePublished } from '../src/services/media/events.js'
import { tempDir } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const run = promisify(execFile)
const PASSWORD = 'correct horse battery'
const log = createLogger('silent')
const dirs = tempDir('reel-cdn-')
afterAll(() => dirs.cleanup())
let seq = 0
type ErrorJson = { error: { code: string } }

/** GET with the path sent byte for byte (fetch would normalize `..` away). */
function rawGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const u = new URL(url)
  const rawPath = url.slice(url.indexOf('/', u.protocol.length + 2))
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: rawPath, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

/** Media titles land in the catalog unrated and shown nowhere; an administrator would complete them. */
async function publishEverywhere(t: TestReel, titleId: string): Promise<void> {
  try {
    await t.reel.use('catalog').update(titleId, { maturityRating: 'PG', availability: [{ region: '*' }] })
  } catch (e) {
    if (!(e instanceof AppError && e.status === 404)) throw e
  }
}

describe('CDN edges and steering', () => {
  let t: TestReel
  let base: string
  let titleId: string
  let published: TitlePublished | undefined
  const servers: EdgeServer[] = []

  beforeAll(async () => {
    t = await startReel('sqlite', {
      REEL_MEDIA_CHUNK_SECONDS: '6',
      REEL_MEDIA_LADDER: '360p-365k,234p-145k',
      REEL_MEDIA_PRESET: 'superfast',
      REEL_MEDIA_WORKERS: '1',
      REEL_CDN_REGION_HEADER: 'x-client-country',
      REEL_CDN_EDGE_TIMEOUT_MS: '5000',
      REEL_CDN_EDGES_PER_TITLE: '2',
    })
    base = `http://127.0.0.1:${(t.reel.http.server.address() as AddressInfo).port}`
    await t.reel.ports.bus.subscribe<TitlePublished>({
      name: 'test-cdn-published',
      types: ['media.title.published'],
      handler: async (e: EventEnvelope<TitlePublished>) => {
        published = e.data
      },
    })
    const file = path.join(dirs.dir, 'clip.mp4')
    await run('ffmpeg', [
      ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=24:duration=4'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=4'],
      ...[
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-pix_fmt',
        'yuv420p',
        '-g',
        '48',
        '-c:a',
        'aac',
        '-shortest',
        file,
      ],
    ])
    const media = t.reel.use('media')
    titleId = newId()
    await media.beginUpload({ titleId, title: 'CDN clip' })
    await media.finishUpload(titleId, file)
    const deadline = Date.now() + 180_000
    while ((await media.titleMedia(titleId)).status !== 'available') {
      if (Date.now() > deadline) throw new Error('title did not become available')
      await new Promise((r) => setTimeout(r, 250))
    }
    await publishEverywhere(t, titleId)
  }, 240_000)
  afterAll(async () => {
    for (const s of servers) await s.close()
    await t?.stop()
  })

  const signer = () => t.reel.use('cdn').signer
  const tokenFor = (prefix: string, expInS = 600, maxHeight = 0) =>
    signer().sign({ sid: 'test', prefix, exp: Math.floor(t.clock.now / 1000) + expInS, maxHeight })

  async function edgeServer(id: string, options: { budget?: number; origin?: string } = {}) {
    const edge = new Edge({
      cacheDir: path.join(dirs.dir, `edge-${id}-${seq++}`),
      budgetBytes: options.budget ?? 1024 ** 3,
      origin: new HttpOrigin(options.origin ?? base, signer(), id, () => t.clock.now),
      signer: signer(),
      log,
      now: () => t.clock.now,
    })
    const server = await startEdgeServer(edge, { port: 0, host: '127.0.0.1' })
    servers.push(server)
    return { edge, server, steering: new SteeringClient(base, signer(), id, log) }
  }

  async function keysOf(): Promise<string[]> {
    return (await t.reel.ports.blobs.list(`titles/${titleId}/hls/`)).map((b) => b.key)
  }

  async function signUp(): Promise<{ token: string; profileId: string }> {
    const res = await t.call('POST', '/api/v1/accounts', {
      body: { email: `cdn.${Date.now()}.${seq++}@example.com`, password: PASSWORD, plan: 'premium' },
    })
    const token = res.json().tokens.accessToken as string
    const profileId = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles[0].id as string
    return { token, profileId }
  }

  it('serves through the cache: content types, Range, ETag/304, CORS, one origin fetch for 20 concurrent misses', async () => {
    const { edge, server } = await edgeServer('a')
    const token = tokenFor(`titles/${titleId}/`)
    const segment = (await keysOf()).find((k) => k.endsWith('.m4s')) ?? ''
    const url = `${server.url}/t/${token}/${segment}`
    const all = await Promise.all(Array.from({ length: 20 }, () => fetch(url)))
    expect(all.map((r) => r.status)).toEqual(Array(20).fill(200))
    expect(edge.stats.originFetches).toBe(1)
    const first = all[0]
    expect(first?.headers.get('content-type')).toBe('video/iso.segment')
    expect(first?.headers.get('access-control-allow-origin')).toBe('*')
    expect(first?.headers.get('cache-control')).toContain('immutable')
    const bytes = Buffer.from(await (first as Response).arrayBuffer())
    const original = (await t.reel.ports.blobs.get(segment)).body
    const chunks: Buffer[] = []
    for await (const c of original) chunks.push(c as Buffer)
    expect(bytes.equals(Buffer.concat(chunks))).toBe(true)
    const ranged = await fetch(url, { headers: { range: 'bytes=10-19' } })
    expect(ranged.status).toBe(206)
    expect(ranged.headers.get('content-range')).toBe(`bytes 10-19/${bytes.length}`)
    expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(10, 20))).toBe(true)
    expect((await fetch(url, { headers: { range: `bytes=${bytes.length + 5}-` } })).status).toBe(416)
    const etag = first?.headers.get('etag') ?? ''
    expect((await fetch(url, { headers: { 'if-none-match': etag } })).status).toBe(304)
    const playlist = await fetch(`${server.url}/t/${token}/titles/${titleId}/hls/master.m3u8`)
    expect(playlist.headers.get('content-type')).toBe('application/vnd.apple.mpegurl')
    const init = (await keysOf()).find((k) => k.endsWith('.mp4')) ?? ''
    expect((await fetch(`${server.url}/t/${token}/${init}`)).headers.get('content-type')).toBe('video/mp4')
    const preflight = await fetch(url, { method: 'OPTIONS' })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-headers')).toContain('range')
    expect(edge.stats.originFetches).toBe(3)
    const missing = await fetch(`${server.url}/t/${token}/titles/${titleId}/hls/nope.m4s`)
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as ErrorJson).error.code).toBe('not_found')
  })

  it('offers only the renditions up to the plan height in the master playlist', async () => {
    const { server } = await edgeServer('h')
    const master = async (h: number) =>
      (
        await fetch(
          `${server.url}/t/${tokenFor(`titles/${titleId}/`, 600, h)}/titles/${titleId}/hls/master.m3u8`,
        )
      ).text()
    expect(await master(0)).toContain('x360')
    expect(await master(240)).not.toContain('x360')
    expect(await master(240)).toContain('x234')
  })

  it('refuses traversal in any spelling (400/404) and never serves outside the cache root', async () => {
    const { server } = await edgeServer('p')
    const token = tokenFor(`titles/${titleId}/`)
    for (const p of [
      `titles/${titleId}/../../../../etc/passwd`,
      `titles/${titleId}/hls/%2e%2e/%2e%2e/%2e%2e/etc/passwd`,
      `titles/${titleId}/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd`,
      `titles/${titleId}/hls/%252e%252e/x`,
      `titles/${titleId}/hls/..%5c..%5cx`,
      `titles/${titleId}/hls/%00.m3u8`,
      `titles/${titleId}/hls/%E0%A4%A`,
    ]) {
      for (const mount of [
        `${server.url}/t/${token}/`,
        `${base}/edge/t/${token}/`,
        `${base}/origin/t/${token}/`,
      ]) {
        const res = await rawGet(mount + p)
        expect([400, 404], `${mount}${p} → ${res.status}`).toContain(res.status)
        expect(res.body.toString()).not.toContain('root:')
      }
    }
  })

  it('refuses forged, expired and other-title tokens (403), offline', async () => {
    const { server, edge } = await edgeServer('tok')
    const key = `titles/${titleId}/hls/master.m3u8`
    const good = tokenFor(`titles/${titleId}/`)
    const forged = `${good.slice(0, -3)}${good.at(-3) === 'A' ? 'B' : 'A'}${good.slice(-2)}`
    const expect403 = async (token: string, code: string) => {
      const res = await fetch(`${server.url}/t/${token}/${key}`)
      expect(res.status).toBe(403)
      expect(((await res.json()) as ErrorJson).error.code).toBe(code)
    }
    await expect403(forged, 'invalid_token')
    await expect403('not-a-token', 'invalid_token')
    await expect403(tokenFor(`titles/${titleId}/`, -1), 'token_expired')
    await expect403(tokenFor(`titles/${newId()}/`), 'token_scope')
    expect(edge.stats.originFetches).toBe(0)
    expect((await fetch(`${base}/origin/t/${forged}/${key}`)).status).toBe(403)
  })

  it('keeps its cache within the byte budget (least recently used out)', async () => {
    const keys = await keysOf()
    const sizes = await Promise.all(keys.map(async (k) => (await t.reel.ports.blobs.head(k))?.size ?? 0))
    const budget = Math.ceil(Math.max(...sizes) * 1.5)
    const { server, edge } = await edgeServer('lru', { budget })
    const token = tokenFor(`titles/${titleId}/`)
    for (const k of keys) expect((await fetch(`${server.url}/t/${token}/${k}`)).status).toBe(200)
    expect(edge.stats.usedBytes).toBeLessThanOrEqual(budget)
    expect(edge.stats.evictions).toBeGreaterThan(0)
    const before = edge.stats.originFetches
    await fetch(`${server.url}/t/${token}/${keys[0]}`)
    expect(edge.stats.originFetches).toBe(before + 1)
  })

  it('answers 502 with the error shape when the origin is unreachable, and stays up', async () => {
    const { server } = await edgeServer('down', { origin: 'http://127.0.0.1:9' })
    const res = await fetch(
      `${server.url}/t/${tokenFor(`titles/${titleId}/`)}/titles/${titleId}/hls/master.m3u8`,
    )
    expect(res.status).toBe(502)
    expect(((await res.json()) as ErrorJson).error.code).toBe('origin_unreachable')
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
  })

  it('steers by region and consistent hashing; a killed edge drops out and the next play goes elsewhere', async () => {
    const one = await edgeServer('de-1')
    const two = await edgeServer('de-2')
    const three = await edgeServer('de-3')
    const edges = [one, two, three]
    const report = async (e: (typeof edges)[number], healthy = true) =>
      e.steering.report({ url: e.server.url, region: 'DE', capacityBytes: 1e9, usedBytes: 0, healthy })
    for (const e of edges) await report(e)
    const u = await signUp()
    const play = async () => {
      const res = await t.call('POST', '/api/v1/playback', {
        token: u.token,
        body: { profileId: u.profileId, titleId },
        headers: { 'x-client-country': 'DE' },
      })
      expect(res.statusCode, res.body).toBe(201)
      const s = res.json()
      await t.call('DELETE', `/api/v1/playback/${s.sessionId}`, { token: u.token })
      return s as { manifestUrl: string; fallbackUrls: string[] }
    }
    const first = await play()
    expect((await play()).manifestUrl.split('/t/')[0]).toBe(first.manifestUrl.split('/t/')[0])
    expect(first.fallbackUrls).toHaveLength(2)
    expect(first.fallbackUrls[1]).toMatch(/^\/origin\/t\//)
    const serving = edges.find((e) => first.manifestUrl.startsWith(e.server.url))
    expect(serving).toBeDefined()
    const played = await fetch(first.manifestUrl)
    expect(played.status).toBe(200)
    // The serving edge dies; the others keep reporting.
    await serving?.server.close()
    t.clock.advance(6_000)
    for (const e of edges) if (e !== serving) await report(e)
    const next = await play()
    expect(next.manifestUrl.startsWith(serving?.server.url ?? '-')).toBe(false)
    expect((await fetch(next.manifestUrl)).status).toBe(200)
    // An edge that reports itself unhealthy is skipped too.
    const current = edges.find((e) => next.manifestUrl.startsWith(e.server.url))
    if (current) await report(current, false)
    t.clock.advance(1_100)
    const third = await play()
    expect(third.manifestUrl.startsWith(current?.server.url ?? '-')).toBe(false)
    // Titles spread over a region's edges.
    const cdn = t.reel.use('cdn')
    for (const e of edges) if (e !== serving) await report(e)
    t.clock.advance(1_100)
    const owners = new Set<string>()
    for (let i = 0; i < 50; i++) owners.add((await cdn.placement(`title-${i}`, 'DE'))[0]?.id ?? '')
    expect(owners.size).toBe(2)
  })

  it('push-fills a published title (built-in edge via the bus; a separate edge via prefill): plays without origin fetches', async () => {
    await expect
      .poll(async () => (await t.call('GET', '/edge/stats')).json().objects, { timeout: 30_000 })
      .toBeGreaterThan(3)
    const before = (await t.call('GET', '/edge/stats')).json().originFetches
    const token = tokenFor(`titles/${titleId}/`)
    for (const k of await keysOf())
      expect((await t.call('GET', `/edge/t/${token}/${k}`)).statusCode).toBe(200)
    expect((await t.call('GET', '/edge/stats')).json().originFetches).toBe(before)
    expect(published?.titleId).toBe(titleId)
    const { edge, server } = await edgeServer('fill')
    const filled = await edge.prefill(published as TitlePublished)
    expect(filled).toBeGreaterThan(3)
    const fetched = edge.stats.originFetches
    for (const k of await keysOf()) expect((await fetch(`${server.url}/t/${token}/${k}`)).status).toBe(200)
    expect(edge.stats.originFetches).toBe(fetched)
  })

  it('refuses edge reports without a valid edge token (403) and bad reports (400)', async () => {
    const res = await t.call('POST', '/api/v1/cdn/edges/x/report', {
      body: { url: 'http://e', region: 'DE', capacityBytes: 1, usedBytes: 0, healthy: true },
      headers: { authorization: `Bearer ${tokenFor('titles/x/')}` },
    })
    expect(res.statusCode).toBe(403)
    const edgeToken = t.reel.use('cdn').edgeToken('x')
    const bad = await t.call('POST', '/api/v1/cdn/edges/x/report', {
      body: { url: 'ftp://e', region: 'DE', capacityBytes: 1, usedBytes: 0, healthy: true },
      headers: { authorization: `Bearer ${edgeToken}` },
    })
    expect(bad.statusCode).toBe(400)
    // What a polling edge asks for new titles: its own token only, a whole cursor.
    const published = (token: string, id = 'x', query = '') =>
      t.call('GET', `/api/v1/cdn/edges/${id}/published${query}`, {
        headers: { authorization: `Bearer ${token}` },
      })
    expect((await published(tokenFor('titles/x/'))).statusCode).toBe(403)
    expect((await published(edgeToken, 'y')).statusCode).toBe(403)
    expect((await published(edgeToken, 'x', '?after=-1')).statusCode).toBe(400)
    expect((await published(edgeToken, 'x', '?after=abc')).statusCode).toBe(400)
    expect((await published(edgeToken, 'x', "?after=1'%20or%201=1")).statusCode).toBe(400)
    expect((await published(edgeToken, 'x', '?after=99999999999999999999999')).statusCode).toBe(400)
    const page = await published(edgeToken)
    expect(page.statusCode).toBe(200)
    // Edge x never reported, so steering places nothing on it; the cursor still moves past what exists.
    expect(page.json().titles).toEqual([])
    expect(page.json().cursor).toBeGreaterThan(0)
  })

  it("the web app's Content-Security-Policy lets media and connections reach the configured edges' origins", () => {
    const csp = contentSecurityPolicy(['https://edge-1.example.net:8443/', 'http://10.0.0.7:8090'])
    expect(csp).toContain("media-src 'self' blob: https://edge-1.example.net:8443 http://10.0.0.7:8090")
    expect(csp).toContain("connect-src 'self' https://edge-1.example.net:8443 http://10.0.0.7:8090")
    expect(csp).toContain("script-src 'self';")
    expect(contentSecurityPolicy([])).toContain("connect-src 'self';")
  })
})
