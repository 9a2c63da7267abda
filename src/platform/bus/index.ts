import type { Db } from '../db/db.js'
import type { Logger } from '../log.js'
import type { Bus } from './bus.js'
import { createJetStreamBus } from './jetstream.js'
import { createMemoryBus } from './memory.js'

export * from './bus.js'
export { busMigrations } from './memory.js'

export interface BusOptions {
  /** NATS server(s) with JetStream; absent means the embedded bus kept in the Db. */
  natsUrl?: string
  /** Stream and subject prefix on NATS. Default `reel`. */
  prefix?: string
  /** Holds the embedded bus's log; its tables come from `busMigrations`, applied by the caller. */
  db: Db
  log: Logger
  /** How soon what a crashed process held is redelivered (embedded: consumer and task leases; NATS: ack_wait). */
  leaseMs?: number
}

export async function createBus(options: BusOptions): Promise<Bus> {
  const { natsUrl, prefix, db, log, leaseMs } = options
  if (natsUrl) return createJetStreamBus({ natsUrl, prefix, log, leaseMs })
  return createMemoryBus({ db, log, leaseMs })
}
