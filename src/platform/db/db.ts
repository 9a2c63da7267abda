import fs from 'node:fs'
import path from 'node:path'
import { Kysely, type Migration, type MigrationProvider, Migrator, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { sqliteKysely } from './sqlite.js'

export type DbKind = 'sqlite' | 'postgres'

/** Tables are typed by the service that owns them: `db.tables<AccountsTables>()`. */
// biome-ignore lint/complexity/noBannedTypes: Kysely's "no tables known" database type
export type AnyKysely = Kysely<{}>

/**
 * A migration written once for both engines; `kind` is there for the few places where the
 * dialects differ (auto-increment keys, upserts). Column conventions: times are epoch ms in
 * `bigint`, booleans are `integer` 0/1, JSON is `text`.
 */
export interface ReelMigration {
  up(db: AnyKysely, kind: DbKind): Promise<void>
}

/** The Db port: Kysely over SQLite (embedded) or PostgreSQL (scaled). */
export interface Db {
  readonly kind: DbKind
  readonly kysely: AnyKysely
  tables<T>(): Kysely<T>
  /** Applies the migrations not yet applied; safe to run twice and from several processes at once. */
  migrate(migrations: Record<string, ReelMigration>): Promise<string[]>
  ping(): Promise<void>
  close(): Promise<void>
}

export interface DbOptions {
  /** postgres:// URL; absent means SQLite at sqliteFile. */
  databaseUrl?: string
  schema?: string
  sqliteFile?: string
}

export function createDb(options: DbOptions): Db {
  if (options.databaseUrl) return postgresDb(options.databaseUrl, options.schema ?? 'public')
  return sqliteDb(options.sqliteFile ?? ':memory:')
}

function sqliteDb(file: string): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true })
  return wrap('sqlite', sqliteKysely(file), async () => {})
}

function postgresDb(url: string, schema: string): Db {
  // int8 (counts, epoch-ms times) as JS numbers: every value reel stores is below 2^53.
  const types = {
    getTypeParser: (oid: number, format?: 'text' | 'binary') =>
      oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format),
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    options: `-c search_path=${schema}`,
    types,
    connectionTimeoutMillis: 5000,
  })
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {})
  const kysely: AnyKysely = new Kysely({ dialect: new PostgresDialect({ pool }) })
  let ensured = false
  return wrap(
    'postgres',
    kysely,
    async () => {
      if (ensured) return
      try {
        await sql`create schema if not exists ${sql.id(schema)}`.execute(kysely)
      } catch (e) {
        // Two processes starting at once both pass PostgreSQL's "if not exists" check; the slower one
        // fails on the catalog's unique index although the schema is there, which is all it wanted.
        const exists = await sql<{ n: number }>`select 1 as n from pg_namespace where nspname = ${schema}`
          .execute(kysely)
          .then((r) => r.rows.length > 0)
        if (!exists) throw e
      }
      ensured = true
    },
    schema,
  )
}

function wrap(kind: DbKind, kysely: AnyKysely, prepare: () => Promise<void>, schema?: string): Db {
  return {
    kind,
    kysely,
    tables<T>() {
      return kysely as unknown as Kysely<T>
    },
    async migrate(migrations) {
      await prepare()
      const provider: MigrationProvider = {
        async getMigrations() {
          const out: Record<string, Migration> = {}
          for (const [name, m] of Object.entries(migrations)) out[name] = { up: (db) => m.up(db, kind) }
          return out
        },
      }
      // Each service adds its own migrations; names sort by service, so order across services is free.
      // The migration bookkeeping lives in the same schema as the tables (Kysely would otherwise find
      // another schema's lock table on the search path and skip creating its own).
      const migrator = new Migrator({
        db: kysely,
        provider,
        allowUnorderedMigrations: true,
        ...(schema ? { migrationTableSchema: schema } : {}),
      })
      const { error, results } = await migrator.migrateToLatest()
      if (error) throw error instanceof Error ? error : new Error(String(error))
      return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
    },
    async ping() {
      await sql`select 1`.execute(kysely)
    },
    async close() {
      await kysely.destroy()
    },
  }
}

/**
 * Lets the event loop take a turn. Long writes call it between their statements: SQLite runs a
 * statement synchronously, so requests then wait for one statement at most, not for the whole write
 * (5,000 playback rows or bus events in one go held every request ~50-90 ms).
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/**
 * `<head> values (…), (…) <tail>` with `rows` rows of `columns` parameters, in the engine's
 * placeholder style, for hot multi-row writes: the query builder makes objects for every value (the
 * playback write-behind took 5.2-5.3 µs of the event loop per session row through it, 2.7-3.6 µs
 * with this). Texts of `memoRows` rows (a writer's full chunk, sent again and again) are kept.
 */
export function insertValuesText(
  kind: DbKind,
  head: string,
  columns: number,
  rows: number,
  tail: string,
  memoRows: number,
): string {
  const key = `${kind}|${head}|${tail}|${rows}`
  let text = insertTexts.get(key)
  if (text === undefined) {
    const tuples: string[] = []
    for (let r = 0; r < rows; r++) {
      const marks: string[] = []
      for (let c = 1; c <= columns; c++) marks.push(kind === 'postgres' ? `$${r * columns + c}` : '?')
      tuples.push(`(${marks.join(', ')})`)
    }
    text = `${head} values ${tuples.join(', ')} ${tail}`
    if (rows === memoRows) insertTexts.set(key, text)
  }
  return text
}
const insertTexts = new Map<string, string>()

/** `integer primary key` that numbers itself, in each dialect. */
export function autoIncrementType(kind: DbKind) {
  return kind === 'postgres' ? ('bigserial' as const) : ('integer' as const)
}
