import type { EventEnvelope } from '../../platform/bus/bus.js'
import { errorMessage } from '../../platform/errors.js'
import type { Logger } from '../../platform/log.js'
import { counter } from '../../platform/metrics.js'
import type { ArchivedEvent, PlaybackArchive } from './archive.js'
import { bucketStart, MINUTE, type PlaySignal, playSignal, Tally } from './rules.js'
import type { TrendsStore } from './store.js'
import type { WindowCounters } from './windows.js'

/** Events a flush takes at most; more wait for the next one. */
const MAX_BATCH = 4000
/** Flushes at once: the DB serialises their transactions, but one's archive write overlaps another's transaction. */
const MAX_FLUSHES = 3
/** An event time this far ahead of the clock is not believed by the streaming path (the batch rollup still counts it). */
const FUTURE_SKEW_MS = 5 * MINUTE

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

interface Waiting {
  event: EventEnvelope
  resolve: () => void
  reject: (e: unknown) => void
}

/**
 * The streaming path. Handler calls arriving together are grouped into one flush, and each call
 * resolves once its flush is durable, so the bus acks only what is stored. A flush, both at once:
 * - archives every usable event (one NDJSON part per hour partition of the events' times);
 * - in one DB transaction records the ids of the events within the grace and adds only those not
 *   recorded before to the 5-minute counters (exactly-once effect on at-least-once delivery),
 *   reading the new totals back, then raises the cache's window sets to them.
 * Every delivery is archived, repeats included, so a failure or crash between the two steps ends in
 * a redelivery that archives the event again (the rollup dedupes by id) and counts nothing twice.
 */
export class StreamingAggregator {
  private waiting: Waiting[] = []
  private flushing = 0
  private scheduled = false
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

  /** The bus handler: resolves once the event's effect is durable. */
  handle(event: EventEnvelope): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ event, resolve, reject })
      // setImmediate: let the deliveries of this turn of the event loop join the flush.
      if (!this.scheduled && this.flushing < MAX_FLUSHES) {
        this.scheduled = true
        setImmediate(() => {
          this.scheduled = false
          this.startFlushes()
        })
      }
    })
  }

  /** Starts flushes while some wait and fewer than MAX_FLUSHES run (one's archive write overlaps the next one's transaction). */
  private startFlushes(): void {
    while (this.waiting.length > 0 && this.flushing < MAX_FLUSHES) {
      const batch = this.waiting.splice(0, MAX_BATCH)
      this.flushing++
      void this.ingest(batch.map((w) => w.event))
        .then(
          () => {
            for (const w of batch) w.resolve()
          },
          (e: unknown) => {
            this.o.log.warn(
              { err: errorMessage(e), events: batch.length },
              'trends flush failed; the bus redelivers',
            )
            for (const w of batch) w.reject(e)
          },
        )
        .finally(() => {
          this.flushing--
          this.startFlushes()
        })
    }
  }

  /** Records the signals' ids and adds those not seen before to the counters, in one transaction; then raises the window sets. */
  private async count(signals: readonly PlaySignal[], report: IngestReport): Promise<void> {
    const totals = await this.o.store.transaction(async (store) => {
      const fresh = await store.markSeen(signals.map((s) => ({ hour: bucketStart(s.at, '1h'), id: s.id })))
      report.duplicates += signals.length - fresh.size
      report.counted += fresh.size
      const tally = new Tally()
      // 5-minute counters only: hourly and daily rollups are sealed from them once their hour closes.
      for (const signal of signals) if (fresh.has(signal.id)) tally.add(signal, ['5m'])
      return store.addCounts(tally.rows())
    })
    try {
      await this.o.windows.raise(totals)
    } catch (e) {
      // Stored already: the window sets catch up on the next raise or reload.
      this.o.log.warn({ err: errorMessage(e) }, 'raising the cached window counters failed')
    }
  }

  /** Counts a batch of events now (the flush itself). */
  async ingest(events: readonly EventEnvelope[]): Promise<IngestReport> {
    const report: IngestReport = { counted: 0, duplicates: 0, outOfGrace: 0, rejected: 0 }
    const now = this.o.now()
    const archived: ArchivedEvent[] = []
    const inGrace = new Map<string, PlaySignal>()
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
      else inGrace.set(signal.id, signal)
    }
    await Promise.all([
      archived.length > 0 ? this.o.archive.write(archived) : undefined,
      inGrace.size > 0 ? this.count([...inGrace.values()], report) : undefined,
    ])
    for (const key of Object.keys(report) as (keyof IngestReport)[]) {
      this.totals[key] += report[key]
      if (report[key] > 0) outcomes.inc({ outcome: key }, report[key])
    }
    return report
  }
}
