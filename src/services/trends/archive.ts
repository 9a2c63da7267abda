import type { Blobs } from '../../platform/blobs/blobs.js'
import { type EventEnvelope, envelopeJson } from '../../platform/bus/bus.js'
import { HOUR } from './rules.js'

/**
 * The raw archive of playback events in the blob store, Hive-style by the hour of each event's own
 * time: `events/playback/dt=YYYY-MM-DD/hr=HH/part-….ndjson`, one JSON envelope a line.
 *
 * NDJSON, not Parquet: blobs have no append, so each flush writes its own small part file, too
 * small for Parquet's columns and row groups to pay off; NDJSON needs no extra library, keeps the
 * envelope exactly as published, and Spark, Trino and DuckDB read it as it is
 * (`read_json_auto('events/playback/*\/*\/*.ndjson', hive_partitioning = true)`).
 * A part may repeat events of another (a redelivery after a crash): readers dedupe by `id`.
 */
export const ARCHIVE_ROOT = 'events/playback'

/** The partition folder of an event time, with its trailing slash. */
export function partitionOf(at: number): string {
  const iso = new Date(at).toISOString()
  return `${ARCHIVE_ROOT}/dt=${iso.slice(0, 10)}/hr=${iso.slice(11, 13)}/`
}

export interface ArchivedEvent {
  envelope: EventEnvelope
  /** Event time, epoch ms: picks the partition. */
  at: number
}

/** Groups events into NDJSON text per hour partition of their times. */
export function archiveLines(events: readonly ArchivedEvent[]): Map<string, string> {
  const byHour = new Map<number, string[]>()
  for (const { envelope, at } of events) {
    const hour = Math.floor(at / HOUR) * HOUR
    const line = envelopeJson(envelope)
    const lines = byHour.get(hour)
    if (lines) lines.push(line)
    else byHour.set(hour, [line])
  }
  return new Map([...byHour].map(([hour, lines]) => [partitionOf(hour), `${lines.join('\n')}\n`]))
}

export class PlaybackArchive {
  constructor(private readonly blobs: Blobs) {}

  /** Stores a part; its name comes from its id, so storing it again (a retry) replaces it rather than repeating it. */
  async put(partition: string, id: string, lines: string): Promise<void> {
    await this.blobs.put(`${partition}part-${id}.ndjson`, lines, { contentType: 'application/x-ndjson' })
  }

  /** Every archived envelope of the hour partitions in [from, to) (hour-aligned), repeats included. */
  async *read(from: number, to: number): AsyncGenerator<EventEnvelope> {
    for (let hour = from; hour < to; hour += HOUR) {
      const partition = partitionOf(hour)
      let startAfter: string | undefined
      for (;;) {
        const page = await this.blobs.list(partition, { limit: 1000, startAfter })
        for (const part of page) {
          const { body } = await this.blobs.get(part.key)
          const chunks: Buffer[] = []
          for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
          for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
            if (line.trim() === '') continue
            const envelope = parseEnvelope(line)
            if (envelope) yield envelope
          }
        }
        if (page.length < 1000) break
        startAfter = page[page.length - 1]?.key
      }
    }
  }
}

function parseEnvelope(line: string): EventEnvelope | undefined {
  try {
    const e = JSON.parse(line) as Partial<EventEnvelope>
    if (typeof e.id !== 'string' || typeof e.type !== 'string') return undefined
    return { id: e.id, type: e.type, key: String(e.key ?? ''), time: String(e.time ?? ''), data: e.data }
  } catch {
    return undefined
  }
}
