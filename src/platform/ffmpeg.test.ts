import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../../test/engines.js'
import { resolveTool } from './ffmpeg.js'

describe('ffmpeg resolution', () => {
  const tmp = tempDir()
  afterAll(() => tmp.cleanup())

  it('prefers the configured binary', () => {
    expect(resolveTool('ffmpeg', '/opt/ffmpeg/bin/ffmpeg')).toEqual({
      name: 'ffmpeg',
      path: '/opt/ffmpeg/bin/ffmpeg',
      source: 'config',
    })
  })

  it('then the one on PATH', () => {
    const bin = path.join(tmp.dir, 'ffprobe')
    fs.writeFileSync(bin, '#!/bin/sh\n', { mode: 0o755 })
    expect(resolveTool('ffprobe', undefined, `/nonexistent:${tmp.dir}`)).toEqual({
      name: 'ffprobe',
      path: bin,
      source: 'path',
    })
  })

  it('then the npm-shipped one', () => {
    const tool = resolveTool('ffmpeg', undefined, '/nonexistent')
    expect(tool?.source).toBe('npm')
    expect(tool && fs.existsSync(tool.path)).toBe(true)
  })
})
