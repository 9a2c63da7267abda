import fs from 'node:fs'
import { type Browser, chromium } from 'playwright-core'
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
