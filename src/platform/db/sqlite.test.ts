import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Worker } from 'node:worker_threads'
import { CompiledQuery, sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createDb, type Db } from './db.js'
import { SplitSqliteDriver } from './sqlite.js'

type Tables = {
  items: { id: number; name: string }
}

describe('SQLite database file: reads here, writes on the writer thread', () => {
  let dir: string
  let db: Db
  const items = () => db.tables<Tables>()
  const ids = async () =>
    (await items().selectFrom('items').select('id').orderBy('id').execute()).map((r) => r.id)
  /** A second driver on the same file, reached into by the tests of its failure paths. */
  async function withDriver(use: (driver: SplitSqliteDriver) => Promise<void>): Promise<void> {
    const driver = new SplitSqliteDriver(path.join(dir, 'reel.db'))
    await driver.init()
    try {
      await use(driver)
    } finally {
      await driver.destroy()
    }
  }

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-sqlite-'))
    db = createDb({ sqliteFile: path.join(dir, 'reel.db') })
    await sql`create table items (id integer primary key, name text not null unique)`.execute(db.kysely)
  })

  afterEach(async () => {
    await db.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('a read after a write sees it; an insert returns its rows and counts', async () => {
    const inserted = await items()
      .insertInto('items')
      .values([
        { id: 1, name: 'Ünïcode ✓' },
        { id: 2, name: "Robert'); drop table items;--" },
      ])
      .returning(['id', 'name'])
      .execute()
    expect(inserted).toHaveLength(2)
    const updated = await items()
      .updateTable('items')
      .set({ name: 'b' })
      .where('id', '=', 2)
      .executeTakeFirst()
    expect(updated.numUpdatedRows).toBe(1n)
    expect(await items().selectFrom('items').selectAll().orderBy('id').execute()).toEqual([
      { id: 1, name: 'Ünïcode ✓' },
      { id: 2, name: 'b' },
    ])
  })

  it('a long write does not hold the event loop', async () => {
    let turned = false
    setImmediate(() => {
      turned = true
    })
    // 200,000 rows in one statement: it runs for a while, on the writer thread.
    await sql`with recursive n(v) as (select 1 union all select v + 1 from n where v < 200000)
      insert into items (id, name) select v, 'n' || v from n`.execute(db.kysely)
    expect(turned).toBe(true)
    const count = await items()
      .selectFrom('items')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst()
    expect(count?.n).toBe(200_000)
  })

  it('a transaction: others read the last commit meanwhile, and writes outside it wait for it', async () => {
    await items().insertInto('items').values({ id: 1, name: 'before' }).execute()
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    let inside: Promise<void> = Promise.resolve()
    const began = new Promise<void>((resolve) => {
      inside = db.kysely.transaction().execute(async (trx) => {
        await trx
          .withTables<Tables>()
          .updateTable('items')
          .set({ name: 'during' })
          .where('id', '=', 1)
          .execute()
        resolve()
        await held
        throw new Error('rolled back on purpose')
      })
    })
    await began
    // Not committed: a read here sees the last commit, at once.
    expect(
      (await items().selectFrom('items').select('name').where('id', '=', 1).executeTakeFirst())?.name,
    ).toBe('before')
    // A write outside the transaction waits for it, and the rollback does not take it along.
    const outside = items().insertInto('items').values({ id: 2, name: 'outside' }).execute()
    release()
    await expect(inside).rejects.toThrow('rolled back on purpose')
    await outside
    expect(await items().selectFrom('items').selectAll().orderBy('id').execute()).toEqual([
      { id: 1, name: 'before' },
      { id: 2, name: 'outside' },
    ])
  })

  it("SQLite's errors come back with their code, and the database keeps working", async () => {
    await items().insertInto('items').values({ id: 1, name: 'a' }).execute()
    const failed = await items()
      .insertInto('items')
      .values({ id: 1, name: 'again' })
      .execute()
      .catch((e: unknown) => e)
    expect(failed).toBeInstanceOf(Error)
    expect((failed as { code?: string }).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY')
    // A failed transaction rolls back and lets the next one in.
    await expect(
      db.kysely.transaction().execute(async (trx) => {
        await trx.withTables<Tables>().insertInto('items').values({ id: 2, name: 'b' }).execute()
        await trx.withTables<Tables>().insertInto('items').values({ id: 3, name: 'a' }).execute()
      }),
    ).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_UNIQUE' })
    await items().insertInto('items').values({ id: 4, name: 'c' }).execute()
    expect(await ids()).toEqual([1, 4])
  })

  it('the writer thread lost during a transaction: the rest of it fails, none of it stays, the next write starts another thread', async () => {
    await items().insertInto('items').values({ id: 1, name: 'a' }).execute()
    const insert = (id: number) => CompiledQuery.raw(`insert into items (id, name) values (${id}, 'n${id}')`)
    await withDriver(async (driver) => {
      const connection = await driver.acquireConnection()
      await driver.beginTransaction(connection)
      await connection.executeQuery(insert(2))
      await (driver as unknown as { worker: Worker }).worker.terminate()
      await expect(connection.executeQuery(insert(3))).rejects.toMatchObject({ code: 'SQLITE_ABORT' })
      await expect(driver.commitTransaction(connection)).rejects.toMatchObject({ code: 'SQLITE_ABORT' })
      // The same, ended by a rollback (Kysely's way after a failed statement): no error of its own.
      await driver.beginTransaction(connection)
      await connection.executeQuery(insert(5))
      await (driver as unknown as { worker: Worker }).worker.terminate()
      await driver.rollbackTransaction(connection)
      await connection.executeQuery(insert(4))
    })
    expect(await ids()).toEqual([1, 4])
  })

  it('a read that finds the database locked runs on the writer thread (which waits), not here', async () => {
    await items().insertInto('items').values({ id: 1, name: 'a' }).execute()
    await withDriver(async (driver) => {
      // This thread's connection never waits for a lock (busy_timeout 0): it reports SQLITE_BUSY,
      // as when another process holds the file. Seen here by making its next statement report it.
      const reader = (driver as unknown as { reader: { prepare(sql: string): { get(): unknown } } }).reader
      expect(reader.prepare('pragma busy_timeout').get()).toEqual({ timeout: 0 })
      const prepare = reader.prepare.bind(reader)
      let refused = 0
      reader.prepare = (text: string) => {
        if (refused++ === 0) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })
        return prepare(text)
      }
      const query = items().selectFrom('items').select('id').compile()
      expect((await driver.run(query)).rows).toEqual([{ id: 1 }])
      expect(refused).toBe(1)
      // Other errors still fail the read.
      reader.prepare = () => {
        throw Object.assign(new Error('no such table'), { code: 'SQLITE_ERROR' })
      }
      await expect(driver.run(query)).rejects.toMatchObject({ code: 'SQLITE_ERROR' })
    })
  })

  it('an idle writer thread does not keep a process alive, and starts under the flags `npm start` uses', () => {
    const file = path.join(dir, 'other.db')
    const script = `
      import { createDb } from ${JSON.stringify(path.join(import.meta.dirname, 'db.ts'))}
      const db = createDb({ sqliteFile: ${JSON.stringify(file)} })
      await db.kysely.schema.createTable('t').addColumn('v', 'integer').execute()
      await db.kysely.insertInto('t').values({ v: 7 }).execute()
      console.log('written')`
    const run = spawnSync(
      process.execPath,
      ['--max-semi-space-size=64', '--import', 'tsx', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    )
    expect(run.stderr).toBe('')
    expect(run.stdout.trim()).toBe('written')
    expect(run.status).toBe(0)
  })
})
