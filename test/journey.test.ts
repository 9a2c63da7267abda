import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import type { BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveTool } from '../src/platform/ffmpeg.js'
import { hasChromium, launchChromium, signIn, watchProblems } from './browser.js'
import { tempDir } from './engines.js'
import { startReel, type TestReel } from './harness.js'

const run = promisify(execFile)
const ARTIFACTS = path.resolve('test-artifacts')
const PASSWORD = 'correct horse battery'
const HEARTBEAT_MS = 1000

/** Page-side helpers, run by Playwright in the page (functions, since the app's CSP forbids string eval). */
type Video = { currentTime: number; duration: number }
type PageGlobals = { document: { querySelector(selector: 'video'): Video | null } }
const videoPast = (seconds: number) =>
  ((globalThis as unknown as PageGlobals).document.querySelector('video')?.currentTime ?? 0) > seconds
const seekToMiddle = () => {
  const v = (globalThis as unknown as PageGlobals).document.querySelector('video')
  if (v) v.currentTime = v.duration / 2
  return v?.currentTime ?? 0
}

async function pickProfile(page: Page, base: string, name: string) {
  // On a failure: a screenshot, and where the page ended up (a sign-out lands on /login).
  const failed = async (e: unknown) => {
    await page.screenshot({ path: path.join(ARTIFACTS, `journey-profiles-${name}.png`) })
    throw new Error(`picking profile ${name} failed at ${page.url()}: ${String(e)}`)
  }
  await page.goto(`${base}/profiles`)
  await page.getByRole('heading', { name: 'Who’s watching?' }).waitFor().catch(failed)
  await page
    .getByRole('button', { name: new RegExp(name) })
    .click()
    .catch(failed)
  await page.waitForURL(`${base}/`)
}

describe.skipIf(!hasChromium())('the whole journey in a real browser', () => {
  let t: TestReel
  let base: string
  let chromium: Awaited<ReturnType<typeof launchChromium>>
  const tmp = tempDir()
  let clip: string

  beforeAll(async () => {
    t = await startReel('sqlite', {
      REEL_MEDIA_CHUNK_SECONDS: '6',
      REEL_MEDIA_LADDER: '720p-3000k,360p-365k,234p-145k',
      REEL_MEDIA_PRESET: 'superfast',
      REEL_PLAYBACK_HEARTBEAT_MS: String(HEARTBEAT_MS),
      REEL_PLAYBACK_FLUSH_MS: '500',
    })
    base = `http://127.0.0.1:${(t.reel.http.server.address() as { port: number }).port}`
    await t.reel.use('accounts').createAdmin('journey-admin@example.com', PASSWORD)
    const ffmpeg = resolveTool('ffmpeg', undefined)
    if (!ffmpeg) throw new Error('ffmpeg is needed')
    clip = path.join(tmp.dir, 'moonlight-harbor.mp4')
    await run(ffmpeg.path, [
      ...[
        '-hide_banner',
        '-loglevel',
        'error',
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=1280x720:rate=24:duration=16',
      ],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:duration=16', '-c:v', 'libx264', '-preset', 'ultrafast'],
      ...['-c:a', 'aac', '-shortest', clip],
    ])
    chromium = await launchChromium()
    fs.mkdirSync(ARTIFACTS, { recursive: true })
  }, 120_000)
  afterAll(async () => {
    await chromium?.close()
    await t?.stop()
    tmp.cleanup()
  })

  it('signs up, uploads, finds, plays, resumes on another device; kids stay within their limit', async () => {
    const contexts: BrowserContext[] = []
    const newPage = async () => {
      const context = await chromium.browser.newContext()
      contexts.push(context)
      const page = await context.newPage()
      page.setDefaultTimeout(20_000)
      return page
    }
    const expected = [/401 .*\/api\/v1\/sessions\/refresh/, /403 .*\/api\/v1\/playback$/]
    try {
      // 1. A member signs up, adds a second profile and picks it.
      const member = await newPage()
      const memberProblems = watchProblems(member, expected)
      const email = `journey.${Date.now()}@example.com`
      await member.goto(`${base}/signup`)
      await member.getByLabel('Email').fill(email)
      await member.getByLabel('Password').fill(PASSWORD)
      await member.getByLabel('Premium').check()
      await member.getByRole('button', { name: 'Start watching' }).click()
      await member.getByRole('heading', { name: 'Who’s watching?' }).waitFor()
      await member.getByRole('link', { name: 'Manage profiles' }).click()
      await member.getByPlaceholder('New profile name').fill('Sam')
      await member.getByRole('button', { name: 'Add profile' }).click()
      await member.getByLabel('Name of Sam').waitFor()
      await member.getByPlaceholder('New profile name').fill('Little one')
      await member.getByLabel('Kids').last().check()
      await member.getByRole('button', { name: 'Add profile' }).click()
      await member.getByLabel('Name of Little one').waitFor()
      await pickProfile(member, base, 'Sam')

      // 2. An administrator uploads a clip through the page and waits for it to become available.
      const admin = await newPage()
      const adminProblems = watchProblems(admin, expected)
      await signIn(admin, base, 'journey-admin@example.com', PASSWORD)
      await admin.goto(`${base}/admin`)
      await admin.getByLabel('Title').fill('Moonlight Harbor')
      await admin.getByLabel('Maturity rating').selectOption('PG-13')
      await admin.getByLabel('Video file').setInputFiles(clip)
      await admin.getByRole('button', { name: 'Upload' }).click()
      const card = admin.locator('li.pipeline').filter({ hasText: 'Moonlight Harbor' })
      await card.and(admin.locator('[data-status="available"]')).waitFor({ timeout: 240_000 })
      const titleId = await card.getAttribute('data-title-id')
      expect(titleId).toBeTruthy()

      // 3. Found as you type, with a typo (search allows one typo from five letters: "harbr").
      await member.getByRole('link', { name: 'Search' }).click()
      await member.getByLabel('Search').pressSequentially('harbr', { delay: 80 })
      await member.getByRole('link', { name: /Moonlight Harbor/ }).click()
      await member.getByRole('heading', { name: 'Moonlight Harbor' }).waitFor()
      await member.screenshot({ path: path.join(ARTIFACTS, 'journey-title.png') })

      // 4. It plays: time advances and more than one quality level is offered.
      await member.getByRole('link', { name: /Play/ }).click()
      await member.waitForFunction(videoPast, 1)
      expect(await member.getByLabel('Quality').locator('option').count()).toBeGreaterThan(2)
      await member.screenshot({ path: path.join(ARTIFACTS, 'journey-player.png') })

      // 5. Seek to the middle, leave, and continue on another device.
      const middle = await member.evaluate(seekToMiddle)
      await member.waitForFunction(videoPast, middle + 1)
      await member.waitForTimeout(HEARTBEAT_MS * 2)
      await member.getByRole('link', { name: 'Home' }).click()
      const other = await newPage()
      const otherProblems = watchProblems(other, expected)
      await signIn(other, base, email, PASSWORD)
      await pickProfile(other, base, 'Sam')
      await other.goto(`${base}/title/${titleId}`)
      await other.getByRole('link', { name: /Resume/ }).click()
      const resume = other.getByRole('button', { name: /Resume from/ })
      const label = (await resume.textContent()) ?? ''
      const [, mm, ss] = /(\d+):(\d\d)/.exec(label) ?? []
      const resumeAt = Number(mm) * 60 + Number(ss)
      expect(Math.abs(resumeAt - middle)).toBeLessThanOrEqual(HEARTBEAT_MS / 1000 + 2)
      await resume.click()
      await other.waitForFunction(videoPast, resumeAt + 0.5)
      await other.goto(`${base}/`)

      // 6. A kids profile neither finds nor plays a PG-13 title.
      await pickProfile(other, base, 'Little one')
      await other.goto(`${base}/search?q=moonlight`)
      await other.getByText(/Nothing found/).waitFor()
      await other.goto(`${base}/watch/${titleId}`)
      await other.getByRole('heading', { name: 'Can’t play this now' }).waitFor()

      // 7. Nothing else went wrong along the way.
      expect([...memberProblems, ...adminProblems, ...otherProblems]).toEqual([])
    } finally {
      for (const c of contexts) await c.close()
    }
  }, 400_000)
})
