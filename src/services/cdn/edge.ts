import { createHash } from 'node:crypto'
import fs from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import path from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { contentTypeFor } from '../../platform/blobs/content-type.js'
import type { Logger } from '../../platform/log.js'
import { gauge } from '../../platform/metrics.js'
import type { TitlePublished } from '../media/events.js'
import { type Origin, OriginMissError } from './origin.js'
import type { UrlGrant, UrlSigner } from './tokens.js'

interface Entry {
  file: string
  size: number
  etag: string
  contentType: string
}

export interface EdgeStats {
  hits: number
  misses: number
  originFetches: number
  originBytes: number
  evictions: number
  usedBytes: number
  objects: number
}

export interface EdgeOptions {
  /** Its name in /metrics (the `edge` label). */
  name?: string
  cacheDir: string
  budgetBytes: number
  origin: Origin
  signer: UrlSigner
  log: Logger
  now?: () => number
}

const IMMUTABLE = 'public, max-age=31536000, immutable'
const PLAYLIST = 'public, max-age=60'
const CORS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'content-length, content-range, etag, accept-ranges',
}

/** The edges of this process, read by /metrics when it is scraped. */
const liveEdges = new Map<string, Edge>()
const EDGE_METRICS: [string, string, (s: EdgeStats) => number][] = [
  ['reel_edge_hits', 'Requests answered from the edge cache (since start)', (s) => s.hits],
  ['reel_edge_misses', 'Requests that had to fill from the origin (since start)', (s) => s.misses],
  [
    'reel_edge_origin_fetches',
    'Objects fetched from the origin, push fill included (since start)',
    (s) => s.originFetches,
  ],
  ['reel_edge_origin_bytes', 'Bytes fetched from the origin (since start)', (s) => s.originBytes],
  ['reel_edge_evictions', 'Objects evicted past the byte budget (since start)', (s) => s.evictions],
  ['reel_edge_cache_bytes', 'Bytes in the edge cache', (s) => s.usedBytes],
  ['reel_edge_cache_objects', 'Objects in the edge cache', (s) => s.objects],
]
for (const [name, help, pick] of EDGE_METRICS) {
  const metric = gauge(name, help, ['edge'])
  ;(metric as unknown as { collect: () => void }).collect = () => {
    metric.reset()
    for (const [edge, e] of liveEdges) metric.set({ edge }, pick(e.stats))
  }
}

/**
 * A CDN edge: an HTTP cache in front of the origin. A miss is filled once however many clients ask
 * at the same time; objects live on disk under the hash of their key (so no request path ever names
 * a file), least recently used ones are evicted past the byte budget.
 */
export class Edge {
  private readonly entries = new Map<string, Entry>()
  private readonly filling = new Map<string, Promise<Entry>>()
  private used = 0
  private readonly counters = { hits: 0, misses: 0, originFetches: 0, originBytes: 0, evictions: 0 }
  private readonly now: () => number

  constructor(private readonly o: EdgeOptions) {
    this.now = o.now ?? Date.now
    // The index lives in memory: a restarted edge starts cold rather than trusting half-written files.
    fs.rmSync(o.cacheDir, { recursive: true, force: true })
    fs.mkdirSync(o.cacheDir, { recursive: true })
    liveEdges.set(o.name ?? 'edge', this)
  }

  get stats(): EdgeStats {
    return { ...this.counters, usedBytes: this.used, objects: this.entries.size }
  }

  get budgetBytes(): number {
    return this.o.budgetBytes
  }

  /** Answers `GET|HEAD|OPTIONS <mount>/t/<token>/<key>`; `rest` is the URL after the mount point. */
  async serve(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    try {
      await this.answer(req, res, rest)
    } catch (e) {
      this.o.log.error({ err: e }, 'edge request failed')
      if (!res.headersSent) fail(res, 500, 'internal_error', 'The edge failed; it has been logged.')
      else res.destroy()
    }
  }

  private async answer(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        ...CORS,
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers': 'range, if-none-match',
        'access-control-max-age': '86400',
      })
      return void res.end()
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return fail(res, 405, 'method_not_allowed', 'An edge serves GET and HEAD only')
    const target = parseTarget(rest)
    if (!target.ok) return fail(res, target.status, target.code, target.message)
    if (!this.o.signer.loaded) await this.o.signer.ready()
    const checked = this.o.signer.check(target.token, this.now())
    if (!checked.ok)
      return checked.reason === 'expired'
        ? fail(res, 403, 'token_expired', 'This media URL has expired; start playback again')
        : fail(res, 403, 'invalid_token', 'This media URL is not signed by reel')
    if (!target.key.startsWith(checked.grant.prefix))
      return fail(res, 403, 'token_scope', 'This media URL is signed for another title')
    let entry: Entry
    try {
      entry = await this.get(target.key)
    } catch (e) {
      if (e instanceof OriginMissError) return fail(res, 404, 'not_found', `No object at ${target.key}`)
      this.o.log.warn(
        { key: target.key, err: e instanceof Error ? e.message : String(e) },
        'origin fetch failed',
      )
      return fail(res, 502, 'origin_unreachable', 'The edge could not reach the origin; try a fallback URL')
    }
    await this.send(req, res, entry, target.key, checked.grant)
  }

  private async send(req: IncomingMessage, res: ServerResponse, entry: Entry, key: string, grant: UrlGrant) {
    const isPlaylist = key.endsWith('.m3u8')
    // Set one by one: V8 is slow (~2.5 µs) at a literal that spreads an object and adds to it.
    const headers: Record<string, string | number> = { ...CORS }
    headers['content-type'] = entry.contentType
    headers['cache-control'] = isPlaylist ? PLAYLIST : IMMUTABLE
    headers['accept-ranges'] = 'bytes'
    if (isPlaylist && grant.maxHeight > 0 && key.endsWith('/master.m3u8')) {
      const text = limitMaster(await fs.promises.readFile(entry.file, 'utf8'), grant.maxHeight)
      const body = Buffer.from(text)
      headers.etag = `"${createHash('sha1').update(body).digest('base64url')}"`
      if (req.headers['if-none-match'] === headers.etag) return void res.writeHead(304, headers).end()
      headers['content-length'] = body.length
      res.writeHead(200, headers)
      return void res.end(req.method === 'HEAD' ? undefined : body)
    }
    headers.etag = entry.etag
    if (req.headers['if-none-match'] === entry.etag) return void res.writeHead(304, headers).end()
    const range = parseRange(req.headers.range, entry.size)
    if (range === 'invalid') {
      res.writeHead(416, {
        ...CORS,
        'content-range': `bytes */${entry.size}`,
        'content-type': 'application/json',
      })
      return void res.end(errorBody('range_not_satisfiable', `The object has ${entry.size} bytes`))
    }
    const [start, end] = range ?? [0, entry.size - 1]
    headers['content-length'] = end - start + 1
    if (range) headers['content-range'] = `bytes ${start}-${end}/${entry.size}`
    res.writeHead(range ? 206 : 200, headers)
    if (req.method === 'HEAD' || entry.size === 0) return void res.end()
    try {
      await pipeline(fs.createReadStream(entry.file, { start, end }), res)
    } catch {
      // The client went away, or the file was evicted between lookup and open: nothing to answer.
      res.destroy()
    }
  }

  /** The cached object, filling it from the origin on a miss (one fill per key at a time). */
  async get(key: string): Promise<Entry> {
    const hit = this.entries.get(key)
    if (hit) {
      this.counters.hits++
      this.entries.delete(key)
      this.entries.set(key, hit)
      return hit
    }
    this.counters.misses++
    let pending = this.filling.get(key)
    if (!pending) {
      pending = this.fill(key).finally(() => this.filling.delete(key))
      this.filling.set(key, pending)
    }
    return pending
  }

  private async fill(key: string): Promise<Entry> {
    this.counters.originFetches++
    const name = createHash('sha256').update(key).digest('hex')
    const file = path.join(this.o.cacheDir, name)
    const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.part`
    const hash = createHash('md5')
    let size = 0
    const body = await this.o.origin.fetch(key)
    const counting = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk)
        size += chunk.length
        done(null, chunk)
      },
    })
    try {
      await pipeline(body, counting, fs.createWriteStream(temp))
      await fs.promises.rename(temp, file)
    } catch (e) {
      await fs.promises.rm(temp, { force: true })
      throw e
    }
    this.counters.originBytes += size
    const entry: Entry = {
      file,
      size,
      etag: `"${hash.digest('base64url')}"`,
      contentType: contentTypeFor(key),
    }
    const previous = this.entries.get(key)
    if (previous) this.used -= previous.size
    this.entries.set(key, entry)
    this.used += size
    this.evict(key)
    return entry
  }

  private evict(keep: string): void {
    for (const [key, entry] of this.entries) {
      if (this.used <= this.o.budgetBytes) return
      if (key === keep) continue
      this.entries.delete(key)
      this.used -= entry.size
      this.counters.evictions++
      fs.rm(entry.file, { force: true }, () => {})
    }
  }

  /** Open Connect fill: every object of a published title, lowest renditions first, then the master and stills. */
  async prefill(title: TitlePublished): Promise<number> {
    let filled = 0
    const renditions = [...title.renditions].sort((a, b) => a.bandwidth - b.bandwidth)
    for (const r of renditions) {
      const playlist = await this.get(r.playlistKey)
      filled++
      const dir = r.playlistKey.slice(0, r.playlistKey.lastIndexOf('/') + 1)
      for (const uri of playlistUris(await fs.promises.readFile(playlist.file, 'utf8'))) {
        const key = path.posix.normalize(dir + uri)
        if (!key.startsWith(title.prefix)) continue
        await this.get(key)
        filled++
      }
    }
    for (const key of [title.masterPlaylistKey, title.posterKey, title.thumbnailsKey]) {
      try {
        await this.get(key)
        filled++
      } catch (e) {
        if (!(e instanceof OriginMissError)) throw e
      }
    }
    return filled
  }
}

/** The URIs a media playlist names: its init segment and its segments. */
export function playlistUris(text: string): string[] {
  const uris: string[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('#EXT-X-MAP:')) {
      const m = /URI="([^"]+)"/.exec(line)
      if (m?.[1]) uris.push(m[1])
    } else if (line && !line.startsWith('#')) uris.push(line)
  }
  return uris.filter((u) => !/^[a-z]+:/i.test(u) && !u.startsWith('/'))
}

/** A master playlist without the variants taller than maxHeight (the plan's limit). */
export function limitMaster(text: string, maxHeight: number): string {
  const lines = text.split('\n')
  const out: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ''
    if (line.startsWith('#EXT-X-STREAM-INF:')) {
      const height = Number(/RESOLUTION=\d+x(\d+)/.exec(line)?.[1] ?? 0)
      if (height > maxHeight) {
        i++
        continue
      }
    }
    if (line.startsWith('#EXT-X-I-FRAME-STREAM-INF:')) {
      const height = Number(/RESOLUTION=\d+x(\d+)/.exec(line)?.[1] ?? 0)
      if (height > maxHeight) continue
    }
    out.push(line)
  }
  return out.join('\n')
}

type Target =
  | { ok: true; token: string; key: string }
  | { ok: false; status: number; code: string; message: string }

const SEGMENT = /^[A-Za-z0-9._-]+$/

/** `/t/<token>/<key>` → token and blob key; traversal in any spelling is refused before anything is read. */
export function parseTarget(rest: string): Target {
  const pathOnly = rest.split('?')[0] ?? ''
  const m = /^\/t\/([^/]+)\/(.+)$/.exec(pathOnly)
  if (!m?.[1] || !m[2])
    return { ok: false, status: 404, code: 'not_found', message: 'Edge URLs are /t/<token>/<key>' }
  let key: string
  try {
    key = decodeURIComponent(m[2])
  } catch {
    return { ok: false, status: 400, code: 'invalid_path', message: 'The path is not valid percent-encoding' }
  }
  const segments = key.split('/')
  if (segments.some((s) => s === '.' || s === '..' || !SEGMENT.test(s)))
    return {
      ok: false,
      status: 400,
      code: 'invalid_path',
      message: 'The path names something an edge does not serve',
    }
  return { ok: true, token: m[1], key }
}

/** One `bytes=` range (the only kind players send); undefined: the whole object. */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | undefined | 'invalid' {
  if (!header) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid'
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0 || size === 0) return 'invalid'
    return [Math.max(0, size - suffix), size - 1]
  }
  const start = Number(m[1])
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  if (start >= size || end < start) return 'invalid'
  return [start, end]
}

const errorBody = (code: string, message: string) => JSON.stringify({ error: { code, message } })

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, {
    ...CORS,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  })
  res.end(errorBody(code, message))
}
