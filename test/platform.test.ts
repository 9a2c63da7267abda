import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createReel, type Reel } from '../src/platform/app.js'
import { loadConfig } from '../src/platform/config.js'
import { createDb } from '../src/platform/db/db.js'
import { createLogger } from '../src/platform/log.js'
import type { ServiceModule } from '../src/platform/modules.js'
import { BACKGROUND_NICE } from '../src/platform/priority.js'
import { accountsModule } from '../src/services/accounts/index.js'
import { billingModule } from '../src/services/billing/index.js'
import { gatewayModule } from '../src/services/gateway/index.js'
import { engines, hasPostgres, tempDir, uniqueName } from './engines.js'
import { startReel } from './harness.js'

const silent = createLogger('silent')

describe('the all-in-one server', () => {
  const tmp = tempDir()
  let reel: Reel
  beforeAll(async () => {
    reel = await createReel({ config: loadConfig({ REEL_DATA_DIR: tmp.dir, REEL_PORT: '0' }), log: silent })
  })
  afterAll(async () => {
    await reel.stop()
    tmp.cleanup()
  })

  it('is alive and ready on embedded adapters', async () => {
    expect((await reel.http.inject('/healthz')).json()).toEqual({ status: 'ok' })
    const ready = await reel.http.inject('/readyz')
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).toEqual({ status: 'ok', checks: { db: 'ok', cache: 'ok', bus: 'ok', blobs: 'ok' } })
  })

  it('runs every service and says which engines it uses', async () => {
    const info = (await reel.http.inject('/api/v1/system')).json()
    expect(info.roles).toContain('gateway')
    expect(info.roles).toHaveLength(10)
    expect(info.adapters).toEqual({ db: 'sqlite', cache: 'memory', bus: 'memory', blobs: 'local' })
  })

  it('serves Prometheus metrics with per-route request counts', async () => {
    await reel.http.inject('/healthz')
    const metrics = await reel.http.inject('/metrics')
    expect(metrics.headers['content-type']).toContain('text/plain')
    expect(metrics.body).toMatch(
      /reel_http_requests_total\{method="GET",route="\/healthz",status="200"\} \d+/,
    )
    expect(metrics.body).toContain('reel_http_request_duration_seconds_bucket')
  })

  it('serves the OpenAPI document and its viewer at /api/docs', async () => {
    const ui = await reel.http.inject('/api/docs')
    expect([200, 302]).toContain(ui.statusCode)
    const doc = (await reel.http.inject('/api/docs/json')).json()
    expect(doc.openapi).toMatch(/^3\./)
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz', '/api/v1/system']))
  })

  it('serves the web app with its security policy, deep links included, and the status page', async () => {
    for (const url of ['/', '/profiles/manage', '/title/abc?x=1']) {
      const page = await reel.http.inject(url)
      expect(page.statusCode).toBe(200)
      expect(page.headers['content-type']).toContain('text/html')
      expect(page.body).toContain('<div id="root">')
      expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'")
      expect(page.headers['content-security-policy']).toContain("script-src 'self'")
    }
    const script = /src="(\/assets\/[^"]+\.js)"/.exec((await reel.http.inject('/')).body)?.[1]
    const asset = await reel.http.inject(String(script))
    expect(asset.statusCode).toBe(200)
    expect(asset.headers['cache-control']).toContain('immutable')
    expect((await reel.http.inject('/missing.js')).statusCode).toBe(404)
    const api = await reel.http.inject('/api/v1/nope')
    expect(api.statusCode).toBe(404)
    expect(api.json().error.code).toBe('route_not_found')
    expect(api.headers['x-content-type-options']).toBe('nosniff')
    // helmet's headers (CSP apart: the gateway sets the web app's) on every answer, an error's too.
    for (const res of [api, await reel.http.inject('/healthz')])
      expect(res.headers).toMatchObject({
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-resource-policy': 'same-origin',
        'origin-agent-cluster': '?1',
        'referrer-policy': 'no-referrer',
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'x-content-type-options': 'nosniff',
        'x-dns-prefetch-control': 'off',
        'x-download-options': 'noopen',
        'x-frame-options': 'SAMEORIGIN',
        'x-permitted-cross-domain-policies': 'none',
        'x-xss-protection': '0',
      })
    const status = await reel.http.inject('/status')
    expect(status.statusCode).toBe(200)
    expect(status.body).toContain('reel')
  })

  it('migrates safely twice', async () => {
    const { allMigrations } = await import('../src/platform/app.js')
    expect(await reel.ports.db.migrate(allMigrations())).toEqual([])
  })
})

describe('SQLite statements, kept and run again', () => {
  it('follow a schema change and give each run its own parameters, in and out of transactions', async () => {
    const db = createDb({ sqliteFile: ':memory:' })
    try {
      const k = db.kysely
      await sql`create table kept (a integer)`.execute(k)
      const insert = (a: number) => sql`insert into kept (a) values (${a})`.execute(k)
      const select = () =>
        sql<Record<string, number>>`select * from kept order by a`.execute(k).then((r) => r.rows)
      await insert(1)
      await insert(2)
      expect(await select()).toEqual([{ a: 1 }, { a: 2 }])
      await sql`alter table kept add column b integer default 7`.execute(k)
      expect(await select()).toEqual([
        { a: 1, b: 7 },
        { a: 2, b: 7 },
      ])
      await k
        .transaction()
        .execute(async (tx) => {
          await sql`insert into kept (a) values (${3})`.execute(tx)
          throw new Error('roll back')
        })
        .catch(() => {})
      await k.transaction().execute(async (tx) => {
        await sql`insert into kept (a) values (${4})`.execute(tx)
      })
      expect((await select()).map((r) => r.a)).toEqual([1, 2, 4])
    } finally {
      await db.close()
    }
  })
})

describe.skipIf(!hasPostgres())('access tokens across processes without REEL_JWT_SECRET', () => {
  it('are signed with one key kept in PostgreSQL, the one the first data dir already had', async () => {
    const schema = uniqueName('reel_jwt')
    const dirs = [tempDir(), tempDir()]
    // The first process's data dir has a key from before (a one-machine install moving to PostgreSQL).
    const oldKey = Buffer.alloc(32, 7)
    fs.mkdirSync(path.join(dirs[0]?.dir ?? '', 'keys'), { recursive: true })
    fs.writeFileSync(path.join(dirs[0]?.dir ?? '', 'keys', 'jwt-hs256.key'), oldKey.toString('base64url'))
    const reels: Reel[] = []
    try {
      for (const d of dirs)
        reels.push(
          await createReel({
            config: loadConfig({
              REEL_DATA_DIR: d.dir,
              REEL_DATABASE_URL: engines.databaseUrl ?? '',
              REEL_DATABASE_SCHEMA: schema,
            }),
            log: silent,
            roles: ['accounts', 'billing'],
          }),
        )
      const [a, b] = reels as [Reel, Reel]
      const signUp = await a.http.inject({
        method: 'POST',
        url: '/api/v1/accounts',
        payload: { email: 'jwt-shared@example.com', password: 'correct horse battery' },
      })
      expect(signUp.statusCode, signUp.body).toBe(201)
      const token = signUp.json().tokens.accessToken as string
      const headers = { authorization: `Bearer ${token}` }
      expect((await b.http.inject({ method: 'GET', url: '/api/v1/profiles', headers })).statusCode).toBe(200)
      expect((await a.http.inject({ method: 'GET', url: '/api/v1/profiles', headers })).statusCode).toBe(200)
      // The key is the one the first data dir had: tokens it signed before stay valid.
      const { jwtVerify } = await import('jose')
      await expect(jwtVerify(token, oldKey)).resolves.toBeDefined()
    } finally {
      for (const r of reels) await r.stop()
      const db = createDb({ databaseUrl: engines.databaseUrl, schema })
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db.kysely)
      await db.close()
      for (const d of dirs) d.cleanup()
    }
  })
})

describe.skipIf(!hasPostgres())('processes starting together on one PostgreSQL', () => {
  it('create the schema and migrate it once between them, none failing', async () => {
    const { allMigrations } = await import('../src/platform/app.js')
    const schema = uniqueName('reel_race')
    const dbs = Array.from({ length: 4 }, () => createDb({ databaseUrl: engines.databaseUrl, schema }))
    try {
      const ran = await Promise.all(dbs.map((db) => db.migrate(allMigrations())))
      const names = ran.flat()
      expect(names.length).toBe(Object.keys(allMigrations()).length)
      expect(new Set(names).size).toBe(names.length)
      for (const db of dbs) expect(await db.migrate(allMigrations())).toEqual([])
    } finally {
      const [first] = dbs
      if (first) await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(first.kysely)
      for (const db of dbs) await db.close()
    }
  })
})

describe('roles', () => {
  it('registers only the modules of the roles asked for', async () => {
    const tmp = tempDir()
    const accounts = vi.spyOn(accountsModule, 'register')
    const gateway = vi.spyOn(gatewayModule, 'register')
    const billing = vi.spyOn(billingModule, 'register')
    const reel = await createReel({
      config: loadConfig({ REEL_DATA_DIR: tmp.dir }),
      roles: ['accounts'],
      log: silent,
    })
    try {
      expect(accounts).toHaveBeenCalledTimes(1)
      expect(gateway).not.toHaveBeenCalled()
      expect(billing).not.toHaveBeenCalled()
      expect((await reel.http.inject('/api/v1/system')).json().roles).toEqual(['accounts'])
      expect((await reel.http.inject('/status')).statusCode).toBe(404)
    } finally {
      accounts.mockRestore()
      gateway.mockRestore()
      billing.mockRestore()
      await reel.stop()
      tmp.cleanup()
    }
  })
})

describe('graceful shutdown', () => {
  it('lets an in-flight request finish, then runs stop hooks and refuses new connections', async () => {
    const tmp = tempDir()
    const events: string[] = []
    const slow: ServiceModule = {
      name: 'catalog',
      register(ctx) {
        ctx.http.get('/slow', async () => {
          await sleep(400)
          events.push('request done')
          return { done: true }
        })
        ctx.onStop(() => {
          events.push('stop hook')
        })
      },
    }
    const reel = await createReel({
      config: loadConfig({ REEL_DATA_DIR: tmp.dir, REEL_PORT: '0', REEL_HOST: '127.0.0.1' }),
      roles: ['catalog'],
      modules: [slow],
      log: silent,
    })
    const base = await reel.start()
    const inFlight = fetch(`${base}/slow`).then((r) => r.json())
    await sleep(100)
    await reel.stop()
    expect(await inFlight).toEqual({ done: true })
    expect(events).toEqual(['request done', 'stop hook'])
    await expect(fetch(`${base}/healthz`)).rejects.toThrow()
    tmp.cleanup()
  })
})

function reelProcess(args: string[], env: Record<string, string>): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, ['bin/reel.js', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', REEL_SEED: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString()
  })
  return Object.assign(child, { output: () => output })
}

describe('the reel command', () => {
  const tmp = tempDir()
  afterAll(() => tmp.cleanup())

  it('stops with a message naming an invalid variable', async () => {
    const child = reelProcess(['start'], { REEL_PORT: 'eighty', REEL_DATA_DIR: tmp.dir })
    const [code] = await once(child, 'exit')
    expect(code).not.toBe(0)
    expect(child.output()).toContain('REEL_PORT')
  })

  it('rejects an unknown role', async () => {
    const child = reelProcess(['serve', '--roles', 'accounts,nope'], { REEL_DATA_DIR: tmp.dir })
    const [code] = await once(child, 'exit')
    expect(code).not.toBe(0)
    expect(child.output()).toContain('unknown role nope')
  })

  it('starts, serves, and exits cleanly on SIGTERM', async () => {
    const child = reelProcess(['start'], { REEL_PORT: '0', REEL_HOST: '127.0.0.1', REEL_DATA_DIR: tmp.dir })
    await vi.waitFor(() => expect(child.output()).toContain('reel is listening'), {
      timeout: 20_000,
      interval: 100,
    })
    // A failed assertion must not leave the server running.
    try {
      const address = /"address":"([^"]+)"/.exec(child.output())?.[1]
      expect(address).toBeTruthy()
      const health = await fetch(`${address}/healthz`)
      expect(health.status).toBe(200)
      if (process.platform === 'linux') {
        // The event loop keeps its priority; the threads beside it (V8's, libuv's, SQLite's writer) yield to it.
        const lowered = Number(/"backgroundThreads":(\d+)/.exec(child.output())?.[1])
        expect(lowered).toBeGreaterThanOrEqual(5)
        expect(os.getPriority(child.pid)).toBe(os.getPriority(process.pid))
        const tids = fs
          .readdirSync(`/proc/${child.pid}/task`)
          .map(Number)
          .filter((tid) => tid !== child.pid)
        expect(tids.filter((tid) => os.getPriority(tid) === BACKGROUND_NICE).length).toBeGreaterThanOrEqual(
          lowered,
        )
      }
      const status = reelProcess(['status'], { REEL_URL: String(address), REEL_DATA_DIR: tmp.dir })
      const [statusCode] = await once(status, 'exit')
      expect(status.output()).toContain('services: accounts')
      expect(statusCode).toBe(0)
      child.kill('SIGTERM')
      const [code] = await once(child, 'exit')
      expect(code).toBe(0)
      expect(child.output()).toContain('reel stopped')
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  })

  it('creates an administrator, then logs in and out against a running server', async () => {
    const env = { REEL_DATA_DIR: tmp.dir, XDG_CONFIG_HOME: tmp.dir }
    const create = reelProcess(
      ['admin', 'create', '--email', 'Boss@Example.com', '--password', 'correct horse battery'],
      env,
    )
    expect((await once(create, 'exit'))[0]).toBe(0)
    expect(create.output()).toContain('administrator boss@example.com created')
    const again = reelProcess(
      ['admin', 'create', '--email', 'boss@example.com', '--password', 'correct horse battery'],
      env,
    )
    expect((await once(again, 'exit'))[0]).toBe(1)
    expect(again.output()).toContain('email_taken')
    const weak = reelProcess(['admin', 'create', '--email', 'x@example.com', '--password', 'short'], env)
    expect((await once(weak, 'exit'))[0]).toBe(1)
    expect(weak.output().trim()).toMatch(/^reel: weak_password: /)

    const server = reelProcess(['start'], { ...env, REEL_PORT: '0', REEL_HOST: '127.0.0.1' })
    try {
      await vi.waitFor(() => expect(server.output()).toContain('reel is listening'), {
        timeout: 20_000,
        interval: 100,
      })
      const url = String(/"address":"([^"]+)"/.exec(server.output())?.[1])
      const bad = reelProcess(['login', '--email', 'boss@example.com', '--password', 'wrong password'], {
        ...env,
        REEL_URL: url,
      })
      expect((await once(bad, 'exit'))[0]).toBe(1)
      expect(bad.output()).toContain('invalid_credentials')
      const login = reelProcess(
        ['login', '--email', 'boss@example.com', '--password', 'correct horse battery'],
        {
          ...env,
          REEL_URL: url,
        },
      )
      expect((await once(login, 'exit'))[0]).toBe(0)
      const saved = JSON.parse(fs.readFileSync(path.join(tmp.dir, 'reel', 'credentials.json'), 'utf8'))
      const me = await fetch(`${url}/api/v1/account`, {
        headers: { authorization: `Bearer ${saved.accessToken}` },
      })
      expect(((await me.json()) as { account: { role: string } }).account.role).toBe('admin')
      const logout = reelProcess(['logout'], { ...env, REEL_URL: url })
      expect((await once(logout, 'exit'))[0]).toBe(0)
      expect(fs.existsSync(path.join(tmp.dir, 'reel', 'credentials.json'))).toBe(false)
      const after = await fetch(`${url}/api/v1/account`, {
        headers: { authorization: `Bearer ${saved.accessToken}` },
      })
      expect(after.status).toBe(401)
    } finally {
      server.kill('SIGTERM')
      await once(server, 'exit')
    }
    // Seven reel processes, each starting through tsx: on a busy 2-core machine one takes ~8 s.
  }, 120_000)

  it('doctor names the ffmpeg it uses, its version and the engines', async () => {
    const child = reelProcess(['doctor'], { REEL_DATA_DIR: tmp.dir })
    const [code] = await once(child, 'exit')
    expect(child.output()).toMatch(/ok {2}\s*ffmpeg\s+\S+ \(from (path|npm|config)\) — ffmpeg version/)
    expect(child.output()).toMatch(/ok {2}\s*db\s+sqlite/)
    expect(code).toBe(0)
    const missing = reelProcess(['doctor'], { REEL_DATA_DIR: tmp.dir, REEL_FFMPEG: '/nonexistent/ffmpeg' })
    expect((await once(missing, 'exit'))[0]).toBe(1)
    expect(missing.output()).toContain('does not run')
  })

  it('says in one line when the server cannot be reached', async () => {
    const child = reelProcess(['status'], { REEL_URL: 'http://127.0.0.1:9', REEL_DATA_DIR: tmp.dir })
    const [code] = await once(child, 'exit')
    expect(code).toBe(1)
    expect(child.output().trim().split('\n')).toHaveLength(1)
    expect(child.output()).toContain('cannot reach reel')
  })
})

describe('restarts', () => {
  it('starts again on the same data directory and keeps the data', async () => {
    const tmp = tempDir()
    const config = loadConfig({ REEL_DATA_DIR: tmp.dir })
    const first = await createReel({ config, log: silent })
    const signUp = await first.http.inject({
      method: 'POST',
      url: '/api/v1/accounts',
      payload: { email: 'restart@example.com', password: 'correct horse battery' },
    })
    expect(signUp.statusCode).toBe(201)
    await first.stop()
    const second = await createReel({ config, log: silent })
    const login = await second.http.inject({
      method: 'POST',
      url: '/api/v1/sessions',
      payload: { email: 'restart@example.com', password: 'correct horse battery' },
    })
    expect(login.statusCode).toBe(201)
    await second.stop()
    tmp.cleanup()
  })
})

describe('bus retention', () => {
  it('deletes playback events past REEL_BUS_RETENTION_DAYS on its schedule, and keeps newer ones and other types', async () => {
    const t = await startReel(
      'sqlite',
      { REEL_BUS_RETENTION_DAYS: '1', REEL_BUS_RETENTION_INTERVAL_S: '1' },
      ['accounts'],
    )
    try {
      const { bus, db } = t.reel.ports
      for (let i = 0; i < 3; i++) {
        await bus.publish({ id: `retained-play-${i}`, type: 'playback.heartbeat', key: 'p', data: { i } })
        await bus.publish({
          id: `retained-title-${i}`,
          type: 'catalog.title.upserted',
          key: 't',
          data: { i },
        })
      }
      const stored = async () =>
        (
          await sql<{
            id: string
          }>`select id from platform_bus_events where id like 'retained-%' order by id`.execute(db.kysely)
        ).rows.map((r) => r.id)
      // Two runs of the job within the retention: nothing goes.
      await sleep(2_500)
      expect(await stored()).toHaveLength(6)
      // Two days on, the next run deletes the playback events and only them.
      t.clock.advance(2 * 24 * 3600_000)
      const deadline = Date.now() + 10_000
      while ((await stored()).length > 3 && Date.now() < deadline) await sleep(100)
      expect(await stored()).toEqual(['retained-title-0', 'retained-title-1', 'retained-title-2'])
    } finally {
      await t.stop()
    }
  })
})
