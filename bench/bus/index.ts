// Bus throughput, publish → handler → ack, through both adapters in one run:
//  - the embedded bus on SQLite (a temporary file), 50 000 events, target ≥ 20 000/s;
//  - JetStream at REEL_BENCH_NATS_URL / REEL_TEST_NATS_URL / nats://127.0.0.1:4222, 20 000 events,
//    target ≥ 5 000/s (skipped, and said so, when no server answers).
// Producers publish in pipelined chunks while the consumer runs (8 handlers over 64 keys); the clock
// stops when the last handler has returned and its ack is taken. Each adapter is measured twice: a
// one-event handler, and a batch handler (batches of up to 1000, 8 at once), the same events.
import path from 'node:path'
import { connect } from 'nats'
import type { Bus } from '../../src/platform/bus/bus.js'
import { createJetStreamBus } from '../../src/platform/bus/jetstream.js'
import { busMigrations, createMemoryBus } from '../../src/platform/bus/memory.js'
import { createDb } from '../../src/platform/db/db.js'
import { createLogger } from '../../src/platform/log.js'
import { tempDir } from '../../test/engines.js'
import { verdict } from '../lib.js'

const IN_PROCESS_EVENTS = Number(process.env.BENCH_BUS_EVENTS ?? 50_000)
const JETSTREAM_EVENTS = Number(process.env.BENCH_BUS_JETSTREAM_EVENTS ?? 20_000)
const IN_PROCESS_TARGET = 20_000
const JETSTREAM_TARGET = 5_000
const PUBLISH_CHUNK = 1000
const KEYS = 64
const CONCURRENCY = 8
const MAX_BATCH = 1000
type Shape = 'event' | 'batch'

const log = createLogger('warn')
const natsUrl = process.env.REEL_BENCH_NATS_URL || process.env.REEL_TEST_NATS_URL || 'nats://127.0.0.1:4222'

interface Measurement {
  events: number
  seconds: number
  perSecond: number
}

/** Publishes `count` events and resolves when a consumer has handled and acked them all. */
async function measure(bus: Bus, count: number, shape: Shape): Promise<Measurement> {
  let handled = 0
  let allHandled = () => {}
  const done = new Promise<void>((resolve) => {
    allHandled = resolve
  })
  const common = { name: `bench-${shape}`, types: [`bench.${shape}.>`], concurrency: CONCURRENCY }
  const subscription = await bus.subscribe<{ n: number }>(
    shape === 'event'
      ? {
          ...common,
          handler: async () => {
            handled++
            if (handled === count) allHandled()
          },
        }
      : {
          ...common,
          maxBatch: MAX_BATCH,
          batchHandler: async (events) => {
            handled += events.length
            if (handled === count) allHandled()
          },
        },
  )
  const started = performance.now()
  for (let from = 0; from < count; from += PUBLISH_CHUNK) {
    const size = Math.min(PUBLISH_CHUNK, count - from)
    await Promise.all(
      Array.from({ length: size }, (_, i) =>
        bus.publish({
          type: `bench.${shape}.started`,
          key: `profile-${(from + i) % KEYS}`,
          data: { n: from + i },
        }),
      ),
    )
  }
  await done
  const seconds = (performance.now() - started) / 1000
  await subscription.stop()
  return { events: count, seconds, perSecond: count / seconds }
}

async function inProcess(shape: Shape): Promise<Measurement> {
  const tmp = tempDir('reel-bench-bus-')
  const db = createDb({ sqliteFile: path.join(tmp.dir, 'reel.db') })
  try {
    await db.migrate(busMigrations)
    const bus = createMemoryBus({ db, log })
    try {
      return await measure(bus, IN_PROCESS_EVENTS, shape)
    } finally {
      await bus.close()
    }
  } finally {
    await db.close()
    tmp.cleanup()
  }
}

async function jetStream(shape: Shape): Promise<Measurement | string> {
  const connection = await connect({ servers: natsUrl, timeout: 2000, reconnect: false }).catch(
    () => undefined,
  )
  if (!connection) return `no NATS server answers at ${natsUrl}`
  const prefix = `bench_${process.pid}_${Date.now().toString(36)}`
  try {
    const bus = await createJetStreamBus({ connection, prefix, log })
    try {
      return await measure(bus, JETSTREAM_EVENTS, shape)
    } finally {
      await bus.close()
    }
  } finally {
    const jsm = await connection.jetstreamManager()
    for (const stream of ['EVENTS', 'WORK', 'DLQ']) {
      await jsm.streams.delete(`${prefix.toUpperCase()}_${stream}`).catch(() => {})
    }
    await connection.close()
  }
}

const memory = await inProcess('event')
const memoryBatch = await inProcess('batch')
const nats = await jetStream('event')
const natsBatch = await jetStream('batch')

const row = (cells: string[]) =>
  console.log(cells.map((c, i) => (i === 0 ? c.padEnd(40) : c.padStart(11))).join(' '))
const rate = (m: Measurement) => Math.round(m.perSecond).toLocaleString('en')
console.log('Bus throughput, publish → handler → ack')
row(['adapter', 'events', 'seconds', 'events/s', 'target/s', 'target'])
row([
  'embedded (SQLite, in process)',
  String(memory.events),
  memory.seconds.toFixed(2),
  rate(memory),
  `≥ ${IN_PROCESS_TARGET.toLocaleString('en')}`,
  verdict(memory.perSecond, IN_PROCESS_TARGET),
])
row([
  `  batches of ≤ ${MAX_BATCH}`,
  String(memoryBatch.events),
  memoryBatch.seconds.toFixed(2),
  rate(memoryBatch),
  '',
  `${(memoryBatch.perSecond / memory.perSecond).toFixed(1)}x`,
])
if (typeof nats === 'string' || typeof natsBatch === 'string') {
  row(['JetStream', '-', '-', '-', `≥ ${JETSTREAM_TARGET.toLocaleString('en')}`, 'not measured'])
  console.log(`JetStream not measured: ${typeof nats === 'string' ? nats : natsBatch}`)
} else {
  row([
    `JetStream (${natsUrl.replace(/^nats:\/\//, '')})`,
    String(nats.events),
    nats.seconds.toFixed(2),
    rate(nats),
    `≥ ${JETSTREAM_TARGET.toLocaleString('en')}`,
    verdict(nats.perSecond, JETSTREAM_TARGET),
  ])
  row([
    `  batches of ≤ ${MAX_BATCH}`,
    String(natsBatch.events),
    natsBatch.seconds.toFixed(2),
    rate(natsBatch),
    '',
    `${(natsBatch.perSecond / nats.perSecond).toFixed(1)}x`,
  ])
  console.log(`embedded / JetStream: ${(memory.perSecond / nats.perSecond).toFixed(1)}x (one-event handlers)`)
}
