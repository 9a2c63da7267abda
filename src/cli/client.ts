import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Config } from '../platform/config.js'

/** A failure a CLI command reports as one line and a non-zero exit. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message)
    this.name = 'CliError'
  }
}

export const serverUrl = (config: Config): string =>
  (config.url ?? `http://localhost:${config.port}`).replace(/\/+$/, '')

/** Where `reel login` keeps the token, readable only by the user. */
export function credentialsFile(): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config')
  return path.join(base, 'reel', 'credentials.json')
}

export function savedToken(): string | undefined {
  try {
    const saved = JSON.parse(fs.readFileSync(credentialsFile(), 'utf8')) as { accessToken?: unknown }
    return typeof saved.accessToken === 'string' ? saved.accessToken : undefined
  } catch {
    return undefined
  }
}

export function saveCredentials(credentials: Record<string, unknown>): void {
  const file = credentialsFile()
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  fs.writeFileSync(file, JSON.stringify(credentials), { mode: 0o600 })
}

export function forgetCredentials(): void {
  fs.rmSync(credentialsFile(), { force: true })
}

/** Calls the running server's API; any failure becomes a CliError with a one-line reason. */
export async function callApi<T>(
  config: Config,
  method: string,
  apiPath: string,
  body?: unknown,
  options: { auth?: boolean } = {},
): Promise<T> {
  const base = serverUrl(config)
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (options.auth !== false) {
    const token = config.token ?? savedToken()
    if (token) headers.authorization = `Bearer ${token}`
  }
  let res: Response
  try {
    res = await fetch(`${base}${apiPath}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    })
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : String(e)
    throw new CliError(`cannot reach reel at ${base} (${cause}); is it running? (REEL_URL sets where)`)
  }
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {
    parsed = undefined
  }
  if (!res.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error
    throw new CliError(
      error ? `${error.code}: ${error.message}` : `${method} ${apiPath} failed with HTTP ${res.status}`,
    )
  }
  return parsed as T
}
