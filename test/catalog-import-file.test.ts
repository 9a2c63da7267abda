import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IMPORT_FILE_MAX_BYTES } from '../src/services/catalog/routes.js'
import { hasPostgres } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'
const URL = '/api/v1/admin/catalog/imports'
let seq = 0
const email = (tag = 'user') => `${tag}.${process.pid}.${Date.now()}.${seq++}@example.com`
const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

type Line =
  | { type: 'started'; rows: number }
  | { type: 'progress'; rows: number; of: number; created: number; rejected: number }
  | {
      type: 'done'
      report: {
        created: number
        updated: number
        unchanged: number
        rejected: { line: number; externalId: string | null; code: string; reason: string }[]
        repeated: { line: number; externalId: string; firstLine: number }[]
      }
    }
  | { type: 'error'; error: { code: string; message: string } }

const linesOf = (body: string): Line[] =>
  body
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line)

function reportOf(lines: Line[]) {
  const done = lines.at(-1)
  if (done?.type !== 'done') throw new Error(`the import did not finish: ${JSON.stringify(done)}`)
  return done.report
}

describe.each(kinds)('importing a catalog file over HTTP on %s', (kind) => {
  let t: TestReel
  let admin: string
  let member: string

  /** Titles an administrator finds by exact name through the browse API (every title here is shown everywhere). */
  async function titlesNamed(name: string): Promise<{ id: string; title: string; year: number | null }[]> {
    const found: { id: string; title: string; year: number | null }[] = []
    let cursor: string | null = null
    do {
      const res = await t.call(
        'GET',
        `/api/v1/titles?limit=100&sort=title${cursor ? `&cursor=${cursor}` : ''}`,
        {
          token: admin,
        },
      )
      found.push(...res.json().items)
      cursor = res.json().nextCursor
    } while (cursor)
    return found.filter((f) => f.title === name)
  }

  beforeAll(async () => {
    t = await startReel(kind)
    const adminEmail = email('admin')
    await t.reel.use('accounts').createAdmin(adminEmail, PASSWORD)
    admin = (
      await t.call('POST', '/api/v1/sessions', { body: { email: adminEmail, password: PASSWORD } })
    ).json().accessToken
    const signUp = await t.call('POST', '/api/v1/accounts', {
      body: { email: email(), password: PASSWORD, plan: 'standard' },
    })
    member = signUp.json().tokens.accessToken
  })
  afterAll(() => t?.stop())

  it('imports good rows, reports bad ones by line, and streams progress per batch', async () => {
    const tag = `csv${seq++}`
    const rows = Array.from(
      { length: 230 },
      (_, i) =>
        `${tag}-${i},Film ${tag} ${i},${1950 + (i % 70)},PG-13,Drama|Comedy,Ann Director,Bob Actor|Cy Actor`,
    )
    // Line 3: no title; line 5: a year that is not one; line 7: an unknown rating; line 9: unicode and
    // an injection string kept as text.
    rows[1] = `${tag}-bad-title,,2001,PG,Drama,,`
    rows[3] = `${tag}-bad-year,Film ${tag} year,nineteen,PG,Drama,,`
    rows[5] = `${tag}-bad-rating,Film ${tag} rating,2001,XYZ,Drama,,`
    rows[7] = `${tag}-unicode,"Zoë's 🎬 '); DROP TABLE catalog_titles;--",2001,G,Drama,Ann Director,`
    const csv = ['externalId,title,year,rating,genres,directors,cast', ...rows].join('\n')

    const res = await t.call('POST', URL, { token: admin, body: { format: 'csv', content: csv } })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.headers['content-type']).toMatch(/application\/x-ndjson/)
    const lines = linesOf(res.body)
    expect(lines[0]).toEqual({ type: 'started', rows: 230 })
    const progress = lines.filter((l) => l.type === 'progress')
    expect(progress.map((p) => p.rows)).toEqual([100, 200, 230])
    expect(progress.at(-1)).toMatchObject({ rows: 230, of: 230 })
    const report = reportOf(lines)
    expect(report.created).toBe(227)
    expect(report.rejected.map((r) => [r.line, r.externalId, r.code])).toEqual([
      [3, `${tag}-bad-title`, 'invalid_title'],
      [5, `${tag}-bad-year`, 'invalid_record'],
      [7, `${tag}-bad-rating`, 'invalid_record'],
    ])
    expect(report.rejected[1]?.reason).toBe('/year: Expected integer or null, got "nineteen"')
    expect(await titlesNamed(`Zoë's 🎬 '); DROP TABLE catalog_titles;--`)).toHaveLength(1)
    expect(await titlesNamed(`Film ${tag} 229`)).toHaveLength(1)

    // Operators see the outcomes in /metrics.
    const metrics = (await t.call('GET', '/metrics')).body
    const created = Number(/reel_catalog_import_records_total\{outcome="created"\} (\d+)/.exec(metrics)?.[1])
    expect(created).toBeGreaterThanOrEqual(227)

    // The same file again changes nothing.
    const again = reportOf(
      linesOf((await t.call('POST', URL, { token: admin, body: { format: 'csv', content: csv } })).body),
    )
    expect(again).toMatchObject({ created: 0, updated: 0, unchanged: 227 })
  })

  it('reads JSON and NDJSON feeds by the same rules, rejecting records that are not objects', async () => {
    const tag = `json${seq++}`
    const good = { externalId: `${tag}-1`, type: 'movie', title: `Json ${tag}`, maturityRating: 'PG' }
    const json = JSON.stringify({ titles: [good, 42, { ...good, externalId: `${tag}-2`, year: 'soon' }] })
    const report = reportOf(
      linesOf((await t.call('POST', URL, { token: admin, body: { format: 'json', content: json } })).body),
    )
    expect(report.created).toBe(1)
    expect(report.rejected.map((r) => [r.line, r.code])).toEqual([
      [2, 'malformed_record'],
      [3, 'invalid_record'],
    ])
    const ndjson = `${JSON.stringify({ ...good, externalId: `${tag}-3`, title: `Ndjson ${tag}` })}\n{not json\n`
    const nd = reportOf(
      linesOf(
        (await t.call('POST', URL, { token: admin, body: { format: 'ndjson', content: ndjson } })).body,
      ),
    )
    expect(nd.created).toBe(1)
    expect(nd.rejected.map((r) => [r.line, r.code])).toEqual([[2, 'malformed_record']])
    expect(await titlesNamed(`Ndjson ${tag}`)).toHaveLength(1)
  })

  it('rows without availability are shown in the regions given', async () => {
    const tag = `regions${seq++}`
    const csv = `externalId,title,rating\n${tag},Regional ${tag},PG\n`
    const res = await t.call('POST', URL, {
      token: admin,
      body: { format: 'csv', content: csv, regions: ['de', 'FR'] },
    })
    expect(reportOf(linesOf(res.body)).created).toBe(1)
    // The member's country is the default (US): not shown there.
    expect(await titlesNamed(`Regional ${tag}`)).toHaveLength(0)
  })

  it.each([
    ['no body', undefined, 400, 'empty_body'],
    ['an unknown format', { format: 'xml', content: 'x' }, 400, 'invalid_request'],
    ['content that is not text', { format: 'csv', content: 42 }, 400, 'invalid_request'],
    ['no content', { format: 'csv' }, 400, 'invalid_request'],
    ['an unknown field', { format: 'csv', content: 'a', extra: 1 }, 400, 'invalid_request'],
    [
      'a region that is not a country code',
      { format: 'csv', content: 'a', regions: ['USA'] },
      400,
      'invalid_request',
    ],
    [
      'an injection string as a region',
      { format: 'csv', content: 'a', regions: ["'; DROP--"] },
      400,
      'invalid_request',
    ],
    ['no regions', { format: 'csv', content: 'a', regions: [] }, 400, 'invalid_request'],
    ['an empty file', { format: 'csv', content: '  \n' }, 422, 'empty_feed'],
    ['a CSV with a header only', { format: 'csv', content: 'title,year\n' }, 422, 'empty_feed'],
    ['JSON that is not JSON', { format: 'json', content: '{"titles": [' }, 422, 'unreadable_feed'],
    [
      'JSON that is not a list of titles',
      { format: 'json', content: '{"movies": []}' },
      422,
      'unreadable_feed',
    ],
  ])('refuses %s and imports nothing', async (_name, body, status, code) => {
    const before = (await t.call('GET', '/api/v1/titles?limit=100', { token: admin })).json().items.length
    const res = await t.call('POST', URL, {
      token: admin,
      ...(body === undefined ? { headers: { 'content-type': 'application/json' } } : { body }),
    })
    expect(res.statusCode, res.body).toBe(status)
    expect(res.json().error.code).toBe(code)
    expect((await t.call('GET', '/api/v1/titles?limit=100', { token: admin })).json().items.length).toBe(
      before,
    )
  })

  it('refuses a file over the size limit with 413', async () => {
    const content = 'x'.repeat(IMPORT_FILE_MAX_BYTES + 2 * 1024 * 1024)
    const res = await t.call('POST', URL, { token: admin, body: { format: 'csv', content } })
    expect(res.statusCode).toBe(413)
    expect(res.json().error.code).toBe('body_too_large')
  })

  it('is for administrators only, before the body is read', async () => {
    const body = { format: 'csv', content: 'title\nA' }
    const none = await t.call('POST', URL, { body })
    expect(none.statusCode).toBe(401)
    const res = await t.call('POST', URL, { token: member, body })
    expect(res.statusCode).toBe(403)
    expect(res.json().error.code).toBe('admin_only')
    // Even a body too large for the route is refused as forbidden, unread.
    const big = await t.call('POST', URL, {
      token: member,
      body: { format: 'csv', content: 'x'.repeat(IMPORT_FILE_MAX_BYTES + 2 * 1024 * 1024) },
    })
    expect(big.statusCode).toBe(403)
  })
})
