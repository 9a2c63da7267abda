import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import type { BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveTool } from '../src/platform/ffmpeg.js'
import type { TitleDetail } from '../src/services/catalog/service.js'
import { hasChromium, launchChromium, signIn, watchProblems } from './browser.js'
import { tempDir } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const run = promisify(execFile)
const ARTIFACTS = path.resolve('test-artifacts')
const PASSWORD = 'correct horse battery'

type PageGlobals = {
  document: { querySelector(selector: 'video'): { currentTime: number; duration: number } | null }
  location: { search: string }
}
const videoPast = (seconds: number) =>
  ((globalThis as unknown as PageGlobals).document.querySelector('video')?.currentTime ?? 0) > seconds

type ProgressPage = {
  document: { querySelector(s: string): { value: number; max: number } | null; body: object }
  MutationObserver: new (
    callback: () => void,
  ) => {
    observe(target: object, options: { subtree: boolean; childList: boolean; attributes: boolean }): void
  }
  importProgress?: string[]
}
/** Records each `value/max` the import's progress bar shows, in the page. */
const watchImportProgress = () => {
  const page = globalThis as unknown as ProgressPage
  const seen: string[] = []
  page.importProgress = seen
  new page.MutationObserver(() => {
    const bar = page.document.querySelector('progress[aria-label="Import progress"]')
    const state = bar ? `${bar.value}/${bar.max}` : undefined
    if (state && seen.at(-1) !== state) seen.push(state)
  }).observe(page.document.body, { subtree: true, childList: true, attributes: true })
}
const importProgressSeen = () => (globalThis as unknown as ProgressPage).importProgress ?? []

describe.skipIf(!hasChromium())('web pages: people, next episode, ratings, admin edit and import', () => {
  let t: TestReel
  let base: string
  let chromium: Awaited<ReturnType<typeof launchChromium>>
  const contexts: BrowserContext[] = []
  const tmp = tempDir()
  let series: TitleDetail
  let movie: TitleDetail
  let memberEmail: string

  const newPage = async () => {
    const context = await chromium.browser.newContext()
    contexts.push(context)
    const page = await context.newPage()
    page.setDefaultTimeout(20_000)
    return page
  }
  const adminTitle = (id: string) => t.reel.use('catalog').adminTitle(id)

  beforeAll(async () => {
    t = await startReel('sqlite', {
      REEL_MEDIA_CHUNK_SECONDS: '6',
      REEL_MEDIA_LADDER: '360p-365k,234p-145k',
      REEL_MEDIA_PRESET: 'superfast',
      REEL_PLAYBACK_HEARTBEAT_MS: '1000',
    })
    base = `http://127.0.0.1:${(t.reel.http.server.address() as { port: number }).port}`
    await t.reel.use('accounts').createAdmin('pages-admin@example.com', PASSWORD)
    memberEmail = `pages.${Date.now()}@example.com`
    const signUp = await t.call('POST', '/api/v1/accounts', {
      body: { email: memberEmail, password: PASSWORD, plan: 'premium', profileName: 'Robin' },
    })
    expect(signUp.statusCode, signUp.body).toBe(201)

    const catalog = t.reel.use('catalog')
    series = await catalog.create({
      type: 'series',
      title: 'Night Shift',
      synopsis: 'Three nurses, one ward, no sleep.',
      year: 2021,
      maturityRating: 'PG-13',
      genres: ['drama'],
      credits: [
        { name: 'Ada Lumen', role: 'director' },
        { name: 'Bo Carver', role: 'cast', character: 'Nurse Jo' },
      ],
      availability: [{ region: '*' }],
      seasons: [
        {
          number: 1,
          episodes: [
            { number: 1, name: 'Admission' },
            { number: 2, name: 'Discharge' },
          ],
        },
      ],
    })
    movie = await catalog.create({
      type: 'movie',
      title: 'Lantern Bay',
      synopsis: 'A lighthouse keeper keeps a secret.',
      year: 2019,
      maturityRating: 'PG',
      genres: ['drama'],
      credits: [{ name: 'Ada Lumen', role: 'director' }],
      availability: [{ region: '*' }],
    })

    // Both episodes get real media (a 3 s clip through the pipeline).
    const ffmpeg = resolveTool('ffmpeg', undefined)
    if (!ffmpeg) throw new Error('ffmpeg is needed')
    const clip = path.join(tmp.dir, 'clip.mp4')
    await run(ffmpeg.path, [
      ...[
        '-hide_banner',
        '-loglevel',
        'error',
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=640x360:rate=24:duration=3',
      ],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:duration=3', '-c:v', 'libx264', '-preset', 'ultrafast'],
      ...['-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clip],
    ])
    const media = t.reel.use('media')
    const episodes = series.seasons[0]?.episodes ?? []
    for (const ep of episodes) await media.ingestFile({ mediaId: ep.id, title: ep.name, file: clip })
    for (let i = 0; i < 600; i++) {
      const detail = await adminTitle(series.id)
      const statuses = detail.seasons.flatMap((s) => s.episodes.map((e) => e.mediaStatus))
      if (statuses.includes('failed')) throw new Error('an episode failed in the media pipeline')
      if (statuses.every((s) => s === 'available')) break
      await new Promise((r) => setTimeout(r, 250))
    }
    chromium = await launchChromium()
    fs.mkdirSync(ARTIFACTS, { recursive: true })
  }, 240_000)

  afterAll(async () => {
    for (const c of contexts) await c.close()
    await chromium?.close()
    await t?.stop()
    tmp.cleanup()
  })

  async function memberPage(expected: RegExp[] = []) {
    const page = await newPage()
    const problems = watchProblems(page, [/401 POST .*\/api\/v1\/sessions\/refresh/, ...expected])
    await signIn(page, base, memberEmail, PASSWORD)
    await page.getByRole('heading', { name: 'Who’s watching?' }).waitFor()
    await page.getByRole('button', { name: /Robin/ }).click()
    await page.waitForURL(`${base}/`)
    return { page, problems }
  }

  it('links a title’s director and cast to people pages with their filmography', async () => {
    const { page, problems } = await memberPage([/404 GET .*\/api\/v1\/people\/no-such-person/])
    await page.goto(`${base}/title/${series.id}`)
    await page.getByRole('heading', { name: 'Night Shift' }).waitFor()
    await page.getByRole('link', { name: 'Ada Lumen' }).click()
    await page.getByRole('heading', { name: 'Ada Lumen' }).waitFor()
    const directed = page.getByRole('region', { name: /Directed/ })
    await directed.getByRole('link', { name: /Lantern Bay/ }).waitFor()
    await directed.getByRole('link', { name: /Night Shift/ }).waitFor()
    await page.screenshot({ path: path.join(ARTIFACTS, 'person.png') })
    await directed.getByRole('link', { name: /Lantern Bay/ }).click()
    await page.getByRole('heading', { name: 'Lantern Bay' }).waitFor()

    await page.goto(`${base}/title/${series.id}`)
    await page.getByRole('link', { name: 'Bo Carver' }).click()
    await page
      .getByRole('region', { name: /Appears in/ })
      .getByText('as Nurse Jo')
      .waitFor()

    await page.goto(`${base}/people/no-such-person`)
    await page
      .getByRole('alert')
      .filter({ hasText: /person/i })
      .waitFor()
    expect(problems).toEqual([])
  })

  it('offers the next episode at the end of one: a countdown that can be cancelled, then plays it', async () => {
    const { page, problems } = await memberPage()
    const [first, second] = series.seasons[0]?.episodes ?? []
    if (!first || !second) throw new Error('the series has two episodes')
    await page.goto(`${base}/title/${series.id}`)
    // Nothing watched yet: the series' play button starts the first episode.
    await page.getByRole('link', { name: '▶ Play S1:E1' }).click()
    await page.getByRole('heading', { name: 'Night Shift · S1:E1 Admission' }).waitFor()
    await page.waitForFunction(videoPast, 0.5)
    const upNext = page.getByRole('region', { name: 'Up next' })
    await upNext.getByText('S1:E2 Discharge').waitFor()
    await upNext.getByRole('timer').waitFor()
    await page.screenshot({ path: path.join(ARTIFACTS, 'up-next.png') })
    // Cancelled: the countdown goes, the page stays on this episode.
    await upNext.getByRole('button', { name: 'Cancel' }).click()
    await upNext.getByRole('timer').waitFor({ state: 'detached' })
    await page.waitForTimeout(1500)
    expect(new URL(page.url()).searchParams.get('episode')).toBe(first.id)

    // Played at once from the button.
    await upNext.getByRole('button', { name: /Play next episode/ }).click()
    await page.waitForURL((url) => url.searchParams.get('episode') === second.id)
    await page.waitForFunction(videoPast, 0.5)

    // Left to itself, the countdown starts the next episode: back to the first one and wait.
    await page.goto(`${base}/watch/${series.id}?episode=${first.id}`)
    const startOver = page.getByRole('button', { name: 'Start over' })
    if (await startOver.isVisible().catch(() => false)) await startOver.click()
    await page.getByRole('region', { name: 'Up next' }).getByRole('timer').waitFor()
    await page.waitForURL((url) => url.searchParams.get('episode') === second.id, { timeout: 20_000 })
    expect(problems).toEqual([])
  }, 90_000)

  it('rates a title thumbs up or down, and takes the rating back', async () => {
    const { page, problems } = await memberPage()
    const profiles = await t.call('POST', '/api/v1/sessions', {
      body: { email: memberEmail, password: PASSWORD },
    })
    const token = profiles.json().accessToken as string
    const profileId = (await t.call('GET', '/api/v1/profiles', { token })).json().profiles[0].id as string
    const stored = async () =>
      (await t.call('GET', `/api/v1/profiles/${profileId}/ratings/${movie.id}`, { token })).json().rating

    await page.goto(`${base}/title/${movie.id}`)
    const up = page.getByRole('button', { name: /I like this/ })
    const down = page.getByRole('button', { name: /Not for me/ })
    await up.click()
    await expect.poll(() => up.getAttribute('aria-pressed')).toBe('true')
    await expect.poll(stored).toBe('up')
    await down.click()
    await expect.poll(() => down.getAttribute('aria-pressed')).toBe('true')
    expect(await up.getAttribute('aria-pressed')).toBe('false')
    await expect.poll(stored).toBe('down')
    // A reload shows the stored rating; pressing it again takes it back.
    await page.reload()
    await expect
      .poll(() => page.getByRole('button', { name: /Not for me/ }).getAttribute('aria-pressed'))
      .toBe('true')
    await page.getByRole('button', { name: /Not for me/ }).click()
    await expect.poll(stored).toBe(null)
    expect(problems).toEqual([])
  })

  it('labels a sponsored row on the home page', async () => {
    const login = await t.call('POST', '/api/v1/sessions', {
      body: { email: 'pages-admin@example.com', password: PASSWORD },
    })
    const now = Date.now()
    const campaign = await t.call('POST', '/api/v1/admin/campaigns', {
      token: login.json().accessToken,
      body: {
        name: 'Lantern launch',
        advertiser: 'Harbour Films',
        titleId: movie.id,
        segment: { regions: ['*'] },
        budget: 1000,
        startsAt: new Date(now - 3600_000).toISOString(),
        endsAt: new Date(now + 86_400_000).toISOString(),
        minAffinity: 0,
      },
    })
    expect(campaign.statusCode, campaign.body).toBe(201)
    const { page, problems } = await memberPage()
    const row = page.getByRole('region', { name: 'Sponsored by Harbour Films' })
    await row.getByText('Sponsored', { exact: true }).waitFor()
    await row.getByRole('link', { name: /Lantern Bay/ }).waitFor()
    await page.screenshot({ path: path.join(ARTIFACTS, 'home-sponsored.png') })
    expect(problems).toEqual([])
  })

  it('lets an administrator edit every field, showing the API’s validation errors on their field', async () => {
    const page = await newPage()
    const problems = watchProblems(page, [
      /401 POST .*\/api\/v1\/sessions\/refresh/,
      /400 (PATCH|POST) .*\/api\/v1\/admin\/titles/,
    ])
    await signIn(page, base, 'pages-admin@example.com', PASSWORD)
    await page.goto(`${base}/admin/titles`)
    // Every title is listed, even one shown nowhere; typing narrows the list.
    const hidden = await t.reel
      .use('catalog')
      .create({ type: 'movie', title: 'Unreleased Cut', maturityRating: 'R', availability: [] })
    await page.reload()
    await page.getByRole('link', { name: hidden.title }).waitFor()
    await page.getByLabel('Find a title').pressSequentially('lantern', { delay: 30 })
    await page.getByRole('link', { name: hidden.title }).waitFor({ state: 'detached' })
    await page.getByRole('link', { name: 'Lantern Bay' }).click()
    await page.getByRole('heading', { name: 'Edit “Lantern Bay”' }).waitFor()

    // A year the catalog refuses: the message is shown, and the field is marked and focused.
    await page.getByLabel('Year').fill('1700')
    await page.getByRole('button', { name: 'Save changes' }).click()
    await page.getByRole('alert').filter({ hasText: /year/i }).waitFor()
    expect(await page.getByLabel('Year').getAttribute('aria-invalid')).toBe('true')
    expect(await page.getByLabel('Year').evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true)

    await page.getByLabel('Year').fill('2020')
    await page.getByLabel('Synopsis').fill('A lighthouse keeper keeps a secret — until the storm. 🌊')
    await page.getByLabel('Maturity rating').selectOption('PG-13')
    await page.getByLabel('Tags').fill('lighthouse, storm')
    // Artwork from another site would be blocked by the page's CSP: the editor says so.
    await page.getByLabel('Poster').fill('https://img.example.com/lantern.jpg')
    await page.getByText(/Content Security Policy/).waitFor()
    await page.getByLabel('Poster').fill(`${base}/favicon.svg`)
    await page.getByText(/Content Security Policy/).waitFor({ state: 'detached' })
    await page.getByRole('button', { name: 'Add person' }).click()
    await page.getByLabel('Name of person 2').fill('Cy Quill')
    await page.getByLabel('Role of person 2').selectOption('writer')
    await page.getByRole('button', { name: 'Add person' }).click()
    await page.getByLabel('Name of person 3').fill('Dee Star')
    await page.getByLabel('Character of person 3').fill('The Keeper')
    await page.getByRole('button', { name: 'Move person 3 up' }).click()
    await page.getByRole('button', { name: 'Add window' }).click()
    await page.getByLabel('Region of window 2').fill('GB')
    await page.getByLabel('End of window 2').fill('2031-12-31T23:00')
    await page.getByRole('button', { name: 'Save changes' }).click()
    await page.getByText('Saved “Lantern Bay”.').waitFor()

    const saved = await adminTitle(movie.id)
    expect(saved).toMatchObject({
      year: 2020,
      synopsis: 'A lighthouse keeper keeps a secret — until the storm. 🌊',
      maturityRating: 'PG-13',
      tags: ['lighthouse', 'storm'],
      artwork: { poster: `${base}/favicon.svg` },
    })
    expect(saved.credits.map((c) => [c.name, c.role, c.character])).toEqual([
      ['Ada Lumen', 'director', null],
      ['Dee Star', 'cast', 'The Keeper'],
      ['Cy Quill', 'writer', null],
    ])
    expect(saved.availability).toContainEqual({
      region: 'GB',
      startsAt: null,
      endsAt: '2031-12-31T23:00:00.000Z',
    })

    // A new title: nothing saved until the title is given.
    await page.getByRole('link', { name: 'Catalog' }).click()
    await page.getByRole('link', { name: 'New title' }).click()
    await page.getByRole('button', { name: 'Create title' }).click()
    await page.getByRole('alert').filter({ hasText: /title/i }).waitFor()
    await page.getByLabel('Type').selectOption('series')
    await page.getByLabel('Title', { exact: true }).fill('Quiet Harbour')
    await page.getByRole('button', { name: 'Create title' }).click()
    await page.getByRole('heading', { name: 'Edit “Quiet Harbour”' }).waitFor()
    const id = new URL(page.url()).pathname.split('/').pop() ?? ''
    expect((await adminTitle(id)).type).toBe('series')
    await page.getByRole('button', { name: 'Add season 1' }).click()
    await page.getByRole('button', { name: 'Add episode 1' }).click()
    await page.getByLabel('Name of episode 1 of season 1').waitFor()
    expect((await adminTitle(id)).seasons[0]?.episodes.map((e) => e.number)).toEqual([1])
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-edit.png'), fullPage: true })
    expect(problems).toEqual([])
  })

  it('imports a catalog file from the page and reports the rejected rows', async () => {
    const page = await newPage()
    const problems = watchProblems(page, [
      /401 POST .*\/api\/v1\/sessions\/refresh/,
      /422 POST .*\/api\/v1\/admin\/catalog\/imports/,
    ])
    await signIn(page, base, 'pages-admin@example.com', PASSWORD)
    await page.goto(`${base}/admin`)
    await page
      .getByRole('navigation', { name: 'Administration' })
      .getByRole('link', { name: 'Import' })
      .click()

    const rows = Array.from(
      { length: 240 },
      (_, i) => `feed-${i},Feed film ${i},${1960 + (i % 60)},PG,Drama,`,
    )
    rows[9] = 'feed-bad-year,Feed film bad,soon,PG,Drama,'
    rows[19] = 'feed-no-title,,2001,PG,Drama,'
    const csv = path.join(tmp.dir, 'feed.csv')
    fs.writeFileSync(csv, ['externalId,title,year,rating,genres,directors', ...rows, ''].join('\n'))
    await page.getByLabel('Catalog file').setInputFiles(csv)
    // Every state the progress bar shows on the way, recorded in the page (it may pass quickly).
    await page.evaluate(watchImportProgress)
    await page.getByRole('button', { name: 'Import' }).click()
    const report = page.getByRole('region', { name: 'Import report' })
    await report.waitFor({ timeout: 60_000 })
    await report.getByText(/238\s*created/).waitFor()
    const seen = await page.evaluate(importProgressSeen)
    // Lines that arrive together render once, so which states show varies; a part-way one does.
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.every((state) => state.endsWith('/240'))).toBe(true)
    expect(seen.some((state) => Number(state.split('/')[0]) < 240)).toBe(true)
    const lines = await report.locator('table tbody tr td:first-child').allTextContents()
    expect(lines).toEqual(['11', '21'])
    await report.getByRole('cell', { name: 'invalid_title' }).waitFor()
    await report.getByRole('link', { name: /Download the rejected rows/ }).waitFor()
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-import.png'), fullPage: true })

    // Again: nothing changes.
    await page.getByRole('button', { name: 'Import' }).click()
    await report.getByText(/238\s*unchanged/).waitFor()

    // A file that cannot be read is refused whole, with the reason.
    const broken = path.join(tmp.dir, 'broken.json')
    fs.writeFileSync(broken, '{"titles": [')
    await page.getByLabel('Catalog file').setInputFiles(broken)
    await page.getByRole('button', { name: 'Import' }).click()
    await page
      .getByRole('alert')
      .filter({ hasText: /cannot be read/ })
      .waitFor()
    expect(problems).toEqual([])
  }, 90_000)

  it('keeps administrator pages for administrators', async () => {
    const { page, problems } = await memberPage()
    await page.goto(`${base}/admin/import`)
    await page.getByRole('alert').filter({ hasText: 'This page is for administrators' }).waitFor()
    expect(problems).toEqual([])
  })
})
