/**
 * The Bus port: the event log and the work queue.
 *
 * Events: `publish` appends a typed event; each durable named consumer sees every event whose type
 * matches its patterns, at least once, in publish order per key, resuming where it stopped after a
 * restart. A handler that throws (or exceeds ackWaitMs) gets the event again after a backoff; after
 * maxAttempts the event is parked as a dead letter and the consumer moves on. Publishing an id that
 * was already published is a no-op (deduplication).
 *
 * A consumer may take its events in batches (`batchHandler`): see BatchConsumerOptions for what a
 * batch guarantees and how a failed one is retried.
 *
 * Work queue: `enqueue` adds a task; `work` runs a competing worker: each task goes to exactly one
 * worker (of any process), with the same retry, timeout and dead-letter rules.
 */
export interface EventEnvelope<T = unknown> {
  /** Unique id; publishing the same id twice delivers once. */
  id: string
  /** `service.thing.happened`, e.g. `media.title.published`. */
  type: string
  /** Ordering key: events with the same key reach a consumer in publish order. */
  key: string
  /** ISO-8601 UTC time of the event. */
  time: string
  data: T
}

/**
 * An envelope that also holds its data as the JSON text it was published as (an adapter that reads
 * that text builds these), so envelopeJson need not serialise the data again. The text is private:
 * not a property, not copied by a spread, not serialised.
 */
export class PublishedEnvelope<T = unknown> implements EventEnvelope<T> {
  id: string
  type: string
  key: string
  time: string
  data: T
  readonly #dataJson: string

  constructor(id: string, type: string, key: string, time: string, data: T, dataJson: string) {
    this.id = id
    this.type = type
    this.key = key
    this.time = time
    this.data = data
    this.#dataJson = dataJson
  }

  /** `JSON.stringify(this)` while its data is as published. */
  json(): string {
    return `${this.jsonHead()}${this.#dataJson}}`
  }

  /** What comes before the data in json(). */
  jsonHead(): string {
    return `{"id":${JSON.stringify(this.id)},"type":${JSON.stringify(this.type)},"key":${JSON.stringify(this.key)},"time":${JSON.stringify(this.time)},"data":`
  }

  /** The data as published (JSON). */
  get dataJson(): string {
    return this.#dataJson
  }
}

/**
 * `JSON.stringify(envelope)` of an envelope as delivered (its data not changed since): from the
 * data's published text when the adapter kept it, so archives of raw events do not serialise each
 * event's data a second time.
 */
export function envelopeJson(envelope: EventEnvelope): string {
  return envelope instanceof PublishedEnvelope ? envelope.json() : JSON.stringify(envelope)
}

/**
 * envelopeJson in two parts, `head + data + '}'`, when the adapter kept the data's text (else
 * undefined): a writer of many envelopes then copies each data text once, without joining strings.
 */
export function envelopeJsonParts(envelope: EventEnvelope): [head: string, data: string] | undefined {
  return envelope instanceof PublishedEnvelope ? [envelope.jsonHead(), envelope.dataJson] : undefined
}

export interface PublishInput<T = unknown> {
  type: string
  key: string
  data: T
  /** Defaults to a new UUIDv7. */
  id?: string
  /** Defaults to now. */
  time?: string
}

export interface DeliveryInfo {
  /** 1 on first delivery, counting redeliveries after failures, timeouts and crashes. */
  attempt: number
  /** The consumer or queue name. */
  consumer: string
  /**
   * Where the message sits in its log, increasing in publish order (the embedded bus's sequence
   * number, the JetStream stream sequence); `startAt: { after: position }` resumes after it.
   */
  position: number
}

export type EventHandler<T = unknown> = (event: EventEnvelope<T>, info: DeliveryInfo) => Promise<void>

export interface BatchInfo {
  /** The highest attempt number among the batch's events (1 when none was delivered before). */
  attempt: number
  /** The consumer name. */
  consumer: string
  /** Each event's position (DeliveryInfo.position), in the order of the events. */
  positions: number[]
}

/** Takes several events at once; resolving acks them all, throwing fails them all (see BatchConsumerOptions). */
export type BatchHandler<T = unknown> = (events: EventEnvelope<T>[], info: BatchInfo) => Promise<void>

export interface RetryOptions {
  /** Deliveries before the message becomes a dead letter. Default 5. */
  maxAttempts?: number
  /** A handler still running after this long counts as failed and the message is redelivered. Default 30 000. */
  ackWaitMs?: number
  /** Delay before the n-th redelivery (the last value repeats). Default [1000, 5000, 15000, 30000]. */
  backoffMs?: number[]
}

interface ConsumerBase extends RetryOptions {
  /** Durable name: a consumer with the same name resumes where the last one stopped. */
  name: string
  /**
   * Event types to receive. Dotted patterns as in NATS: `*` is one token, `>` the rest
   * (`media.>`, `playback.*.started`).
   */
  types: string[]
  /**
   * Where a consumer seen for the first time (an ephemeral one: every subscription) starts: every
   * stored event (default), only new ones, or the events after a position a handler was given.
   */
  startAt?: 'all' | 'new' | { after: number }
  /**
   * `durable` (default): the bus keeps the consumer's position under its name; the next
   * subscription of that name resumes there, and subscriptions of one name share the events.
   * `ephemeral`: the bus keeps nothing once the subscription stops (or, on NATS, soon after its
   * process dies); each subscription gets every event from `startAt`, whatever its name. For
   * readers that keep their own position, such as a replica's in-memory index.
   */
  durability?: 'durable' | 'ephemeral'
  /** Handlers running at once, over distinct keys (one key is always serial). Default 1. */
  concurrency?: number
}

/** A consumer that takes one event per handler call. */
export interface EventConsumerOptions<T = unknown> extends ConsumerBase {
  handler: EventHandler<T>
  batchHandler?: never
  maxBatch?: never
}

/**
 * A consumer that takes its events in batches, which costs the bus far less per event than a call
 * each. A batch holds what has arrived and waits for no more: up to `maxBatch` events, each key's
 * in publish order, none of a key that another running batch holds (`concurrency` is batches at
 * once). A batch is settled as one: resolved, all its events are acked; failed (thrown, or past
 * ackWaitMs), each of its events has had an attempt, and after the backoff they are retried one at
 * a time, each in a batch of its own with the rules of a one-event handler (its key waits; parked
 * after maxAttempts), so one poison event is parked and the others go through on their next attempt.
 * Later events of those keys wait until their retries are settled; other keys' events form new batches.
 */
export interface BatchConsumerOptions<T = unknown> extends ConsumerBase {
  batchHandler: BatchHandler<T>
  /** Most events a batch holds. Default 1000. */
  maxBatch?: number
  handler?: never
}

export type ConsumerOptions<T = unknown> = EventConsumerOptions<T> | BatchConsumerOptions<T>

export interface WorkerOptions<T = unknown> extends RetryOptions {
  handler: EventHandler<T>
  /** Tasks this worker runs at once. Default 1. */
  concurrency?: number
}

export interface DeadLetter {
  consumer: string
  event: EventEnvelope
  error: string
  attempts: number
  /** ISO-8601 UTC time it was parked. */
  time: string
}

export interface Subscription {
  /** Stops taking new messages and waits for the running handlers. */
  stop(): Promise<void>
}

export interface Bus {
  readonly kind: 'memory' | 'jetstream'
  /** Resolves once the event is durably stored. */
  publish<T>(input: PublishInput<T>): Promise<EventEnvelope<T>>
  subscribe<T>(options: ConsumerOptions<T>): Promise<Subscription>
  /** Adds a task to the named work queue; an id already enqueued is a no-op. */
  enqueue<T>(queue: string, task: PublishInput<T>): Promise<EventEnvelope<T>>
  work<T>(queue: string, options: WorkerOptions<T>): Promise<Subscription>
  /** Dead letters of a consumer or work queue, oldest first. */
  deadLetters(consumer: string, limit?: number): Promise<DeadLetter[]>
  /**
   * Deletes the events whose type starts with `typePrefix` stored before `before` (epoch ms) that
   * every durable consumer seen since then has acknowledged; returns how many went. The embedded
   * bus only: JetStream keeps its stream's own limits (0).
   */
  prune(typePrefix: string, before: number): Promise<number>
  /** Names of the event consumers the bus keeps state for (an ephemeral one only while it runs, under an engine-chosen name on NATS). */
  consumers(): Promise<string[]>
  ping(): Promise<void>
  /** Stops every subscription and releases connections. */
  close(): Promise<void>
}

/** True when a dotted event type matches a NATS-style pattern (`*` one token, `>` one or more). */
export function typeMatches(pattern: string, type: string): boolean {
  const p = pattern.split('.')
  const t = type.split('.')
  for (let i = 0; i < p.length; i++) {
    const token = p[i]
    if (token === '>') return t.length > i
    if (i >= t.length) return false
    if (token !== '*' && token !== t[i]) return false
  }
  return p.length === t.length
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/
const TYPE = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/
const PATTERN = /^([a-z0-9_-]+|\*)(\.([a-z0-9_-]+|\*))*(\.>)?$|^>$/

export function assertConsumerName(name: string): void {
  if (!NAME.test(name))
    throw new Error(`Invalid consumer or queue name "${name}": letters, digits, _ and - only`)
}
export function assertEventType(type: string): void {
  if (!TYPE.test(type)) throw new Error(`Invalid event type "${type}": dotted lowercase tokens expected`)
}
export function assertTypePattern(pattern: string): void {
  if (!PATTERN.test(pattern)) throw new Error(`Invalid event type pattern "${pattern}"`)
}
