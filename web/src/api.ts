import type { Entitlement } from '../../src/platform/auth.js'
import type { Account, Profile, SessionView, Tokens } from '../../src/services/accounts/service.js'
import type { Invoice, Plan, Subscription } from '../../src/services/billing/service.js'

export type { Account, Entitlement, Invoice, Plan, Profile, SessionView, Subscription, Tokens }

/** An API failure, with the server's stable code and human message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
  }
}

let accessToken: string | undefined
let refreshing: Promise<boolean> | undefined

export const signedIn = () => accessToken !== undefined
/** For clients that make their own requests (tus uploads, players). */
export const currentAccessToken = () => accessToken
export function setAccessToken(token: string | undefined) {
  accessToken = token
}

/** New access token from the httpOnly refresh cookie; false when the session is gone. */
export function refreshSession(): Promise<boolean> {
  refreshing ??= fetch('/api/v1/sessions/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-reel-client': 'web', 'x-reel-csrf': '1' },
    body: '{}',
    credentials: 'same-origin',
  })
    .then(async (res) => {
      if (!res.ok) {
        accessToken = undefined
        return false
      }
      accessToken = ((await res.json()) as Tokens).accessToken
      return true
    })
    .catch(() => false)
    .finally(() => {
      refreshing = undefined
    })
  return refreshing
}

/** JSON over HTTP with the access token; one silent refresh when it has expired. */
export async function api<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  const headers: Record<string, string> = { 'x-reel-client': 'web' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (accessToken) headers.authorization = `Bearer ${accessToken}`
  let res: Response
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  } catch {
    throw new ApiError(0, 'network_error', 'reel cannot be reached; check your connection')
  }
  if (res.status === 401 && !retried && accessToken && (await refreshSession()))
    return api(method, path, body, true)
  if (res.status === 204) return undefined as T
  const json = (await res.json().catch(() => undefined)) as
    | { error?: { code: string; message: string; details?: Record<string, unknown> } }
    | undefined
  if (!res.ok) {
    const e = json?.error
    throw new ApiError(
      res.status,
      e?.code ?? 'http_error',
      e?.message ?? `Request failed (${res.status})`,
      e?.details,
    )
  }
  return json as T
}

export const money = (minor: number, currency: string) =>
  new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100)

export const date = (iso: string) => new Date(iso).toLocaleDateString(undefined, { dateStyle: 'medium' })
