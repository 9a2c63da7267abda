import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { type Config, loadConfig } from '../platform/config.js'
import { DEMO_TITLES } from '../services/catalog/demo.js'
import {
  SEED_CLIP_HEIGHTS,
  SEED_CLIP_SECONDS,
  type SeedOptions,
  type SeedStatus,
} from '../services/catalog/seed.js'
import { CliError, callApi, serverUrl } from './client.js'

const POLL_MS = 1000

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`)
    return n
  }
}

function clipHeight(value: string): SeedOptions['clipHeight'] {
  const height = SEED_CLIP_HEIGHTS.find((h) => String(h) === value.trim())
  if (height === undefined) throw new InvalidArgumentError(`expected one of ${SEED_CLIP_HEIGHTS.join(', ')}`)
  return height
}

/** Progress on stderr: a redrawn bar on a terminal, a line per finished item (and per quarter) otherwise. */
function seedProgress(stream: NodeJS.WriteStream = process.stderr) {
  const tty = stream.isTTY === true
  const reported = new Map<string, string>()
  let quarter = -1
  let bar = ''
  return {
    update(status: SeedStatus) {
      const lines: string[] = []
      for (const item of status.items) {
        const key = `${item.externalId}|${item.label}`
        if (reported.get(key) === item.state) continue
        const final = item.state === 'available' || item.state === 'failed'
        if (final || item.state === 'generating') {
          const error = item.error ? ` (${item.error.code}: ${item.error.message})` : ''
          lines.push(`${item.state.padEnd(10)} ${item.label}${error}`)
        }
        reported.set(key, item.state)
      }
      const done = status.available + status.failed
      const f = Math.max(0, Math.min(1, status.percent / 100))
      const width = 30
      const filled = Math.round(f * width)
      bar = `seed [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(f * 100).toFixed(1).padStart(5)}% ${done}/${status.items.length} clips`
      if (tty) {
        stream.write(`\r\x1b[K${lines.map((l) => `${l}\n`).join('')}${bar}`)
      } else {
        for (const line of lines) stream.write(`${line}\n`)
        const q = Math.floor(f * 4)
        if (q !== quarter) stream.write(`${bar}\n`)
        quarter = q
      }
    },
    done() {
      if (tty && bar) stream.write('\n')
    },
  }
}

/** Starts the seed on the server (or joins the one running) and follows it to the end. */
export async function seed(
  config: Config,
  options: SeedOptions & { wait?: boolean },
  progress = seedProgress(),
): Promise<SeedStatus> {
  const { wait, ...body } = options
  let status: SeedStatus
  try {
    status = await callApi<SeedStatus>(config, 'POST', '/api/v1/admin/seed', body)
  } catch (e) {
    if (!(e instanceof CliError) || !e.message.startsWith('seed_running')) throw e
    console.error('a demo seed is running already: following it')
    status = await callApi<SeedStatus>(config, 'GET', '/api/v1/admin/seed')
  }
  if (wait === false) return status
  for (;;) {
    progress.update(status)
    if (!status.running) break
    await new Promise((r) => setTimeout(r, POLL_MS))
    status = await callApi<SeedStatus>(config, 'GET', '/api/v1/admin/seed')
  }
  progress.done()
  return status
}

/** `reel seed`: fills a running reel with the demo catalog through its API (as an administrator). */
export function registerSeedCommands(cli: Command): void {
  cli
    .command('seed')
    .description(
      'fill a running reel (REEL_URL) with the demo catalog: titles with generated clips, transcoded like uploads',
    )
    .option('--force', 'seed even when the catalog has titles of its own (the demo titles go beside them)')
    .option(
      '--titles <n>',
      `only the first n of the ${DEMO_TITLES.length} demo titles`,
      wholeNumber(1, DEMO_TITLES.length),
    )
    .option(
      '--clip-seconds <n>',
      `length of each clip (default ${SEED_CLIP_SECONDS.default})`,
      wholeNumber(SEED_CLIP_SECONDS.min, SEED_CLIP_SECONDS.max),
    )
    .option('--clip-height <px>', `picture height: ${SEED_CLIP_HEIGHTS.join(', ')} (default 720)`, clipHeight)
    .option('--no-wait', 'start the seed and return (GET /api/v1/admin/seed follows it)')
    .action(
      async (opts: {
        force?: boolean
        titles?: number
        clipSeconds?: number
        clipHeight?: SeedOptions['clipHeight']
        wait: boolean
      }) => {
        const config = loadConfig(process.env)
        const started = Date.now()
        const status = await seed(config, { ...opts })
        if (!opts.wait) {
          console.log(`seeding ${status.items.length} clips on ${serverUrl(config)} in the background`)
          return
        }
        const seconds = ((Date.now() - started) / 1000).toFixed(0)
        const summary = `${status.available} of ${status.items.length} demo clips available (${status.titles} titles) on ${serverUrl(config)} after ${seconds} s`
        if (status.failed > 0 || status.error || status.available < status.items.length)
          throw new CliError(`${summary}; ${status.error ?? `${status.failed} failed`}: run reel seed again`)
        console.log(summary)
      },
    )
}
