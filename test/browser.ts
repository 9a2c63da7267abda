import fs from 'node:fs'
import { type Browser, chromium, type Page } from 'playwright-core'
import { hasEngine } from './engines.js'

/** Debian's Chromium, driven by playwright-core (never a downloaded browser). */
export const CHROMIUM = process.env.REEL_TEST_CHROMIUM || '/usr/bin/chromium'

export const hasChromium = () =>
  hasEngine('Chromium', 'REEL_TEST_CHROMIUM (or install /usr/bin/chromium)', fs.existsSync(CHROMIUM))

/** Headless Chromium with the flags this closed network needs (playwright gives it a fresh, empty profile). */
export async function launchChromium(): Promise<{ browser: Browser; close: () => Promise<void> }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  return {
    browser,
    close: () => browser.close(),
  }
}

/**
 * Collects what a person would notice on `page`: page errors, console errors and failed requests
 * (`status METHOD url`), except the ones `expected` matches (those a step provokes on purpose).
 */
export function watchProblems(page: Page, expected: RegExp[]): string[] {
  const problems: string[] = []
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('response', (r) => {
    const line = `${r.status()} ${r.request().method()} ${r.url()}`
    if (r.status() >= 400 && !expected.some((e) => e.test(line))) problems.push(line)
  })
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
      problems.push(`console: ${m.text()}`)
  })
  return problems
}

/** Signs in through the web app's login page and waits to leave it. */
export async function signIn(page: Page, base: string, email: string, password: string): Promise<void> {
  await page.goto(`${base}/login`)
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL((url) => !url.pathname.startsWith('/login'))
}
