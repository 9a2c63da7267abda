import type { Cache } from '../../platform/cache/cache.js'
import { badRequest, notFound } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import { counter } from '../../platform/metrics.js'
import type { MaturityRating } from '../accounts/rules.js'
import { affinity, type ProfileModule } from './rules.js'
import type { CampaignRow, RecoStore } from './store.js'
import type { RecoTitle, Viewer } from './titles.js'
import { visible } from './titles.js'

export interface Segment {
  /** Countries (ISO 3166 alpha-2) or `*` for every country. */
  regions: string[]
  /** Profiles whose maturity limit is one of these; absent: any. */
  maturityLimits?: MaturityRating[]
  /** Genre ids whose affinity counts with the title's own genres. */
  genres?: string[]
}

export interface CampaignInput {
  name: string
  advertiser: string
  titleId: string
  segment: Segment
  /** Impressions bought. */
  budget: number
  startsAt: string
  endsAt: string
  /** even: spread over the flight; asap: as fast as relevant profiles come. */
  pacing?: 'even' | 'asap'
  /** Impressions per profile per UTC day. */
  frequencyCap?: number
  /** Predicted affinity (0..1) a profile needs for its title before the campaign shows to it. */
  minAffinity?: number
}

export interface Campaign extends Required<CampaignInput> {
  id: string
  impressions: number
  createdAt: string
  updatedAt: string
}

interface Candidate {
  campaign: Campaign
  title: RecoTitle
  score: number
}

/** The campaigns a viewer may be shown, best first, and the list of live campaigns they came from. */
export interface Candidates {
  live: readonly Campaign[]
  list: readonly Candidate[]
}

const DAY_MS = 24 * 3600_000
export const DEFAULT_FREQUENCY_CAP = 3
export const DEFAULT_MIN_AFFINITY = 0.3
/** Even pacing lets a campaign run this share of its budget ahead of a straight line (a slow start is not punished twice). */
const PACING_SLACK = 0.05
/**
 * Impressions a process reserves at a time: LEASE_SIZE, doubled (up to MAX_LEASE_SIZE) while a
 * reservation lasts less than LEASE_REFILL_MS, halved back when one lasts over 8 times that; so a
 * busy campaign costs a few DB writes a second, and what a crashed process held (never served, never
 * over budget) stays small.
 */
const LEASE_SIZE = 10
const MAX_LEASE_SIZE = 200
const LEASE_REFILL_MS = 250
/** How long a process serves its list of live campaigns before reading it again. */
const LIVE_TTL_MS = 2_000

export const dayOf = (ms: number) => Math.floor(ms / DAY_MS)

const impressions = counter('reco_sponsored_impressions_total', 'Sponsored rows served (each one impression)')

function toCampaign(row: CampaignRow): Campaign {
  const doc = JSON.parse(row.doc) as Omit<Campaign, 'impressions' | 'budget'>
  return { ...doc, id: row.id, budget: row.budget, impressions: row.impressions }
}

/** Checks a campaign's rules beyond its JSON shape; throws a 400 with a stable code. */
export function checkCampaign(input: CampaignInput): void {
  const regions = input.segment.regions ?? []
  const limits = input.segment.maturityLimits
  if (regions.length === 0)
    throw badRequest(
      'empty_segment',
      'A campaign targets at least one region (a country code, or * for every one)',
    )
  for (const r of regions)
    if (r !== '*' && !/^[A-Z]{2}$/.test(r))
      throw badRequest('invalid_segment', `"${r}" is not an ISO 3166 alpha-2 country code or *`)
  if (limits && limits.length === 0)
    throw badRequest('empty_segment', 'maturityLimits, when given, names at least one maturity rating')
  if (input.segment.genres && input.segment.genres.length === 0)
    throw badRequest('empty_segment', 'genres, when given, names at least one genre')
  if (!Number.isSafeInteger(input.budget) || input.budget < 1)
    throw badRequest('invalid_budget', 'The budget is a whole number of impressions, at least 1')
  const starts = Date.parse(input.startsAt)
  const ends = Date.parse(input.endsAt)
  if (Number.isNaN(starts) || Number.isNaN(ends))
    throw badRequest('invalid_flight', 'startsAt and endsAt are ISO-8601 times')
  if (ends <= starts) throw badRequest('invalid_flight', 'The flight ends after it starts')
}

/**
 * Sponsored rows: campaigns an advertiser paid for, shown to the profiles of their segment whose
 * predicted affinity for the title passes the campaign's threshold, within budget, pacing and the
 * per-profile frequency cap.
 *
 * Counting, exactly once per page view across processes: a process reserves a few impressions at a
 * time in the DB (one compare-and-set, never past the budget or the pacing allowance) and serves them
 * one per page from memory; what it has not served goes back at shutdown or when the campaign
 * changes. The frequency cap is an atomic counter in the Cache per campaign, profile and day (a
 * cache outage shows no campaign rather than risk going over).
 */
export class Campaigns {
  private live: { at: number; campaigns: Campaign[] } | undefined
  /** Impressions this process reserved in the DB and has not served yet, by campaign. */
  private readonly leases = new Map<
    string,
    { left: number; updatedAt: string; size: number; reservedAt: number; reserving?: Promise<void> }
  >()

  constructor(
    private readonly store: RecoStore,
    private readonly cache: Cache,
    private readonly now: () => number,
    private readonly titleExists: (id: string) => Promise<boolean>,
  ) {}

  async create(input: CampaignInput): Promise<Campaign> {
    checkCampaign(input)
    await this.checkTitle(input.titleId)
    const now = this.now()
    const id = newId()
    const campaign = this.normalize(input, id, now, new Date(now).toISOString(), 0)
    await this.store.putCampaign(this.rowOf(campaign, now))
    this.live = undefined
    return campaign
  }

  async update(id: string, input: CampaignInput): Promise<Campaign> {
    await this.release(id)
    const existing = await this.get(id)
    checkCampaign(input)
    if (input.titleId !== existing.titleId) await this.checkTitle(input.titleId)
    const now = this.now()
    const campaign = this.normalize(input, id, now, existing.createdAt, existing.impressions)
    await this.store.putCampaign(this.rowOf(campaign, now))
    this.live = undefined
    return campaign
  }

  /** A campaign; its impressions are those served (what this process reserved and holds is not counted). */
  async get(id: string): Promise<Campaign> {
    const row = await this.store.campaign(id)
    if (!row) throw notFound('campaign_not_found', 'No campaign with this id')
    return this.served(toCampaign(row))
  }

  async list(): Promise<Campaign[]> {
    return (await this.store.campaigns()).map((row) => this.served(toCampaign(row)))
  }

  async remove(id: string): Promise<void> {
    this.leases.delete(id)
    if (!(await this.store.deleteCampaign(id)))
      throw notFound('campaign_not_found', 'No campaign with this id')
    this.live = undefined
  }

  /** Gives back the impressions this process reserved and did not serve (at shutdown, or before a change). */
  async release(id?: string): Promise<void> {
    for (const [campaignId, lease] of this.leases) {
      if (id !== undefined && campaignId !== id) continue
      await lease.reserving?.catch(() => undefined)
      this.leases.delete(campaignId)
      // Taken out of the lease first: a page being served holds it and must not serve them too.
      const left = lease.left
      lease.left = 0
      if (left > 0) await this.store.returnImpressions(campaignId, left)
    }
  }

  private served(c: Campaign): Campaign {
    return { ...c, impressions: c.impressions - (this.leases.get(c.id)?.left ?? 0) }
  }

  /**
   * One impression of the campaign for the page served at `servedAt`: from this process's
   * reservation, topped up from the DB (up to the pacing allowance at that time).
   */
  private async take(c: Campaign, servedAt: number): Promise<boolean> {
    let lease = this.leases.get(c.id)
    if (!lease) {
      lease = { left: 0, updatedAt: c.updatedAt, size: LEASE_SIZE, reservedAt: 0 }
      this.leases.set(c.id, lease)
    }
    for (;;) {
      if (lease.left > 0) {
        lease.left--
        return true
      }
      if (lease.reserving) {
        await lease.reserving
        continue
      }
      let granted = 0
      const current = lease
      const now = this.now()
      const lasted = now - current.reservedAt
      if (lasted < LEASE_REFILL_MS) current.size = Math.min(MAX_LEASE_SIZE, current.size * 2)
      else if (lasted > 8 * LEASE_REFILL_MS) current.size = Math.max(LEASE_SIZE, Math.floor(current.size / 2))
      current.reservedAt = now
      // Cleared on failure too: a rejected promise left here would fail every later take().
      current.reserving = this.store
        .reserveImpressions(c.id, this.allowance(c, servedAt), current.size)
        .then((n) => {
          granted = n
          current.left += n
        })
        .finally(() => {
          current.reserving = undefined
        })
      await current.reserving
      if (granted === 0 && current.left === 0) return false
    }
  }

  /**
   * The campaign to show this profile now, its impression counted (exactly once for this page
   * view), or undefined. `module` is the profile's precomputed module (for predicted affinity).
   */
  async pick(
    profileId: string,
    viewer: Viewer,
    module: ProfileModule,
    title: (id: string) => RecoTitle | undefined,
  ): Promise<{ campaign: Campaign; title: RecoTitle } | undefined> {
    return this.serve(profileId, await this.candidates(viewer, module, title))
  }

  /**
   * The live campaigns this viewer may be shown, by predicted affinity (no impression counted).
   * `known`, an earlier answer for the same viewer, module and titles, is given back while the
   * live campaigns are the same ones (a page memo keeps it: affinity is not scored per page view).
   */
  async candidates(
    viewer: Viewer,
    module: ProfileModule,
    title: (id: string) => RecoTitle | undefined,
    known?: Candidates,
  ): Promise<Candidates> {
    const now = this.now()
    // The live list while it is fresh, without an await (most page views).
    const live =
      this.live && this.liveFresh(this.live.at, now) ? this.live.campaigns : await this.liveCampaigns(now)
    if (known?.live === live) return known
    const list: Candidate[] = []
    for (const campaign of live) {
      const t = title(campaign.titleId)
      if (!t || !visible(t, viewer, now)) continue
      const { regions, maturityLimits } = campaign.segment
      if (!regions.includes('*') && !regions.includes(viewer.country)) continue
      if (maturityLimits && !maturityLimits.includes(viewer.maturityLimit)) continue
      if (module.excluded.includes(t.id) || module.completed.includes(t.id)) continue
      const score = affinity(module, t, campaign.segment.genres)
      if (score < campaign.minAffinity) continue
      list.push({ campaign, title: t, score })
    }
    list.sort((a, b) => b.score - a.score || a.campaign.id.localeCompare(b.campaign.id))
    return { live, list }
  }

  /** The first candidate under its frequency cap for the profile with an impression left, that impression counted. */
  async serve(
    profileId: string,
    candidates: Candidates,
  ): Promise<{ campaign: Campaign; title: RecoTitle } | undefined> {
    const now = this.now()
    for (const c of candidates.list) {
      const key = `reco:views:{${c.campaign.id}}:${profileId}:${dayOf(now)}`
      let views: number
      try {
        views = await this.cache.incr(key, DAY_MS * 2)
      } catch {
        return undefined
      }
      if (views > c.campaign.frequencyCap) continue
      let taken: boolean
      try {
        taken = await this.take(c.campaign, now)
      } catch (err) {
        await this.cache.incr(key, DAY_MS * 2, -1).catch(() => undefined)
        throw err
      }
      if (taken) {
        impressions.inc()
        return { campaign: c.campaign, title: c.title }
      }
      await this.cache.incr(key, DAY_MS * 2, -1).catch(() => undefined)
    }
    return undefined
  }

  /** Impressions a campaign may have reached by `now`: all of them (asap), or its share of the flight so far. */
  allowance(c: Campaign, now: number): number {
    if (c.pacing === 'asap') return c.budget
    const starts = Date.parse(c.startsAt)
    const ends = Date.parse(c.endsAt)
    const elapsed = Math.min(1, Math.max(0, (now - starts) / (ends - starts)))
    // Rounded to a millionth first: 100 × 0.06 is 6.000000000000001 in floating point.
    return Math.min(
      c.budget,
      Math.max(1, Math.floor(Math.round(c.budget * (elapsed + PACING_SLACK) * 1e6) / 1e6)),
    )
  }

  private async liveCampaigns(now: number): Promise<Campaign[]> {
    if (!this.live || !this.liveFresh(this.live.at, now)) {
      const campaigns = (await this.store.liveCampaigns(now)).map(toCampaign)
      this.live = { at: now, campaigns }
      // Leases of campaigns no longer live (ended, removed, changed in another process) go back.
      const live = new Map(campaigns.map((c) => [c.id, c.updatedAt]))
      const stale = [...this.leases].filter(([id, lease]) => live.get(id) !== lease.updatedAt)
      for (const [id] of stale) await this.release(id)
    }
    return this.live.campaigns
  }

  private liveFresh(at: number, now: number): boolean {
    return now - at <= LIVE_TTL_MS && Date.now() - at <= LIVE_TTL_MS
  }

  private async checkTitle(titleId: string): Promise<void> {
    if (!(await this.titleExists(titleId)))
      throw notFound('title_not_found', `No title ${titleId} in the catalog`)
  }

  private normalize(
    input: CampaignInput,
    id: string,
    now: number,
    createdAt: string,
    impressions: number,
  ): Campaign {
    const segment: Segment = { regions: [...new Set(input.segment.regions)] }
    if (input.segment.maturityLimits) segment.maturityLimits = [...new Set(input.segment.maturityLimits)]
    if (input.segment.genres) segment.genres = [...new Set(input.segment.genres)]
    return {
      id,
      name: input.name,
      advertiser: input.advertiser,
      titleId: input.titleId,
      segment,
      budget: input.budget,
      startsAt: new Date(Date.parse(input.startsAt)).toISOString(),
      endsAt: new Date(Date.parse(input.endsAt)).toISOString(),
      pacing: input.pacing ?? 'even',
      frequencyCap: input.frequencyCap ?? DEFAULT_FREQUENCY_CAP,
      minAffinity: input.minAffinity ?? DEFAULT_MIN_AFFINITY,
      impressions,
      createdAt,
      updatedAt: new Date(now).toISOString(),
    }
  }

  private rowOf(c: Campaign, now: number): CampaignRow {
    const { impressions, budget, ...doc } = c
    return {
      id: c.id,
      doc: JSON.stringify(doc),
      budget,
      impressions,
      starts_at: Date.parse(c.startsAt),
      ends_at: Date.parse(c.endsAt),
      updated_at: now,
    }
  }
}
