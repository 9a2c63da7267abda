import { LRUCache } from 'lru-cache'
import type { Auth } from '../../platform/auth.js'
import type { Bus, PublishInput } from '../../platform/bus/bus.js'
import type { Cache } from '../../platform/cache/cache.js'
import { conflict, forbidden, notFound } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import type { Logger } from '../../platform/log.js'
import { ratingRank } from '../accounts/rules.js'
import type { AccountsService } from '../accounts/service.js'
import type { BillingService } from '../billing/service.js'
import type { CdnService } from '../cdn/service.js'
import {
  PLAYBACK_HEARTBEAT,
  PLAYBACK_STARTED,
  PLAYBACK_STOPPED,
  type PlaybackEventBase,
  type PlaybackHeartbeat,
  type PlaybackStarted,
  type PlaybackStopped,
} from './events.js'
import type { PlaybackStore, ProgressRow, SessionRow } from './store.js'
import { availableIn, type EpisodeRef, type PlayableTitles } from './titles.js'

export type PlayerState = PlaybackHeartbeat['state']

export interface PlaybackSettings {
  heartbeatIntervalMs: number
  streamTimeoutMs: number
  tokenTtlS: number
  /** Rows waiting (sessions and positions) that start a flush before its timer (see flushEarly()). */
  flushRows: number
}

export interface PlaybackDeps {
  store: PlaybackStore
  cache: Cache
  bus: Bus
  billing: () => BillingService
  accounts: () => AccountsService
  cdn: () => CdnService
  titles: PlayableTitles
  log: Logger
  now: () => number
  settings: PlaybackSettings
}

export interface StartInput {
  profileId: string
  titleId: string
  episodeId?: string
  device?: string
}

export interface ClientInfo {
  headers: Record<string, string | string[] | undefined>
  address: string
  userAgent?: string
}

export interface Started {
  sessionId: string
  titleId: string
  episodeId: string | null
  manifestUrl: string
  fallbackUrls: string[]
  resumeAtMs: number
  durationMs: number
  maxHeight: number
  heartbeatIntervalMs: number
  region: string
}

export interface HeartbeatInput {
  positionMs: number
  state: PlayerState
  bitrate?: number
  bufferMs?: number
  rebuffers?: number
}

export interface ProgressView {
  titleId: string
  episodeId: string | null
  type: 'movie' | 'episode'
  seriesId: string | null
  positionMs: number
  durationMs: number
  completed: boolean
  updatedAt: string
}

/** A position in the last 5 % of a title (its credits) counts as watched. */
export const COMPLETION_RATIO = 0.95
const SESSION_TTL_MS = 24 * 3600_000
const POSITION_TTL_MS = 7 * 24 * 3600_000
/** "Never watched" is remembered too, so a first play does not ask the DB (a report overwrites it). */
const NO_POSITION_TTL_MS = 3600_000
const NO_POSITION = '-'
/** A session's slot in the account's stream set is refreshed at most this often by heartbeats. */
const SLOT_REFRESH_MS = 5_000
const MAX_TRACKED_STREAMS = 200
/** Events published in one turn of the event loop (one embedded-bus batch) when a flush has many. */
const PUBLISH_SLICE = 500
/** A graceful shutdown retries a DB or Bus that fails for this long before giving up what is left. */
const DRAIN_TIMEOUT_MS = 10_000

const keys = {
  session: (id: string) => `playback:session:${id}`,
  /** One set per account and window of streamTimeoutMs: a window's set holds only the sessions seen in it. */
  streams: (accountId: string, window: number) => `playback:streams:{${accountId}}:${window}`,
  position: (profileId: string, mediaId: string) => `playback:position:${profileId}:${mediaId}`,
}

interface LiveSession {
  row: SessionRow
  /** For an episode: its season (undefined: not looked up yet). */
  seasonId?: string | null
  stopped: boolean
  /** Where and when the last report left the client (for watchedMs). */
  lastPositionMs: number
  lastAt: number
  slotRaisedAt: number
}

/** The heartbeats of one session since the last flush, coalesced into one event at its place in the outbox. */
interface PendingHeartbeat {
  kind: 'heartbeat'
  dropped: boolean
  session: LiveSession
  state: PlayerState
  positionMs: number
  at: number
  watchedMs: number
  bitrate?: number
  bufferMs?: number
  rebuffers?: number
}

/** An event waiting in the outbox for the next flush: ready to publish, or a session's coalesced heartbeats. */
type Outgoing = { kind: 'event'; event: PublishInput } | PendingHeartbeat

export const completed = (positionMs: number, durationMs: number) =>
  durationMs > 0 && positionMs >= durationMs * COMPLETION_RATIO

/**
 * Play sessions: the rules of pressing play (entitlement, profile, availability, maturity, stream
 * slots), where each profile left off, and the events the rest of reel learns from.
 *
 * Starts and heartbeats are answered from memory and the Cache port (where the stream slots live);
 * session rows, positions and the playback events reach the DB and the Bus together at `flush`
 * (write-behind, every REEL_PLAYBACK_FLUSH_MS): one transaction and one batch of publishes for
 * everything since the last one. A stop flushes before it answers, and so does a graceful shutdown.
 */
export class PlaybackService {
  private readonly live = new LRUCache<string, LiveSession>({ max: 50_000 })
  private progressPending = new Map<string, ProgressRow>()
  private sessionsPending = new Map<string, SessionRow>()
  private heartbeatsPending = new Map<string, PendingHeartbeat>()
  private outbox: Outgoing[] = []
  private flushing: Promise<void> | undefined
  /** An early flush (see flushEarly()) is running, or none may start before this time (ms). */
  private earlyFlushing = false
  private earlyFlushAfter = 0
  /** What the flush in progress writes (neither pending nor in the DB until it commits). */
  private progressFlushing: Map<string, ProgressRow> | undefined
  private sessionsFlushing: Map<string, SessionRow> | undefined
  /** Flushed events waiting for the Bus, oldest first, and the batch being published (one at a time). */
  private unpublished: PublishInput[] = []
  private publishing: Promise<void> | undefined
  /** A publish failed: what is left waits for the next flush (no retry loop while the Bus is away). */
  private publishHeld = false
  private lastPublishError: unknown
  /** A flush asked for while one runs: every caller until it begins shares it (group commit). */
  private queuedFlush: Promise<void> | undefined

  constructor(private readonly deps: PlaybackDeps) {}

  get settings(): PlaybackSettings {
    return this.deps.settings
  }

  async start(auth: Auth, input: StartInput, client: ClientInfo): Promise<Started> {
    const { deps } = this
    // Asked together (one round trip to the caches); refused in this order: plan, profile, title.
    const [plan, member, playable] = await Promise.allSettled([
      deps.billing().entitlement(auth.accountId),
      deps.accounts().profile(auth.accountId, input.profileId),
      deps.titles.resolve(input.titleId, input.episodeId),
    ])
    const entitlement = settled(plan)
    if (!entitlement.active || entitlement.maxStreams < 1)
      throw forbidden('no_active_subscription', 'Choose a plan to start watching')
    const profile = settled(member)
    let title = settled(playable)
    if (title.type === 'episode' && input.episodeId === undefined) {
      const resume = await this.episodeToResume(profile.id, input.titleId)
      if (resume !== undefined && resume !== title.mediaId)
        title = await deps.titles.resolve(input.titleId, resume)
    }
    const cdn = deps.cdn()
    const region = cdn.regionOf(auth.country, client.headers, client.address)
    const now = deps.now()
    if (ratingRank(title.maturityRating) > ratingRank(profile.maturityLimit))
      throw forbidden(
        'maturity_restricted',
        `This title is rated ${title.maturityRating}, above this profile's limit`,
      )
    if (!title.ready) throw conflict('title_not_available', 'This title is not ready to play yet')
    if (!availableIn(title, region, now))
      throw conflict('title_not_available', `This title is not available in ${region} now`)

    const sessionId = newId()
    const device = (input.device ?? client.userAgent ?? 'unknown device').slice(0, 200)
    await this.claimStream(auth.accountId, sessionId, entitlement.maxStreams)
    const resumeAtMs = await this.resumePosition(profile.id, title.mediaId)
    const row: SessionRow = {
      id: sessionId,
      account_id: auth.accountId,
      profile_id: profile.id,
      title_id: title.titleId,
      media_id: title.mediaId,
      device,
      region,
      max_height: entitlement.maxHeight,
      position_ms: resumeAtMs,
      duration_ms: title.durationMs,
      started_at: now,
      seen_at: now,
      stopped_at: null,
    }
    const liveSession: LiveSession = {
      row: { ...row },
      seasonId: title.seasonId,
      stopped: false,
      lastPositionMs: resumeAtMs,
      lastAt: now,
      slotRaisedAt: now,
    }
    this.live.set(sessionId, liveSession)
    this.sessionsPending.set(sessionId, liveSession.row)
    this.flushEarly()
    // Other processes find the session here for its heartbeats and stop before its row is flushed.
    const [steering] = await Promise.all([cdn.steer(title.mediaId, region), this.share(row)])
    const token = await cdn.signSoon({
      sid: sessionId,
      prefix: `titles/${title.mediaId}/`,
      exp: Math.floor(now / 1000) + deps.settings.tokenTtlS,
      maxHeight: entitlement.maxHeight,
    })
    const master = `t/${token}/titles/${title.mediaId}/hls/master.m3u8`
    const urls = [...steering.edges.map((e) => `${e.url}/${master}`), `${steering.originUrl}/${master}`]
    const [manifestUrl = '', ...fallbackUrls] = urls

    this.outbox.push({
      kind: 'event',
      event: {
        id: newId(),
        type: PLAYBACK_STARTED,
        key: profile.id,
        data: this.eventData(row, title.seriesId, title.seasonId, resumeAtMs, now, {
          resumeAtMs,
          maxHeight: entitlement.maxHeight,
          device,
        }) satisfies PlaybackStarted,
      },
    })
    return {
      sessionId,
      titleId: title.titleId,
      episodeId: title.type === 'episode' ? title.mediaId : null,
      manifestUrl,
      fallbackUrls,
      resumeAtMs,
      durationMs: title.durationMs,
      maxHeight: entitlement.maxHeight,
      heartbeatIntervalMs: deps.settings.heartbeatIntervalMs,
      region,
    }
  }

  /**
   * Position report. A negative position is refused by the route (400); one past the runtime is
   * clamped to the runtime (players overshoot by a frame at the end).
   */
  async heartbeat(auth: Auth, sessionId: string, input: HeartbeatInput): Promise<{ positionMs: number }> {
    const session = await this.liveSession(auth, sessionId)
    const now = this.deps.now()
    const { row } = session
    const refreshSlot =
      now - session.slotRaisedAt >= Math.min(SLOT_REFRESH_MS, this.deps.settings.streamTimeoutMs / 4) ||
      now < session.slotRaisedAt
    // Every few seconds: has another process stopped this session (its stop mark is in the stream set)?
    if (refreshSlot && (await this.stoppedElsewhere(row, now))) {
      session.stopped = true
      throw notFound('session_stopped', 'This play session has stopped; start playback again')
    }
    const positionMs = row.duration_ms > 0 ? Math.min(input.positionMs, row.duration_ms) : input.positionMs
    const elapsed = Math.max(0, now - session.lastAt)
    const watchedMs =
      input.state === 'playing'
        ? Math.max(0, Math.min(positionMs - session.lastPositionMs, elapsed + 1000))
        : 0
    session.lastPositionMs = positionMs
    session.lastAt = now
    row.position_ms = positionMs
    row.seen_at = now
    this.remember(row, positionMs, now)
    if (refreshSlot) {
      session.slotRaisedAt = now
      await this.raiseSlot(row.account_id, `s:${row.id}`, now)
    }
    if (!this.sessionsPending.has(sessionId)) this.sessionsPending.set(sessionId, row)
    this.flushEarly()
    const pending = this.heartbeatsPending.get(sessionId)
    if (pending) {
      pending.state = input.state
      pending.positionMs = positionMs
      pending.at = now
      pending.watchedMs += watchedMs
      pending.bitrate = input.bitrate
      pending.bufferMs = input.bufferMs
      pending.rebuffers = input.rebuffers
    } else {
      const report: PendingHeartbeat = {
        kind: 'heartbeat',
        dropped: false,
        session,
        state: input.state,
        positionMs,
        at: now,
        watchedMs,
        bitrate: input.bitrate,
        bufferMs: input.bufferMs,
        rebuffers: input.rebuffers,
      }
      this.heartbeatsPending.set(sessionId, report)
      this.outbox.push(report)
    }
    return { positionMs }
  }

  /** Stop: frees the stream slot and saves the final position at once. */
  async stop(
    auth: Auth,
    sessionId: string,
    positionMs?: number,
  ): Promise<{ positionMs: number; completed: boolean }> {
    const session = await this.liveSession(auth, sessionId)
    const now = this.deps.now()
    const { row } = session
    const final = Math.min(
      positionMs ?? session.lastPositionMs,
      row.duration_ms > 0 ? row.duration_ms : Number.MAX_SAFE_INTEGER,
    )
    // The stop event carries what the heartbeats since the last flush watched.
    const pending = this.heartbeatsPending.get(sessionId)
    this.heartbeatsPending.delete(sessionId)
    if (pending) pending.dropped = true
    session.stopped = true
    row.stopped_at = now
    row.position_ms = final
    row.seen_at = now
    this.sessionsPending.set(sessionId, row)
    this.remember(row, final, now)
    const done = completed(final, row.duration_ms)
    const { seriesId, seasonId } = await this.seriesOf(session)
    this.outbox.push({
      kind: 'event',
      event: {
        id: newId(),
        type: PLAYBACK_STOPPED,
        key: row.profile_id,
        data: this.eventData(row, seriesId, seasonId, final, now, {
          watchedMs: pending?.watchedMs ?? 0,
          completed: done,
        }) satisfies PlaybackStopped,
      },
    })
    await Promise.all([this.raiseSlot(row.account_id, `x:${row.id}`, now), this.share(row)])
    await this.flush()
    return { positionMs: final, completed: done }
  }

  /**
   * Writes what changed since the last flush in one transaction (positions, session rows), then
   * publishes the waiting events in one batch, in the order they happened (one coalesced heartbeat
   * event per session). What could not be written or published stays for the next flush.
   */
  flush(): Promise<void> {
    if (this.queuedFlush) return this.queuedFlush
    const run = async (): Promise<void> => {
      this.queuedFlush = undefined
      if (this.progressPending.size === 0 && this.sessionsPending.size === 0 && this.outbox.length === 0)
        return this.retryPublishing()
      const progress = this.progressPending
      const sessions = this.sessionsPending
      const outbox = this.outbox
      this.progressPending = new Map()
      this.sessionsPending = new Map()
      this.heartbeatsPending = new Map()
      this.outbox = []
      this.progressFlushing = progress
      this.sessionsFlushing = sessions
      try {
        await this.deps.store.writeBehind([...progress.values()], [...sessions.values()])
      } catch (e) {
        // Newer reports that arrived meanwhile win; the rest waits for the next flush.
        for (const [key, row] of progress)
          if (!this.progressPending.has(key)) this.progressPending.set(key, row)
        for (const [id, row] of sessions) if (!this.sessionsPending.has(id)) this.sessionsPending.set(id, row)
        this.outbox = [...outbox, ...this.outbox]
        this.retryPublishing()
        throw e
      } finally {
        this.progressFlushing = undefined
        this.sessionsFlushing = undefined
      }
      const events: PublishInput[] = []
      for (const item of outbox) {
        if (item.kind === 'event') events.push(item.event)
        else if (!item.dropped) events.push(await this.heartbeatEvent(item))
      }
      // The positions are safe; the events follow on their own, so a stop does not wait for the Bus.
      this.unpublished.push(...events)
      this.retryPublishing()
    }
    // One flush at a time; the callers that arrive during one (or in the same turn of the event
    // loop) share the next: one transaction for all of them.
    const next = (this.flushing ?? Promise.resolve())
      .catch(() => {})
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(run)
    this.flushing = next
    this.queuedFlush = next
    return next
  }

  /**
   * Flushes before the timer once settings.flushRows rows wait: under a burst of starts, one flush of
   * the interval's thousands of rows and events held requests up for tens of milliseconds. After a
   * failed one, the timer's flushes retry alone for a second.
   */
  private flushEarly(): void {
    const waiting = this.sessionsPending.size + this.progressPending.size
    if (this.earlyFlushing || waiting < this.deps.settings.flushRows) return
    if (this.deps.now() < this.earlyFlushAfter) return
    this.earlyFlushing = true
    this.flush()
      .catch((e) => {
        this.earlyFlushAfter = this.deps.now() + 1000
        this.deps.log.warn(
          { err: e instanceof Error ? e.message : String(e) },
          'an early write-behind flush failed; the next flush retries its rows',
        )
      })
      .finally(() => {
        this.earlyFlushing = false
      })
  }

  /**
   * Graceful shutdown: flushes and publishes until nothing is left, retrying what fails (the DB or
   * the Bus briefly away) until `timeoutMs` has passed; then logs what is lost.
   */
  async drain(timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    const until = performance.now() + timeoutMs
    let pause = 50
    let failure: unknown
    for (;;) {
      failure = undefined
      try {
        await this.flush()
      } catch (e) {
        failure = e
      }
      this.retryPublishing()
      while (this.publishing) await this.publishing
      if (failure === undefined && this.unpublished.length === 0 && this.nothingPending()) return
      failure ??= this.lastPublishError
      if (performance.now() + pause > until) break
      await new Promise((resolve) => setTimeout(resolve, pause))
      pause = Math.min(pause * 2, 1000)
    }
    const heartbeats = this.outbox.filter((item) => item.kind === 'heartbeat' && !item.dropped).length
    const events = [
      ...this.unpublished,
      ...this.outbox.flatMap((item) => (item.kind === 'event' ? [item.event] : [])),
    ]
    this.deps.log.error(
      {
        positions: this.progressPending.size,
        sessions: this.sessionsPending.size,
        events: events.length + heartbeats,
        eventIds: events.map((e) => `${e.type} ${e.id}`).slice(0, 100),
        err: failure instanceof Error ? failure.message : String(failure),
      },
      'playback shutdown: positions, session rows or events not saved in time are lost',
    )
  }

  private nothingPending(): boolean {
    return this.progressPending.size === 0 && this.sessionsPending.size === 0 && this.outbox.length === 0
  }

  /** Lets the waiting events go again (at a flush: failed ones are tried once per flush). */
  private retryPublishing(): void {
    this.publishHeld = false
    this.pump()
  }

  /**
   * Publishes the flushed events, one batch at a time (it grows while the previous one is stored),
   * each profile's in order. A failed event and the later ones of its profile go back to the front
   * of the queue, tried again at the next flush; the Bus deduplicates by id, so one that was stored
   * after all is delivered once.
   */
  private pump(): void {
    if (this.publishing || this.publishHeld || this.unpublished.length === 0) return
    const events = this.unpublished
    this.unpublished = []
    this.publishing = this.publishInOrder(events)
      .then((left) => {
        if (left.length === 0) return
        this.unpublished = [...left, ...this.unpublished]
        this.publishHeld = true
        const err = this.lastPublishError
        this.deps.log.warn(
          { events: left.length, err: err instanceof Error ? err.message : String(err) },
          'playback events not published; retrying at the next flush',
        )
      })
      .finally(() => {
        this.publishing = undefined
        this.pump()
      })
  }

  /**
   * Round n publishes the n-th event of every key at once (one tick: one batch for the embedded bus,
   * pipelined to JetStream); a key whose event fails stops there, so nothing overtakes it. Returns
   * the events not published, in their order.
   */
  private async publishInOrder(events: PublishInput[]): Promise<PublishInput[]> {
    const byKey = new Map<string, PublishInput[]>()
    for (const event of events) {
      const queue = byKey.get(event.key)
      if (queue) queue.push(event)
      else byKey.set(event.key, [event])
    }
    const failedAt = new Map<string, number>()
    for (let round = 0; ; round++) {
      const batch: PublishInput[] = []
      for (const [key, queue] of byKey) {
        const event = queue[round]
        if (event && !failedAt.has(key)) batch.push(event)
      }
      if (batch.length === 0) break
      // In slices: thousands of publishes in one turn held every request for tens of milliseconds.
      for (let from = 0; from < batch.length; from += PUBLISH_SLICE) {
        const slice = batch.slice(from, from + PUBLISH_SLICE)
        const results = await Promise.allSettled(slice.map((event) => this.deps.bus.publish(event)))
        results.forEach((result, i) => {
          const event = slice[i]
          if (result.status === 'fulfilled' || !event) return
          failedAt.set(event.key, round)
          this.lastPublishError = result.reason
        })
      }
    }
    if (failedAt.size === 0) return []
    const seen = new Map<string, number>()
    return events.filter((event) => {
      const at = seen.get(event.key) ?? 0
      seen.set(event.key, at + 1)
      const failed = failedAt.get(event.key)
      return failed !== undefined && at >= failed
    })
  }

  private async heartbeatEvent(h: PendingHeartbeat): Promise<PublishInput> {
    const { row } = h.session
    const { seriesId, seasonId } = await this.seriesOf(h.session)
    return {
      id: newId(),
      type: PLAYBACK_HEARTBEAT,
      key: row.profile_id,
      data: this.eventData(
        row,
        seriesId,
        seasonId,
        h.positionMs,
        h.at,
        quality(h),
      ) satisfies PlaybackHeartbeat,
    }
  }

  async continueWatching(auth: Auth, profileId: string, limit: number): Promise<ProgressView[]> {
    await this.deps.accounts().profile(auth.accountId, profileId)
    await this.flush()
    const rows = await this.deps.store.recent(profileId, 500)
    const seen = new Set<string>()
    const out: ProgressView[] = []
    for (const row of rows) {
      const show = row.series_id ?? row.media_id
      if (seen.has(show)) continue
      seen.add(show)
      if (row.completed === 0) {
        if (row.position_ms > 0) out.push(view(row))
      } else if (row.series_id) {
        const episodes = await this.deps.titles.episodes(row.series_id)
        const at = episodes.findIndex((e) => e.id === row.media_id)
        const next = at >= 0 ? episodes[at + 1] : undefined
        if (next)
          out.push({
            titleId: row.series_id,
            episodeId: next.id,
            type: 'episode',
            seriesId: row.series_id,
            positionMs: 0,
            durationMs: 0,
            completed: false,
            updatedAt: new Date(row.updated_at).toISOString(),
          })
      }
      if (out.length >= limit) break
    }
    return out
  }

  async history(auth: Auth, profileId: string, limit: number): Promise<ProgressView[]> {
    await this.deps.accounts().profile(auth.accountId, profileId)
    await this.flush()
    return (await this.deps.store.recent(profileId, limit)).map(view)
  }

  /** `accounts.profile.deleted`: the profile's history and resume positions go (idempotent). */
  async profileDeleted(profileId: string): Promise<void> {
    // Its sessions in this process end here: their heartbeats and stops answer 404 session_stopped.
    for (const session of this.live.values()) if (session.row.profile_id === profileId) session.stopped = true
    // A flush writing its rows right now commits first (on PostgreSQL its rows would otherwise land
    // after the delete below); what waits for a later flush is dropped.
    await this.flushing?.catch(() => {})
    for (const [key, row] of this.progressPending)
      if (row.profile_id === profileId) this.progressPending.delete(key)
    for (const [id, row] of this.sessionsPending)
      if (row.profile_id === profileId) this.sessionsPending.delete(id)
    const mediaIds = await this.deps.store.deleteProfile(profileId)
    if (mediaIds.length > 0) await this.deps.cache.del(...mediaIds.map((m) => keys.position(profileId, m)))
  }

  /** For a series without an episode named: the one in progress, else the one after the last watched. */
  private async episodeToResume(profileId: string, titleId: string): Promise<string | undefined> {
    const latest = await this.deps.store.latestOfSeries(profileId, titleId)
    if (!latest) return undefined
    if (latest.completed === 0) return latest.media_id
    const episodes = await this.deps.titles.episodes(titleId)
    const at = episodes.findIndex((e) => e.id === latest.media_id)
    return episodes[at + 1]?.id ?? latest.media_id
  }

  private async resumePosition(profileId: string, mediaId: string): Promise<number> {
    const key = keys.position(profileId, mediaId)
    const cached = await this.deps.cache.get(key)
    if (cached === NO_POSITION) return 0
    let position: { positionMs: number; completed: boolean } | undefined
    if (cached !== undefined) {
      try {
        position = JSON.parse(cached) as { positionMs: number; completed: boolean }
      } catch {
        position = undefined
      }
    }
    if (!position) {
      const pendingKey = `${profileId}\n${mediaId}`
      const row =
        this.progressPending.get(pendingKey) ??
        this.progressFlushing?.get(pendingKey) ??
        (await this.deps.store.progress(profileId, mediaId))
      position = row ? { positionMs: row.position_ms, completed: row.completed === 1 } : undefined
      if (!position) await this.deps.cache.set(key, NO_POSITION, NO_POSITION_TTL_MS)
    }
    return position && !position.completed ? position.positionMs : 0
  }

  /** Adds this session to the account's stream set, then keeps it only if it is among the first maxStreams live ones. */
  private async claimStream(accountId: string, sessionId: string, maxStreams: number): Promise<void> {
    const { cache, settings, now } = this.deps
    const at = now()
    await this.raiseSlot(accountId, `s:${sessionId}`, at)
    // Every raise of the last streamTimeoutMs is in this window's set or the previous one: both read
    // in one union (they share the account's hash tag; a member in both sums to a live score).
    const window = Math.floor(at / settings.streamTimeoutMs)
    const members = await cache.zunionTop(
      [keys.streams(accountId, window), keys.streams(accountId, window - 1)],
      [1, 1],
      MAX_TRACKED_STREAMS * 2,
    )
    let active: string[]
    if (members) {
      const since = at - settings.streamTimeoutMs
      const stopped = new Set<string>()
      const raised: string[] = []
      for (const [member, score] of members)
        if (member.startsWith('x:')) stopped.add(member.slice(2))
        else if (score >= since && member.startsWith('s:')) raised.push(member.slice(2))
      active = stopped.size === 0 ? raised : raised.filter((id) => !stopped.has(id))
    } else {
      // The cache cannot answer: count from the DB (it trails by the write-behind interval) and this
      // process's sessions not flushed yet.
      const since = at - settings.streamTimeoutMs
      const ids = new Set((await this.deps.store.activeSessions(accountId, since)).map((s) => s.id))
      // Rows of a flush in progress are in neither place yet; pending ones are newer still.
      for (const rows of [this.sessionsFlushing, this.sessionsPending])
        for (const row of rows?.values() ?? [])
          if (row.account_id === accountId) {
            if (row.stopped_at === null && row.seen_at >= since) ids.add(row.id)
            else ids.delete(row.id)
          }
      ids.add(sessionId)
      active = [...ids]
    }
    if (active.length <= maxStreams) return
    // Session ids sort by creation time: of racing starts, the later ones lose on every process alike.
    active.sort()
    if (active.indexOf(sessionId) < maxStreams) return
    await this.raiseSlot(accountId, `x:${sessionId}`, at)
    const others = active.filter((id) => id !== sessionId).slice(0, maxStreams)
    const devices = await Promise.all(others.map((id) => this.describe(id)))
    throw conflict(
      'stream_limit_reached',
      `This plan allows ${maxStreams} screens at once; stop one to watch here`,
      {
        maxStreams,
        activeDevices: devices,
      },
    )
  }

  private async stoppedElsewhere(row: SessionRow, at: number): Promise<boolean> {
    const window = Math.floor(at / this.deps.settings.streamTimeoutMs)
    const scores = await this.deps.cache.zmscore(
      [keys.streams(row.account_id, window), keys.streams(row.account_id, window - 1)],
      [`x:${row.id}`],
    )
    return scores?.some((perKey) => perKey[0] !== undefined) ?? false
  }

  private raiseSlot(accountId: string, member: string, at: number): Promise<void> {
    const timeout = this.deps.settings.streamTimeoutMs
    return this.deps.cache.zraise(
      keys.streams(accountId, Math.floor(at / timeout)),
      [[member, at]],
      timeout * 3,
    )
  }

  private async describe(
    sessionId: string,
  ): Promise<{ sessionId: string; device: string; titleId: string; startedAt: string }> {
    const row = this.live.get(sessionId)?.row ?? (await this.loadRow(sessionId))
    return {
      sessionId,
      device: row?.device ?? 'unknown device',
      titleId: row?.title_id ?? '',
      startedAt: new Date(row?.started_at ?? 0).toISOString(),
    }
  }

  /**
   * Puts a session where other processes find it before its row is flushed: the shared cache. The
   * in-process cache is this process's own, where the session is in `live` already (and in the DB
   * after the flush), so a copy there would only cost a start time and crowd out other entries.
   */
  private share(row: SessionRow): Promise<void> {
    if (this.deps.cache.kind === 'memory') return Promise.resolve()
    return this.deps.cache.set(keys.session(row.id), JSON.stringify(row), SESSION_TTL_MS)
  }

  private async loadRow(sessionId: string): Promise<SessionRow | undefined> {
    const cached = await this.deps.cache.get(keys.session(sessionId))
    if (cached !== undefined) {
      try {
        return JSON.parse(cached) as SessionRow
      } catch {
        // fall through to the DB
      }
    }
    return this.deps.store.session(sessionId)
  }

  private async liveSession(auth: Auth, sessionId: string): Promise<LiveSession> {
    let session = this.live.get(sessionId)
    if (!session) {
      const row = await this.loadRow(sessionId)
      if (row) {
        session = {
          row,
          stopped: row.stopped_at !== null,
          lastPositionMs: row.position_ms,
          lastAt: row.seen_at,
          slotRaisedAt: 0,
        }
        this.live.set(sessionId, session)
      }
    }
    if (!session || session.row.account_id !== auth.accountId)
      throw notFound('session_not_found', `No play session ${sessionId}`)
    if (session.stopped || session.row.stopped_at !== null)
      throw notFound('session_stopped', 'This play session has stopped; start playback again')
    return session
  }

  private remember(row: SessionRow, positionMs: number, at: number): void {
    const done = completed(positionMs, row.duration_ms)
    const progress: ProgressRow = {
      profile_id: row.profile_id,
      media_id: row.media_id,
      title_id: row.title_id,
      title_type: row.title_id === row.media_id ? 'movie' : 'episode',
      series_id: row.title_id === row.media_id ? null : row.title_id,
      season_id: null,
      position_ms: positionMs,
      duration_ms: row.duration_ms,
      completed: done ? 1 : 0,
      updated_at: at,
    }
    this.progressPending.set(`${row.profile_id}\n${row.media_id}`, progress)
    void this.deps.cache.set(
      keys.position(row.profile_id, row.media_id),
      JSON.stringify({ positionMs, completed: done }),
      POSITION_TTL_MS,
    )
  }

  private async seriesOf(
    session: LiveSession,
  ): Promise<{ seriesId: string | null; seasonId: string | null }> {
    const { row } = session
    if (row.title_id === row.media_id) return { seriesId: null, seasonId: null }
    if (session.seasonId === undefined) {
      let episodes: EpisodeRef[]
      try {
        episodes = await this.deps.titles.episodes(row.title_id)
      } catch (e) {
        // The catalog briefly away: the event goes without its season rather than not at all.
        this.deps.log.warn(
          { err: e instanceof Error ? e.message : String(e) },
          'season of an episode not found',
        )
        return { seriesId: row.title_id, seasonId: null }
      }
      session.seasonId = episodes.find((e) => e.id === row.media_id)?.seasonId ?? null
    }
    return { seriesId: row.title_id, seasonId: session.seasonId }
  }

  /**
   * An event's data: the fields every playback event has, then the event's own. (Built with
   * Object.assign: V8 takes a slow path, ~2.5 µs, for a literal that spreads an object and adds more.)
   */
  private eventData<E extends object>(
    row: SessionRow,
    seriesId: string | null,
    seasonId: string | null,
    positionMs: number,
    at: number,
    own: E,
  ): PlaybackEventBase & E {
    const base: PlaybackEventBase = {
      sessionId: row.id,
      accountId: row.account_id,
      profileId: row.profile_id,
      titleId: row.media_id,
      titleType: seriesId ? 'episode' : 'movie',
      seriesId,
      seasonId,
      region: row.region,
      positionMs,
      durationMs: row.duration_ms,
      at: new Date(at).toISOString(),
    }
    return Object.assign(base, own)
  }
}

/** A heartbeat event's own fields: state, watched time, and the quality figures the player sent. */
function quality(h: PendingHeartbeat): Omit<PlaybackHeartbeat, keyof PlaybackEventBase> {
  const own: Omit<PlaybackHeartbeat, keyof PlaybackEventBase> = { state: h.state, watchedMs: h.watchedMs }
  if (h.bitrate !== undefined) own.bitrate = h.bitrate
  if (h.bufferMs !== undefined) own.bufferMs = h.bufferMs
  if (h.rebuffers !== undefined) own.rebuffers = h.rebuffers
  return own
}

function settled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason
  return result.value
}

function view(row: ProgressRow): ProgressView {
  const episode = row.series_id !== null
  return {
    titleId: row.series_id ?? row.media_id,
    episodeId: episode ? row.media_id : null,
    type: episode ? 'episode' : 'movie',
    seriesId: row.series_id,
    positionMs: row.position_ms,
    durationMs: row.duration_ms,
    completed: row.completed === 1,
    updatedAt: new Date(row.updated_at).toISOString(),
  }
}
