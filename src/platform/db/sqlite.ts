import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import SQLite from 'better-sqlite3'
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  Kysely,
  type QueryResult,
  SelectQueryNode,
  SqliteAdapter,
  SqliteDialect,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely'
import { LRUCache } from 'lru-cache'
import type { AnyKysely } from './db.js'

/** Set on every connection to a reel database file. */
const PRAGMAS = ['journal_mode = WAL', 'synchronous = NORMAL', 'foreign_keys = ON', 'busy_timeout = 5000']

/** Prepared statements kept per SQLite connection, by SQL text. */
const STATEMENT_CACHE_SIZE = 500

/**
 * Kysely over SQLite. A database file gets two connections: reads run on this thread at once (as
 * before, SQLite answers most of reel's in microseconds), and every write and every transaction
 * runs on a writer thread, so the event loop never waits for SQLite to write. In WAL mode readers
 * see the last commit and never wait for the writer. `:memory:` (one connection by nature) keeps
 * the single-connection driver.
 */
export function sqliteKysely(file: string): AnyKysely {
  if (file === ':memory:') {
    const database = new SQLite(file)
    for (const pragma of PRAGMAS) database.pragma(pragma)
    return new Kysely({ dialect: new SqliteDialect({ database: withStatementCache(database) }) })
  }
  const dialect: Dialect = {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new SplitSqliteDriver(file),
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  }
  return new Kysely({ dialect })
}

/**
 * The database as Kysely's SQLite driver sees it, with its statements kept: the driver prepares
 * (parses and plans) every query it runs, which costs more than running most of reel's queries.
 * better-sqlite3 runs a statement to its end before anything else runs on the thread, so a kept
 * statement is never in use twice at once; SQLite re-plans a statement itself after a schema change
 * (also one another connection made).
 */
function withStatementCache(database: SQLite.Database): {
  prepare(sql: string): SQLite.Statement
  close(): void
} {
  const statements = new LRUCache<string, SQLite.Statement>({ max: STATEMENT_CACHE_SIZE })
  return {
    prepare(text) {
      let statement = statements.get(text)
      if (!statement) {
        statement = database.prepare(text)
        statements.set(text, statement)
      }
      return statement
    },
    close() {
      statements.clear()
      database.close()
    },
  }
}

interface Reply {
  id: number
  rows?: unknown[]
  changes?: number
  lastInsertRowid?: number | bigint
  error?: { message: string; code?: string; name?: string }
}

interface Pending {
  resolve(result: QueryResult<unknown>): void
  reject(e: Error): void
}

/**
 * The writer thread: one connection, statements run in the order they arrive (a transaction's
 * statements arrive between its `begin` and `commit`; the driver sends nothing else meanwhile).
 * Plain JavaScript, run with `eval` so it needs no file of its own in the source and the build.
 */
const WRITER = `
const { parentPort, workerData } = require('node:worker_threads')
const SQLite = require(workerData.driver)
const db = new SQLite(workerData.file)
for (const pragma of workerData.pragmas) db.pragma(pragma)
const statements = new Map()
const prepare = (text) => {
  let statement = statements.get(text)
  if (statement) return statement
  statement = db.prepare(text)
  if (statements.size >= workerData.cacheSize) statements.delete(statements.keys().next().value)
  statements.set(text, statement)
  return statement
}
parentPort.on('message', (m) => {
  if (m.close) {
    db.close()
    parentPort.close()
    return
  }
  try {
    const statement = prepare(m.sql)
    if (statement.reader) parentPort.postMessage({ id: m.id, rows: statement.all(m.parameters) })
    else {
      const { changes, lastInsertRowid } = statement.run(m.parameters)
      parentPort.postMessage({ id: m.id, changes, lastInsertRowid })
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: String(e && e.message), code: e && e.code, name: e && e.name } })
  }
})
`

export class SplitSqliteDriver implements Driver {
  private reader: ReturnType<typeof withStatementCache> | undefined
  private worker: Worker | undefined
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  /** A transaction holds the writer thread from its begin to its commit or rollback. */
  private inTransaction = false
  /** Statements and transactions waiting for the transaction in progress, in order. */
  private readonly waiting: { transaction: boolean; go: () => void }[] = []

  constructor(private readonly file: string) {}

  async init(): Promise<void> {
    // WAL is set here first (it stays set in the file), so the writer opens a WAL database.
    const database = new SQLite(this.file)
    for (const pragma of PRAGMAS) database.pragma(pragma)
    // This thread never waits for a lock: a read that finds the database locked (rare in WAL mode:
    // another process holding it exclusively, a recovery) goes to the writer thread, which waits.
    database.pragma('busy_timeout = 0')
    this.reader = withStatementCache(database)
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new SplitConnection(this)
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await this.enter(true)
    const worker = this.worker ?? this.startWorker()
    try {
      await this.write('begin', [], worker)
    } catch (e) {
      this.leaveTransaction()
      throw e
    }
    ;(connection as SplitConnection).transaction = worker
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await this.endTransaction(connection, 'commit')
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await this.endTransaction(connection, 'rollback')
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {
    this.reader?.close()
    this.reader = undefined
    const worker = this.worker
    this.worker = undefined
    if (!worker) return
    worker.ref()
    const exited = new Promise((resolve) => worker.once('exit', resolve))
    worker.postMessage({ close: true })
    await exited
  }

  /** A statement outside a transaction: a read here and now, anything else on the writer thread. */
  async run(query: CompiledQuery): Promise<QueryResult<unknown>> {
    if (SelectQueryNode.is(query.query)) {
      const reader = this.reader
      if (!reader) throw new Error('the database is closed')
      try {
        const statement = reader.prepare(query.sql)
        if (statement.reader) return { rows: statement.all(query.parameters as unknown[]) }
      } catch (e) {
        // Locked: the writer thread runs it (and waits for the lock there).
        if ((e as { code?: string }).code !== 'SQLITE_BUSY') throw e
      }
    }
    await this.enter(false)
    return this.write(query.sql, query.parameters)
  }

  /**
   * Runs a statement on the writer thread (the caller holds it, or no transaction is open). A
   * transaction's statements name the thread it began on: if that thread is gone, so is the
   * transaction (SQLite rolled it back), and they fail rather than run alone on another.
   */
  write(sql: string, parameters: readonly unknown[], transaction?: Worker): Promise<QueryResult<unknown>> {
    if (transaction && transaction !== this.worker) return Promise.reject(lostTransaction())
    const worker = transaction ?? this.worker ?? this.startWorker()
    const id = this.nextId++
    if (this.pending.size === 0) worker.ref()
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, sql, parameters })
    })
  }

  private async endTransaction(connection: DatabaseConnection, how: 'commit' | 'rollback'): Promise<void> {
    const split = connection as SplitConnection
    const worker = split.transaction
    try {
      // Its thread gone, the transaction is rolled back already.
      if (how === 'rollback' && worker !== this.worker) return
      await this.write(how, [], worker)
    } finally {
      split.transaction = undefined
      this.leaveTransaction()
    }
  }

  /** Waits while a transaction holds the writer (or others wait before this one); a transaction then takes it. */
  private enter(transaction: boolean): Promise<void> | undefined {
    if (!this.inTransaction && this.waiting.length === 0) {
      if (transaction) this.inTransaction = true
      return undefined
    }
    return new Promise((go) => this.waiting.push({ transaction, go }))
  }

  /** Lets the waiting statements go, in order, up to the next transaction, which takes the writer. */
  private leaveTransaction(): void {
    this.inTransaction = false
    for (let next = this.waiting.shift(); next; next = this.waiting.shift()) {
      if (next.transaction) {
        this.inTransaction = true
        next.go()
        return
      }
      next.go()
    }
  }

  private startWorker(): Worker {
    if (!this.reader) throw new Error('the database is closed')
    const worker = new Worker(WRITER, {
      eval: true,
      // None of the process's flags: --input-type=module would make the writer (CommonJS) a module,
      // and a Worker refuses per-process V8 flags such as --max-semi-space-size (they apply anyway).
      execArgv: [],
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        file: this.file,
        pragmas: PRAGMAS,
        cacheSize: STATEMENT_CACHE_SIZE,
      },
    })
    worker.on('message', (reply: Reply) => {
      const waiter = this.pending.get(reply.id)
      if (!waiter) return
      this.pending.delete(reply.id)
      if (this.pending.size === 0) worker.unref()
      if (reply.error) {
        const error = Object.assign(new Error(reply.error.message), { code: reply.error.code })
        error.name = reply.error.name ?? 'SqliteError'
        waiter.reject(error)
      } else if (reply.rows) waiter.resolve({ rows: reply.rows })
      else
        waiter.resolve({
          numAffectedRows: BigInt(reply.changes ?? 0),
          insertId: reply.lastInsertRowid === undefined ? undefined : BigInt(reply.lastInsertRowid),
          rows: [],
        })
    })
    // The writer thread gone (it should not): what it was running fails; the next write starts another.
    const lost = (e: Error) => {
      if (this.worker === worker) this.worker = undefined
      const waiters = [...this.pending.values()]
      this.pending.clear()
      for (const waiter of waiters) waiter.reject(e)
    }
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`the SQLite writer thread exited (${code})`)))
    worker.unref()
    this.worker = worker
    return worker
  }
}

class SplitConnection implements DatabaseConnection {
  /** The writer thread of the transaction open on this connection. */
  transaction: Worker | undefined

  constructor(private readonly driver: SplitSqliteDriver) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return (
      this.transaction
        ? this.driver.write(query.sql, query.parameters, this.transaction)
        : this.driver.run(query)
    ) as Promise<QueryResult<R>>
  }

  // biome-ignore lint/correctness/useYield: reel streams no query; Kysely's interface asks for the method
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries are not supported')
  }
}

function lostTransaction(): Error {
  return Object.assign(
    new Error('the SQLite writer thread stopped during this transaction; it was rolled back'),
    {
      code: 'SQLITE_ABORT',
    },
  )
}
