import { type Static, Type } from '@sinclair/typebox'
import type { FastifyError } from 'fastify'
import { isAppError } from '../errors.js'

/** The one error shape of the API: `{ error: { code, message } }`. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable snake_case code a client can branch on' }),
      message: Type.String({ description: 'What went wrong, for a person' }),
      details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  },
  { $id: 'ErrorBody', title: 'Error' },
)
export type ErrorBody = Static<typeof ErrorBody>

/** Fastify's own failures, mapped to reel's stable codes. */
const FASTIFY_CODES: Record<string, [number, string]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_json'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'empty_body'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'body_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid_content_length'],
  FST_ERR_VALIDATION: [400, 'invalid_request'],
}

/** Turns any thrown value into a status and the error body; `internal` marks a bug (a 500). */
export function toErrorResponse(e: unknown): { status: number; body: ErrorBody; internal: boolean } {
  if (isAppError(e)) {
    const error: ErrorBody['error'] = { code: e.code, message: e.message }
    if (e.details) error.details = e.details
    return { status: e.status, body: { error }, internal: false }
  }
  const fe = e as Partial<FastifyError> & { validation?: unknown }
  if (fe.validation) {
    return {
      status: 400,
      body: { error: { code: 'invalid_request', message: fe.message ?? 'Invalid request' } },
      internal: false,
    }
  }
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined
  if (mapped) {
    return {
      status: mapped[0],
      body: { error: { code: mapped[1], message: fe.message ?? mapped[1] } },
      internal: false,
    }
  }
  if (e instanceof SyntaxError && fe.statusCode === 400) {
    return { status: 400, body: { error: { code: 'malformed_json', message: e.message } }, internal: false }
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return {
      status: fe.statusCode,
      body: { error: { code: 'bad_request', message: fe.message ?? 'Bad request' } },
      internal: false,
    }
  }
  return {
    status: 500,
    body: {
      error: { code: 'internal_error', message: 'Something went wrong on our side; it has been logged.' },
    },
    internal: true,
  }
}
