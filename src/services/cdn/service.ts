import { BlockList, isIP } from 'node:net'
import { ConfigError } from '../../platform/config.js'
import { badRequest } from '../../platform/errors.js'
import { HashRing } from '../../platform/hash-ring.js'
import type { TitlePublished } from '../media/events.js'
import type { CdnStore, EdgeRow } from './store.js'
import type { UrlGrant, UrlSigner } from './tokens.js'

/** What an edge tells steering every few seconds. */
export interface EdgeReport {
  id: string
  url: string
  /** ISO 3166 alpha-2, or `*` for an edge that serves any region lacking its own. */
  region: string
  capacityBytes: number
  usedBytes: number
  healthy: boolean
}

export interface EdgeView extends EdgeReport {
  reportedAt: string
  live: boolean
}

/** A page of published titles for a polling edge: payloads, their event ids (aligned), the next cursor. */
export interface PublishedPage {
  titles: TitlePublished[]
  eventIds: string[]
  cursor: number
}

/** Where a client fetches a title from: edges in order of preference, then the origin. */
export interface Steering {
  edges: { id: string; url: string }[]
  originUrl: string
}

export interface CdnSettings {
  edgeTimeoutMs: number
  edgesPerTitle: number
  regionHeader: string
  regions: RegionTable
  /** Base URL of this server's /origin (empty: relative to the API). */
  publicUrl: string
}

export interface CdnDeps {
  store: CdnStore
  signer: UrlSigner
  settings: CdnSettings
  now: () => number
}

export const ANY_REGION = '*'
const EDGE_PREFIX = 'edges/'
const LIVE_MEMO_MS = 1000
/** Placements (region, title) kept per read of the live edges. */
const PLACEMENTS_KEPT = 10_000
const EDGE_TOKEN_TTL_S = 600
/** An edge that polls without a cursor is told about the titles published this recently. */
export const RECENT_PUBLISHED_MS = 24 * 3600_000
/** A poll reads again the rows below its cursor recorded this long before the latest of them (commit delay and clock skew between processes). */
export const PUBLISHED_LOOKBACK_MS = 2 * 60_000
/** Published titles are kept this long for polling edges. */
const PUBLISHED_KEPT_MS = 30 * 24 * 3600_000

/**
 * Steering: the registry of edges (live while they report and say they are healthy), and for a
 * title and a client region the edges that should serve it: the region's edges placed by
 * consistent hashing, so each title lives on few edges and their caches stay hot.
 */
export class CdnService {
  private live: { at: number; edges: EdgeRow[] } | undefined
  private placed: { edges: EdgeRow[] | undefined; byTitle: Map<string, EdgeRow[]> } = {
    edges: undefined,
    byTitle: new Map(),
  }
  private readonly rings = new Map<string, HashRing>()

  constructor(private readonly deps: CdnDeps) {}

  get signer(): UrlSigner {
    return this.deps.signer
  }

  /** Resolves once the URL signing key is at hand (it may come from the database). */
  ready(): Promise<void> {
    return this.deps.signer.ready()
  }

  get originUrl(): string {
    return `${this.deps.settings.publicUrl}/origin`
  }

  async report(report: EdgeReport): Promise<void> {
    checkReport(report)
    await this.deps.store.saveEdge({
      id: report.id,
      url: report.url.replace(/\/+$/, ''),
      region: report.region,
      capacity_bytes: report.capacityBytes,
      used_bytes: report.usedBytes,
      healthy: report.healthy ? 1 : 0,
      reported_at: this.deps.now(),
    })
    this.live = undefined
  }

  async edges(): Promise<EdgeView[]> {
    const since = this.deps.now() - this.deps.settings.edgeTimeoutMs
    return (await this.deps.store.allEdges()).map((e) => ({
      id: e.id,
      url: e.url,
      region: e.region,
      capacityBytes: e.capacity_bytes,
      usedBytes: e.used_bytes,
      healthy: e.healthy === 1,
      reportedAt: new Date(e.reported_at).toISOString(),
      live: e.healthy === 1 && e.reported_at >= since,
    }))
  }

  /** The edges a title is placed on for a region (its own edges, else the any-region ones), best first. */
  async placement(titleId: string, region: string): Promise<EdgeRow[]> {
    const live = await this.liveEdges()
    // The same live edges place a title alike: kept until the next read of the registry.
    if (this.placed.edges !== live || this.placed.byTitle.size >= PLACEMENTS_KEPT)
      this.placed = { edges: live, byTitle: new Map() }
    const key = `${region}\n${titleId}`
    let placed = this.placed.byTitle.get(key)
    if (!placed) {
      placed = this.place(live, titleId, region)
      this.placed.byTitle.set(key, placed)
    }
    return placed
  }

  private place(live: EdgeRow[], titleId: string, region: string): EdgeRow[] {
    let pool = live.filter((e) => e.region === region)
    if (pool.length === 0) pool = live.filter((e) => e.region === ANY_REGION)
    if (pool.length === 0) pool = live
    const ids = pool.map((e) => e.id)
    const ringKey = ids.join('\n')
    let ring = this.rings.get(ringKey)
    if (!ring) {
      if (this.rings.size > 64) this.rings.clear()
      ring = new HashRing(ids)
      this.rings.set(ringKey, ring)
    }
    const byId = new Map(pool.map((e) => [e.id, e]))
    return ring
      .nodesFor(titleId, this.deps.settings.edgesPerTitle)
      .map((id) => byId.get(id))
      .filter((e): e is EdgeRow => e !== undefined)
  }

  async steer(titleId: string, region: string): Promise<Steering> {
    if (!this.deps.signer.loaded) await this.deps.signer.ready()
    const placed = await this.placement(titleId, region)
    return { edges: placed.map((e) => ({ id: e.id, url: e.url })), originUrl: this.originUrl }
  }

  /** Whether steering places the title on this edge (what it push-fills). */
  async assigned(edgeId: string, titleId: string): Promise<boolean> {
    const edge = (await this.liveEdges()).find((e) => e.id === edgeId)
    if (!edge) return false
    return (await this.placement(titleId, edge.region)).some((e) => e.id === edgeId)
  }

  /** `media.title.published`: kept for the edges that learn about new titles by polling. */
  async recordPublished(eventId: string, publishedAt: number, title: TitlePublished): Promise<void> {
    await this.deps.store.recordPublished({
      event_id: eventId,
      title_id: title.titleId,
      data: JSON.stringify(title),
      published_at: publishedAt,
      recorded_at: this.deps.now(),
    })
    await this.deps.store.prunePublished(this.deps.now() - PUBLISHED_KEPT_MS)
  }

  /**
   * For an edge without the event bus: the titles published after `after` (a cursor from an earlier
   * answer; none: those of the last day) that steering places on it, their event ids, and the cursor
   * to ask with next. The rows at or below the cursor recorded within PUBLISHED_LOOKBACK_MS of the
   * latest of them come again (a seq taken by one process before another's but committed after it would be skipped
   * otherwise); the edge skips the event ids it has had. A cursor above every recorded seq (the log
   * restarted, or pruned empty) is answered as no cursor, with a cursor from this log.
   */
  async publishedFor(edgeId: string, after: number | undefined, limit: number): Promise<PublishedPage> {
    const { store, now } = this.deps
    const at = now()
    let rows = await store.published(after, at - RECENT_PUBLISHED_MS, limit)
    let cursor = rows.at(-1)?.seq ?? after
    if (after !== undefined && rows.length === 0) {
      const last = await store.lastPublishedSeq()
      if (after > last) {
        rows = await store.published(undefined, at - RECENT_PUBLISHED_MS, limit)
        cursor = rows.at(-1)?.seq ?? last
      } else rows = await store.recordedBehind(after, PUBLISHED_LOOKBACK_MS, limit)
    } else if (after !== undefined)
      rows = [...(await store.recordedBehind(after, PUBLISHED_LOOKBACK_MS, limit)), ...rows]
    const titles: TitlePublished[] = []
    const eventIds: string[] = []
    for (const row of rows)
      if (await this.assigned(edgeId, row.title_id)) {
        titles.push(JSON.parse(row.data) as TitlePublished)
        eventIds.push(row.event_id)
      }
    return { titles, eventIds, cursor: cursor ?? (await store.lastPublishedSeq()) }
  }

  /** The client's region: a trusted header, else the address table, else the account's country. */
  regionOf(country: string, headers: Record<string, string | string[] | undefined>, address: string): string {
    const { regionHeader, regions } = this.deps.settings
    if (regionHeader) {
      const given = headers[regionHeader]
      const value = (Array.isArray(given) ? given[0] : given)?.trim().toUpperCase()
      if (value && /^[A-Z]{2}$/.test(value)) return value
    }
    return regions.lookup(address) ?? country
  }

  sign(grant: UrlGrant): string {
    return this.deps.signer.sign(grant)
  }

  /** As sign, batched with the others asked for in this turn of the event loop (see UrlSigner.signSoon). */
  signSoon(grant: UrlGrant): Promise<string> {
    return this.deps.signer.signSoon(grant)
  }

  /** The token an edge sends with its reports and placement questions. */
  edgeToken(edgeId: string): string {
    return this.deps.signer.sign({
      sid: `edge:${edgeId}`,
      prefix: EDGE_PREFIX,
      exp: Math.floor(this.deps.now() / 1000) + EDGE_TOKEN_TTL_S,
      maxHeight: 0,
    })
  }

  /** The edge id a report token was minted for, or undefined. */
  edgeOf(token: string): string | undefined {
    const checked = this.deps.signer.check(token, this.deps.now())
    if (!checked.ok || checked.grant.prefix !== EDGE_PREFIX || !checked.grant.sid.startsWith('edge:'))
      return undefined
    return checked.grant.sid.slice('edge:'.length)
  }

  private async liveEdges(): Promise<EdgeRow[]> {
    const now = this.deps.now()
    if (this.live && now - this.live.at < LIVE_MEMO_MS && now >= this.live.at) return this.live.edges
    const edges = (await this.deps.store.edgesReportedSince(now - this.deps.settings.edgeTimeoutMs)).filter(
      (e) => e.healthy === 1,
    )
    this.live = { at: now, edges }
    return edges
  }
}

function checkReport(r: EdgeReport): void {
  if (!/^[A-Za-z0-9._:-]{1,100}$/.test(r.id))
    throw badRequest('invalid_edge_id', 'Edge ids are 1-100 letters, digits, . _ : -')
  if (r.region !== ANY_REGION && !/^[A-Z]{2}$/.test(r.region))
    throw badRequest('invalid_region', 'region is an ISO 3166 alpha-2 code or *')
  // An edge inside an API process may be reached at a path of that same origin.
  if (/^\/[A-Za-z0-9/_-]*$/.test(r.url)) return
  let url: URL
  try {
    url = new URL(r.url)
  } catch {
    throw badRequest('invalid_edge_url', 'url is an absolute http(s) URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw badRequest('invalid_edge_url', 'url is http(s)')
}

/** CIDR → country entries (IPv4 and IPv6), most specific first. */
export class RegionTable {
  private readonly entries: { list: BlockList; country: string; bits: number }[] = []

  static parse(raw: string, variable = 'REEL_CDN_REGIONS'): RegionTable {
    const table = new RegionTable()
    for (const item of raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})=([A-Za-z]{2})$/.exec(item)
      const family = m?.[1] ? isIP(m[1]) : 0
      const bits = Number(m?.[2])
      if (!m?.[1] || !m[3] || family === 0 || bits > (family === 4 ? 32 : 128))
        throw new ConfigError(variable, `expected CIDR=COUNTRY entries such as 10.1.0.0/16=DE, got "${item}"`)
      const list = new BlockList()
      list.addSubnet(m[1], bits, family === 4 ? 'ipv4' : 'ipv6')
      table.entries.push({ list, country: m[3].toUpperCase(), bits })
    }
    table.entries.sort((a, b) => b.bits - a.bits)
    return table
  }

  lookup(address: string): string | undefined {
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
    const family = isIP(plain)
    if (family === 0) return undefined
    return this.entries.find((e) => e.list.check(plain, family === 4 ? 'ipv4' : 'ipv6'))?.country
  }
}
