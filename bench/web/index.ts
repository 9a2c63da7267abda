// The web app's first page, against a blank page served the same way in the same run:
//  - built JavaScript (gzip) the home page loads: the entry chunk and what it preloads, as fetched by
//    Chromium (the player, the uploader and the admin pages load on demand) — target ≤ 250 KB;
//  - time from navigation to the first home row painted (Element Timing), signed in with a profile
//    chosen, in a fresh browser context each run (cold HTTP cache), vs the same for a static page
//    with one row on the same server — target ≤ 1.5 s.
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import type { Browser, Page } from 'playwright-core'
import { launchChromium } from '../../test/browser.js'
import { median, ratio, startScript, verdict } from '../lib.js'
import { BLANK_PAGE } from './constants.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 7)
const TARGET_KB = 250
const TARGET_MS = 1500
const EMAIL = `bench.web.${Date.now()}@example.com`
const PASSWORD = 'correct horse battery'
const WEB_ROOT = path.resolve('dist/web')

const kb = (bytes: number) => bytes / 1024
const gzipSize = (file: string) => gzipSync(fs.readFileSync(file)).length

/** Page-side types (the bench compiles without the DOM library). */
type ElementEntry = { identifier: string; renderTime: number; loadTime: number }
type PageGlobals = {
  PerformanceObserver: new (
    callback: (list: { getEntries(): ElementEntry[] }) => void,
  ) => { observe(options: { type: string; buffered: boolean }): void }
  localStorage: { setItem(key: string, value: string): void }
}

/** Resolves with the render time (ms after navigation start) of the first element marked `home-row`. */
const firstRowPainted = () =>
  new Promise<number>((resolve) => {
    const { PerformanceObserver } = globalThis as unknown as PageGlobals
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries())
        if (entry.identifier === 'home-row') resolve(entry.renderTime || entry.loadTime)
    }).observe({ type: 'element', buffered: true })
  })

/** One navigation in a fresh context; returns paint time and the scripts the page fetched. */
async function measure(browser: Browser, base: string, pagePath: string, signedIn?: { profileId: string }) {
  const context = await browser.newContext()
  try {
    if (signedIn) {
      // A fresh session per run: a refresh cookie used by two contexts would count as a replay.
      const res = await context.request.post(`${base}/api/v1/sessions`, {
        headers: { 'x-reel-client': 'web' },
        data: { email: EMAIL, password: PASSWORD },
      })
      if (!res.ok()) throw new Error(`sign-in failed: ${res.status()} ${await res.text()}`)
      await context.addInitScript(
        (id) => (globalThis as unknown as PageGlobals).localStorage.setItem('reel.profile', id),
        signedIn.profileId,
      )
    }
    const page: Page = await context.newPage()
    const scripts: string[] = []
    page.on('response', (r) => {
      if (r.request().resourceType() === 'script') scripts.push(new URL(r.url()).pathname)
    })
    await page.goto(`${base}${pagePath}`, { waitUntil: 'commit' })
    const paintedMs = await Promise.race([
      page.evaluate(firstRowPainted),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no row painted at ${pagePath}`)), 20_000),
      ),
    ])
    return { paintedMs, scripts }
  } finally {
    await context.close()
  }
}

// The bench measures the app as built from the current sources.
const build = spawnSync(process.execPath, ['bin/web-build-if-stale.js'], { stdio: 'inherit' })
if (build.status !== 0) throw new Error('the web build failed')

const server = await startScript('bench/web/server.ts', [], {
  BENCH_WEB_EMAIL: EMAIL,
  BENCH_WEB_PASSWORD: PASSWORD,
})
const chromium = await launchChromium()
try {
  const { url } = server
  const login = await fetch(`${url}/api/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
  })
  const { accessToken } = (await login.json()) as { accessToken: string }
  const profiles = await fetch(`${url}/api/v1/profiles`, {
    headers: { authorization: `Bearer ${accessToken}` },
  })
  const profileId = ((await profiles.json()) as { profiles: { id: string }[] }).profiles[0]?.id
  if (!profileId) throw new Error('the bench member has no profile')

  // One warm-up of each (Chromium's own start-up, the server's first queries), then alternate.
  await measure(chromium.browser, url, `/${BLANK_PAGE}`)
  const warm = await measure(chromium.browser, url, '/', { profileId })
  const home: number[] = []
  const blank: number[] = []
  for (let i = 0; i < RUNS; i++) {
    blank.push((await measure(chromium.browser, url, `/${BLANK_PAGE}`)).paintedMs)
    home.push((await measure(chromium.browser, url, '/', { profileId })).paintedMs)
  }

  const firstPage = [...new Set(warm.scripts)]
  const firstPageBytes = firstPage.reduce((sum, p) => sum + gzipSize(path.join(WEB_ROOT, p)), 0)
  const assets = fs.readdirSync(path.join(WEB_ROOT, 'assets')).filter((f) => f.endsWith('.js'))
  const allBytes = assets.reduce((sum, f) => sum + gzipSize(path.join(WEB_ROOT, 'assets', f)), 0)
  const lazy = assets.filter((f) => !firstPage.includes(`/assets/${f}`))
  const homeMs = median(home)
  const blankMs = median(blank)

  console.log(`web: ${RUNS} navigations of each page, fresh browser context (cold cache) each`)
  console.log(
    `  first page JavaScript      ${kb(firstPageBytes).toFixed(1).padStart(7)} KB gzip  (${firstPage.join(', ')})`,
  )
  console.log(
    `  whole app JavaScript       ${kb(allBytes).toFixed(1).padStart(7)} KB gzip  (on demand: ${lazy.join(', ')})`,
  )
  console.log('  blank page JavaScript          0.0 KB gzip')
  console.log(
    `  first page = ${ratio(firstPageBytes, allBytes).toFixed(2)} of the whole app (target ≤ ${TARGET_KB} KB: ${verdict(kb(firstPageBytes), TARGET_KB, 'lower')})`,
  )
  console.log(
    `  blank page, row painted    ${blankMs.toFixed(0).padStart(7)} ms median  (${blank.map((m) => m.toFixed(0)).join(' ')})`,
  )
  console.log(
    `  home page, first row       ${homeMs.toFixed(0).padStart(7)} ms median  (${home.map((m) => m.toFixed(0)).join(' ')})`,
  )
  console.log(
    `  home = ${ratio(homeMs, blankMs).toFixed(1)}× the blank page, +${(homeMs - blankMs).toFixed(0)} ms (target ≤ ${TARGET_MS} ms: ${verdict(homeMs, TARGET_MS, 'lower')})`,
  )
} finally {
  await chromium.close()
  server.child.kill('SIGTERM')
  await once(server.child, 'exit')
}
