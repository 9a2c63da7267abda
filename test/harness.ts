import type { LightMyRequestResponse } from 'fastify'
import { sql } from 'kysely'
import { createReel, type Reel } from '../src/platform/app.js'
import { loadConfig } from '../src/platform/config.js'
import { createDb } from '../src/platform/db/db.js'
import { createLogger } from '../src/platform/log.js'
import type { ServiceName } from '../src/platform/modules.js'
import { engines, tempDir, uniqueName } from './engines.js'

export interface TestReel {
  reel: Reel
  /** The clock the services read; move it with `advance`. */
  clock: { now: number; advance(ms: number): void }
  /** One API call through the real HTTP stack (without a socket). */
  call(method: string, url: string, options?: CallOptions): Promise<LightMyRequestResponse>
  stop(): Promise<void>
}

export interface CallOptions {
  token?: string
  body?: unknown
  headers?: Record<string, string>
  address?: string
}

/** A started reel on SQLite or PostgreSQL (own schema), embedded cache/bus/blobs, moved-able clock. */
export async function startReel(
  db: 'sqlite' | 'postgres',
  env: Record<string, string> = {},
  roles?: readonly ServiceName[],
): Promise<TestReel> {
  const tmp = tempDir()
  const schema = uniqueName('reel')
  const clock = {
    now: Date.now(),
    advance(ms: number) {
      clock.now += ms
    },
  }
  const config = loadConfig({
    REEL_DATA_DIR: tmp.dir,
    REEL_PORT: '0',
    REEL_HOST: '127.0.0.1',
    REEL_JWT_SECRET: 'test-secret-test-secret-test-secret-0123456789',
    ...(db === 'postgres'
      ? { REEL_DATABASE_URL: engines.databaseUrl ?? '', REEL_DATABASE_SCHEMA: schema }
      : {}),
    ...env,
  })
  const reel = await createReel({ config, log: createLogger('silent'), clock: () => clock.now, roles })
  await reel.start()
  return {
    reel,
    clock,
    call(method, url, options = {}) {
      const headers: Record<string, string> = { ...options.headers }
      if (options.token) headers.authorization = `Bearer ${options.token}`
      return reel.http.inject({
        method: method as 'GET',
        url,
        headers,
        remoteAddress: options.address,
        ...(options.body === undefined ? {} : { payload: options.body as object }),
      })
    },
    async stop() {
      await reel.stop()
      if (db === 'postgres') {
        const admin = createDb({ databaseUrl: engines.databaseUrl })
        await sql`drop schema if exists ${sql.id(reel.config.databaseSchema)} cascade`.execute(admin.kysely)
        await admin.close()
      }
      tmp.cleanup()
    },
  }
}
