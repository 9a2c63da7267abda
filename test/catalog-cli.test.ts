import fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { Command } from 'commander'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { registerCatalogCommands } from '../src/cli/catalog.js'
import { tempDir } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const PASSWORD = 'correct horse battery'
const HEADER =
  'director_name,duration,actor_1_name,genres,movie_title,num_voted_users,plot_keywords,movie_imdb_link,language,country,content_rating,title_year'

describe('reel catalog import', () => {
  let t: TestReel
  let token: string
  const tmp = tempDir()

  beforeAll(async () => {
    t = await startReel('sqlite')
    await t.reel.use('accounts').createAdmin('cli-admin@example.com', PASSWORD)
    token = (
      await t.call('POST', '/api/v1/sessions', {
        body: { email: 'cli-admin@example.com', password: PASSWORD },
      })
    ).json().accessToken
  })
  afterAll(async () => {
    await t.stop()
    tmp.cleanup()
  })

  async function run(...args: string[]): Promise<string[]> {
    const port = (t.reel.http.server.address() as AddressInfo).port
    const saved = { url: process.env.REEL_URL, token: process.env.REEL_TOKEN }
    process.env.REEL_URL = `http://127.0.0.1:${port}`
    process.env.REEL_TOKEN = token
    const log = vi.spyOn(console, 'log').mockImplementation(() => {})
    try {
      const cli = new Command('reel').exitOverride()
      registerCatalogCommands(cli)
      await cli.parseAsync(['node', 'reel', 'catalog', 'import', ...args])
      return log.mock.calls.map((c) => c.join(' '))
    } finally {
      log.mockRestore()
      process.env.REEL_URL = saved.url
      process.env.REEL_TOKEN = saved.token
      if (saved.url === undefined) delete process.env.REEL_URL
      if (saved.token === undefined) delete process.env.REEL_TOKEN
    }
  }

  const catalogSize = async () => {
    const res = await t.call('GET', '/api/v1/titles?limit=100', { token })
    return res.json().items.length as number
  }

  it('keeps the good rows, reports the bad ones, upserts repeated ids, and adds nothing when run again', async () => {
    const file = path.join(tmp.dir, 'feed.csv')
    const report = path.join(tmp.dir, 'rejected.csv')
    fs.writeFileSync(
      file,
      [
        HEADER,
        'Ridley Scott,117,Sigourney Weaver,Horror|Sci-Fi,Alien ,700000,alien|space,http://www.imdb.com/title/tt0078748/,English,UK,R,1979',
        'James Cameron,137,Sigourney Weaver,Action|Sci-Fi,Aliens ,600000,marine,http://www.imdb.com/title/tt0090605/,English,USA,R,1986',
        'Jean-Pierre Jeunet,122,Audrey Tautou,Comedy|Romance,Amélie ,650000,paris,http://www.imdb.com/title/tt0211915/,French,France,R,2001',
        'Ridley Scott,116,Sigourney Weaver,Horror|Sci-Fi,Alien (director’s cut),700000,alien,http://www.imdb.com/title/tt0078748/,English,UK,R,1979',
        'Nobody,90,Nobody,Drama,Bad Year,1,,http://www.imdb.com/title/tt0000004/,English,USA,R,soon',
        'Nobody,90,Nobody,Drama,No Link,1,,,English,USA,R,2000',
        'Nobody,90,Nobody,Telenovela,Odd Genre,1,,http://www.imdb.com/title/tt0000005/,English,USA,R,2000',
      ].join('\n'),
    )
    const before = await catalogSize()
    const out = await run(file, '--report', report)
    expect(out[0]).toMatch(/3 created, 1 updated, 0 unchanged, 3 rejected \(1 rows repeated/)
    expect(out.join('\n')).toMatch(/line 6 \(imdb:tt0000004\): invalid_record: \/year/)
    expect(out.join('\n')).toMatch(/line 7: missing_external_id/)
    expect(out.join('\n')).toMatch(/line 8 \(imdb:tt0000005\): unknown_genre/)
    expect(fs.readFileSync(report, 'utf8').split('\n').slice(0, 2)).toEqual([
      'line,externalId,code,reason',
      expect.stringMatching(/^6,"imdb:tt0000004",invalid_record,/),
    ])
    expect(await catalogSize()).toBe(before + 3)
    const list = (await t.call('GET', '/api/v1/titles?limit=100&sort=title', { token })).json().items
    expect(list.map((i: { title: string }) => i.title)).toEqual([
      'Alien (director’s cut)',
      'Aliens',
      'Amélie',
    ])

    const again = await run(file)
    expect(again[0]).toMatch(/0 created, 2 updated, 2 unchanged, 3 rejected/)
    expect(await catalogSize()).toBe(before + 3)
  })

  it('says what is wrong with a missing or unreadable file', async () => {
    await expect(run(path.join(tmp.dir, 'missing.csv'))).rejects.toThrow(/no such file/)
    const text = path.join(tmp.dir, 'feed.txt')
    fs.writeFileSync(text, 'x')
    await expect(run(text)).rejects.toThrow(/\.csv, \.json/)
  })
})
