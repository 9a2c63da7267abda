import fs from 'node:fs'
import path from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasChromium, launchChromium } from './browser.js'
import { startReel, type TestReel } from './harness.js'

const ARTIFACTS = path.resolve('test-artifacts')

/** Collects what a person would notice is broken: console errors and failed requests. */
function watchForErrors(page: Page, allowed: RegExp[] = []) {
  const problems: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error' && !allowed.some((a) => a.test(m.text())))
      problems.push(`console: ${m.text()} (${m.location().url})`)
  })
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('response', (r) => {
    if (r.status() >= 400 && !allowed.some((a) => a.test(`${r.status()} ${r.url()}`)))
      problems.push(`HTTP ${r.status()} ${r.url()}`)
  })
  return problems
}

describe.skipIf(!hasChromium())('the web app in a real browser: accounts and profiles', () => {
  let t: TestReel
  let base: string
  let chromium: Awaited<ReturnType<typeof launchChromium>>
  beforeAll(async () => {
    t = await startReel('sqlite')
    base = `http://127.0.0.1:${(t.reel.http.server.address() as { port: number }).port}`
    chromium = await launchChromium()
    fs.mkdirSync(ARTIFACTS, { recursive: true })
  })
  afterAll(async () => {
    await chromium?.close()
    await t?.stop()
  })

  it('signs up, adds and picks a profile, changes plan, signs out and back in', async () => {
    const context = await chromium.browser.newContext()
    const page = await context.newPage()
    page.setDefaultTimeout(8000)
    // The app probes its refresh cookie on load: 401 before signing in is expected.
    const problems = watchForErrors(page, [/401 .*\/api\/v1\/sessions\/refresh/, /status of 401/])
    const email = `web.${Date.now()}@example.com`

    await page.goto(`${base}/`)
    await page.waitForURL(/\/login/)
    await page.getByRole('link', { name: 'Create an account' }).click()
    await page.getByLabel('Email').fill(email)
    await page.getByLabel('Password').fill('short')
    await page.getByLabel('Standard').check()
    await page.getByRole('button', { name: 'Start watching' }).click()
    // The browser's own minlength check or the server's rule: either way, no account yet.
    await page.getByLabel('Password').fill('correct horse battery')
    await page.getByRole('button', { name: 'Start watching' }).click()
    await page.getByRole('heading', { name: 'Who’s watching?' }).waitFor()

    await page.getByRole('link', { name: 'Manage profiles' }).click()
    await page.getByPlaceholder('New profile name').fill('Zoë 🎬')
    await page.getByRole('button', { name: 'Add profile' }).click()
    await page.getByLabel('Name of Zoë 🎬').waitFor()
    await page.getByPlaceholder('New profile name').fill('Zoë 🎬')
    await page.getByRole('button', { name: 'Add profile' }).click()
    await page.getByRole('alert').filter({ hasText: 'already has a profile' }).waitFor()
    await page.getByRole('link', { name: 'Done' }).click()
    await page.getByRole('button', { name: /Zoë 🎬/ }).click()
    await page.waitForURL(`${base}/`)
    await page.getByRole('link', { name: 'Switch profile' }).filter({ hasText: 'Zoë 🎬' }).waitFor()
    await page.screenshot({ path: path.join(ARTIFACTS, 'home.png') })

    await page.getByRole('link', { name: 'Account' }).click()
    await page.getByText('Standard', { exact: true }).first().waitFor()
    await page.getByRole('button', { name: /Premium/ }).click()
    await page.getByText('You are on Premium.').waitFor()
    expect(await page.locator('table tbody tr').count()).toBe(2)
    await page.screenshot({ path: path.join(ARTIFACTS, 'account.png') })

    // A reload keeps the session (refresh cookie) and the chosen profile.
    await page.reload()
    await page
      .getByText('You are on Premium.')
      .or(page.getByRole('heading', { name: 'Account' }))
      .first()
      .waitFor()
    expect(await page.getByRole('heading', { name: 'Account' }).isVisible()).toBe(true)

    await page.getByRole('button', { name: 'Sign out', exact: true }).click()
    await page.waitForURL(/\/login/)
    await page.getByLabel('Email').fill(email)
    await page.getByLabel('Password').fill('wrong password here')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('alert').filter({ hasText: 'do not match' }).waitFor()
    await page.getByLabel('Password').fill('correct horse battery')
    await page.getByRole('button', { name: 'Sign in' }).click()
    // Back where the person was when the session ended.
    await page.waitForURL(/\/account$/)
    await page.getByRole('heading', { name: 'Account' }).waitFor()

    const unexpected = problems.filter((p) => !/401|409/.test(p))
    expect(unexpected).toEqual([])
    await context.close()
  })
})
