import {
  AckPolicy,
  type ConsumerConfig,
  connect,
  consumerOpts,
  DeliverPolicy,
  DiscardPolicy,
  ErrorCode,
  type JetStreamClient,
  type JetStreamManager,
  type JetStreamPullSubscription,
  type JsMsg,
  type NatsConnection,
  type NatsError,
  nanos,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from 'nats'
import { errorMessage } from '../errors.js'
import type { Logger } from '../log.js'
import {
  assertConsumerName,
  type Bus,
  type ConsumerOptions,
  type DeadLetter,
  type EventEnvelope,
  type PublishInput,
  type Subscription,
  type WorkerOptions,
} from './bus.js'
import {
  assertTypePatterns,
  consumerHandler,
  type Delivery,
  Dispatcher,
  type DispatcherOptions,
  inFlightLimit,
  positiveConcurrency,
  retryPolicy,
  toEnvelope,
  typeFilter,
} from './dispatch.js'

/**
 * The scaled Bus on NATS JetStream.
 *
 * Streams (PREFIX is the upper-cased prefix): `PREFIX_EVENTS` holds `prefix.ev.<type>`, `PREFIX_WORK`
 * (work-queue retention) holds `prefix.work.<queue>`, `PREFIX_DLQ` holds `prefix.dlq.<consumer>`.
 * Every consumer is a durable pull consumer with explicit acks; the event id is the `Nats-Msg-Id`,
 * so the server drops a repeated publish within the duplicate window.
 */

export interface JetStreamBusOptions {
  natsUrl?: string
  /** An open connection to use instead of natsUrl; the bus leaves it open on close. */
  connection?: NatsConnection
  /** Names the streams and subjects, so that several deployments (or tests) share one server. Default `reel`. */
  prefix?: string
  /**
   * The consumers' ack_wait: how soon the server redelivers what a crashed process held. Live
   * processes extend it while they hold a message, so a handler's own limit is its ackWaitMs. Default 30 000.
   */
  leaseMs?: number
  log: Logger
}

/** The server forgets a message id after this: a publish repeated within it is dropped. */
const DUPLICATE_WINDOW_MS = 24 * 3600_000
/** Most unacked messages an event subscription holds (running, waiting for their key, or backing off). */
const EVENTS_IN_FLIGHT = 512
/** Unacked messages the server lets one consumer have. */
const MAX_ACK_PENDING = 10_000
/** How long an idle pull request waits on the server; also how long a stopped subscriber may still be sent messages. */
const PULL_EXPIRES_MS = 1000
const PREFIX = /^[A-Za-z0-9_-]{1,64}$/
const NOT_FOUND_CODES = new Set([10014, 10059, 10037])
/**
 * The server deletes an ephemeral consumer nobody has pulled from for this long (its process died).
 * A live process stalled longer finds it gone and creates another from where it had got to.
 */
const EPHEMERAL_INACTIVE_MS = 10 * 60_000

/** Where a new consumer starts, as JetStream says it. */
function startPolicy(
  startAt: ConsumerOptions['startAt'],
): Pick<ConsumerConfig, 'deliver_policy' | 'opt_start_seq'> & { deliver_policy: DeliverPolicy } {
  if (typeof startAt === 'object') {
    if (!Number.isSafeInteger(startAt.after) || startAt.after < 0)
      throw new Error(`startAt.after must be a position a handler was given, got ${startAt.after}`)
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startAt.after + 1 }
  }
  return { deliver_policy: startAt === 'new' ? DeliverPolicy.New : DeliverPolicy.All }
}

export async function createJetStreamBus(options: JetStreamBusOptions): Promise<Bus> {
  const prefix = options.prefix ?? 'reel'
  if (!PREFIX.test(prefix)) throw new Error(`Invalid bus prefix "${prefix}": letters, digits, _ and - only`)
  const connection =
    options.connection ??
    (await connect({
      servers: options.natsUrl ?? 'nats://127.0.0.1:4222',
      name: 'reel',
      maxReconnectAttempts: -1,
    }))
  try {
    const bus = new JetStreamBus(
      connection,
      !options.connection,
      prefix,
      options.leaseMs ?? 30_000,
      options.log,
      await connection.jetstreamManager(),
    )
    await bus.ensureStreams()
    return bus
  } catch (e) {
    if (!options.connection) await connection.close()
    throw e
  }
}

/**
 * One NATS subject covering every pattern, as NATS 2.9 allows a single filter per consumer;
 * the subscription then skips (acks) what only the wider filter let through.
 */
export function coveringPattern(patterns: string[]): string {
  const split = patterns.map((p) => p.split('.'))
  const first = split[0] ?? ['>']
  if (split.length === 1) return first.join('.')
  if (split.every((t) => t.length === first.length && !t.includes('>'))) {
    return first.map((token, i) => (split.every((t) => t[i] === token) ? token : '*')).join('.')
  }
  const shortest = Math.min(...split.map((t) => t.length))
  const common: string[] = []
  // Stop one token short of the shortest pattern: `>` must stand for at least one token of each.
  for (let i = 0; i < shortest - 1; i++) {
    const token = first[i]
    if (token === undefined || token === '>' || !split.every((t) => t[i] === token)) break
    common.push(token)
  }
  return [...common, '>'].join('.')
}

function apiErrorCode(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null || !('api_error' in e)) return undefined
  const api = (e as { api_error?: { err_code?: number } }).api_error
  return api?.err_code
}

const isNotFound = (e: unknown) => NOT_FOUND_CODES.has(apiErrorCode(e) ?? 0)

interface StreamDelivery extends Delivery {
  seq: number
  /** The latest delivery of this stream message: acks go to it. */
  msg: JsMsg
}

function decodeEnvelope(msg: JsMsg): EventEnvelope | undefined {
  try {
    const body = msg.json<Partial<EventEnvelope>>()
    if (typeof body.id !== 'string' || typeof body.type !== 'string' || typeof body.key !== 'string')
      return undefined
    if (typeof body.time !== 'string') return undefined
    return { id: body.id, type: body.type, key: body.key, time: body.time, data: body.data ?? null }
  } catch {
    return undefined
  }
}

/**
 * A message that never ran is nak'ed, for another subscriber to take at once (NATS 2.9 does not count
 * a nak on a pull already closed as a delivery). One that failed here is left to its ack_wait, whose
 * expiry the server does count as a delivery, so its attempt number survives the hand-over.
 */
function releaseToServer(delivery: StreamDelivery, attempted: boolean): void {
  if (!attempted) delivery.msg.nak()
}

class JetStreamBus implements Bus {
  readonly kind = 'jetstream' as const
  private readonly js: JetStreamClient
  private readonly subscriptions = new Set<Subscription>()
  private readonly streams: { events: string; work: string; dlq: string }
  private closed = false

  constructor(
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly prefix: string,
    private readonly leaseMs: number,
    private readonly log: Logger,
    private readonly jsm: JetStreamManager,
  ) {
    this.js = nc.jetstream()
    const upper = prefix.toUpperCase()
    this.streams = { events: `${upper}_EVENTS`, work: `${upper}_WORK`, dlq: `${upper}_DLQ` }
  }

  async ensureStreams(): Promise<void> {
    const window = nanos(DUPLICATE_WINDOW_MS)
    await this.ensureStream({
      name: this.streams.events,
      subjects: [`${this.prefix}.ev.>`],
      retention: RetentionPolicy.Limits,
      duplicate_window: window,
    })
    await this.ensureStream({
      name: this.streams.work,
      subjects: [`${this.prefix}.work.>`],
      retention: RetentionPolicy.Workqueue,
      duplicate_window: window,
    })
    await this.ensureStream({
      name: this.streams.dlq,
      subjects: [`${this.prefix}.dlq.>`],
      retention: RetentionPolicy.Limits,
      duplicate_window: window,
    })
  }

  async publish<T>(input: PublishInput<T>): Promise<EventEnvelope<T>> {
    this.assertOpen()
    const event = toEnvelope(input)
    await this.js.publish(`${this.prefix}.ev.${event.type}`, JSON.stringify(event), { msgID: event.id })
    return event
  }

  async subscribe<T>(options: ConsumerOptions<T>): Promise<Subscription> {
    this.assertOpen()
    assertConsumerName(options.name)
    assertTypePatterns(options.types)
    const policy = retryPolicy(options)
    const concurrency = positiveConcurrency(options.concurrency)
    const handling = consumerHandler(options as ConsumerOptions)
    const stream = this.streams.events
    const wanted = {
      filter_subject: `${this.prefix}.ev.${coveringPattern(options.types)}`,
      ...startPolicy(options.startAt),
      max_deliver: policy.maxAttempts + 2,
    }
    const ephemeral = options.durability === 'ephemeral'
    // An ephemeral consumer has a server-chosen name; the server deletes it once no one pulls from it.
    const addEphemeral = async (after: number | undefined) =>
      (
        await this.jsm.consumers.add(stream, {
          ...wanted,
          ...(after === undefined ? {} : startPolicy({ after })),
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(this.leaseMs),
          max_ack_pending: MAX_ACK_PENDING,
          inactive_threshold: nanos(EPHEMERAL_INACTIVE_MS),
        })
      ).name
    // A durable one deleted under it (by an operator, or lost with the server's state) is made again
    // from where this process had got to; another process sharing it may have done so first.
    const ensureDurable = async (after: number | undefined) => {
      await this.ensureConsumer(stream, options.name, {
        ...wanted,
        ...(after === undefined ? {} : startPolicy({ after })),
      })
      return options.name
    }
    const consumerName = ephemeral ? await addEphemeral(undefined) : await ensureDurable(undefined)
    const wantedType = typeFilter(options.types)
    const subscription = new PullSubscription({
      nc: this.nc,
      js: this.js,
      stream,
      consumer: consumerName,
      // A stall past the inactive threshold loses an ephemeral consumer: a new one resumes where it was.
      recreate: ephemeral ? addEphemeral : ensureDurable,
      subject: wanted.filter_subject,
      // The server sends no more than max_ack_pending unacked messages to a consumer anyway.
      maxInFlight: Math.min(
        MAX_ACK_PENDING,
        inFlightLimit(handling, concurrency, Math.max(EVENTS_IN_FLIGHT, concurrency * 2)),
      ),
      leaseMs: this.leaseMs,
      accepts: (event) => wantedType(event.type),
      orderKey: (event) => event.key,
      log: this.log,
      dispatcher: {
        ...handling,
        consumer: options.name,
        policy,
        concurrency,
        retry: 'in-place',
        log: this.log,
        outcomes: {
          ack: (d) => d.msg.ack(),
          deadLetter: (d, error, attempts) => this.park(options.name, d.event, error, attempts),
          release: releaseToServer,
        },
      },
    })
    return this.track(
      subscription,
      ephemeral ? () => this.deleteConsumer(stream, subscription.consumer) : undefined,
    )
  }

  async enqueue<T>(queue: string, task: PublishInput<T>): Promise<EventEnvelope<T>> {
    this.assertOpen()
    assertConsumerName(queue)
    const event = toEnvelope(task)
    await this.js.publish(`${this.prefix}.work.${queue}`, JSON.stringify(event), {
      msgID: `${queue}:${event.id}`,
    })
    return event
  }

  async work<T>(queue: string, options: WorkerOptions<T>): Promise<Subscription> {
    this.assertOpen()
    assertConsumerName(queue)
    const policy = retryPolicy(options)
    const concurrency = positiveConcurrency(options.concurrency)
    const stream = this.streams.work
    await this.ensureConsumer(stream, queue, {
      filter_subject: `${this.prefix}.work.${queue}`,
      deliver_policy: DeliverPolicy.All,
      max_deliver: policy.maxAttempts + 2,
    })
    const subscription = new PullSubscription({
      nc: this.nc,
      js: this.js,
      stream,
      consumer: queue,
      subject: `${this.prefix}.work.${queue}`,
      maxInFlight: concurrency,
      leaseMs: this.leaseMs,
      accepts: () => true,
      // Tasks have no order to keep: any two may run at once.
      orderKey: (_event, seq) => String(seq),
      log: this.log,
      dispatcher: {
        consumer: queue,
        handler: options.handler as WorkerOptions['handler'],
        policy,
        concurrency,
        retry: 'requeue',
        log: this.log,
        outcomes: {
          ack: (d) => d.msg.ack(),
          // A delayed nak: the server redelivers it to any worker, counting the delivery.
          retryLater: (d, delayMs) => d.msg.nak(delayMs),
          deadLetter: (d, error, attempts) => this.park(queue, d.event, error, attempts),
          release: releaseToServer,
        },
      },
    })
    return this.track(subscription)
  }

  async deadLetters(consumer: string, limit = 100): Promise<DeadLetter[]> {
    const subject = `${this.prefix}.dlq.${consumer}`
    const info = await this.jsm.streams.info(this.streams.dlq, { subjects_filter: subject })
    const wanted = Math.min(limit, info.state.subjects?.[subject] ?? 0)
    const letters: DeadLetter[] = []
    if (wanted === 0) return letters
    const reader = await this.js.consumers.get(this.streams.dlq, { filterSubjects: subject })
    const messages = await reader.fetch({ max_messages: wanted, expires: 5000 })
    for await (const msg of messages) {
      letters.push(msg.json<DeadLetter>())
      if (letters.length >= wanted || msg.info.pending === 0) break
    }
    await reader.delete().catch(() => {})
    return letters
  }

  /** Not by type here: the events stream keeps the limits it was created with (an operator can set a max age). */
  async prune(): Promise<number> {
    return 0
  }

  async consumers(): Promise<string[]> {
    const names: string[] = []
    for await (const info of this.jsm.consumers.list(this.streams.events)) names.push(info.name)
    return names.sort()
  }

  async ping(): Promise<void> {
    await this.jsm.getAccountInfo()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.subscriptions].map((s) => s.stop()))
    if (this.ownsConnection && !this.nc.isClosed()) {
      await this.nc.flush().catch(() => {})
      await this.nc.close()
    }
  }

  private async park(consumer: string, event: EventEnvelope, error: string, attempts: number): Promise<void> {
    const letter: DeadLetter = { consumer, event, error, attempts, time: new Date().toISOString() }
    await this.js.publish(`${this.prefix}.dlq.${consumer}`, JSON.stringify(letter), {
      msgID: `${consumer}:${event.id}`,
    })
  }

  private async ensureStream(config: Partial<StreamConfig> & { name: string }): Promise<void> {
    try {
      await this.jsm.streams.info(config.name)
      return
    } catch (e) {
      if (!isNotFound(e)) throw e
    }
    try {
      await this.jsm.streams.add({ storage: StorageType.File, discard: DiscardPolicy.Old, ...config })
    } catch (e) {
      // Another process may have created it in the meantime.
      await this.jsm.streams.info(config.name).catch(() => {
        throw e
      })
    }
  }

  private async ensureConsumer(
    stream: string,
    durable: string,
    wanted: Required<Pick<ConsumerConfig, 'filter_subject' | 'deliver_policy' | 'max_deliver'>> &
      Pick<ConsumerConfig, 'opt_start_seq'>,
  ): Promise<void> {
    const ackWait = nanos(this.leaseMs)
    const config: Partial<ConsumerConfig> = {
      ...wanted,
      ack_wait: ackWait,
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: MAX_ACK_PENDING,
    }
    let existing = await this.jsm.consumers.info(stream, durable).catch((e: unknown) => {
      if (isNotFound(e)) return undefined
      throw e
    })
    if (!existing) {
      try {
        await this.jsm.consumers.add(stream, config)
        return
      } catch (e) {
        existing = await this.jsm.consumers.info(stream, durable).catch(() => {
          throw e
        })
      }
    }
    if (existing.config.filter_subject !== wanted.filter_subject) {
      // NATS 2.9 cannot change a consumer's filter in place: recreate it from where the old one had got to.
      this.log.warn(
        { stream, consumer: durable, from: existing.config.filter_subject, to: wanted.filter_subject },
        'bus consumer types changed; recreating the consumer',
      )
      await this.deleteDurable(stream, durable)
      await this.jsm.consumers.add(stream, {
        ...config,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: existing.ack_floor.stream_seq + 1,
      })
      return
    }
    // Subscribers may differ in maxAttempts: the safety net only ever widens.
    const current = existing.config.max_deliver ?? -1
    const maxDeliver = current <= 0 ? current : Math.max(current, wanted.max_deliver)
    if (existing.config.ack_wait !== ackWait || current !== maxDeliver) {
      await this.jsm.consumers.update(stream, durable, { ack_wait: ackWait, max_deliver: maxDeliver })
    }
  }

  /** Starts a subscription; `cleanup` runs once it has stopped (deleting an ephemeral consumer). */
  private track(subscription: PullSubscription, cleanup?: () => Promise<void>): Subscription {
    let stopped: Promise<void> | undefined
    const handle: Subscription = {
      stop: () => {
        stopped ??= (async () => {
          this.subscriptions.delete(handle)
          await subscription.stop()
          await cleanup?.()
        })()
        return stopped
      },
    }
    this.subscriptions.add(handle)
    subscription.start()
    return handle
  }

  /**
   * Deletes a durable consumer, trying again a few times: NATS 2.9 may refuse while the consumer's
   * state is being written ("unlinkat ... directory not empty"). Gone already counts as deleted.
   */
  private async deleteDurable(stream: string, name: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.jsm.consumers.delete(stream, name)
        return
      } catch (e) {
        if (isNotFound(e)) return
        if (attempt >= 5) throw e
        this.log.warn(
          { consumer: name, err: errorMessage(e), attempt },
          'deleting a bus consumer failed; trying again',
        )
        await new Promise((r) => setTimeout(r, 100 * attempt))
      }
    }
  }

  private async deleteConsumer(stream: string, name: string): Promise<void> {
    try {
      await this.jsm.consumers.delete(stream, name)
    } catch (e) {
      // Gone already, or the connection is closing: the server drops it after its inactive threshold.
      if (!isNotFound(e))
        this.log.warn({ consumer: name, err: errorMessage(e) }, 'deleting a bus consumer failed')
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('The bus is closed')
  }
}

interface PullSubscriptionOptions {
  nc: NatsConnection
  js: JetStreamClient
  stream: string
  consumer: string
  /** Creates the consumer again (after the position given, else from its start); resolves to its name. */
  recreate?: (after: number | undefined) => Promise<string>
  /** The consumer's filter subject. */
  subject: string
  maxInFlight: number
  leaseMs: number
  /** Events the wider server-side filter let through that this subscription does not want. */
  accepts: (event: EventEnvelope) => boolean
  orderKey: (event: EventEnvelope, seq: number) => string
  dispatcher: DispatcherOptions<StreamDelivery>
  log: Logger
}

/** A pull request the server may still be filling: how many messages it may still send, and until when. */
interface OpenPull {
  remaining: number
  /** After this (epoch ms), a pull that got no status is taken as ended (the status was lost to a reconnect). */
  giveUpAt: number
}

/**
 * Pulls in batches while the dispatcher has room, and keeps every unsettled message's ack timer fresh.
 *
 * All pulls reply to one inbox that stays subscribed until the last pull has ended. A `fetch()` per
 * batch would not do: its inbox is dropped on a client-side timer, and a message the server sent in
 * the meantime (always so after an event-loop stall longer than the pull, as timers run before the
 * socket is read) reached no one and waited out the whole ack_wait.
 *
 * Open pulls are kept in a FIFO: they expire in the order they were made, so a timeout status ends
 * the oldest; a message counts against the oldest that still expects one (the server may have sent
 * it to a later one: the count then errs high, never low). What the open pulls may still bring
 * counts as in flight, so a pull made after a stall, beside one whose status is still unread, never
 * takes the subscription past maxInFlight.
 */
class PullSubscription implements Subscription {
  private readonly dispatcher: Dispatcher<StreamDelivery>
  private readonly inFlight = new Map<number, StreamDelivery>()
  private readonly consumerName: string
  /** The engine's name of the consumer pulled from (a recreated ephemeral one gets a new one). */
  consumer: string
  private stopping = false
  private loop: Promise<void> | undefined
  private sub: JetStreamPullSubscription | undefined
  private pulls: OpenPull[] = []
  /** Messages the open pulls may still bring. */
  private expected = 0
  /** Wakes the loop when a pull ends. */
  private pullEnded: (() => void) | undefined
  /** Set when the server said the consumer is gone. */
  private consumerDeleted = false
  /** Highest stream sequence taken: where a recreated consumer resumes. */
  private highestSeq: number | undefined
  /** No new pull before this (epoch ms): the server refused one. */
  private pauseUntil = 0
  private heartbeat: NodeJS.Timeout | undefined
  private stopped: Promise<void> | undefined
  /** What `waitFor` calls wait on; stop wakes them all. */
  private readonly waiting = new Set<() => void>()
  /** Messages that came while stopping: nak'ed once the last pull has ended. */
  private readonly turnedAway: JsMsg[] = []

  constructor(private readonly options: PullSubscriptionOptions) {
    const { outcomes } = options.dispatcher
    const settled =
      <A extends unknown[]>(step: ((d: StreamDelivery, ...args: A) => void | Promise<void>) | undefined) =>
      (d: StreamDelivery, ...args: A) => {
        this.inFlight.delete(d.seq)
        return step?.(d, ...args)
      }
    this.consumerName = options.dispatcher.consumer
    this.consumer = options.consumer
    this.dispatcher = new Dispatcher({
      ...options.dispatcher,
      outcomes: {
        ack: settled(outcomes.ack),
        release: settled(outcomes.release),
        retryLater: settled(outcomes.retryLater),
        failed: outcomes.failed,
        deadLetter: outcomes.deadLetter,
      },
    })
  }

  start(): void {
    // Held messages (running, queued behind their key, or backing off before a retry here) tell the
    // server they are still being worked on, so it redelivers only what a crashed process held.
    this.heartbeat = setInterval(() => {
      for (const d of this.inFlight.values()) {
        try {
          d.msg.working()
        } catch {
          // Connection closing: the server will redeliver after ack_wait, as for a crash.
        }
      }
    }, this.options.leaseMs / 3)
    this.heartbeat.unref()
    this.loop = this.run()
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true
      for (const wake of [...this.waiting]) wake()
      await this.loop
      // The inbox stays until the server has ended every open pull, so nothing it sends is lost. What
      // comes now, and what the dispatcher held, is nak'ed only then: a nak while a pull is open would
      // bring it straight back here, as one more delivery.
      while (this.pulls.length > 0 && !this.options.nc.isClosed()) await this.untilPullEnds()
      this.sub?.unsubscribe()
      for (const msg of this.turnedAway.splice(0)) {
        try {
          msg.nak()
        } catch {
          // The connection is closing: the server redelivers after the ack wait anyway.
        }
      }
      await this.dispatcher.stop()
      clearInterval(this.heartbeat)
    })()
    return this.stopped
  }

  private async run(): Promise<void> {
    const { maxInFlight } = this.options
    const minPull = Math.max(1, Math.floor(maxInFlight / 2))
    while (!this.stopping) {
      const sub = this.sub ?? (await this.subscribe())
      if (!sub || this.stopping) return
      if (this.consumerDeleted) {
        await this.replaceConsumer()
        continue
      }
      const room = maxInFlight - this.dispatcher.pending - this.expected
      if (room < minPull) {
        if (this.pulls.length > 0) await this.untilPullEnds()
        else await this.waitFor(this.dispatcher.waitForRoom(maxInFlight - minPull + 1))
        continue
      }
      const pause = this.pauseUntil - Date.now()
      if (pause > 0) {
        await this.waitFor(undefined, pause)
        continue
      }
      const pull: OpenPull = { remaining: room, giveUpAt: Date.now() + PULL_EXPIRES_MS * 3 }
      this.pulls.push(pull)
      this.expected += room
      try {
        sub.pull({ batch: room, expires: PULL_EXPIRES_MS })
      } catch (e) {
        this.options.log.warn(
          { consumer: this.consumerName, err: errorMessage(e) },
          'pulling from JetStream failed',
        )
      }
      const lost = await this.untilPullEnds()
      // No message and no status for a whole pull: the consumer may be gone (the server answers nothing then).
      if (lost && this.options.recreate && !this.stopping) await this.checkConsumer()
    }
  }

  /** Binds the inbox to the consumer; undefined once stopping. */
  private async subscribe(): Promise<JetStreamPullSubscription | undefined> {
    const { js, stream, subject, log } = this.options
    while (!this.stopping) {
      try {
        const opts = consumerOpts()
          .bind(stream, this.consumer)
          .manualAck()
          .callback((err, msg) => this.received(err, msg))
        this.sub = await js.pullSubscribe(subject, opts)
        if (this.stopping) this.sub.unsubscribe()
        return this.sub
      } catch (e) {
        if (this.stopping) return undefined
        log.warn({ consumer: this.consumerName, err: errorMessage(e) }, 'pulling from JetStream failed')
        await this.waitFor(undefined, PULL_EXPIRES_MS)
      }
    }
    return undefined
  }

  /**
   * Waits until the oldest open pull ends, or is given up (resolving true: it ended with no word
   * from the server). The give-up check runs after the socket is read (setImmediate), so a status
   * that came during an event-loop stall is read before the pull is given up.
   */
  private async untilPullEnds(): Promise<boolean> {
    const pull = this.pulls[0]
    if (!pull) return false
    const ended = new Promise<void>((resolve) => {
      this.pullEnded = resolve
    })
    for (;;) {
      await this.waitFor(ended, Math.max(1, pull.giveUpAt - Date.now()))
      if (this.pulls[0] !== pull) return false
      await new Promise((resolve) => setImmediate(resolve))
      if (this.pulls[0] !== pull) return false
      if (Date.now() >= pull.giveUpAt) {
        this.endOldestPull()
        return true
      }
      if (this.stopping && this.options.nc.isClosed()) return false
    }
  }

  private endOldestPull(): void {
    const pull = this.pulls.shift()
    if (pull) this.expected -= pull.remaining
    const wake = this.pullEnded
    this.pullEnded = undefined
    wake?.()
  }

  /** Asks the server whether the consumer still exists; a missing one is replaced on the next turn. */
  private async checkConsumer(): Promise<void> {
    try {
      const jsm = await this.options.nc.jetstreamManager()
      await jsm.consumers.info(this.options.stream, this.consumer)
    } catch (e) {
      if (isNotFound(e)) this.consumerDeleted = true
    }
  }

  /**
   * The server deleted the consumer (an ephemeral one outstayed its inactive threshold, a durable one
   * was removed): make it again.
   */
  private async replaceConsumer(): Promise<void> {
    const { recreate, log } = this.options
    this.sub?.unsubscribe()
    this.sub = undefined
    // Nothing more comes for the old consumer's pulls.
    this.pulls = []
    this.expected = 0
    if (!recreate) {
      log.error({ consumer: this.consumerName }, 'the JetStream consumer was deleted; subscription idle')
      this.consumerDeleted = false
      await this.waitFor(undefined, PULL_EXPIRES_MS * 10)
      return
    }
    // Resume before what is still held here (it is redelivered; acks to the old consumer are lost), else after the last message.
    let after = this.highestSeq
    for (const seq of this.inFlight.keys()) after = Math.min(after ?? seq - 1, seq - 1)
    try {
      const name = await recreate(after)
      log.warn(
        { consumer: this.consumerName, from: this.consumer, to: name, after },
        'the JetStream consumer was deleted; created another',
      )
      this.consumer = name
      this.consumerDeleted = false
    } catch (e) {
      log.warn(
        { consumer: this.consumerName, err: errorMessage(e) },
        'recreating a JetStream consumer failed',
      )
      await this.waitFor(undefined, PULL_EXPIRES_MS)
    }
  }

  /** Waits for `until`, at most `ms` when given; stop ends the wait. */
  private waitFor(until: Promise<unknown> | undefined, ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.waiting.delete(done)
        resolve()
      }
      const timer = ms === undefined ? undefined : setTimeout(done, ms)
      this.waiting.add(done)
      until?.then(done, done)
    })
  }

  private received(err: NatsError | null, msg: JsMsg | null): void {
    if (err) {
      // 408: the pull expired; 404: nothing to send (no-wait); 409: the server refused or cut it short.
      if (
        err.code !== ErrorCode.JetStream408RequestTimeout &&
        err.code !== ErrorCode.JetStream404NoMessages
      ) {
        if (err.message.toLowerCase().includes('consumer deleted')) this.consumerDeleted = true
        else this.pauseUntil = Date.now() + PULL_EXPIRES_MS
        this.options.log.warn(
          { consumer: this.consumerName, err: err.message },
          'a JetStream pull ended early',
        )
      }
      this.endOldestPull()
      return
    }
    if (!msg) return
    this.accept(msg)
    for (const pull of this.pulls) {
      if (pull.remaining <= 0) continue
      pull.remaining--
      this.expected--
      break
    }
    // Filled: the server sends no status for a pull it has filled.
    if (this.pulls.length === 1 && this.expected <= 0) this.endOldestPull()
  }

  private accept(msg: JsMsg): void {
    if (this.stopping) {
      this.turnedAway.push(msg)
      return
    }
    const seq = msg.seq
    const held = this.inFlight.get(seq)
    if (held) {
      // The server gave up waiting (a stalled event loop): keep the one run, acking via the newest delivery.
      held.msg = msg
      return
    }
    const event = decodeEnvelope(msg)
    if (!event) {
      this.options.log.error(
        { consumer: this.consumerName, subject: msg.subject, seq },
        'unreadable bus message dropped',
      )
      msg.term()
      return
    }
    if (seq > (this.highestSeq ?? 0)) this.highestSeq = seq
    if (!this.options.accepts(event)) {
      msg.ack()
      return
    }
    const delivery: StreamDelivery = {
      seq,
      msg,
      event,
      attempt: msg.info.deliveryCount,
      orderKey: this.options.orderKey(event, seq),
      position: seq,
    }
    this.inFlight.set(seq, delivery)
    this.dispatcher.push(delivery)
  }
}
