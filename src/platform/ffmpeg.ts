import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export type ToolSource = 'config' | 'path' | 'npm'

export interface ResolvedTool {
  name: 'ffmpeg' | 'ffprobe'
  path: string
  source: ToolSource
}

const NPM_PACKAGES = { ffmpeg: '@ffmpeg-installer/ffmpeg', ffprobe: '@ffprobe-installer/ffprobe' } as const

function onPath(binary: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue
    const candidate = path.join(dir, binary)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      if (fs.statSync(candidate).isFile()) return candidate
    } catch {}
  }
  return undefined
}

function fromNpm(name: 'ffmpeg' | 'ffprobe'): string | undefined {
  try {
    const pkg = createRequire(import.meta.url)(NPM_PACKAGES[name]) as { path?: string }
    return pkg.path && fs.existsSync(pkg.path) ? pkg.path : undefined
  } catch {
    return undefined
  }
}

/**
 * Where ffmpeg/ffprobe come from: the configured path (REEL_FFMPEG/REEL_FFPROBE), else the one on
 * PATH, else the binary shipped in the optional npm package. Undefined when none exists.
 */
export function resolveTool(
  name: 'ffmpeg' | 'ffprobe',
  configured: string | undefined,
  envPath?: string,
): ResolvedTool | undefined {
  if (configured) return { name, path: configured, source: 'config' }
  const found = onPath(name, envPath)
  if (found) return { name, path: found, source: 'path' }
  const shipped = fromNpm(name)
  return shipped ? { name, path: shipped, source: 'npm' } : undefined
}

export interface ToolReport {
  tool: ResolvedTool
  version: string
  /** Encoders the media pipeline needs that this ffmpeg lacks. */
  missingEncoders: string[]
}

export const REQUIRED_ENCODERS = ['libx264', 'aac'] as const

/** Runs the tool to read its version and (for ffmpeg) check the encoders reel needs. */
export async function inspectTool(tool: ResolvedTool): Promise<ToolReport> {
  const { stdout } = await run(tool.path, ['-hide_banner', '-version'], { timeout: 15_000 })
  const version = stdout.split('\n')[0]?.trim() ?? 'unknown'
  if (tool.name === 'ffprobe') return { tool, version, missingEncoders: [] }
  const encoders = await run(tool.path, ['-hide_banner', '-encoders'], {
    timeout: 15_000,
    maxBuffer: 8 << 20,
  })
  const have = new Set(
    encoders.stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[1])
      .filter((s): s is string => !!s),
  )
  return { tool, version, missingEncoders: REQUIRED_ENCODERS.filter((e) => !have.has(e)) }
}
