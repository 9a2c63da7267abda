import { spawn } from 'node:child_process'
import { resolveTool } from '../../platform/ffmpeg.js'
import { lowerProcessPriority } from '../../platform/priority.js'

/** ffmpeg/ffprobe failed: the message carries the tail of what the tool said. */
export class ToolError extends Error {
  constructor(
    readonly tool: string,
    message: string,
    readonly stderr: string,
  ) {
    super(message)
    this.name = 'ToolError'
  }
}

const STDERR_TAIL = 4000

export interface RunOptions {
  signal?: AbortSignal
  /** Called with the seconds of output written so far (from ffmpeg's `-progress`). */
  onProgress?: (seconds: number) => void
  /** Killed after this long. */
  timeoutMs?: number
}

/** The ffmpeg and ffprobe this process runs (REEL_FFMPEG/REEL_FFPROBE, else PATH, else npm). */
export class MediaTools {
  constructor(
    readonly ffmpegPath: string,
    readonly ffprobePath: string,
  ) {}

  static resolve(config: { ffmpeg?: string; ffprobe?: string }): MediaTools {
    const ffmpeg = resolveTool('ffmpeg', config.ffmpeg)
    const ffprobe = resolveTool('ffprobe', config.ffprobe)
    // Absent tools surface when a task runs (as a retried, then failed, task), not at start-up:
    // a process that only serves the API has no need for them.
    return new MediaTools(ffmpeg?.path ?? 'ffmpeg', ffprobe?.path ?? 'ffprobe')
  }

  /** Runs ffmpeg with progress reporting; resolves with its stdout when it exits 0. */
  ffmpeg(args: string[], options: RunOptions = {}): Promise<string> {
    const progress = options.onProgress ? ['-progress', 'pipe:2', '-stats_period', '1'] : []
    return this.run(
      'ffmpeg',
      this.ffmpegPath,
      ['-nostdin', '-hide_banner', '-y', ...progress, ...args],
      options,
    )
  }

  ffprobe(args: string[], options: RunOptions = {}): Promise<string> {
    return this.run('ffprobe', this.ffprobePath, ['-hide_banner', ...args], options)
  }

  private run(tool: string, file: string, args: string[], options: RunOptions): Promise<string> {
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(new ToolError(tool, `${tool} was cancelled`, ''))
        return
      }
      const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      // Background work: on a machine shared with the API, requests get the CPU first.
      if (child.pid !== undefined) lowerProcessPriority(child.pid)
      const stdout: Buffer[] = []
      let stderr = ''
      let pending = ''
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
      child.stderr.on('data', (chunk: Buffer) => {
        const text = String(chunk)
        if (options.onProgress) {
          pending += text
          const lines = pending.split('\n')
          pending = lines.pop() ?? ''
          for (const line of lines) {
            const m = /^out_time_us=(\d+)/.exec(line)
            if (m) options.onProgress(Number(m[1]) / 1e6)
            else if (!/^[a-z_]+=/.test(line)) stderr = `${stderr}${line}\n`.slice(-STDERR_TAIL)
          }
        } else stderr = (stderr + text).slice(-STDERR_TAIL)
      })
      const kill = () => child.kill('SIGKILL')
      options.signal?.addEventListener('abort', kill, { once: true })
      const timer = options.timeoutMs ? setTimeout(kill, options.timeoutMs) : undefined
      child.once('error', (e) => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', kill)
        reject(new ToolError(tool, `${tool} (${file}) could not start: ${e.message}`, ''))
      })
      child.once('close', (code, signal) => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', kill)
        if (code === 0) {
          resolve(Buffer.concat(stdout).toString('utf8'))
          return
        }
        const why = options.signal?.aborted
          ? 'was cancelled'
          : signal
            ? `was killed (${signal})`
            : `exited ${code}`
        const tail = stderr.trim().split('\n').slice(-3).join(' | ')
        reject(new ToolError(tool, `${tool} ${why}${tail ? `: ${tail}` : ''}`, stderr))
      })
    })
  }
}
