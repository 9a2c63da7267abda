// Bus throughput, publish → handler → ack, through both adapters in one run:
//  - the embedded bus on SQLite (a temporary file), 50 000 events, target ≥ 20 000/s;
//  - JetStream at REEL_BENCH_NATS_URL / REEL_TEST_NATS_URL / nats://127.0.0.1:4222, 20 000 events,
//    target ≥ 5 000/s (skipped, and said so, when no server answers).
// Producers publish in pipelined chunks while the consumer runs (8 handlers over 64 keys); the clock
// stops when the last handler has returned and its ack is taken.
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

const log = createLogger('warn')
const natsUrl = process.env.REEL_BENCH_NATS_URL || process.env.REEL_TEST_NATS_URL || 'nats://127.0.0.1:4222'

interface Measurement {
  events: number
  seconds: number
  perSecond: number
}

/** Publishes `count` events and resolves when a consumer has handled and acked them all. */
async function measure(bus: Bus, count: number): Promise<Measurement> {
  let handled = 0
  let allHandled = () => {}
  const done = new Promise<void>((resolve) => {
    allHandled = resolve
  })
  const subscription = await bus.subscribe<{ n: number }>({
    name: 'bench',
    types: ['bench.>'],
    concurrency: CONCURRENCY,
    handler: async () => {
      handled++
      if (handled === count) allHandled()
    },
  })
  const started = performance.now()
  for (let from = 0; from < count; from += PUBLISH_CHUNK) {
    const size = Math.min(PUBLISH_CHUNK, count - from)
    await Promise.all(
      Array.from({ length: size }, (_, i) =>
        bus.publish({
          type: 'bench.play.started',
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

async function inProcess(): Promise<Measurement> {
  const tmp = tempDir('reel-bench-bus-')
  const db = createDb({ sqliteFile: path.join(tmp.dir, 'reel.db') })
  try {
    await db.migrate(busMigrations)
    const bus = createMemoryBus({ db, log })
    try {
      return await measure(bus, IN_PROCESS_EVENTS)
    } finally {
      await bus.close()
    }
  } finally {
    await db.close()
    tmp.cleanup()
  }
}

async function jetStream(): Promise<Measurement | string> {
  const connection = await connect({ servers: natsUrl, timeout: 2000, reconnect: false }).catch(
    () => undefined,
  )
  if (!connection) return `no NATS server answers at ${natsUrl}`
  const prefix = `bench_${process.pid}_${Date.now().toString(36)}`
  try {
    const bus = await createJetStreamBus({ connection, prefix, log })
    try {
      return await measure(bus, JETSTREAM_EVENTS)
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

const memory = await inProcess()
const nats = await jetStream()

const row = (cells: string[]) =>
  console.log(cells.map((c, i) => (i === 0 ? c.padEnd(34) : c.padStart(11))).join(' '))
console.log('Bus throughput, publish → handler → ack')
row(['adapter', 'events', 'seconds', 'events/s', 'target/s', 'target'])
row([
  'embedded (SQLite, in process)',
  String(memory.events),
  memory.seconds.toFixed(2),
  Math.round(memory.perSecond).toLocaleString('en'),
  `≥ ${IN_PROCESS_TARGET.toLocaleString('en')}`,
  verdict(memory.perSecond, IN_PROCESS_TARGET),
])
if (typeof nats === 'string') {
  row(['JetStream', '-', '-', '-', `≥ ${JETSTREAM_TARGET.toLocaleString('en')}`, 'not measured'])
  console.log(`JetStream not measured: ${nats}`)
} else {
  row([
    `JetStream (${natsUrl.replace(/^nats:\/\//, '')})`,
    String(nats.events),
    nats.seconds.toFixed(2),
    Math.round(nats.perSecond).toLocaleString('en'),
    `≥ ${JETSTREAM_TARGET.toLocaleString('en')}`,
    verdict(nats.perSecond, JETSTREAM_TARGET),
  ])
  console.log(`embedded / JetStream: ${(memory.perSecond / nats.perSecond).toFixed(1)}x`)
}
