/** An error a client can branch on: a stable snake_case `code`, an HTTP status and a message a person can act on. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
    this.name = 'AppError'
  }
}

export const badRequest = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(400, code, message, details)
export const unauthorized = (code: string, message: string) => new AppError(401, code, message)
export const forbidden = (code: string, message: string) => new AppError(403, code, message)
export const notFound = (code: string, message: string) => new AppError(404, code, message)
export const conflict = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(409, code, message, details)
export const tooLarge = (code: string, message: string) => new AppError(413, code, message)
export const unprocessable = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(422, code, message, details)
export const tooManyRequests = (code: string, message: string, retryAfterSeconds: number) =>
  new AppError(429, code, message, { retryAfterSeconds })
export const unavailable = (code: string, message: string) => new AppError(503, code, message)

export const isAppError = (e: unknown): e is AppError => e instanceof AppError

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
