import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../platform/config.js'
import { BACKGROUND_NICE } from '../../platform/priority.js'
import { MediaTools } from './tools.js'

/** Niceness of each thread of a process (Linux: field 19 of /proc/<pid>/task/<tid>/stat). */
function threadNiceness(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces), from field 3 on.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[16])
  })
}

describe.runIf(process.platform === 'linux')('ffmpeg runs as background work', () => {
  it('at a lower CPU priority than the API, every thread of it', async () => {
    const tools = MediaTools.resolve(loadConfig({}))
    const abort = new AbortController()
    // An encode long enough to look at while it runs (with its encoder threads), then cancelled.
    const run = tools
      .ffmpeg(
        [
          '-f',
          'lavfi',
          '-i',
          'testsrc2=size=640x360:rate=25',
          '-t',
          '60',
          '-c:v',
          'libx264',
          '-f',
          'null',
          '-',
        ],
        { signal: abort.signal },
      )
      .catch((e: unknown) => e)
    let seen: number[] = []
    for (let i = 0; i < 100 && seen.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50))
      let pid = 0
      try {
        pid = Number(execFileSync('pgrep', ['-P', String(process.pid), '-x', 'ffmpeg'], { encoding: 'utf8' }))
      } catch {
        // Not started yet (pgrep exits 1 when nothing matches).
      }
      if (pid > 0) seen = threadNiceness(pid)
    }
    abort.abort()
    expect(await run).toBeInstanceOf(Error)
    expect(seen.length).toBeGreaterThan(1)
    expect(seen.every((n) => n >= BACKGROUND_NICE)).toBe(true)
    // This process (the API) keeps its own, higher priority.
    expect(threadNiceness(process.pid)[0]).toBeLessThan(BACKGROUND_NICE)
  })
})
