import zlib from 'node:zlib'
import type { FastifyReply, FastifyRequest } from 'fastify'

/**
 * Fastest compression (nginx's default too): on JSON it is a few per cent larger than the default
 * level and about a third cheaper, and a page built for one view is compressed once.
 */
const GZIP_LEVEL = 1

/** Bodies smaller than this go out as they are: compressing them saves less than it costs. */
export const GZIP_MIN_BYTES = 1024

/**
 * Compressed copies of bodies a service keeps and sends again (a memoized page): compressed once,
 * dropped with the body.
 */
const gzipped = new WeakMap<Buffer, Buffer>()

/**
 * Answers for the Accept-Encoding values seen lately: clients send a handful of distinct values
 * (one per browser and library), so each is parsed once rather than once per request.
 */
const gzipAnswers = new Map<string, boolean>()
const GZIP_ANSWERS_MAX = 256

/**
 * True when an `Accept-Encoding` header takes gzip: `gzip` (or `x-gzip`) with a non-zero q, or `*`
 * with a non-zero q when gzip is not listed.
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false
  const value = Array.isArray(header) ? header.join(',') : header
  let answer = gzipAnswers.get(value)
  if (answer === undefined) {
    answer = parseAcceptsGzip(value)
    if (gzipAnswers.size >= GZIP_ANSWERS_MAX) gzipAnswers.clear()
    gzipAnswers.set(value, answer)
  }
  return answer
}

function parseAcceptsGzip(value: string): boolean {
  let star = false
  for (const part of value.split(',')) {
    const [name = '', ...params] = part.split(';')
    const coding = name.trim().toLowerCase()
    let q = 1
    for (const p of params) {
      const [k, v] = p.split('=')
      if (k?.trim().toLowerCase() === 'q') q = Number(v?.trim())
    }
    const accepted = Number.isFinite(q) && q > 0
    if (coding === 'gzip' || coding === 'x-gzip') return accepted
    if (coding === '*') star = accepted
  }
  return star
}

/**
 * Sends JSON a service already has as bytes, gzip-compressed when the client takes it and the body
 * is worth it. The same Buffer sent again reuses its compressed copy, so a memoized body is
 * compressed once.
 */
export function sendJsonBytes(req: FastifyRequest, reply: FastifyReply, bytes: Buffer): FastifyReply {
  reply.type('application/json').header('vary', 'accept-encoding')
  if (bytes.length < GZIP_MIN_BYTES || !acceptsGzip(req.headers['accept-encoding'])) return reply.send(bytes)
  let body = gzipped.get(bytes)
  if (!body) {
    body = zlib.gzipSync(bytes, { level: GZIP_LEVEL })
    gzipped.set(bytes, body)
  }
  return reply.header('content-encoding', 'gzip').send(body)
}

/**
 * Sends JSON a service already wrote (a cached answer, say) as it is, without the route's
 * serializer and uncompressed (a body made per request would be compressed per request).
 */
export function sendJsonText(reply: FastifyReply, json: string | Buffer): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json)
}
