import { Type } from '@sinclair/typebox'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { conflict } from '../errors.js'
import { createLogger } from '../log.js'
import { createHttp, endOfTurn, errorResponses, type Http, requestLogger } from './server.js'

describe('HTTP conventions', () => {
  let http: Http
  beforeAll(async () => {
    http = await createHttp({ log: createLogger('silent'), bodyLimit: 1024, version: 'test' })
    const Body = Type.Object({ name: Type.String({ maxLength: 50 }), count: Type.Integer({ minimum: 0 }) })
    http.post(
      '/echo',
      { schema: { body: Body, response: { 200: Body, ...errorResponses(409, 413, 415) } } },
      async (req) => req.body,
    )
    http.get('/conflict', async () => {
      throw conflict('already_there', 'It is already there')
    })
    http.get('/bug', async () => {
      throw new Error('a bug')
    })
    await http.ready()
  })
  afterAll(() => http.close())

  const post = (payload: string, contentType = 'application/json') =>
    http.inject({ method: 'POST', url: '/echo', payload, headers: { 'content-type': contentType } })

  it('answers valid requests', async () => {
    const res = await post(JSON.stringify({ name: 'Amélie 🎬', count: 2 }))
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ name: 'Amélie 🎬', count: 2 })
  })

  it.each([
    ['malformed JSON', () => post('{"name": "x",'), 400, 'malformed_json'],
    ['empty JSON body', () => post(''), 400, 'empty_body'],
    ['wrong content type', () => post('<a/>', 'application/xml'), 415, 'unsupported_media_type'],
    ['text instead of JSON', () => post('name=x', 'text/plain'), 400, 'invalid_request'],
    ['missing field', () => post(JSON.stringify({ name: 'x' })), 400, 'invalid_request'],
    ['wrong type', () => post(JSON.stringify({ name: 'x', count: 'many' })), 400, 'invalid_request'],
    ['negative number', () => post(JSON.stringify({ name: 'x', count: -1 })), 400, 'invalid_request'],
    [
      'body over the limit',
      () => post(JSON.stringify({ name: 'x'.repeat(2000), count: 1 })),
      413,
      'body_too_large',
    ],
    ['unknown route', () => http.inject({ method: 'GET', url: '/nope?x=1' }), 404, 'route_not_found'],
    ['wrong method', () => http.inject({ method: 'DELETE', url: '/echo' }), 404, 'route_not_found'],
    ['a domain error', () => http.inject({ method: 'GET', url: '/conflict' }), 409, 'already_there'],
  ])('%s gets the error shape', async (_name, send, status, code) => {
    const res = await send()
    expect(res.statusCode).toBe(status)
    const body = res.json()
    expect(body.error.code).toBe(code)
    expect(typeof body.error.message).toBe('string')
  })

  it('a bug is a 500 that does not leak its message', async () => {
    const res = await http.inject({ method: 'GET', url: '/bug' })
    expect(res.statusCode).toBe(500)
    expect(res.json().error.code).toBe('internal_error')
    expect(res.body).not.toContain('a bug')
  })

  it('gives every response a request id, keeping a well-formed one from the client', async () => {
    const mine = await http.inject({
      method: 'GET',
      url: '/conflict',
      headers: { 'x-request-id': 'abc-123' },
    })
    expect(mine.headers['x-request-id']).toBe('abc-123')
    const bad = await http.inject({
      method: 'GET',
      url: '/conflict',
      headers: { 'x-request-id': 'x'.repeat(300) },
    })
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('endOfTurn', () => {
  it("resolves once for every caller of a turn, after the turn's microtasks, and anew in the next turn", async () => {
    const order: string[] = []
    const first = endOfTurn()
    const second = endOfTurn()
    expect(second).toBe(first)
    void first.then(() => order.push('end of turn'))
    queueMicrotask(() => order.push('microtask'))
    setImmediate(() => order.push('immediate queued after'))
    await first
    expect(order).toEqual(['microtask', 'end of turn'])
    const next = endOfTurn()
    expect(next).not.toBe(first)
    await next
    expect(order).toEqual(['microtask', 'end of turn', 'immediate queued after'])
  })
})

describe('request loggers', () => {
  /** A pino logger at `level` whose lines land in `lines`, counting the children made from it. */
  function capture(level: string) {
    const lines: Record<string, unknown>[] = []
    const log = pino(
      { level, redact: { paths: ['*.password'], censor: '[redacted]' } },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    )
    const made = { children: 0 }
    const child = log.child
    log.child = function (this: typeof log, ...args: Parameters<typeof child>) {
      made.children++
      return child.apply(this, args)
    } as typeof log.child
    return { log, lines, made }
  }

  it('makes the child only when a line is written at an enabled level, with the bindings and the redaction', () => {
    const { log, lines, made } = capture('info')
    const logger = requestLogger(log, { reqId: 'r-1' }, {})
    logger.debug({ hidden: true }, 'not at info')
    logger.trace('nor this')
    expect(made.children).toBe(0)
    expect(logger.level).toBe('info')
    logger.info({ user: { password: 'hunter2' } }, 'signed in')
    logger.error('failed')
    expect(made.children).toBe(1)
    expect(lines.map((l) => [l.msg, l.reqId])).toEqual([
      ['signed in', 'r-1'],
      ['failed', 'r-1'],
    ])
    expect(lines[0]?.user).toEqual({ password: '[redacted]' })
    const grandchild = logger.child({ step: 'two' })
    grandchild.warn('deeper')
    expect(lines[2]).toMatchObject({ msg: 'deeper', reqId: 'r-1', step: 'two' })
  })

  it("gives pino's own child at once where options ask for more (a route's level)", () => {
    const { log, lines, made } = capture('info')
    const logger = requestLogger(log, { reqId: 'r-2' }, { level: 'debug' })
    expect(made.children).toBe(1)
    logger.debug('shown at the route level')
    expect(lines[0]).toMatchObject({ msg: 'shown at the route level', reqId: 'r-2' })
  })

  it("is the logger of a request's handler and hooks", async () => {
    const { log, lines } = capture('info')
    const http = await createHttp({ log, bodyLimit: 1024, version: 'test' })
    http.get('/logs', async (req) => {
      req.log.debug('below the level')
      req.log.info({ step: 1 }, 'handled')
      return { ok: true }
    })
    await http.ready()
    try {
      const res = await http.inject({ method: 'GET', url: '/logs', headers: { 'x-request-id': 'given-id' } })
      expect(res.statusCode).toBe(200)
      const handled = lines.find((l) => l.msg === 'handled')
      expect(handled).toMatchObject({ reqId: 'given-id', step: 1 })
      expect(lines.find((l) => l.msg === 'request')).toMatchObject({ reqId: 'given-id', status: 200 })
      expect(lines.some((l) => l.msg === 'below the level')).toBe(false)
    } finally {
      await http.close()
    }
  })
})
