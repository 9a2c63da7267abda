import type { Blobs } from '../../platform/blobs/blobs.js'
import { type EventEnvelope, envelopeJsonParts } from '../../platform/bus/bus.js'
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

/** Groups events into NDJSON per hour partition of their times. */
export function archiveLines(events: readonly ArchivedEvent[]): Map<string, Buffer> {
  const byHour = new Map<number, NdjsonWriter>()
  for (const { envelope, at } of events) {
    const hour = Math.floor(at / HOUR) * HOUR
    let lines = byHour.get(hour)
    if (!lines) {
      lines = new NdjsonWriter(events.length * 512)
      byHour.set(hour, lines)
    }
    lines.add(envelope)
  }
  return new Map([...byHour].map(([hour, lines]) => [partitionOf(hour), lines.bytes()]))
}

const CLOSE_BRACE = 0x7d
const NEWLINE = 0x0a

/**
 * NDJSON bytes written as they come: each line's pieces are encoded straight into one buffer (a
 * delivered envelope's data as its published text), rather than joined into strings and encoded after.
 */
class NdjsonWriter {
  #bytes: Buffer
  #length = 0

  constructor(expected: number) {
    this.#bytes = Buffer.allocUnsafe(Math.max(4096, expected))
  }

  add(envelope: EventEnvelope): void {
    const parts = envelopeJsonParts(envelope)
    if (parts) {
      this.#write(parts[0])
      this.#write(parts[1])
      this.#room(2)
      this.#bytes[this.#length++] = CLOSE_BRACE
    } else {
      this.#write(JSON.stringify(envelope))
      this.#room(1)
    }
    this.#bytes[this.#length++] = NEWLINE
  }

  bytes(): Buffer {
    return this.#bytes.subarray(0, this.#length)
  }

  #write(text: string): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    this.#room(text.length * 3)
    this.#length += this.#bytes.write(text, this.#length, 'utf8')
  }

  #room(bytes: number): void {
    if (this.#length + bytes <= this.#bytes.length) return
    const grown = Buffer.allocUnsafe(Math.max(2 * this.#bytes.length, this.#length + bytes))
    this.#bytes.copy(grown, 0, 0, this.#length)
    this.#bytes = grown
  }
}

export class PlaybackArchive {
  constructor(private readonly blobs: Blobs) {}

  /** Stores a part; its name comes from its id, so storing it again (a retry) replaces it rather than repeating it. */
  async put(partition: string, id: string, lines: string | Buffer): Promise<void> {
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
