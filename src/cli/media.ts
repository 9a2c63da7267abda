import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import * as tus from 'tus-js-client'
import { createReel } from '../platform/app.js'
import { type Config, loadConfig } from '../platform/config.js'
import { createLogger } from '../platform/log.js'
import { CliError, callApi, credentialsFile, savedToken, serverUrl } from './client.js'

interface TitleMedia {
  titleId: string
  status: string
  stage: string
  percent: number
  error: { code: string; message: string } | null
}

/** Uploads this machine started and may resume, by fingerprint (file, size, mtime, server). */
function resumeFile(): string {
  return path.join(path.dirname(credentialsFile()), 'uploads.json')
}

type ResumeState = Record<string, { url: string; titleId: string; startedAt: string }>

function readResume(): ResumeState {
  try {
    return JSON.parse(fs.readFileSync(resumeFile(), 'utf8')) as ResumeState
  } catch {
    return {}
  }
}

function writeResume(state: ResumeState): void {
  const file = resumeFile()
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  fs.writeFileSync(file, JSON.stringify(state, null, 2), { mode: 0o600 })
}

/** What identifies one upload of one file to one server, so an interrupted run resumes it. */
export function uploadFingerprint(file: string, server: string): string {
  const stat = fs.statSync(file)
  return `${path.resolve(file)}|${stat.size}|${Math.round(stat.mtimeMs)}|${server}`
}

/** A one-line progress bar on stderr (a line per quarter when stderr is not a terminal). */
export class ProgressBar {
  private lastQuarter = -1
  private lastText = ''

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update(fraction: number, detail = ''): void {
    const f = Math.max(0, Math.min(1, fraction))
    const width = 30
    const filled = Math.round(f * width)
    const text = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(f * 100).toFixed(1).padStart(5)}% ${detail}`
    if (this.stream.isTTY) {
      if (text !== this.lastText) this.stream.write(`\r${text.padEnd(this.lastText.length)}`)
    } else {
      const quarter = Math.floor(f * 4)
      if (quarter !== this.lastQuarter) this.stream.write(`${text}\n`)
      this.lastQuarter = quarter
    }
    this.lastText = text
  }

  done(): void {
    if (this.stream.isTTY && this.lastText) this.stream.write('\n')
  }
}

const megabytes = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MB`

function parseYear(value: string): string {
  if (!/^\d{4}$/.test(value.trim())) throw new InvalidArgumentError('expected a four-digit year')
  return value.trim()
}

function parseConcurrency(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 256)
    throw new InvalidArgumentError('expected a whole number from 1 to 256')
  return n
}

async function titleMedia(config: Config, titleId: string): Promise<TitleMedia | undefined> {
  try {
    return await callApi<TitleMedia>(
      config,
      'GET',
      `/api/v1/admin/titles/${encodeURIComponent(titleId)}/media`,
    )
  } catch (e) {
    if (e instanceof CliError && e.message.startsWith('title_not_found')) return undefined
    throw e
  }
}

/** Uploads a file with tus, resuming this machine's earlier upload of the same file; resolves with the title id. */
async function upload(config: Config, file: string, metadata: Record<string, string>): Promise<string> {
  const server = serverUrl(config)
  const token = config.token ?? savedToken()
  if (!token) throw new CliError('not logged in: run `reel login --email …` (or set REEL_TOKEN)')
  const fingerprint = uploadFingerprint(file, server)
  const state = readResume()
  const previous = state[fingerprint]
  if (previous) {
    const media = await titleMedia(config, previous.titleId)
    if (media && media.status !== 'uploading') {
      // The last run sent every byte but did not hear back: the title exists already.
      delete state[fingerprint]
      writeResume(state)
      console.error(`already uploaded as title ${previous.titleId}`)
      return previous.titleId
    }
    if (media) console.error(`resuming the upload of title ${previous.titleId}`)
  }
  const size = fs.statSync(file).size
  const bar = new ProgressBar('upload ')
  return new Promise<string>((resolve, reject) => {
    const source = fs.createReadStream(file)
    // tus-js-client reads an fs.ReadStream by its path, at any offset; its types only list browser sources.
    const upload = new tus.Upload(source as unknown as Buffer, {
      endpoint: `${server}/api/v1/uploads`,
      uploadUrl: previous ? new URL(previous.url, server).href : undefined,
      uploadSize: size,
      chunkSize: 64 * 1024 ** 2,
      retryDelays: [0, 1000, 3000, 5000, 10_000],
      headers: { authorization: `Bearer ${token}` },
      metadata,
      storeFingerprintForResuming: false,
      onUploadUrlAvailable: () => {
        const url = upload.url ?? ''
        const titleId = url.split('/').pop() ?? ''
        writeResume({ ...readResume(), [fingerprint]: { url, titleId, startedAt: new Date().toISOString() } })
      },
      onProgress: (sent, total) =>
        bar.update(total > 0 ? sent / total : 1, `${megabytes(sent)} / ${megabytes(total)}`),
      onError: (e) => {
        bar.done()
        const body = 'originalResponse' in e ? e.originalResponse?.getBody() : undefined
        let reason = e.message
        try {
          const parsed = body
            ? (JSON.parse(body) as { error?: { code: string; message: string } })
            : undefined
          if (parsed?.error) reason = `${parsed.error.code}: ${parsed.error.message}`
        } catch {}
        reject(new CliError(`upload failed: ${reason}`))
      },
      onSuccess: () => {
        bar.update(1, `${megabytes(size)} / ${megabytes(size)}`)
        bar.done()
        const url = upload.url ?? ''
        const current = readResume()
        delete current[fingerprint]
        writeResume(current)
        resolve(url.split('/').pop() ?? '')
      },
    })
    upload.start()
  })
}

/** Follows the pipeline until the title is available (resolves) or failed (throws with its code). */
async function follow(config: Config, titleId: string): Promise<void> {
  const bar = new ProgressBar('process')
  for (;;) {
    const media = await titleMedia(config, titleId)
    if (!media) throw new CliError(`title ${titleId} not found`)
    bar.update(media.percent / 100, media.stage)
    if (media.status === 'available') {
      bar.done()
      return
    }
    if (media.status === 'failed') {
      bar.done()
      throw new CliError(`${media.error?.code ?? 'failed'}: ${media.error?.message ?? 'the title failed'}`)
    }
    await new Promise((r) => setTimeout(r, 1000))
  }
}

/** `reel ingest` (upload a movie, optionally wait for it) and `reel worker` (transcode workers only). */
export function registerMediaCommands(cli: Command): void {
  cli
    .command('ingest')
    .description('upload a video to a running reel (REEL_URL) as a new title; resumes an interrupted upload')
    .argument('<file>', 'the source video')
    .requiredOption('--title <title>', 'the title’s name')
    .option('--year <year>', 'release year', parseYear)
    .option(
      '--wait',
      'follow the transcode to the end (exit 0 when available, 1 with the error code when failed)',
    )
    .action(async (file: string, opts: { title: string; year?: string; wait?: boolean }) => {
      const config = loadConfig(process.env)
      if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new CliError(`no file at ${file}`)
      const metadata: Record<string, string> = { title: opts.title, filename: path.basename(file) }
      if (opts.year) metadata.year = opts.year
      const titleId = await upload(config, file, metadata)
      console.log(titleId)
      if (opts.wait) {
        await follow(config, titleId)
        console.error(`title ${titleId} is available`)
      }
    })

  cli
    .command('worker')
    .description('run only media transcode workers against the configured engines (the scaled shape)')
    .option(
      '--concurrency <n>',
      'tasks at once (default: REEL_MEDIA_WORKERS, else one per core)',
      parseConcurrency,
    )
    .action(async (opts: { concurrency?: number }) => {
      const config = loadConfig(process.env)
      const log = createLogger(config.logLevel)
      const reel = await createReel({ config, roles: [], log })
      const concurrency =
        opts.concurrency ?? (config.mediaWorkers > 0 ? config.mediaWorkers : os.availableParallelism())
      const workers = await reel.use('media').startWorkers(concurrency)
      const shutdown = (signal: string) => {
        log.info({ signal }, 'worker shutting down')
        setTimeout(() => process.exit(1), config.shutdownTimeoutMs).unref()
        workers
          .stop()
          .then(() => reel.stop())
          .then(
            () => process.exit(0),
            (e: unknown) => {
              log.error({ err: e }, 'worker shutdown failed')
              process.exit(1)
            },
          )
      }
      process.once('SIGTERM', () => shutdown('SIGTERM'))
      process.once('SIGINT', () => shutdown('SIGINT'))
    })
}
