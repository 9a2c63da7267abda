import type { EventEnvelope } from '../../platform/bus/bus.js'
import { errorMessage } from '../../platform/errors.js'
import { newId } from '../../platform/ids.js'
import type { Logger } from '../../platform/log.js'
import { counter } from '../../platform/metrics.js'
import { type ArchivedEvent, archiveLines, type PlaybackArchive } from './archive.js'
import { bucketStart, type CountRow, MINUTE, type PlaySignal, playSignal, Tally } from './rules.js'
import type { ArchivePart, TrendsStore } from './store.js'
import type { WindowCounters } from './windows.js'

/** Events a flush takes at most: the bus hands the consumer batches of up to this many, one flush each. */
export const FLUSH_EVENTS = 4000
/** Flushes at once (bus batches in flight): the DB serialises their transactions, while the next batch forms and waits its turn. */
export const FLUSHES_AT_ONCE = 2
/** A flush of this many events writes its archive parts straight to the blob store (fewer: staged in the DB). */
export const DIRECT_ARCHIVE_EVENTS = 1000
/** An event time this far ahead of the clock is not believed by the streaming path (the batch rollup still counts it). */
const FUTURE_SKEW_MS = 5 * MINUTE
/**
 * Pending counts are added to the counters this often, or sooner once this many events wait: the
 * longer the wait, the more flushes share each counter's one write.
 */
const APPLY_EVERY_MS = 1000
const APPLY_EVENTS = 100_000
/** Pending counts this old were left by a process that stopped before adding them: any process adds them. */
export const STALE_PENDING_MS = MINUTE

const outcomes = counter('reel_trends_events_total', 'Playback events the trends consumer took, by outcome', [
  'outcome',
])

/** What one batch did with its events. */
export interface IngestReport {
  /** Counted now. */
  counted: number
  /** Already counted before (a redelivery or a repeated publish). */
  duplicates: number
  /** Too late (older than the grace) or too far ahead: archived only, counted by the next batch rollup. */
  outOfGrace: number
  /** Not a usable playback event: neither archived nor counted. */
  rejected: number
}

/**
 * The streaming path. The bus hands it batches of events (a flush each), and a batch resolves once
 * its flush is durable, so the bus acks only what is stored. A flush archives its raw
 * events (one NDJSON part per hour partition) and runs one DB transaction that records the ids of
 * the events within the grace and keeps the 5-minute counts of those not recorded before as pending
 * (exactly-once effect on at-least-once delivery).
 *
 * Off the ack path: pending counts are added to the counters every second, many flushes at once (a
 * counter touched by several flushes is written once), in a transaction that deletes the pending
 * rows it adds, so two processes never add the same ones; then the cache's window sets are raised
 * to the new totals. What a stopped process left pending or staged for the archive is finished by
 * whichever process finds it.
 */
export class StreamingAggregator {
  /** Counts this process stored as pending and has not added yet, by pending id (its own flushes keep their tallies). */
  private readonly pending = new Map<string, Tally | CountRow[]>()
  private pendingEvents = 0
  private applyTimer: NodeJS.Timeout | undefined
  /** The running (or last) apply: one at a time. */
  private applying: Promise<void> = Promise.resolve()
  private archiving: Promise<void> | undefined
  /** Parts this process staged in the DB (committed), with their bytes: moved without reading them back. */
  private stagedHere: { id: string; partition: string; bytes: Buffer }[] = []
  private archiveAgain = false
  private readonly totals: IngestReport = { counted: 0, duplicates: 0, outOfGrace: 0, rejected: 0 }

  constructor(
    private readonly o: {
      store: TrendsStore
      archive: PlaybackArchive
      windows: WindowCounters
      now: () => number
      graceMs: number
      log: Logger
    },
  ) {}

  /** Everything counted, skipped and rejected by this process so far. */
  get report(): IngestReport {
    return { ...this.totals }
  }

  /**
   * Archives the flush's events and, in one transaction, records the ids of the in-grace ones and
   * keeps the counts of those not recorded before as pending: whatever is counted is archived. A
   * large flush (a backlog, a burst) writes the blob first, cheaper than staging megabytes in the
   * DB; a flush that fails after it leaves lines that its retry writes again under another name,
   * which readers dedupe by id (as they do a redelivered event's second line). A small flush (live
   * traffic) stages its lines in the transaction, so its acks do not wait for the blob store's
   * fsync, and they are moved right after; so are the parts of a large flush the blob store refused.
   */
  private async commit(
    archived: readonly ArchivedEvent[],
    inGrace: readonly PlaySignal[],
    report: IngestReport,
  ): Promise<void> {
    const id = newId()
    const now = this.o.now()
    const parts = [...archiveLines(archived)].map(([partition, bytes], i) => ({
      id: `${id}-${i}`,
      partition,
      bytes,
    }))
    const toStage = archived.length >= DIRECT_ARCHIVE_EVENTS ? await this.archiveNow(parts) : parts
    const staged = toStage.map(
      (part): ArchivePart => ({ id: part.id, partition: part.partition, lines: part.bytes.toString('utf8') }),
    )
    const counted = await this.o.store.transaction(async (store) => {
      const signals = inGrace
      const idsByHour = new Map<number, string[]>()
      for (const signal of signals) {
        const hour = bucketStart(signal.at, '1h')
        const ids = idsByHour.get(hour)
        if (ids) ids.push(signal.id)
        else idsByHour.set(hour, [signal.id])
      }
      const fresh = signals.length > 0 ? await store.markSeen(idsByHour) : 'all'
      const freshCount = fresh === 'all' ? signals.length : fresh.size
      report.duplicates += signals.length - freshCount
      report.counted += freshCount
      const tally = new Tally()
      // 5-minute counters only: hourly and daily rollups are sealed from them once their hour closes.
      for (const signal of signals) if (fresh === 'all' || fresh.has(signal.id)) tally.add(signal, ['5m'])
      const rows = tally.rows()
      await store.addPending(id, rows, now)
      if (staged.length > 0) await store.addArchiveParts(staged, now)
      return rows.length > 0 ? tally : undefined
    })
    if (toStage.length > 0) {
      // Moved from memory: reading the lines back from the DB cost the event loop ~2 ms a part.
      for (const part of toStage) this.stagedHere.push(part)
      void this.moveArchive()
    }
    if (!counted) return
    this.pending.set(id, counted)
    this.pendingEvents += report.counted
    if (this.pendingEvents >= APPLY_EVENTS) void this.apply()
    else
      this.applyTimer ??= setTimeout(() => {
        this.applyTimer = undefined
        void this.apply()
      }, APPLY_EVERY_MS)
  }

  /** Stores archive parts in the blob store; returns those it could not store (all of them on any failure). */
  private async archiveNow<P extends { id: string; partition: string; bytes: Buffer }>(
    parts: readonly P[],
  ): Promise<readonly P[]> {
    try {
      await Promise.all(parts.map((part) => this.o.archive.put(part.partition, part.id, part.bytes)))
      return []
    } catch (e) {
      this.o.log.warn(
        { err: errorMessage(e), parts: parts.length },
        'archiving playback events failed; staged in the DB to move later',
      )
      return parts
    }
  }

  /**
   * Moves staged archive parts to the blob store, then forgets them; resolves once none is left.
   * This process's own come from memory; then any other left in the DB (by a process that stopped,
   * or a move that failed) is read back, one part at a time. A part stored twice (a crash in
   * between, or two processes) keeps one name.
   */
  moveArchive(): Promise<void> {
    if (this.archiving) {
      this.archiveAgain = true
      return this.archiving
    }
    const { store, archive } = this.o
    this.archiving = (async () => {
      try {
        do {
          this.archiveAgain = false
          while (this.stagedHere.length > 0) {
            // Taken out first: on a failure, what is left of them is still in the DB, moved from there.
            const parts = this.stagedHere
            this.stagedHere = []
            for (const part of parts) await archive.put(part.partition, part.id, part.bytes)
            await store.deleteArchiveParts(parts.map((part) => part.id))
          }
          for (
            let parts = await store.archivePartIds(20);
            parts.length > 0;
            parts = await store.archivePartIds(20)
          )
            for (const part of parts) {
              const lines = await store.archivePartLines(part.id)
              if (lines !== undefined) await archive.put(part.partition, part.id, lines)
              await store.deleteArchiveParts([part.id])
            }
        } while (this.archiveAgain)
      } catch (e) {
        this.o.log.warn(
          { err: errorMessage(e) },
          'moving playback events to the archive failed; retrying later',
        )
      } finally {
        this.archiving = undefined
      }
    })()
    return this.archiving
  }

  /** Adds what this process has pending to the counters (after any apply already running). */
  apply(): Promise<void> {
    this.applying = this.applying.then(() => this.applyNow())
    return this.applying
  }

  private async applyNow(): Promise<void> {
    clearTimeout(this.applyTimer)
    this.applyTimer = undefined
    const ids = [...this.pending.keys()]
    if (ids.length === 0) return
    try {
      const totals = await this.o.store.transaction(async (store) => {
        const claimed = await store.claimPending(ids)
        const merged = new Tally()
        for (const id of claimed) merged.merge(this.pending.get(id) ?? [])
        return store.addCounts(merged.rows())
      })
      // Claimed here or by another process: either way no longer this process's to add.
      for (const id of ids) this.pending.delete(id)
      if (this.pending.size === 0) this.pendingEvents = 0
      await this.o.windows.raise(totals).catch((e: unknown) => {
        // Stored already: the window sets catch up on the next raise or reload.
        this.o.log.warn({ err: errorMessage(e) }, 'raising the cached window counters failed')
      })
    } catch (e) {
      this.o.log.warn(
        { err: errorMessage(e), pending: ids.length },
        'adding pending trends counts failed; retrying',
      )
      this.applyTimer ??= setTimeout(() => {
        this.applyTimer = undefined
        void this.apply()
      }, APPLY_EVERY_MS)
    }
  }

  /** Adds counts that stopped processes left pending (and this process's own). */
  async recover(): Promise<number> {
    let recovered = 0
    for (;;) {
      const stale = (await this.o.store.stalePending(this.o.now() - STALE_PENDING_MS, 100)).filter(
        (p) => !this.pending.has(p.id),
      )
      if (stale.length === 0) break
      for (const p of stale) this.pending.set(p.id, p.rows)
      await this.apply()
      recovered += stale.length
    }
    await this.apply()
    return recovered
  }

  /** Counts a batch of events now (the flush itself). */
  async ingest(events: readonly EventEnvelope[]): Promise<IngestReport> {
    const report: IngestReport = { counted: 0, duplicates: 0, outOfGrace: 0, rejected: 0 }
    const now = this.o.now()
    const archived: ArchivedEvent[] = []
    // Distinct ids (a repeat within the batch is dropped first).
    const inGrace: PlaySignal[] = []
    const inBatch = new Set<string>()
    for (const envelope of events) {
      const signal = playSignal(envelope)
      if ('rejected' in signal) {
        report.rejected++
        this.o.log.warn(
          { eventId: envelope.id, type: envelope.type, reason: signal.rejected },
          'playback event not counted',
        )
        continue
      }
      if (inBatch.has(signal.id)) {
        report.duplicates++
        continue
      }
      inBatch.add(signal.id)
      archived.push({ envelope, at: signal.at })
      if (signal.at < now - this.o.graceMs || signal.at > now + FUTURE_SKEW_MS) report.outOfGrace++
      else inGrace.push(signal)
    }
    if (archived.length > 0) await this.commit(archived, inGrace, report)
    for (const key of Object.keys(report) as (keyof IngestReport)[]) {
      this.totals[key] += report[key]
      if (report[key] > 0) outcomes.inc({ outcome: key }, report[key])
    }
    return report
  }
}
