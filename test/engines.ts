import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import { createDb, type Db } from '../src/platform/db/db.js'

/**
 * Real engines for the tests. Each is configured by a REEL_TEST_* variable; a suite whose engine is
 * not configured is skipped with a line saying so, unless REEL_TEST_REQUIRE_ENGINES=1 (CI), where a
 * missing engine fails the run instead.
 */
export const engines = {
  databaseUrl: process.env.REEL_TEST_DATABASE_URL || undefined,
  redisUrls: (process.env.REEL_TEST_REDIS_URLS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
  natsUrl: process.env.REEL_TEST_NATS_URL || undefined,
}

const requireEngines = process.env.REEL_TEST_REQUIRE_ENGINES === '1'

/** True when the engine is configured; prints a SKIPPED line (or throws under CI) when not. */
export function hasEngine(engine: string, variable: string, configured: boolean): boolean {
  if (configured) return true
  if (requireEngines)
    throw new Error(`${engine} is required (REEL_TEST_REQUIRE_ENGINES=1) but ${variable} is not set`)
  console.warn(`SKIPPED: ${engine} tests (set ${variable} to run them)`)
  return false
}

export const hasPostgres = () => hasEngine('PostgreSQL', 'REEL_TEST_DATABASE_URL', !!engines.databaseUrl)
export const hasRedis = () => hasEngine('Redis', 'REEL_TEST_REDIS_URLS', engines.redisUrls.length > 0)
export const hasNats = () => hasEngine('NATS JetStream', 'REEL_TEST_NATS_URL', !!engines.natsUrl)

/** A short unique name for isolating a test's schema, key prefix or stream names. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'reel-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

export interface TestDb {
  db: Db
  /** The Db's connection settings, for opening a second connection to the same data. */
  options: { databaseUrl?: string; schema?: string; sqliteFile?: string }
  cleanup: () => Promise<void>
}

/** A Db of the given kind on an empty schema (PostgreSQL) or file (SQLite). */
export async function testDb(kind: 'sqlite' | 'postgres'): Promise<TestDb> {
  if (kind === 'postgres') {
    const schema = uniqueName('reel')
    const options = { databaseUrl: engines.databaseUrl, schema }
    const db = createDb(options)
    return {
      db,
      options,
      cleanup: async () => {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db.kysely)
        await db.close()
      },
    }
  }
  const tmp = tempDir()
  const options = { sqliteFile: path.join(tmp.dir, 'reel.db') }
  const db = createDb(options)
  return {
    db,
    options,
    cleanup: async () => {
      await db.close()
      tmp.cleanup()
    },
  }
}
