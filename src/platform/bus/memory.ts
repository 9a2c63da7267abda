import { CompiledQuery, type Generated, type Kysely, type Selectable, sql } from 'kysely'
import {
  autoIncrementType,
  type Db,
  type DbKind,
  insertValuesText,
  nextTurn,
  type ReelMigration,
} from '../db/db.js'
import { errorMessage } from '../errors.js'
import { newId } from '../ids.js'
import type { Logger } from '../log.js'
import {
  assertConsumerName,
  type Bus,
  type ConsumerOptions,
  type DeadLetter,
  type EventEnvelope,
  PublishedEnvelope,
  type PublishInput,
  type Subscription,
  type WorkerOptions,
} from './bus.js'
import {
  assertTypePatterns,
  type ConsumerHandler,
  consumerHandler,
  type Delivery,
  Dispatcher,
  Fifo,
  inFlightLimit,
  positiveConcurrency,
  type RetryPolicy,
  retryPolicy,
  Signal,
  toEnvelope,
  typeFilter,
} from './dispatch.js'

/**
 * The embedded Bus: an event log and a work queue kept in the Db (SQLite or PostgreSQL).
 *
 * - Events get a sequence number in publish order; publishes made in the same tick share one
 *   transaction. On PostgreSQL an advisory lock makes commit order follow that order, so a reader
 *   never sees seq n+1 before seq n.
 * - A consumer keeps a cursor (every event at or below it is settled) and a delivered mark (events
 *   up to it may have reached a handler); both are written in batches, together with the consumer's
 *   lease, which makes one process at a time the active consumer of a name.
 * - A task is claimed by an `UPDATE … WHERE available … RETURNING`, so one worker of any process wins;
 *   the claim is a lease renewed while the handler runs; a lapsed lease makes the task claimable again.
 */

interface EventsTable {
  seq: Generated<number>
  id: string
  type: string
  key: string
  time: number
  data: string
  /** When it was stored (epoch ms; null for events stored before platform_bus_002): what retention goes by. */
  stored_at: number | null
}

interface ConsumersTable {
  name: string
  cursor_seq: number
  delivered_seq: number
  owner: string | null
  lease_until: number
  created_at: number
}

interface AttemptsTable {
  consumer: string
  seq: number
  attempts: number
}

interface TasksTable {
  seq: Generated<number>
  queue: string
  id: string
  type: string
  key: string
  time: number
  data: string
  attempts: number
  available_at: number
  owner: string | null
  done: number
  done_at: number | null
  last_error: string | null
}

interface DeadLettersTable {
  seq: Generated<number>
  consumer: string
  event_id: string
  type: string
  key: string
  time: number
  data: string
  error: string
  attempts: number
  parked_at: number
}

interface BusTables {
  platform_bus_events: EventsTable
  platform_bus_consumers: ConsumersTable
  platform_bus_attempts: AttemptsTable
  platform_bus_tasks: TasksTable
  platform_bus_dead_letters: DeadLettersTable
}

export const busMigrations: Record<string, ReelMigration> = {
  platform_bus_001_tables: {
    async up(db, kind) {
      await db.schema
        .createTable('platform_bus_events')
        .ifNotExists()
        .addColumn('seq', autoIncrementType(kind), (c) =>
          // AUTOINCREMENT: a sequence number is never reused, even after old events are pruned.
          kind === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey(),
        )
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('platform_bus_events_id')
        .ifNotExists()
        .unique()
        .on('platform_bus_events')
        .column('id')
        .execute()

      await db.schema
        .createTable('platform_bus_consumers')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('cursor_seq', 'bigint', (c) => c.notNull())
        .addColumn('delivered_seq', 'bigint', (c) => c.notNull())
        .addColumn('owner', 'text')
        .addColumn('lease_until', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute()

      await db.schema
        .createTable('platform_bus_attempts')
        .ifNotExists()
        .addColumn('consumer', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('platform_bus_attempts_pk', ['consumer', 'seq'])
        .execute()

      await db.schema
        .createTable('platform_bus_tasks')
        .ifNotExists()
        .addColumn('seq', autoIncrementType(kind), (c) => c.primaryKey())
        .addColumn('queue', 'text', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('available_at', 'bigint', (c) => c.notNull())
        .addColumn('owner', 'text')
        .addColumn('done', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('done_at', 'bigint')
        .addColumn('last_error', 'text')
        .execute()
      await db.schema
        .createIndex('platform_bus_tasks_queue_id')
        .ifNotExists()
        .unique()
        .on('platform_bus_tasks')
        .columns(['queue', 'id'])
        .execute()
      await db.schema
        .createIndex('platform_bus_tasks_claimable')
        .ifNotExists()
        .on('platform_bus_tasks')
        .columns(['queue', 'done', 'available_at'])
        .execute()

      await db.schema
        .createTable('platform_bus_dead_letters')
        .ifNotExists()
        .addColumn('seq', autoIncrementType(kind), (c) => c.primaryKey())
        .addColumn('consumer', 'text', (c) => c.notNull())
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('error', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('parked_at', 'bigint', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('platform_bus_dead_letters_consumer_event')
        .ifNotExists()
        .unique()
        .on('platform_bus_dead_letters')
        .columns(['consumer', 'event_id'])
        .execute()
    },
  },
  platform_bus_002_stored_at: {
    async up(db) {
      // Retention goes by when an event was stored, not by its own time (a late event is new here).
      await db.schema.alterTable('platform_bus_events').addColumn('stored_at', 'bigint').execute()
      await sql`update platform_bus_events set stored_at = time where stored_at is null`.execute(db)
      await db.schema
        .createIndex('platform_bus_events_stored_at')
        .ifNotExists()
        .on('platform_bus_events')
        .column('stored_at')
        .execute()
    },
  },
}

export interface MemoryBusOptions {
  db: Db
  log: Logger
  /** How often to look for events and tasks written by other processes. Default 500. */
  pollMs?: number
  /** How long a consumer's or a task's claim lasts unrenewed: a crashed owner is replaced after this. Default 10 000. */
  leaseMs?: number
}

/** Events read per query. */
const FETCH_BATCH = 1000
/** A consumer stops reading while this many of its events wait for a handler (more for large batches: inFlightLimit). */
const HIGH_WATER = 4000
/** Rows per INSERT: well under SQLite's limit of bound parameters. */
const INSERT_CHUNK = 500
/** Events deleted per statement when pruning (the event loop takes a turn between). */
const PRUNE_BATCH = 2000
/** Upper bound between cursor writes. */
const FLUSH_MS = 100
/** Done tasks stay this long so that enqueueing the same id again stays a no-op. */
const DONE_TASK_RETENTION_MS = 24 * 3600_000
/** Any constant: one lock id serialises event inserts across processes sharing a PostgreSQL database. */
const PUBLISH_LOCK = 0x7265656c

export function createMemoryBus(options: MemoryBusOptions): Bus {
  return new MemoryBus(options)
}

/** Wakes consumers of the same Db in this process as soon as their rows are committed. */
const localWakeups = new WeakMap<object, Map<string, Set<() => void>>>()

function listen(db: object, topic: string, listener: () => void): () => void {
  let topics = localWakeups.get(db)
  if (!topics) {
    topics = new Map()
    localWakeups.set(db, topics)
  }
  let listeners = topics.get(topic)
  if (!listeners) {
    listeners = new Set()
    topics.set(topic, listeners)
  }
  listeners.add(listener)
  return () => listeners.delete(listener)
}

function wake(db: object, topic: string): void {
  const listeners = localWakeups.get(db)?.get(topic)
  if (listeners) for (const listener of listeners) listener()
}

const EVENTS_TOPIC = 'events'
const tasksTopic = (queue: string) => `tasks:${queue}`

interface BusContext {
  db: Kysely<BusTables>
  kind: DbKind
  log: Logger
  pollMs: number
  leaseMs: number
  /** SQLite: the events this process stored last (consumers close behind read them from here). */
  recent: RecentEvents | undefined
}

/** Events kept in RecentEvents: a consumer further behind reads from the database. */
const RECENT_EVENTS = 10_000

/**
 * The events this process stored last, in seq order with no seq missing, as the database has them.
 * A consumer close behind is served from here instead of reading back what was just written (in the
 * all-in-one shape every consumer read every playback event again: the largest share of the event
 * loop's time under a burst of plays). It answers only while it holds every event from the reader's
 * position to the database's newest, so an event another process stored sends readers to the database.
 */
class RecentEvents {
  private rows: Selectable<EventsTable>[] = []
  private head = 0

  /** Rows just committed, in seq order; a gap before them (another process stored events) starts over. */
  add(rows: Selectable<EventsTable>[]): void {
    if (rows.length === 0) return
    const last = this.rows[this.rows.length - 1]
    if (last && Number(rows[0]?.seq) !== Number(last.seq) + 1) {
      this.rows = []
      this.head = 0
    }
    for (const row of rows) this.rows.push(row)
    const excess = this.rows.length - this.head - RECENT_EVENTS
    if (excess > 0) this.head += excess
    if (this.head > RECENT_EVENTS) {
      this.rows = this.rows.slice(this.head)
      this.head = 0
    }
  }

  /** Whether a read after `after` could be answered here (the database's newest still to be checked). */
  covers(after: number): boolean {
    const first = this.rows[this.head]
    return first !== undefined && Number(first.seq) <= after + 1
  }

  /** As fetchEvents, if every event after `after` up to `newest` is here; else undefined. */
  read(
    after: number,
    newest: number,
    wanted: (type: string) => boolean,
  ): { rows: Selectable<EventsTable>[]; scannedTo: number } | undefined {
    const first = this.rows[this.head]
    const last = this.rows[this.rows.length - 1]
    if (!first || !last || Number(last.seq) !== newest || Number(first.seq) > after + 1) return undefined
    const rows: Selectable<EventsTable>[] = []
    for (let i = this.head + Math.max(0, after + 1 - Number(first.seq)); i < this.rows.length; i++) {
      const row = this.rows[i] as Selectable<EventsTable>
      if (!wanted(row.type)) continue
      rows.push(row)
      if (rows.length === FETCH_BATCH) return { rows, scannedTo: Number(row.seq) }
    }
    return { rows, scannedTo: Math.max(after, newest) }
  }
}

type EventRow = Omit<EventsTable, 'seq'>

/** Events in one statement, hand-written (see insertValuesText); an id stored before is left alone. */
function insertEventsQuery(kind: DbKind, rows: readonly EventRow[], returning: boolean): CompiledQuery {
  const parameters: unknown[] = []
  for (const r of rows) parameters.push(r.id, r.type, r.key, r.time, r.data, r.stored_at)
  const tail = returning ? 'on conflict (id) do nothing returning id, seq' : 'on conflict (id) do nothing'
  return CompiledQuery.raw(
    insertValuesText(kind, EVENTS_HEAD, 6, rows.length, tail, INSERT_CHUNK),
    parameters,
  )
}
const EVENTS_HEAD = 'insert into platform_bus_events (id, "type", "key", "time", "data", stored_at)'

function stringifyData(data: unknown): string {
  return JSON.stringify(data) ?? 'null'
}

/** The last event time formatted: events published together share their millisecond, and a batch formats it once. */
let lastTime = Number.NaN
let lastIso = ''

function envelopeOf(row: {
  id: string
  type: string
  key: string
  time: number
  data: string
}): EventEnvelope {
  const time = Number(row.time)
  if (time !== lastTime) {
    lastIso = new Date(time).toISOString()
    lastTime = time
  }
  return new PublishedEnvelope(row.id, row.type, row.key, lastIso, JSON.parse(row.data), row.data)
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size)
}

/** Collects the rows added in one tick and writes them in one go; one write at a time. */
class BatchWriter<Row> {
  private waiting: { row: Row; resolve: () => void; reject: (e: unknown) => void }[] = []
  private draining: Promise<void> | undefined

  constructor(private readonly write: (rows: Row[]) => Promise<void>) {}

  add(row: Row): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ row, resolve, reject })
      if (!this.draining) {
        this.draining = new Promise<void>((started) => setImmediate(started)).then(() => this.drain())
      }
    })
  }

  /** Resolves once every row added so far is written (or failed). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting
      this.waiting = []
      try {
        await this.write(batch.map((w) => w.row))
        for (const w of batch) w.resolve()
      } catch (e) {
        for (const w of batch) w.reject(e)
      }
    }
    this.draining = undefined
  }
}

class MemoryBus implements Bus {
  readonly kind = 'memory' as const
  /** By type prefix: the seq below which prune() has left no event of that type. */
  private readonly prunedThrough = new Map<string, number>()
  private readonly ctx: BusContext
  private readonly subscriptions = new Set<Subscription>()
  private readonly events: BatchWriter<EventRow>
  private readonly tasks: BatchWriter<Omit<TasksTable, 'seq'>>
  private closed = false

  constructor(private readonly options: MemoryBusOptions) {
    this.ctx = {
      db: options.db.tables<BusTables>(),
      kind: options.db.kind,
      log: options.log,
      pollMs: options.pollMs ?? 500,
      leaseMs: options.leaseMs ?? 10_000,
      recent: options.db.kind === 'sqlite' ? new RecentEvents() : undefined,
    }
    this.events = new BatchWriter((rows) => this.insertEvents(rows))
    this.tasks = new BatchWriter((rows) => this.insertTasks(rows))
  }

  async publish<T>(input: PublishInput<T>): Promise<EventEnvelope<T>> {
    this.assertOpen()
    const event = toEnvelope(input)
    await this.events.add({
      id: event.id,
      type: event.type,
      key: event.key,
      time: Date.parse(event.time),
      data: stringifyData(event.data),
      stored_at: Date.now(),
    })
    return event
  }

  async prune(typePrefix: string, before: number): Promise<number> {
    const { db, log } = this.ctx
    const stored = await db
      .selectFrom('platform_bus_events')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .where('stored_at', '<', before)
      .executeTakeFirst()
    let upTo = Number(stored?.seq ?? 0)
    if (upTo === 0) return 0
    // Never what a durable consumer has still to read, unless it has not run since `before` (a
    // removed service, a process gone longer than the retention): that one would block it forever.
    const gone: string[] = []
    for (const c of await db
      .selectFrom('platform_bus_consumers')
      .select(['name', 'cursor_seq', 'lease_until', 'created_at'])
      .execute()) {
      // Seen: held since `before`, or created since (a new consumer holds no lease until it first reads).
      if (Math.max(Number(c.lease_until), Number(c.created_at)) >= before)
        upTo = Math.min(upTo, Number(c.cursor_seq))
      else if (Number(c.cursor_seq) < upTo) gone.push(c.name)
    }
    if (gone.length > 0)
      log.warn(
        { consumers: gone, typePrefix },
        'pruning events that consumers not seen within the retention have not read',
      )
    // What an earlier run here went through is gone but for events of other types: not read again.
    const from = this.prunedThrough.get(typePrefix) ?? 0
    let pruned = 0
    for (;;) {
      const batch = await db
        .selectFrom('platform_bus_events')
        .select('seq')
        .where('seq', '>', from)
        .where('seq', '<=', upTo)
        .where('type', 'like', `${typePrefix}%`)
        .orderBy('seq')
        .limit(PRUNE_BATCH)
        .execute()
      if (batch.length === 0) {
        this.prunedThrough.set(typePrefix, Math.max(from, upTo))
        return pruned
      }
      await db
        .deleteFrom('platform_bus_events')
        .where(
          'seq',
          'in',
          batch.map((r) => r.seq),
        )
        .execute()
      pruned += batch.length
      await nextTurn()
    }
  }

  async subscribe<T>(options: ConsumerOptions<T>): Promise<Subscription> {
    this.assertOpen()
    assertConsumerName(options.name)
    assertTypePatterns(options.types)
    const consumer =
      options.durability === 'ephemeral'
        ? new EphemeralConsumer(this.ctx, options as ConsumerOptions, retryPolicy(options))
        : new EventConsumer(this.ctx, options as ConsumerOptions, retryPolicy(options))
    await consumer.start()
    return this.track(consumer)
  }

  async enqueue<T>(queue: string, task: PublishInput<T>): Promise<EventEnvelope<T>> {
    this.assertOpen()
    assertConsumerName(queue)
    const event = toEnvelope(task)
    await this.tasks.add({
      queue,
      id: event.id,
      type: event.type,
      key: event.key,
      time: Date.parse(event.time),
      data: stringifyData(event.data),
      attempts: 0,
      available_at: 0,
      owner: null,
      done: 0,
      done_at: null,
      last_error: null,
    })
    return event
  }

  async work<T>(queue: string, options: WorkerOptions<T>): Promise<Subscription> {
    this.assertOpen()
    assertConsumerName(queue)
    const worker = new TaskWorker(this.ctx, queue, options as WorkerOptions, retryPolicy(options))
    worker.start()
    return this.track(worker)
  }

  async deadLetters(consumer: string, limit = 100): Promise<DeadLetter[]> {
    const rows = await this.ctx.db
      .selectFrom('platform_bus_dead_letters')
      .selectAll()
      .where('consumer', '=', consumer)
      .orderBy('seq')
      .limit(limit)
      .execute()
    return rows.map((row) => ({
      consumer: row.consumer,
      event: envelopeOf({ ...row, id: row.event_id }),
      error: row.error,
      attempts: row.attempts,
      time: new Date(row.parked_at).toISOString(),
    }))
  }

  async consumers(): Promise<string[]> {
    const rows = await this.ctx.db
      .selectFrom('platform_bus_consumers')
      .select('name')
      .orderBy('name')
      .execute()
    return rows.map((r) => r.name)
  }

  async ping(): Promise<void> {
    await this.options.db.ping()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.subscriptions].map((s) => s.stop()))
    await Promise.all([this.events.idle(), this.tasks.idle()])
  }

  private track(subscription: Subscription): Subscription {
    this.subscriptions.add(subscription)
    return {
      stop: async () => {
        this.subscriptions.delete(subscription)
        await subscription.stop()
      },
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('The bus is closed')
  }

  private async insertEvents(rows: EventRow[]): Promise<void> {
    const { db, kind, recent } = this.ctx
    const stored: Selectable<EventsTable>[] = []
    await db.transaction().execute(async (trx) => {
      if (kind === 'postgres') await sql`select pg_advisory_xact_lock(${PUBLISH_LOCK})`.execute(trx)
      for (const [i, chunk] of [...chunks(rows, INSERT_CHUNK)].entries()) {
        if (i > 0) await nextTurn()
        if (!recent) {
          await trx.executeQuery(insertEventsQuery(kind, chunk, false))
          continue
        }
        // The seq each new event got (one stored before under its id is not returned).
        const { rows: returned } = await trx.executeQuery<{ id: string; seq: number }>(
          insertEventsQuery(kind, chunk, true),
        )
        const seqs = new Map(returned.map((r) => [r.id, r.seq]))
        for (const row of chunk) {
          const seq = seqs.get(row.id)
          // A copy (the rows are written again if the transaction fails), then its seq: V8 is
          // slow (~2.5 µs) at a literal that spreads an object and adds to it.
          if (seq !== undefined) stored.push(Object.assign({ ...row }, { seq }))
        }
      }
    })
    if (recent) recent.add(stored.sort((a, b) => a.seq - b.seq))
    wake(db, EVENTS_TOPIC)
  }

  private async insertTasks(rows: Omit<TasksTable, 'seq'>[]): Promise<void> {
    const { db } = this.ctx
    await db.transaction().execute(async (trx) => {
      for (const [i, chunk] of [...chunks(rows, INSERT_CHUNK)].entries()) {
        if (i > 0) await nextTurn()
        await trx
          .insertInto('platform_bus_tasks')
          .values(chunk)
          .onConflict((oc) => oc.columns(['queue', 'id']).doNothing())
          .execute()
      }
    })
    for (const queue of new Set(rows.map((r) => r.queue))) wake(db, tasksTopic(queue))
  }
}

async function storeDeadLetter(
  ctx: BusContext,
  consumer: string,
  event: EventEnvelope,
  error: string,
  attempts: number,
): Promise<void> {
  await ctx.db
    .insertInto('platform_bus_dead_letters')
    .values({
      consumer,
      event_id: event.id,
      type: event.type,
      key: event.key,
      time: Date.parse(event.time),
      data: stringifyData(event.data),
      error,
      attempts,
      parked_at: Date.now(),
    })
    .onConflict((oc) => oc.columns(['consumer', 'event_id']).doNothing())
    .execute()
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Settled up to `cursor()`: the lowest unacked sequence number, minus one. */
class AckWatermark {
  private readonly outstanding = new Fifo<number>()
  private readonly acked = new Set<number>()
  private scanned: number

  constructor(floor: number) {
    this.scanned = floor
  }

  add(seq: number): void {
    this.outstanding.push(seq)
  }
  ack(seq: number): void {
    this.acked.add(seq)
  }
  /** Every event up to `seq` was read; those not added were not for this consumer. */
  scannedUpTo(seq: number): void {
    this.scanned = seq
  }
  cursor(): number {
    for (let head = this.outstanding.peek(); head !== undefined; head = this.outstanding.peek()) {
      if (!this.acked.delete(head)) return head - 1
      this.outstanding.shift()
    }
    return this.scanned
  }
}

interface StoredEvent extends Delivery {
  seq: number
}

/** One stretch of holding a consumer's lease. */
interface ConsumerSession {
  dispatcher: Dispatcher<StoredEvent>
  watermark: AckWatermark
  fetchedUpTo: number
  /** Events up to here may have reached a handler (written before they do). */
  delivered: number
  /** Events up to here may have reached a handler of the previous owner, which did not stop cleanly. */
  takeoverUpTo: number
  /** Attempts on record for unsettled events. */
  priorAttempts: Map<number, number>
  persisted: { cursor: number; delivered: number; renewAt: number }
  attemptsOnRecord: boolean
}

class EventConsumer implements Subscription {
  private readonly signal = new Signal()
  /** Each subscription is its own lease owner, so a second one of the same name waits as a standby. */
  private readonly owner = newId()
  private session: ConsumerSession | undefined
  private stopping = false
  private loop: Promise<void> | undefined
  private flushTimer: NodeJS.Timeout | undefined
  private flushing: Promise<void> = Promise.resolve()
  private unlisten: (() => void) | undefined
  private stopped: Promise<void> | undefined
  private readonly name: string
  private readonly concurrency: number
  private readonly handling: ConsumerHandler
  private readonly highWater: number
  private readonly wanted: (type: string) => boolean

  constructor(
    private readonly ctx: BusContext,
    private readonly options: ConsumerOptions,
    private readonly policy: RetryPolicy,
  ) {
    this.name = options.name
    this.concurrency = positiveConcurrency(options.concurrency)
    this.handling = consumerHandler(options)
    this.highWater = inFlightLimit(this.handling, this.concurrency, HIGH_WATER)
    this.wanted = typeFilter(options.types)
  }

  async start(): Promise<void> {
    const { db } = this.ctx
    const start = await startPosition(this.ctx, this.options.startAt)
    await db
      .insertInto('platform_bus_consumers')
      .values({
        name: this.name,
        cursor_seq: start,
        delivered_seq: start,
        owner: null,
        lease_until: 0,
        created_at: Date.now(),
      })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute()
    this.unlisten = listen(db, EVENTS_TOPIC, () => this.signal.notify())
    this.flushTimer = setInterval(
      () => {
        if (this.session)
          void this.flush(false).catch((e) => this.logError(e, 'writing the consumer cursor failed'))
      },
      Math.min(FLUSH_MS, this.ctx.leaseMs / 4),
    )
    this.flushTimer.unref()
    this.loop = this.run()
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true
      this.signal.notify()
      const stopping = this.session?.dispatcher.stop()
      await this.loop
      await stopping
      await this.session?.dispatcher.stop()
      clearInterval(this.flushTimer)
      this.unlisten?.()
      if (this.session) await this.flush(true).catch((e) => this.logError(e, 'releasing the consumer failed'))
    })()
    return this.stopped
  }

  private async run(): Promise<void> {
    const { pollMs, leaseMs } = this.ctx
    while (!this.stopping) {
      try {
        const session = this.session ?? (await this.acquire())
        if (!session) {
          await this.signal.wait(Math.min(pollMs, leaseMs / 2))
          continue
        }
        if (session.dispatcher.pending >= this.highWater) {
          await session.dispatcher.waitForRoom(this.highWater / 2)
          continue
        }
        const { rows, scannedTo } = await this.fetch(session.fetchedUpTo)
        if (this.session !== session || this.stopping) continue
        if (scannedTo > session.fetchedUpTo) await this.accept(session, rows, scannedTo)
        if (rows.length < FETCH_BATCH) await this.signal.wait(pollMs)
      } catch (e) {
        this.logError(e, 'reading events failed')
        await sleep(pollMs)
      }
    }
  }

  private async acquire(): Promise<ConsumerSession | undefined> {
    const { db, leaseMs } = this.ctx
    const now = Date.now()
    const row = await db
      .updateTable('platform_bus_consumers')
      .set({ owner: this.owner, lease_until: now + leaseMs })
      .where('name', '=', this.name)
      .where((eb) =>
        eb.or([eb('owner', 'is', null), eb('owner', '=', this.owner), eb('lease_until', '<=', now)]),
      )
      .returning(['cursor_seq', 'delivered_seq'])
      .executeTakeFirst()
    if (!row || this.stopping) {
      if (row) await this.release()
      return undefined
    }
    const cursor = Number(row.cursor_seq)
    const delivered = Number(row.delivered_seq)
    const prior = await db
      .selectFrom('platform_bus_attempts')
      .select(['seq', 'attempts'])
      .where('consumer', '=', this.name)
      .where('seq', '>', cursor)
      .execute()
    const session: ConsumerSession = {
      dispatcher: new Dispatcher<StoredEvent>({
        ...this.handling,
        consumer: this.name,
        policy: this.policy,
        concurrency: this.concurrency,
        retry: 'in-place',
        log: this.ctx.log,
        outcomes: {
          ack: (d) => session.watermark.ack(d.seq),
          failed: (d, attempt) => this.recordAttempts(session, [{ seq: d.seq, attempts: attempt }]),
          deadLetter: (d, error, attempts) => storeDeadLetter(this.ctx, this.name, d.event, error, attempts),
          release: () => {},
        },
      }),
      watermark: new AckWatermark(cursor),
      fetchedUpTo: cursor,
      delivered: Math.max(delivered, cursor),
      takeoverUpTo: delivered,
      priorAttempts: new Map(prior.map((p) => [Number(p.seq), p.attempts])),
      persisted: { cursor, delivered, renewAt: now + leaseMs / 3 },
      attemptsOnRecord: prior.length > 0,
    }
    this.session = session
    return session
  }

  private async release(): Promise<void> {
    await this.ctx.db
      .updateTable('platform_bus_consumers')
      .set({ owner: null, lease_until: Date.now() })
      .where('name', '=', this.name)
      .where('owner', '=', this.owner)
      .execute()
  }

  private fetch(after: number): Promise<{ rows: Selectable<EventsTable>[]; scannedTo: number }> {
    return fetchEvents(this.ctx, after, this.options.types, this.wanted)
  }

  private async accept(
    session: ConsumerSession,
    rows: Selectable<EventsTable>[],
    scannedTo: number,
  ): Promise<void> {
    const last = Number(rows[rows.length - 1]?.seq ?? session.fetchedUpTo)
    // A previous owner that vanished may have run these: count that run, so a crash loop ends in a dead letter.
    const redelivered = rows
      .filter((r) => r.seq <= session.takeoverUpTo && this.wanted(r.type))
      .map((r) => ({ seq: Number(r.seq), attempts: (session.priorAttempts.get(Number(r.seq)) ?? 0) + 1 }))
    if (redelivered.length > 0) await this.recordAttempts(session, redelivered)
    if (last > session.delivered) {
      session.delivered = last
      await this.flush(false)
    }
    if (this.session !== session) return
    for (const row of rows) {
      if (!this.wanted(row.type)) continue
      const seq = Number(row.seq)
      session.watermark.add(seq)
      session.dispatcher.push({
        seq,
        event: envelopeOf(row),
        attempt: (session.priorAttempts.get(seq) ?? 0) + 1,
        orderKey: row.key,
        position: seq,
      })
    }
    session.watermark.scannedUpTo(scannedTo)
    session.fetchedUpTo = scannedTo
  }

  private async recordAttempts(
    session: ConsumerSession,
    records: { seq: number; attempts: number }[],
  ): Promise<void> {
    for (const record of records) session.priorAttempts.set(record.seq, record.attempts)
    session.attemptsOnRecord = true
    for (const chunk of chunks(records, INSERT_CHUNK)) {
      await this.ctx.db
        .insertInto('platform_bus_attempts')
        .values(chunk.map((r) => ({ consumer: this.name, seq: r.seq, attempts: r.attempts })))
        .onConflict((oc) =>
          oc.columns(['consumer', 'seq']).doUpdateSet((eb) => ({ attempts: eb.ref('excluded.attempts') })),
        )
        .execute()
    }
  }

  /** Writes the cursor, the delivered mark and the lease in one statement; one write at a time. */
  private flush(release: boolean): Promise<void> {
    const write = this.flushing.then(() => this.writeCursor(release))
    this.flushing = write.catch(() => {})
    return write
  }

  private async writeCursor(release: boolean): Promise<void> {
    const session = this.session
    if (!session) return
    const { db, leaseMs } = this.ctx
    const cursor = session.watermark.cursor()
    // A clean stop leaves nothing in doubt past the cursor: failures are on record, the rest never ran.
    const delivered = release ? cursor : Math.max(session.delivered, cursor)
    const now = Date.now()
    const { persisted } = session
    if (
      !release &&
      cursor === persisted.cursor &&
      delivered === persisted.delivered &&
      now < persisted.renewAt
    )
      return
    const result = await db
      .updateTable('platform_bus_consumers')
      .set({
        cursor_seq: cursor,
        delivered_seq: delivered,
        owner: release ? null : this.owner,
        // Released: free at once (no owner), and when it was last seen stays (retention reads it).
        lease_until: release ? now : now + leaseMs,
      })
      .where('name', '=', this.name)
      .where('owner', '=', this.owner)
      .executeTakeFirst()
    if (result.numUpdatedRows === 0n) {
      this.loseSession(session)
      return
    }
    if (session.attemptsOnRecord && cursor > persisted.cursor) {
      await db
        .deleteFrom('platform_bus_attempts')
        .where('consumer', '=', this.name)
        .where('seq', '<=', cursor)
        .execute()
      for (const seq of session.priorAttempts.keys()) if (seq <= cursor) session.priorAttempts.delete(seq)
      session.attemptsOnRecord = session.priorAttempts.size > 0
    }
    session.persisted = { cursor, delivered, renewAt: now + leaseMs / 3 }
  }

  private loseSession(session: ConsumerSession): void {
    if (this.session !== session) return
    this.session = undefined
    this.ctx.log.warn({ consumer: this.name }, 'bus consumer lease lost to another process; standing by')
    void session.dispatcher.stop()
  }

  private logError(e: unknown, message: string): void {
    this.ctx.log.error({ consumer: this.name, err: errorMessage(e) }, message)
  }
}

/** The sequence number a new consumer starts after. */
async function startPosition(ctx: BusContext, startAt: ConsumerOptions['startAt']): Promise<number> {
  if (typeof startAt === 'object') {
    if (!Number.isSafeInteger(startAt.after) || startAt.after < 0)
      throw new Error(`startAt.after must be a position a handler was given, got ${startAt.after}`)
    return startAt.after
  }
  if (startAt !== 'new') return 0
  const last = await ctx.db
    .selectFrom('platform_bus_events')
    .select((eb) => eb.fn.max('seq').as('seq'))
    .executeTakeFirst()
  return Number(last?.seq ?? 0)
}

/**
 * The next events for a consumer of these types after `after`, and how far that read has scanned.
 * The statement reads the newest seq beside the events up to it: every event up to it is committed
 * (publishes commit in seq order, and one statement reads one snapshot), so a read that finds less
 * than a batch has seen everything up to it. A cursor then moves past events of other types, rather
 * than a consumer of rare types rescanning the same tail on every poll. A read that finds no event
 * has no newest seq: then the newest is read first and the events up to it after, as a newest read
 * later could pass over an event committed in between. (A join that always returns the newest made
 * SQLite copy the rows into a temporary table: a third slower.)
 */
async function fetchEvents(
  ctx: BusContext,
  after: number,
  types: string[],
  wanted: (type: string) => boolean,
): Promise<{ rows: Selectable<EventsTable>[]; scannedTo: number }> {
  if (ctx.recent?.covers(after)) {
    const newest = Number((await newestSeq(ctx).executeTakeFirst())?.newest ?? 0)
    const kept = ctx.recent.read(after, newest, wanted)
    if (kept) return kept
  }
  let rows = await selectEvents(ctx, after, types, undefined)
  let upTo = Number(rows[rows.length - 1]?.newest ?? 0)
  if (rows.length === 0) {
    upTo = Number((await newestSeq(ctx).executeTakeFirst())?.newest ?? 0)
    if (upTo <= after) return { rows: [], scannedTo: after }
    rows = await selectEvents(ctx, after, types, upTo)
  }
  const last = rows[rows.length - 1]
  return { rows, scannedTo: rows.length < FETCH_BATCH || !last ? Math.max(after, upTo) : Number(last.seq) }
}

const newestSeq = (ctx: BusContext) =>
  ctx.db.selectFrom('platform_bus_events').select((eb) => eb.fn.max('seq').as('newest'))

/** Events of these types after `after`, up to `upTo` (else the newest, which each row also carries). */
function selectEvents(ctx: BusContext, after: number, types: string[], upTo: number | undefined) {
  let query = ctx.db
    .selectFrom('platform_bus_events')
    .selectAll()
    .select(() => newestSeq(ctx).as('newest'))
    .where('seq', '>', after)
    .where('seq', '<=', upTo ?? newestSeq(ctx))
    .orderBy('seq')
    .limit(FETCH_BATCH)
  const prefixes = typePrefixes(types)
  if (prefixes) {
    query = query.where((eb) =>
      eb.or(prefixes.map((p) => (p.exact ? eb('type', '=', p.value) : eb('type', 'like', `${p.value}%`)))),
    )
  }
  return query.execute()
}

/**
 * A consumer whose position lives only in this subscription: no row, no lease, nothing left once
 * it stops. Every subscription reads every event from its start, whatever its name.
 */
class EphemeralConsumer implements Subscription {
  private readonly signal = new Signal()
  private readonly dispatcher: Dispatcher<StoredEvent>
  private fetchedUpTo = 0
  private stopping = false
  private loop: Promise<void> | undefined
  private unlisten: (() => void) | undefined
  private stopped: Promise<void> | undefined
  private readonly highWater: number
  private readonly wanted: (type: string) => boolean

  constructor(
    private readonly ctx: BusContext,
    private readonly options: ConsumerOptions,
    policy: RetryPolicy,
  ) {
    const handling = consumerHandler(options)
    const concurrency = positiveConcurrency(options.concurrency)
    this.highWater = inFlightLimit(handling, concurrency, HIGH_WATER)
    this.wanted = typeFilter(options.types)
    this.dispatcher = new Dispatcher<StoredEvent>({
      ...handling,
      consumer: options.name,
      policy,
      concurrency,
      retry: 'in-place',
      log: ctx.log,
      outcomes: {
        ack: () => {},
        deadLetter: (d, error, attempts) =>
          storeDeadLetter(this.ctx, this.options.name, d.event, error, attempts),
        release: () => {},
      },
    })
  }

  async start(): Promise<void> {
    this.fetchedUpTo = await startPosition(this.ctx, this.options.startAt)
    this.unlisten = listen(this.ctx.db, EVENTS_TOPIC, () => this.signal.notify())
    this.loop = this.run()
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true
      this.signal.notify()
      await this.dispatcher.stop()
      await this.loop
      this.unlisten?.()
    })()
    return this.stopped
  }

  private async run(): Promise<void> {
    const { pollMs } = this.ctx
    while (!this.stopping) {
      try {
        if (this.dispatcher.pending >= this.highWater) {
          await this.dispatcher.waitForRoom(this.highWater / 2)
          continue
        }
        const { rows, scannedTo } = await fetchEvents(
          this.ctx,
          this.fetchedUpTo,
          this.options.types,
          this.wanted,
        )
        if (this.stopping) break
        for (const row of rows) {
          if (!this.wanted(row.type)) continue
          const seq = Number(row.seq)
          this.dispatcher.push({ seq, event: envelopeOf(row), attempt: 1, orderKey: row.key, position: seq })
        }
        this.fetchedUpTo = Math.max(this.fetchedUpTo, scannedTo)
        if (rows.length < FETCH_BATCH) await this.signal.wait(pollMs)
      } catch (e) {
        this.ctx.log.error({ consumer: this.options.name, err: errorMessage(e) }, 'reading events failed')
        await sleep(pollMs)
      }
    }
  }
}

/** SQL pre-filters for type patterns: the literal part before the first wildcard; none when a pattern starts wild. */
function typePrefixes(patterns: string[]): { value: string; exact: boolean }[] | undefined {
  const prefixes: { value: string; exact: boolean }[] = []
  for (const pattern of patterns) {
    const tokens = pattern.split('.')
    const wild = tokens.findIndex((t) => t === '*' || t === '>')
    if (wild === 0) return undefined
    if (wild === -1) prefixes.push({ value: pattern, exact: true })
    else prefixes.push({ value: `${tokens.slice(0, wild).join('.')}.`, exact: false })
  }
  return prefixes
}

interface ClaimedTask extends Delivery {
  seq: number
}

class TaskWorker implements Subscription {
  private readonly signal = new Signal()
  private readonly owner = newId()
  private readonly dispatcher: Dispatcher<ClaimedTask>
  private readonly running = new Set<number>()
  private readonly concurrency: number
  private stopping = false
  private loop: Promise<void> | undefined
  private renewTimer: NodeJS.Timeout | undefined
  private unlisten: (() => void) | undefined
  private stopped: Promise<void> | undefined
  private lastPurge = 0

  constructor(
    private readonly ctx: BusContext,
    private readonly queue: string,
    options: WorkerOptions,
    policy: RetryPolicy,
  ) {
    this.concurrency = positiveConcurrency(options.concurrency)
    this.dispatcher = new Dispatcher<ClaimedTask>({
      consumer: queue,
      handler: options.handler,
      policy,
      concurrency: this.concurrency,
      retry: 'requeue',
      log: ctx.log,
      outcomes: {
        ack: (d) => this.complete(d),
        retryLater: (d, delayMs, error) => this.giveBack(d, delayMs, error, 0),
        deadLetter: (d, error, attempts) => storeDeadLetter(this.ctx, this.queue, d.event, error, attempts),
        // Claimed but never started: this claim was not an attempt.
        release: (d, attempted) => this.giveBack(d, 0, null, attempted ? 0 : 1),
      },
    })
  }

  start(): void {
    this.unlisten = listen(this.ctx.db, tasksTopic(this.queue), () => this.signal.notify())
    this.renewTimer = setInterval(() => void this.renewLeases(), this.ctx.leaseMs / 3)
    this.renewTimer.unref()
    this.loop = this.run()
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true
      this.signal.notify()
      await this.dispatcher.stop()
      await this.loop
      clearInterval(this.renewTimer)
      this.unlisten?.()
    })()
    return this.stopped
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        const room = this.concurrency - this.dispatcher.pending
        if (room <= 0) {
          await this.dispatcher.waitForRoom(this.concurrency)
          continue
        }
        const claim = await this.claim(room)
        if (this.stopping) {
          for (const task of claim.tasks) await this.giveBack(task, 0, null, 1)
          break
        }
        for (const task of claim.tasks) {
          this.running.add(task.seq)
          this.dispatcher.push(task)
        }
        if (claim.tasks.length === 0 && !claim.contended) await this.signal.wait(claim.nextInMs)
        await this.purgeDone()
      } catch (e) {
        this.ctx.log.error({ queue: this.queue, err: errorMessage(e) }, 'claiming tasks failed')
        await sleep(this.ctx.pollMs)
      }
    }
  }

  private async claim(room: number): Promise<{ tasks: ClaimedTask[]; contended: boolean; nextInMs: number }> {
    const { db, leaseMs, pollMs } = this.ctx
    const now = Date.now()
    const candidates = await db
      .selectFrom('platform_bus_tasks')
      .select('seq')
      .where('queue', '=', this.queue)
      .where('done', '=', 0)
      .where('available_at', '<=', now)
      .orderBy('seq')
      .limit(room)
      .execute()
    if (candidates.length === 0) {
      const next = await db
        .selectFrom('platform_bus_tasks')
        .select((eb) => eb.fn.min('available_at').as('at'))
        .where('queue', '=', this.queue)
        .where('done', '=', 0)
        .executeTakeFirst()
      const at = next?.at == null ? undefined : Number(next.at)
      const nextInMs = at === undefined ? pollMs : Math.max(1, Math.min(pollMs, at - now))
      return { tasks: [], contended: false, nextInMs }
    }
    // The WHERE is checked again on each row at update time, so of racing claimers exactly one gets it.
    const claimed = await db
      .updateTable('platform_bus_tasks')
      .set((eb) => ({ owner: this.owner, available_at: now + leaseMs, attempts: eb('attempts', '+', 1) }))
      .where(
        'seq',
        'in',
        candidates.map((c) => c.seq),
      )
      .where('done', '=', 0)
      .where('available_at', '<=', now)
      .returningAll()
      .execute()
    claimed.sort((a, b) => a.seq - b.seq)
    return {
      tasks: claimed.map((row) => ({
        seq: Number(row.seq),
        event: envelopeOf(row),
        attempt: row.attempts,
        orderKey: String(row.seq),
        position: Number(row.seq),
      })),
      contended: claimed.length < candidates.length,
      nextInMs: 0,
    }
  }

  private async complete(task: ClaimedTask): Promise<void> {
    this.running.delete(task.seq)
    await this.ctx.db
      .updateTable('platform_bus_tasks')
      .set({ done: 1, done_at: Date.now(), owner: null })
      .where('seq', '=', task.seq)
      .where('done', '=', 0)
      .execute()
  }

  private async giveBack(
    task: ClaimedTask,
    delayMs: number,
    error: string | null,
    uncount: number,
  ): Promise<void> {
    this.running.delete(task.seq)
    const { db } = this.ctx
    await db
      .updateTable('platform_bus_tasks')
      .set((eb) => ({
        owner: null,
        available_at: Date.now() + delayMs,
        attempts: eb('attempts', '-', uncount),
        last_error: error,
      }))
      .where('seq', '=', task.seq)
      .where('owner', '=', this.owner)
      .where('done', '=', 0)
      .execute()
    const topic = tasksTopic(this.queue)
    if (delayMs === 0) wake(db, topic)
    else setTimeout(() => wake(db, topic), delayMs).unref()
  }

  private async renewLeases(): Promise<void> {
    if (this.running.size === 0) return
    try {
      await this.ctx.db
        .updateTable('platform_bus_tasks')
        .set({ available_at: Date.now() + this.ctx.leaseMs })
        .where('seq', 'in', [...this.running])
        .where('owner', '=', this.owner)
        .where('done', '=', 0)
        .execute()
    } catch (e) {
      this.ctx.log.error({ queue: this.queue, err: errorMessage(e) }, 'renewing task leases failed')
    }
  }

  private async purgeDone(): Promise<void> {
    const now = Date.now()
    if (now - this.lastPurge < 10 * 60_000) return
    this.lastPurge = now
    await this.ctx.db
      .deleteFrom('platform_bus_tasks')
      .where('queue', '=', this.queue)
      .where('done', '=', 1)
      .where('done_at', '<', now - DONE_TASK_RETENTION_MS)
      .execute()
  }
}
