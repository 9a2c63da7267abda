import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../../../test/engines.js'
import { loadConfig } from '../../platform/config.js'
import { makeDemoClip } from './democlip.js'
import { MediaTools } from './tools.js'

describe('demo clips', () => {
  const tmp = tempDir()
  afterAll(() => tmp.cleanup())
  const tools = MediaTools.resolve(loadConfig({}))

  it('writes a clip of the asked length and size with sound, whatever characters the title has', async () => {
    // A data dir whose path needs escaping inside a filtergraph.
    const file = path.join(tmp.dir, "it's: a [dir], really", 'clip.mp4')
    const result = await makeDemoClip(tools, {
      file,
      text: `Ça va? 100% {fun}: it's "ok" \\ [x] %{pts} 東京`,
      subtitle: 'S1 E2 · Percent %% and colon :',
      seconds: 2,
      height: 144,
      pattern: 'gradients',
      colors: ['#112233', '#ddeeff'],
      tone: 440,
    })
    expect(result.withText).toBe(true)
    const probe = JSON.parse(
      await tools.ffprobe(['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file]),
    ) as {
      streams: { codec_type: string; width?: number; height?: number }[]
      format: { duration: string }
    }
    const video = probe.streams.find((s) => s.codec_type === 'video')
    expect(video).toMatchObject({ width: 256, height: 144 })
    expect(probe.streams.some((s) => s.codec_type === 'audio')).toBe(true)
    expect(Number(probe.format.duration)).toBeCloseTo(2, 0)
    // The text files it drew from are gone.
    expect(fs.readdirSync(path.dirname(file))).toEqual(['clip.mp4'])
  })

  it('falls back to the plain test pattern when text cannot be drawn', async () => {
    const file = path.join(tmp.dir, 'plain.mp4')
    // A text file that is not there makes drawtext fail the way an ffmpeg without drawtext or fonts does.
    const broken = new MediaTools(tools.ffmpegPath, tools.ffprobePath)
    const calls: string[][] = []
    broken.ffmpeg = (args, options) => {
      calls.push(args)
      const vf = args.indexOf('-vf')
      const patched = args.map((a, i) =>
        vf >= 0 && i === vf + 1 ? `${a},drawtext=textfile=/nonexistent.txt` : a,
      )
      return tools.ffmpeg(patched, options)
    }
    const result = await makeDemoClip(broken, {
      file,
      text: 'No Font',
      seconds: 2,
      height: 144,
      pattern: 'bars',
      colors: ['#000000', '#ffffff'],
      tone: 220,
    })
    expect(result.withText).toBe(false)
    expect(calls).toHaveLength(2)
    expect(calls[1]).not.toContain('-vf')
    expect(fs.statSync(file).size).toBeGreaterThan(0)
  })
})
