import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasPostgres } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'
let seq = 0
const email = (tag = 'user') => `${tag}.${process.pid}.${Date.now()}.${seq++}@example.com`
const kinds: ('sqlite' | 'postgres')[] = hasPostgres() ? ['sqlite', 'postgres'] : ['sqlite']

type Page = { items: { id: string; title: string }[]; nextCursor: string | null }

describe.each(kinds)('the administrators’ list of titles on %s', (kind) => {
  let t: TestReel
  let admin: string
  let member: string
  const tag = `zq${Date.now().toString(36)}`
  const ids: string[] = []

  const list = async (query: string, token = admin) => {
    const res = await t.call('GET', `/api/v1/admin/titles${query}`, { token })
    return res
  }

  beforeAll(async () => {
    t = await startReel(kind)
    const adminEmail = email('admin')
    await t.reel.use('accounts').createAdmin(adminEmail, PASSWORD)
    admin = (
      await t.call('POST', '/api/v1/sessions', { body: { email: adminEmail, password: PASSWORD } })
    ).json().accessToken
    member = (
      await t.call('POST', '/api/v1/accounts', {
        body: { email: email(), password: PASSWORD, plan: 'standard' },
      })
    ).json().tokens.accessToken
    // Shown nowhere, rated NC-17, or shown: the list has them all.
    const catalog = t.reel.use('catalog')
    for (const [i, title] of [`Éclair ${tag} One`, `The ${tag} Two`, `${tag}-three: Hidden`].entries())
      ids.push(
        (
          await catalog.create({
            type: 'movie',
            title,
            maturityRating: i === 2 ? 'NC-17' : 'PG',
            availability: i === 0 ? [{ region: '*' }] : [],
          })
        ).id,
      )
  })
  afterAll(() => t?.stop())

  it('lists every title, newest first, whatever its availability and rating', async () => {
    const res = await list(`?q=${tag}`)
    expect(res.statusCode, res.body).toBe(200)
    expect((res.json() as Page).items.map((i) => i.id)).toEqual([...ids].reverse())
  })

  it('finds by part of the title, case, accents and punctuation aside', async () => {
    const found = async (q: string) =>
      ((await list(`?q=${encodeURIComponent(q)}`)).json() as Page).items.map((i) => i.title)
    expect(await found(`ECLAIR ${tag}`)).toEqual([`Éclair ${tag} One`])
    expect(await found(`${tag} three hidden`)).toEqual([`${tag}-three: Hidden`])
    expect(await found(`${tag}%`)).toHaveLength(3)
    expect(await found(`%_${tag}`)).toHaveLength(3)
    expect(await found(`'; DROP TABLE catalog_titles;-- ${tag}`)).toEqual([])
    expect(await found('🎬')).toHaveLength((await list('?limit=100')).json().items.length)
  })

  it('pages with the cursor it gives', async () => {
    const first = (await list(`?q=${tag}&limit=2`)).json() as Page
    expect(first.items.map((i) => i.id)).toEqual([ids[2], ids[1]])
    expect(first.nextCursor).toBe(ids[1])
    const second = (await list(`?q=${tag}&limit=2&cursor=${first.nextCursor}`)).json() as Page
    expect(second).toEqual({ items: [expect.objectContaining({ id: ids[0] })], nextCursor: null })
  })

  it.each([
    ['limit=0', 'invalid_limit'],
    ['limit=-1', 'invalid_request'],
    ['limit=ten', 'invalid_request'],
    [`q=${'x'.repeat(201)}`, 'invalid_request'],
    ['cursor=', 'invalid_request'],
    ['sort=title', 'invalid_request'],
  ])('refuses %s with 400', async (query, code) => {
    const res = await list(`?${query}`)
    expect(res.statusCode, res.body).toBe(400)
    expect(res.json().error.code).toBe(code)
  })

  it('is for administrators only', async () => {
    expect((await t.call('GET', '/api/v1/admin/titles')).statusCode).toBe(401)
    const res = await list('', member)
    expect(res.statusCode).toBe(403)
    expect(res.json().error.code).toBe('admin_only')
  })
})
