import { errorMessage } from '../errors.js'
import { newId } from '../ids.js'
import type { Logger } from '../log.js'
import { counter } from '../metrics.js'
import {
  assertEventType,
  assertTypePattern,
  type BatchHandler,
  type ConsumerOptions,
  type EventEnvelope,
  type EventHandler,
  type PublishInput,
  type RetryOptions,
  typeMatches,
} from './bus.js'

/** The stored form of a publish: checked, with its id and a normalised UTC time. */
export function toEnvelope<T>(input: PublishInput<T>): EventEnvelope<T> {
  assertEventType(input.type)
  if (typeof input.key !== 'string') throw new Error(`Event key must be a string, got ${typeof input.key}`)
  const id = input.id ?? newId()
  if (typeof id !== 'string' || id.length === 0 || id.length > 200) {
    throw new Error('Event id must be a non-empty string of at most 200 characters')
  }
  const time = input.time === undefined ? new Date() : new Date(input.time)
  if (Number.isNaN(time.getTime())) throw new Error(`Invalid event time "${input.time}"`)
  return { id, type: input.type, key: input.key, time: time.toISOString(), data: input.data }
}

/** Checks a consumer's type patterns, which must not be empty. */
export function assertTypePatterns(patterns: string[]): void {
  if (!Array.isArray(patterns) || patterns.length === 0)
    throw new Error('A consumer needs at least one event type')
  for (const pattern of patterns) assertTypePattern(pattern)
}

export function matchesAny(patterns: string[], type: string): boolean {
  for (const pattern of patterns) if (typeMatches(pattern, type)) return true
  return false
}

/** matchesAny for one set of patterns, remembering each type's answer (a log holds few types). */
export function typeFilter(patterns: string[]): (type: string) => boolean {
  const known = new Map<string, boolean>()
  return (type) => {
    let match = known.get(type)
    if (match === undefined) {
      match = matchesAny(patterns, type)
      if (known.size < 10_000) known.set(type, match)
    }
    return match
  }
}

/** Batches a batch consumer takes at most, by default. */
export const DEFAULT_MAX_BATCH = 1000

/** The handler of a consumer: one event a call, or batches. */
export type ConsumerHandler =
  | { handler: EventHandler; batch?: undefined }
  | { handler?: undefined; batch: { handler: BatchHandler; maxEvents: number } }

/**
 * Most deliveries a subscription holds unsettled: `base` for one-event handlers, and for batches
 * enough that a full one waits while `concurrency` run.
 */
export function inFlightLimit(handling: ConsumerHandler, concurrency: number, base: number): number {
  return handling.batch ? Math.max(base, handling.batch.maxEvents * (concurrency + 1)) : base
}

/** Checks which handler a consumer gave, and its batch size. */
export function consumerHandler(options: ConsumerOptions): ConsumerHandler {
  const { handler, batchHandler } = options
  if (batchHandler !== undefined) {
    if (handler !== undefined) throw new Error('A consumer takes a handler or a batchHandler, not both')
    if (typeof batchHandler !== 'function') throw new Error('batchHandler must be a function')
    const maxEvents = options.maxBatch ?? DEFAULT_MAX_BATCH
    if (!Number.isInteger(maxEvents) || maxEvents < 1)
      throw new Error(`maxBatch must be a positive integer, got ${maxEvents}`)
    return { batch: { handler: batchHandler as BatchHandler, maxEvents } }
  }
  if (typeof handler !== 'function') throw new Error('A consumer needs a handler or a batchHandler')
  return { handler: handler as EventHandler }
}

/** Delivery rules shared by both Bus adapters: order per key, concurrency, timeouts, retries, dead letters. */

export interface RetryPolicy {
  maxAttempts: number
  ackWaitMs: number
  backoffMs: number[]
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  ackWaitMs: 30_000,
  backoffMs: [1000, 5000, 15_000, 30_000],
}

export function retryPolicy(options: RetryOptions): RetryPolicy {
  const policy: RetryPolicy = {
    maxAttempts: options.maxAttempts ?? DEFAULT_RETRY.maxAttempts,
    ackWaitMs: options.ackWaitMs ?? DEFAULT_RETRY.ackWaitMs,
    backoffMs: options.backoffMs ?? DEFAULT_RETRY.backoffMs,
  }
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new Error(`maxAttempts must be a positive integer, got ${policy.maxAttempts}`)
  }
  if (!Number.isFinite(policy.ackWaitMs) || policy.ackWaitMs < 1) {
    throw new Error(`ackWaitMs must be a positive number of milliseconds, got ${policy.ackWaitMs}`)
  }
  if (policy.backoffMs.some((ms) => !Number.isFinite(ms) || ms < 0)) {
    throw new Error(`backoffMs must hold non-negative milliseconds, got [${policy.backoffMs.join(', ')}]`)
  }
  return policy
}

/** Delay after the given failed attempt, before the next one (the last value repeats). */
export function backoffAfter(policy: RetryPolicy, failedAttempt: number): number {
  const { backoffMs } = policy
  if (backoffMs.length === 0) return 0
  return backoffMs[Math.min(failedAttempt, backoffMs.length) - 1] ?? 0
}

export function positiveConcurrency(concurrency: number | undefined): number {
  const value = concurrency ?? 1
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`concurrency must be a positive integer, got ${value}`)
  return value
}

/** A message handed over by an engine, not yet settled. */
export interface Delivery {
  event: EventEnvelope
  /** Attempt number of this delivery, counting the earlier deliveries the engine knows of. */
  attempt: number
  /** Deliveries sharing an order key run one at a time, in arrival order. */
  orderKey: string
  /** Position in the engine's log (DeliveryInfo.position). */
  position: number
}

/** What the engine does with each outcome. Hooks may throw; the dispatcher logs and carries on. */
export interface DeliveryOutcomes<D extends Delivery> {
  /** Succeeded (or parked): the engine may forget it. */
  ack(delivery: D): void | Promise<void>
  /** In-place retry: this attempt failed and another follows after a backoff; worth remembering across a crash. */
  failed?(delivery: D, attempt: number, error: string): void | Promise<void>
  /** Requeue retry: hand it back to the engine, to be redelivered (to any worker) after delayMs. */
  retryLater?(delivery: D, delayMs: number, error: string): void | Promise<void>
  /** Store it as a dead letter; `ack` follows. */
  deadLetter(delivery: D, error: string, attempts: number): Promise<void>
  /** Stopped before an outcome (`attempted`: after a failed attempt here): the engine will redeliver it. */
  release(delivery: D, attempted: boolean): void | Promise<void>
}

export type DispatcherOptions<D extends Delivery> = ConsumerHandler & {
  consumer: string
  policy: RetryPolicy
  concurrency: number
  /**
   * `in-place` keeps a failed message at the head of its key and retries it here, so later messages
   * of that key wait (event consumers: order per key); `requeue` gives it back to the engine (work queues).
   */
  retry: 'in-place' | 'requeue'
  outcomes: DeliveryOutcomes<D>
  log: Logger
}

const delivered = counter('reel_bus_delivered_total', 'Bus handler attempts by outcome', [
  'consumer',
  'outcome',
])
const deadLettered = counter('reel_bus_dead_letters_total', 'Messages parked as dead letters', ['consumer'])

/** A FIFO with O(1) shift. */
export class Fifo<T> {
  private items: (T | undefined)[] = []
  private head = 0

  get length(): number {
    return this.items.length - this.head
  }
  push(item: T): void {
    this.items.push(item)
  }
  peek(): T | undefined {
    return this.items[this.head]
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined
    this.head++
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }
  drain(): T[] {
    const rest = this.items.slice(this.head).filter((item): item is T => item !== undefined)
    this.items = []
    this.head = 0
    return rest
  }
  /** Puts items back at the front, in their order (into the free slots before the head when there are enough). */
  unshiftAll(items: T[]): void {
    if (items.length === 0) return
    if (this.head >= items.length) {
      this.head -= items.length
      for (let i = 0; i < items.length; i++) this.items[this.head + i] = items[i]
      return
    }
    this.items = items.concat(this.items.slice(this.head) as T[])
    this.head = 0
  }
}

/**
 * Runs deliveries through a handler: one at a time per order key, up to `concurrency` keys at once,
 * each attempt bounded by ackWaitMs, failures retried after a backoff, dead-lettered after maxAttempts.
 *
 * With a batch handler, what has been pushed in one turn of the event loop (and whatever waits when
 * a batch ends) forms batches instead: up to maxEvents deliveries in arrival order, none of a key
 * that a running batch holds. A failed batch's deliveries go back to the front, each to run alone
 * through the one-event path (`isolated`), which retries and parks them as it does any delivery.
 */
export class Dispatcher<D extends Delivery> {
  private readonly byKey = new Map<string, Fifo<D>>()
  private readonly readyKeys = new Fifo<string>()
  private running = 0
  private queued = 0
  private stopping = false
  private stopped: Promise<void> | undefined
  private readonly wakeSleepers = new Set<() => void>()
  private roomWaiters: { below: number; resolve: () => void }[] = []
  private idleWaiters: (() => void)[] = []
  private readonly metrics
  private readonly handler: EventHandler
  /** Batch mode: every delivery not yet taken, in arrival order. */
  private readonly arrivals = new Fifo<D>()
  /** Batch mode: deliveries to run alone (their batch failed, or they are past maxAttempts). */
  private readonly isolated = new Set<D>()
  /** Batch mode with concurrency > 1: the keys running batches hold, with how many deliveries each. */
  private readonly busyKeys = new Map<string, number>()
  private batchPumpScheduled = false

  constructor(private readonly options: DispatcherOptions<D>) {
    const consumer = options.consumer
    this.metrics = {
      acked: delivered.labels({ consumer, outcome: 'acked' }),
      failed: delivered.labels({ consumer, outcome: 'failed' }),
      deadLettered: deadLettered.labels({ consumer }),
    }
    const { batch } = options
    this.handler =
      options.handler ??
      ((event, info) =>
        (batch as NonNullable<typeof batch>).handler([event], {
          attempt: info.attempt,
          consumer: info.consumer,
          positions: [info.position],
        }))
  }

  /** Deliveries received and not yet settled (running or waiting). */
  get pending(): number {
    return this.queued
  }

  get isStopping(): boolean {
    return this.stopping
  }

  push(delivery: D): void {
    if (this.stopping) {
      void this.settle(() => this.options.outcomes.release(delivery, false), 'release')
      return
    }
    this.queued++
    if (this.options.batch) {
      this.arrivals.push(delivery)
      if (delivery.attempt > this.options.policy.maxAttempts) this.isolated.add(delivery)
      if (!this.batchPumpScheduled) {
        this.batchPumpScheduled = true
        // Let the deliveries of this turn of the event loop join the batch.
        setImmediate(() => {
          this.batchPumpScheduled = false
          this.pumpBatches()
        })
      }
      return
    }
    const queue = this.byKey.get(delivery.orderKey)
    if (queue) {
      queue.push(delivery)
      return
    }
    const fresh = new Fifo<D>()
    fresh.push(delivery)
    this.byKey.set(delivery.orderKey, fresh)
    this.readyKeys.push(delivery.orderKey)
    this.pump()
  }

  /** Resolves once fewer than `below` deliveries are pending, or the dispatcher stops. */
  waitForRoom(below: number): Promise<void> {
    if (this.queued < below || this.stopping) return Promise.resolve()
    return new Promise((resolve) => this.roomWaiters.push({ below, resolve }))
  }

  /** Stops starting handlers, waits for the running ones, and releases what never started. */
  stop(): Promise<void> {
    if (this.stopped) return this.stopped
    this.stopping = true
    for (const wake of this.wakeSleepers) wake()
    this.notifyRoom(true)
    this.stopped = (async () => {
      if (this.running > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
      const left: D[] = []
      for (const queue of this.byKey.values()) left.push(...queue.drain())
      left.push(...this.arrivals.drain())
      this.byKey.clear()
      this.readyKeys.drain()
      this.queued = 0
      for (const delivery of left) {
        // Released after a failed attempt here: the engine counts it as a delivery.
        const attempted =
          this.isolated.delete(delivery) && delivery.attempt <= this.options.policy.maxAttempts
        await this.settle(() => this.options.outcomes.release(delivery, attempted), 'release')
      }
    })()
    return this.stopped
  }

  private pump(): void {
    while (!this.stopping && this.running < this.options.concurrency) {
      const key = this.readyKeys.shift()
      if (key === undefined) return
      this.running++
      void this.runHead(key)
    }
  }

  private async runHead(key: string): Promise<void> {
    const queue = this.byKey.get(key)
    const head = queue?.peek()
    if (queue && head) {
      await this.deliver(head)
      queue.shift()
      this.queued--
      if (queue.length === 0) this.byKey.delete(key)
      // Back of the line: keys take turns, which keeps arrival order across keys when concurrency is 1.
      else if (!this.stopping) this.readyKeys.push(key)
    }
    this.finished()
    this.pump()
  }

  /** A handler slot is free again. */
  private finished(): void {
    this.running--
    this.notifyRoom(false)
    if (this.running === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  private pumpBatches(): void {
    while (!this.stopping && this.running < this.options.concurrency && this.arrivals.length > 0) {
      const batch = this.takeBatch()
      if (batch.length === 0) return
      this.running++
      void this.runBatch(batch)
    }
  }

  /**
   * The next batch: deliveries in arrival order, skipping (and keeping in place) those of keys a
   * running batch holds; an isolated delivery makes a batch of its own, and holds back its key.
   */
  private takeBatch(): D[] {
    const max = this.options.batch?.maxEvents ?? 1
    const taken: D[] = []
    const kept: D[] = []
    const tracksKeys = this.options.concurrency > 1
    let held: Set<string> | undefined
    while (taken.length < max) {
      const delivery = this.arrivals.shift()
      if (delivery === undefined) break
      const key = delivery.orderKey
      if ((tracksKeys && this.busyKeys.has(key)) || held?.has(key)) {
        kept.push(delivery)
        continue
      }
      if (this.isolated.has(delivery)) {
        if (taken.length === 0) {
          taken.push(delivery)
          break
        }
        kept.push(delivery)
        held ??= new Set()
        held.add(key)
        continue
      }
      taken.push(delivery)
    }
    this.arrivals.unshiftAll(kept)
    if (tracksKeys)
      for (const { orderKey } of taken) this.busyKeys.set(orderKey, (this.busyKeys.get(orderKey) ?? 0) + 1)
    return taken
  }

  private async runBatch(batch: D[]): Promise<void> {
    const first = batch[0]
    let settled = batch.length
    if (batch.length === 1 && first && this.isolated.delete(first)) await this.deliver(first)
    else settled = await this.deliverBatch(batch)
    this.queued -= settled
    if (this.options.concurrency > 1)
      for (const { orderKey } of batch) {
        const count = (this.busyKeys.get(orderKey) ?? 1) - 1
        if (count === 0) this.busyKeys.delete(orderKey)
        else this.busyKeys.set(orderKey, count)
      }
    this.finished()
    this.pumpBatches()
  }

  /**
   * One attempt of a batch. Succeeded: all acked. Failed: after the backoff, those with attempts left
   * go back to the front to run alone (still pending, so not counted as settled); the rest are parked.
   * Resolves to how many deliveries it settled.
   */
  private async deliverBatch(batch: D[]): Promise<number> {
    const { policy, outcomes, consumer, log } = this.options
    const error = await this.attemptBatch(batch)
    if (error === undefined) {
      this.metrics.acked.inc(batch.length)
      const acks: Promise<void>[] = []
      for (const delivery of batch) {
        const acked = this.settleNow(() => outcomes.ack(delivery), 'ack')
        if (acked) acks.push(acked)
      }
      if (acks.length > 0) await Promise.all(acks)
      return batch.length
    }
    this.metrics.failed.inc(batch.length)
    let attempt = 1
    for (const delivery of batch) attempt = Math.max(attempt, delivery.attempt)
    log.warn(
      { consumer, events: batch.length, firstEventId: batch[0]?.event.id, attempt, error },
      'bus batch handler failed; its events are retried one at a time',
    )
    const retry: D[] = []
    for (const delivery of batch) {
      await this.settle(() => outcomes.failed?.(delivery, delivery.attempt, error), 'failed')
      if (delivery.attempt >= policy.maxAttempts) await this.park(delivery, error, delivery.attempt)
      else retry.push(delivery)
    }
    if (retry.length > 0 && !this.stopping) await this.sleep(backoffAfter(policy, attempt))
    if (this.stopping) {
      for (const delivery of retry) await this.settle(() => outcomes.release(delivery, true), 'release')
      return batch.length
    }
    for (const delivery of retry) {
      delivery.attempt++
      this.isolated.add(delivery)
    }
    this.arrivals.unshiftAll(retry)
    return batch.length - retry.length
  }

  /** Runs one attempt of a batch; resolves to the error message, or undefined on success. */
  private attemptBatch(batch: D[]): Promise<string | undefined> {
    const { batch: mode, consumer } = this.options
    const events: EventEnvelope[] = new Array(batch.length)
    const positions: number[] = new Array(batch.length)
    let attempt = 1
    for (let i = 0; i < batch.length; i++) {
      const delivery = batch[i] as D
      events[i] = delivery.event
      positions[i] = delivery.position
      if (delivery.attempt > attempt) attempt = delivery.attempt
    }
    return this.bounded(() =>
      (mode as NonNullable<typeof mode>).handler(events, { attempt, consumer, positions }),
    )
  }

  /** Settles one delivery: ack, park, requeue, or (when stopping) release. Never throws. */
  private async deliver(delivery: D): Promise<void> {
    const { policy, outcomes, retry } = this.options
    let attempt = delivery.attempt
    if (attempt > policy.maxAttempts) {
      await this.park(
        delivery,
        `delivered ${attempt - 1} times without an outcome (did the process crash?)`,
        attempt - 1,
      )
      return
    }
    for (;;) {
      const error = await this.attempt(delivery, attempt)
      if (error === undefined) {
        this.metrics.acked.inc()
        await this.settle(() => outcomes.ack(delivery), 'ack')
        return
      }
      this.metrics.failed.inc()
      this.options.log.warn(
        {
          consumer: this.options.consumer,
          eventId: delivery.event.id,
          type: delivery.event.type,
          attempt,
          error,
        },
        'bus handler failed',
      )
      if (attempt >= policy.maxAttempts) {
        await this.park(delivery, error, attempt)
        return
      }
      const delayMs = backoffAfter(policy, attempt)
      if (retry === 'requeue') {
        await this.settle(() => outcomes.retryLater?.(delivery, delayMs, error), 'retryLater')
        return
      }
      await this.settle(() => outcomes.failed?.(delivery, attempt, error), 'failed')
      if (!this.stopping) await this.sleep(delayMs)
      if (this.stopping) {
        await this.settle(() => outcomes.release(delivery, true), 'release')
        return
      }
      attempt++
    }
  }

  /** Runs one attempt; resolves to the error message, or undefined on success. */
  private attempt(delivery: D, attempt: number): Promise<string | undefined> {
    const { consumer } = this.options
    return this.bounded(() =>
      this.handler(delivery.event, { attempt, consumer, position: delivery.position }),
    )
  }

  /** Runs a handler call bounded by ackWaitMs; resolves to its error message, or undefined on success. */
  private async bounded(call: () => Promise<void>): Promise<string | undefined> {
    const { policy } = this.options
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`handler did not finish within ${policy.ackWaitMs} ms`),
        policy.ackWaitMs,
      )
    })
    let run: Promise<string | undefined>
    try {
      run = call().then(
        () => undefined,
        (e: unknown) => errorMessage(e) || 'handler failed',
      )
    } catch (e) {
      run = Promise.resolve(errorMessage(e) || 'handler failed')
    }
    try {
      return await Promise.race([run, timedOut])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Stores a dead letter, retrying the store itself until it works or the dispatcher stops. */
  private async park(delivery: D, error: string, attempts: number): Promise<void> {
    const { outcomes, policy, log, consumer } = this.options
    for (let tries = 1; ; tries++) {
      try {
        await outcomes.deadLetter(delivery, error, attempts)
        break
      } catch (e) {
        log.error(
          { consumer, eventId: delivery.event.id, err: errorMessage(e) },
          'storing a dead letter failed',
        )
        if (!this.stopping) await this.sleep(backoffAfter(policy, tries) || 1000)
        if (this.stopping) {
          await this.settle(() => outcomes.release(delivery, true), 'release')
          return
        }
      }
    }
    this.metrics.deadLettered.inc()
    log.error(
      { consumer, eventId: delivery.event.id, type: delivery.event.type, attempts, error },
      'bus dead letter',
    )
    await this.settle(() => outcomes.ack(delivery), 'ack')
  }

  private async settle(step: () => void | Promise<void>, what: string): Promise<void> {
    try {
      await step()
    } catch (e) {
      // The engine redelivers whatever it was not told about: at-least-once holds without this step.
      this.options.log.warn(
        { consumer: this.options.consumer, step: what, err: errorMessage(e) },
        'bus outcome failed',
      )
    }
  }

  /** Runs an outcome step now; a promise it returns is handed back, already guarded. */
  private settleNow(step: () => void | Promise<void>, what: string): Promise<void> | undefined {
    try {
      const pending = step()
      return pending ? this.settle(() => pending, what) : undefined
    } catch (e) {
      this.options.log.warn(
        { consumer: this.options.consumer, step: what, err: errorMessage(e) },
        'bus outcome failed',
      )
      return undefined
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.wakeSleepers.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wakeSleepers.add(done)
    })
  }

  private notifyRoom(all: boolean): void {
    if (this.roomWaiters.length === 0) return
    const still: { below: number; resolve: () => void }[] = []
    for (const waiter of this.roomWaiters) {
      if (all || this.queued < waiter.below) waiter.resolve()
      else still.push(waiter)
    }
    this.roomWaiters = still
  }
}

/** A latched wake-up: `notify` before `wait` makes the next wait return at once. */
export class Signal {
  private latched = false
  private waiter: (() => void) | undefined

  notify(): void {
    if (this.waiter) this.waiter()
    else this.latched = true
  }

  wait(ms: number): Promise<void> {
    if (this.latched) {
      this.latched = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.waiter = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.waiter = done
    })
  }
}
