import path from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { allMigrations, createReel, VERSION } from '../platform/app.js'
import { type Config, ConfigError, configTable, loadConfig, portKinds } from '../platform/config.js'
import { createDb } from '../platform/db/db.js'
import { isAppError } from '../platform/errors.js'
import { inspectTool, resolveTool } from '../platform/ffmpeg.js'
import { createLogger } from '../platform/log.js'
import { isServiceName, SERVICE_NAMES, type ServiceName } from '../platform/modules.js'
import { registerCatalogCommands } from './catalog.js'
import { CliError, callApi, forgetCredentials, saveCredentials, serverUrl } from './client.js'
import { registerEdgeCommands } from './edge.js'
import { registerMediaCommands } from './media.js'
import { registerRecoCommands } from './reco.js'
import { registerSeedCommands } from './seed.js'
import { registerTrendsCommands } from './trends.js'

const config = (): Config => loadConfig(process.env)

function parseRoles(value: string): ServiceName[] {
  const roles = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const unknown = roles.filter((r) => !isServiceName(r))
  if (roles.length === 0 || unknown.length > 0)
    throw new InvalidArgumentError(
      `unknown role ${unknown.join(', ') || '(none)'}; roles are ${SERVICE_NAMES.join(', ')}`,
    )
  return roles.filter(isServiceName)
}

/** Runs the given services in this process until SIGTERM/SIGINT, then shuts down gracefully. */
async function serve(roles: readonly ServiceName[], quickStart = false): Promise<void> {
  // Unset REEL_SEED means auto for the quick start only: a first, empty install gets the demo catalog.
  const cfg = quickStart ? { ...config(), seed: config().seed ?? 'auto' } : config()
  const log = createLogger(cfg.logLevel)
  const reel = await createReel({ config: cfg, roles, log })
  await reel.start()
  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down')
    setTimeout(() => {
      log.error({ timeoutMs: cfg.shutdownTimeoutMs }, 'shutdown took too long; exiting')
      process.exit(1)
    }, cfg.shutdownTimeoutMs).unref()
    reel.stop().then(
      () => process.exit(0),
      (e) => {
        log.error({ err: e }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.once('SIGTERM', () => shutdown('SIGTERM'))
  process.once('SIGINT', () => shutdown('SIGINT'))
}

async function doctor(): Promise<void> {
  const cfg = config()
  let failures = 0
  const line = (ok: boolean, what: string, detail: string) => {
    if (!ok) failures++
    console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what.padEnd(10)} ${detail}`)
  }
  console.log(`reel ${VERSION} on Node.js ${process.version}`)
  for (const name of ['ffmpeg', 'ffprobe'] as const) {
    const tool = resolveTool(name, name === 'ffmpeg' ? cfg.ffmpeg : cfg.ffprobe)
    if (!tool) {
      line(false, name, `not found: install ffmpeg, or set REEL_${name.toUpperCase()}`)
      continue
    }
    try {
      const report = await inspectTool(tool)
      const missing = report.missingEncoders.length
        ? `; MISSING encoders: ${report.missingEncoders.join(', ')}`
        : ''
      line(
        report.missingEncoders.length === 0,
        name,
        `${tool.path} (from ${tool.source}) — ${report.version}${missing}`,
      )
    } catch (e) {
      line(
        false,
        name,
        `${tool.path} (from ${tool.source}) does not run: ${e instanceof Error ? e.message : e}`,
      )
    }
  }
  const kinds = portKinds(cfg)
  const reel = await createReel({ config: { ...cfg, logLevel: 'silent' }, roles: [] }).catch((e: unknown) => {
    line(false, 'engines', e instanceof Error ? e.message : String(e))
    return undefined
  })
  if (reel) {
    for (const [name, port] of Object.entries(reel.ports)) {
      try {
        await port.ping()
        line(true, name, kinds[name as keyof typeof kinds])
      } catch (e) {
        line(false, name, `${kinds[name as keyof typeof kinds]}: ${e instanceof Error ? e.message : e}`)
      }
    }
    await reel.stop()
  }
  if (failures > 0) throw new CliError(`${failures} check(s) failed`)
}

export function program(): Command {
  const cli = new Command('reel')
    .description('reel — a self-hostable streaming platform')
    .version(VERSION)
    .showHelpAfterError()

  cli
    .command('start')
    .description('run every service in this process (the all-in-one shape)')
    .action(() => serve(SERVICE_NAMES, true))

  cli
    .command('serve')
    .description('run some services in this process (the scaled shape)')
    .requiredOption('--roles <list>', `comma-separated services: ${SERVICE_NAMES.join(', ')}`, parseRoles)
    .action((opts: { roles: ServiceName[] }) => serve(opts.roles))

  cli.command('doctor').description('check ffmpeg, its encoders and every configured engine').action(doctor)

  cli
    .command('migrate')
    .description('apply database migrations and exit')
    .action(async () => {
      const cfg = config()
      const db = createDb({
        databaseUrl: cfg.databaseUrl,
        schema: cfg.databaseSchema,
        sqliteFile: path.join(cfg.dataDir, 'reel.db'),
      })
      try {
        const applied = await db.migrate(allMigrations())
        console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date')
      } finally {
        await db.close()
      }
    })

  cli
    .command('config')
    .description('list every REEL_* variable with its default and meaning')
    .action(() => {
      config()
      console.log(configTable())
    })

  cli
    .command('status')
    .description('ask a running reel (REEL_URL) what it runs')
    .action(async () => {
      const cfg = config()
      const info = await callApi<{ version: string; roles: string[]; adapters: Record<string, string> }>(
        cfg,
        'GET',
        '/api/v1/system',
        undefined,
        { auth: false },
      )
      console.log(`reel ${info.version} at ${serverUrl(cfg)}`)
      console.log(`services: ${info.roles.join(', ')}`)
      console.log(
        `engines:  ${Object.entries(info.adapters)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
      )
    })

  const admin = cli
    .command('admin')
    .description('administration from the server machine (talks to the database)')
  admin
    .command('create')
    .description('create an administrator account (with a Premium subscription)')
    .requiredOption('--email <email>', 'email of the new administrator')
    .option('--password <password>', 'password (default: read from standard input)')
    .action(async (opts: { email: string; password?: string }) => {
      const password = opts.password ?? (await readStdin())
      const reel = await createReel({ config: { ...config(), logLevel: 'warn' }, roles: [] })
      try {
        const account = await reel.use('accounts').createAdmin(opts.email, password)
        console.log(`administrator ${account.email} created (id ${account.id})`)
      } finally {
        await reel.stop()
      }
    })

  cli
    .command('login')
    .description('log in to a running reel (REEL_URL) and save the tokens for later commands')
    .requiredOption('--email <email>', 'account email')
    .option('--password <password>', 'password (default: read from standard input)')
    .action(async (opts: { email: string; password?: string }) => {
      const cfg = config()
      const password = opts.password ?? (await readStdin())
      const tokens = await callApi<{ accessToken: string; refreshToken: string }>(
        { ...cfg, token: undefined },
        'POST',
        '/api/v1/sessions',
        { email: opts.email, password },
        { auth: false },
      )
      saveCredentials({ url: serverUrl(cfg), email: opts.email, ...tokens })
      console.log(`logged in to ${serverUrl(cfg)} as ${opts.email}`)
    })

  cli
    .command('logout')
    .description('log this machine out and forget the saved tokens')
    .action(async () => {
      const cfg = config()
      try {
        await callApi(cfg, 'DELETE', '/api/v1/sessions/current')
      } finally {
        forgetCredentials()
      }
      console.log('logged out')
    })

  registerMediaCommands(cli)
  registerEdgeCommands(cli)
  registerTrendsCommands(cli)
  registerCatalogCommands(cli)
  registerSeedCommands(cli)
  registerRecoCommands(cli)
  return cli
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new CliError('give --password, or pipe the password on standard input')
  let text = ''
  for await (const chunk of process.stdin) text += String(chunk)
  const password = text.replace(/\r?\n$/, '')
  if (!password) throw new CliError('no password on standard input')
  return password
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv)
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`reel: invalid configuration: ${e.message}`)
      process.exit(2)
    }
    if (isAppError(e)) {
      console.error(`reel: ${e.code}: ${e.message}`)
      process.exit(1)
    }
    if (e instanceof CliError) {
      console.error(`reel: ${e.message}`)
      process.exit(e.exitCode)
    }
    console.error(`reel: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    process.exit(1)
  }
}

await main(process.argv)
