import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../../../test/engines.js'
import { AppError } from '../errors.js'
import { BlobNotFoundError, type Blobs, type ByteRange } from './blobs.js'
import { LOCAL_INTERNAL_DIR, LocalBlobs } from './local.js'
import { S3Blobs } from './s3.js'

const MiB = 1024 * 1024

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
  return Buffer.concat(chunks)
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

/** A stream of `total` bytes in 64 KiB chunks, generated as it is read. */
function streamOf(total: number, seed: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256')
  async function* chunks() {
    for (let sent = 0; sent < total; ) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, total - sent), (sent / 65536 + seed) % 251)
      hash.update(chunk)
      sent += chunk.length
      yield chunk
    }
  }
  return { stream: Readable.from(chunks()), digest: () => hash.digest('hex') }
}

/** A put body that sends `bytes` and then fails, like an upload whose client went away. */
function failingStream(bytes: number): Readable {
  let sent = 0
  return new Readable({
    read() {
      if (sent >= bytes) {
        this.destroy(new Error('client went away'))
        return
      }
      const chunk = Buffer.alloc(Math.min(64 * 1024, bytes - sent), 7)
      sent += chunk.length
      this.push(chunk)
    },
  })
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (e: unknown) => e,
  )
}

async function expectAppError(promise: Promise<unknown>, status: number, code: string): Promise<void> {
  const error = await rejection(promise)
  expect(error).toBeInstanceOf(AppError)
  expect(error).toMatchObject({ status, code })
}

interface TestBlobs {
  blobs: Blobs
  /** The local store's directory, for checks on the files themselves. */
  root?: string
  cleanup: () => Promise<void>
}

function blobsContract(kind: 'local' | 's3', open: () => Promise<TestBlobs>) {
  describe(`Blobs contract: ${kind}`, () => {
    let blobs: Blobs
    let root: string | undefined
    let cleanup: () => Promise<void>
    beforeAll(async () => {
      ;({ blobs, root, cleanup } = await open())
    })
    afterAll(async () => {
      await cleanup?.()
    })

    it('is the expected adapter and answers ping', async () => {
      expect(blobs.kind).toBe(kind)
      await blobs.ping()
    })

    it('round-trips a Buffer, reporting what head reports', async () => {
      const bytes = randomBytes(4096)
      const info = await blobs.put('rt/buffer.bin', bytes, { contentType: 'application/x-reel-test' })
      expect(info).toMatchObject({ key: 'rt/buffer.bin', size: 4096, contentType: 'application/x-reel-test' })
      expect(info.etag).toMatch(/^".+"$/)
      expect(info.modifiedAt).toBeInstanceOf(Date)
      const head = await blobs.head('rt/buffer.bin')
      expect(head).toMatchObject({
        key: info.key,
        size: info.size,
        etag: info.etag,
        contentType: info.contentType,
      })
      const read = await blobs.get('rt/buffer.bin')
      expect(read).toMatchObject({ start: 0, end: 4095, info: { size: 4096, etag: info.etag } })
      expect(read.info.contentType).toBe('application/x-reel-test')
      expect((await readAll(read.body)).equals(bytes)).toBe(true)
    })

    it('round-trips a string and a Uint8Array, guessing the content type from the extension', async () => {
      const text = '{"title":"Amélie","emoji":"🎬"}'
      const info = await blobs.put('rt/title.json', text)
      expect(info.size).toBe(Buffer.byteLength(text))
      expect(info.contentType).toBe('application/json')
      expect((await readAll((await blobs.get('rt/title.json')).body)).toString('utf8')).toBe(text)

      await blobs.put('rt/bytes', new Uint8Array([1, 2, 3]))
      const read = await blobs.get('rt/bytes')
      expect(read.info.contentType).toBe('application/octet-stream')
      expect([...(await readAll(read.body))]).toEqual([1, 2, 3])
    })

    it('streams a body of several MB in and out', async () => {
      const { stream, digest } = streamOf(12 * MiB + 12345, 3)
      const info = await blobs.put('rt/big.mp4', stream)
      expect(info.size).toBe(12 * MiB + 12345)
      expect(info.contentType).toBe('video/mp4')
      const read = await blobs.get('rt/big.mp4')
      expect(read.end).toBe(12 * MiB + 12344)
      expect(sha256(await readAll(read.body))).toBe(digest())
    })

    it('stores an empty object', async () => {
      const info = await blobs.put('rt/empty', '')
      expect(info.size).toBe(0)
      const read = await blobs.get('rt/empty')
      expect(read.info.size).toBe(0)
      expect((await readAll(read.body)).length).toBe(0)
      await expectAppError(blobs.get('rt/empty', { start: 0 }), 416, 'range_not_satisfiable')
    })

    describe('byte ranges', () => {
      const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256))
      beforeAll(async () => {
        await blobs.put('range/obj', bytes)
      })

      const reads: [string, ByteRange, number, number][] = [
        ['start-end', { start: 10, end: 19 }, 10, 19],
        ['open end', { start: 990 }, 990, 999],
        ['the last byte', { start: 999, end: 999 }, 999, 999],
        ['an end past the last byte (cut)', { start: 995, end: 5000 }, 995, 999],
      ]
      // s3rver reads "bytes=0-0" as the whole object (it tests the end for truthiness); S3 sends one byte.
      if (kind !== 's3') reads.push(['the first byte', { start: 0, end: 0 }, 0, 0])

      it.each(reads)('reads %s', async (_, range, start, end) => {
        const read = await blobs.get('range/obj', range)
        expect(read).toMatchObject({ start, end, info: { key: 'range/obj', size: 1000 } })
        expect((await readAll(read.body)).equals(bytes.subarray(start, end + 1))).toBe(true)
      })

      it.each([
        ['starting at the size', { start: 1000 }],
        ['starting past the end', { start: 5000, end: 6000 }],
        ['ending before it starts', { start: 5, end: 4 }],
        ['with a negative start', { start: -1 }],
        ['with a fractional start', { start: 1.5 }],
      ])('refuses a range %s with 416', async (_, range) => {
        await expectAppError(blobs.get('range/obj', range), 416, 'range_not_satisfiable')
      })

      it('answers 404 before 416 for a missing object', async () => {
        await expectAppError(blobs.get('range/missing', { start: 0, end: 1 }), 404, 'blob_not_found')
      })
    })

    it('reports a missing object as undefined (head) and BlobNotFoundError (get)', async () => {
      expect(await blobs.head('missing/x')).toBeUndefined()
      const error = await rejection(blobs.get('missing/x'))
      expect(error).toBeInstanceOf(BlobNotFoundError)
      expect(error).toMatchObject({ status: 404, code: 'blob_not_found' })
      await blobs.put('missing/dir/child', 'x')
      expect(await blobs.head('missing/dir')).toBeUndefined()
      await expect(blobs.get('missing/dir')).rejects.toBeInstanceOf(BlobNotFoundError)
    })

    describe('list', () => {
      const keys = [
        'list/b',
        'list/a/2',
        'list/a/1',
        'list/c.txt',
        'list/aa',
        'list/a/sub/deep',
        'lis',
        'listing/x',
      ]
      beforeAll(async () => {
        for (const key of keys) await blobs.put(key, key)
      })

      it('lists by prefix, in key order, recursively', async () => {
        const listed = await blobs.list('list/')
        expect(listed.map((i) => i.key)).toEqual([
          'list/a/1',
          'list/a/2',
          'list/a/sub/deep',
          'list/aa',
          'list/b',
          'list/c.txt',
        ])
        const head = await blobs.head('list/b')
        expect(listed.find((i) => i.key === 'list/b')).toMatchObject({ size: 6, etag: head?.etag })
      })

      it('matches a prefix that ends inside a segment', async () => {
        expect((await blobs.list('list/a')).map((i) => i.key)).toEqual([
          'list/a/1',
          'list/a/2',
          'list/a/sub/deep',
          'list/aa',
        ])
        expect((await blobs.list('lis')).map((i) => i.key)).toEqual([
          'lis',
          'list/a/1',
          'list/a/2',
          'list/a/sub/deep',
          'list/aa',
          'list/b',
          'list/c.txt',
          'listing/x',
        ])
        expect(await blobs.list('nothing-here/')).toEqual([])
      })

      it('pages with limit and startAfter', async () => {
        expect((await blobs.list('list/', { limit: 2 })).map((i) => i.key)).toEqual(['list/a/1', 'list/a/2'])
        expect((await blobs.list('list/', { startAfter: 'list/a/2', limit: 2 })).map((i) => i.key)).toEqual([
          'list/a/sub/deep',
          'list/aa',
        ])
        expect((await blobs.list('list/', { startAfter: 'list/a/zzz' })).map((i) => i.key)).toEqual([
          'list/aa',
          'list/b',
          'list/c.txt',
        ])
        expect(await blobs.list('list/', { startAfter: 'list/c.txt' })).toEqual([])
        expect(await blobs.list('list/', { limit: 0 })).toEqual([])
        await expectAppError(blobs.list('list/', { limit: -1 }), 400, 'invalid_limit')
      })

      it('walks page after page to the end', async () => {
        const all: string[] = []
        for (let after: string | undefined; ; ) {
          const page = await blobs.list('list/', { limit: 4, startAfter: after })
          all.push(...page.map((i) => i.key))
          if (page.length < 4) break
          after = page.at(-1)?.key
        }
        expect(all).toEqual((await blobs.list('list/')).map((i) => i.key))
        expect(all).toHaveLength(6)
      })

      // s3rver walks its directory tree, so it lists "x/a/b" before "x/a.txt"; S3 (and the local
      // adapter) list in UTF-8 byte order, where "." (0x2e) sorts before "/" (0x2f).
      it.skipIf(kind === 's3')(
        'orders a key before the keys of its sibling directory when its byte says so',
        async () => {
          for (const key of ['order/1080p/seg1.m4s', 'order/1080p.m3u8', 'order/1080p-x', 'order/1080p0']) {
            await blobs.put(key, 'x')
          }
          expect((await blobs.list('order/')).map((i) => i.key)).toEqual([
            'order/1080p-x',
            'order/1080p.m3u8',
            'order/1080p/seg1.m4s',
            'order/1080p0',
          ])
          expect((await blobs.list('order/', { startAfter: 'order/1080p.m3u8' })).map((i) => i.key)).toEqual([
            'order/1080p/seg1.m4s',
            'order/1080p0',
          ])
        },
      )
    })

    it('deletes, and deleting a missing key is not an error', async () => {
      await blobs.put('del/a', 'a')
      await blobs.put('del/b', 'b')
      await blobs.delete('del/a')
      expect(await blobs.head('del/a')).toBeUndefined()
      await expect(blobs.get('del/a')).rejects.toBeInstanceOf(BlobNotFoundError)
      expect(await blobs.head('del/b')).toBeDefined()
      await blobs.delete('del/a')
      await blobs.delete('del/never/was')
      expect((await blobs.list('del/')).map((i) => i.key)).toEqual(['del/b'])
    })

    it('overwrites: the new content, size, etag and content type replace the old', async () => {
      const first = await blobs.put('ow/obj', 'first', { contentType: 'text/x-first' })
      const second = await blobs.put('ow/obj', 'second!', { contentType: 'text/x-second' })
      expect(second.etag).not.toBe(first.etag)
      const read = await blobs.get('ow/obj')
      expect(read.info).toMatchObject({ size: 7, etag: second.etag, contentType: 'text/x-second' })
      expect((await readAll(read.body)).toString()).toBe('second!')
      await blobs.put('ow/obj', 'third')
      expect((await blobs.head('ow/obj'))?.contentType).toBe('application/octet-stream')
    })

    // S3 makes every PUT atomic (last writer wins); s3rver writes the object file in place, so
    // concurrent puts of one key interleave their bytes there.
    it.skipIf(kind === 's3')(
      'ends concurrent puts of one key with one whole version, its content type with it',
      async () => {
        await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            blobs.put('race/obj', Buffer.alloc(1000 + i, i), { contentType: `application/x-v${i}` }),
          ),
        )
        const read = await blobs.get('race/obj')
        const bytes = await readAll(read.body)
        const version = bytes.length - 1000
        expect(bytes.equals(Buffer.alloc(1000 + version, version))).toBe(true)
        expect(read.info.contentType).toBe(`application/x-v${version}`)
        expect(read.info.etag).toBe((await blobs.head('race/obj'))?.etag)
      },
    )

    it.each([
      '../x',
      'a/../../x',
      '..',
      '.',
      './a',
      '/etc/passwd',
      'a\\b',
      '..\\..\\x',
      'a\0b',
      '',
      'a//b',
      'a/',
      'C:/x',
    ])('rejects the key %j with invalid_blob_key', async (key) => {
      await expectAppError(blobs.put(key, 'x'), 400, 'invalid_blob_key')
      await expectAppError(blobs.get(key), 400, 'invalid_blob_key')
      await expectAppError(blobs.head(key), 400, 'invalid_blob_key')
      await expectAppError(blobs.delete(key), 400, 'invalid_blob_key')
    })

    it('rejects prefixes that climb out of the store', async () => {
      await expectAppError(blobs.list('../'), 400, 'invalid_blob_key')
      await expectAppError(blobs.list('/etc'), 400, 'invalid_blob_key')
      await expectAppError(blobs.list('a/../..'), 400, 'invalid_blob_key')
    })

    it('treats percent-encoded dots literally', async () => {
      await blobs.put('%2e%2e/x', 'literal')
      expect((await readAll((await blobs.get('%2e%2e/x')).body)).toString()).toBe('literal')
      if (root) expect(fs.readFileSync(path.join(root, '%2e%2e', 'x'), 'utf8')).toBe('literal')
    })

    it.each([
      ['a few chunks', 200 * 1024],
      ['more than one multipart part', 6 * MiB],
    ])('leaves nothing readable when the body fails after %s', async (_, bytes) => {
      const key = `interrupted/${bytes}`
      const error = await rejection(blobs.put(key, failingStream(bytes)))
      expect(String(error)).toContain('client went away')
      expect(await blobs.head(key)).toBeUndefined()
      expect(await blobs.list('interrupted/')).toEqual([])
      if (root) expect(fs.readdirSync(path.join(root, LOCAL_INTERNAL_DIR, 'tmp'))).toEqual([])
    })

    it('keeps the previous version when an overwrite fails', async () => {
      const kept = await blobs.put('interrupted-overwrite/obj', 'the original', {
        contentType: 'text/x-original',
      })
      await expect(blobs.put('interrupted-overwrite/obj', failingStream(300 * 1024))).rejects.toThrow(
        'client went away',
      )
      const read = await blobs.get('interrupted-overwrite/obj')
      expect(read.info).toMatchObject({ size: kept.size, etag: kept.etag, contentType: 'text/x-original' })
      expect((await readAll(read.body)).toString()).toBe('the original')
    })

    it('shows the old version, never part of the new one, while a put is in progress', async () => {
      await blobs.put('atomic/obj', 'old')
      let release: () => void = () => {}
      const released = new Promise<void>((resolve) => {
        release = resolve
      })
      let halfSent: () => void = () => {}
      const half = new Promise<void>((resolve) => {
        halfSent = resolve
      })
      async function* body() {
        yield Buffer.alloc(100 * 1024, 1)
        halfSent()
        await released
        yield Buffer.alloc(100 * 1024, 2)
      }
      const putting = blobs.put('atomic/obj', Readable.from(body()))
      await half
      expect((await readAll((await blobs.get('atomic/obj')).body)).toString()).toBe('old')
      expect((await blobs.head('atomic/obj'))?.size).toBe(3)
      release()
      expect((await putting).size).toBe(200 * 1024)
      expect((await blobs.head('atomic/obj'))?.size).toBe(200 * 1024)
    })

    it('keeps unicode and URL-special keys exact', async () => {
      const keys = [
        'unicode/日本語/ファイル.txt',
        'unicode/émoji 🎬/ünïcode.json',
        'unicode/special/a+b c%20d?e#f&g=h.txt',
        'unicode/Ωmega',
      ]
      for (const key of keys) {
        const info = await blobs.put(key, `content of ${key}`)
        expect(info.key).toBe(key)
      }
      for (const key of keys) {
        expect((await readAll((await blobs.get(key)).body)).toString()).toBe(`content of ${key}`)
        expect((await blobs.head(key))?.key).toBe(key)
      }
      const byteOrder = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      expect((await blobs.list('unicode/')).map((i) => i.key)).toEqual(byteOrder)
    })
  })
}

blobsContract('local', async () => {
  const tmp = tempDir('reel-blobs-')
  return { blobs: new LocalBlobs({ dir: tmp.dir }), root: tmp.dir, cleanup: async () => tmp.cleanup() }
})

/**
 * Starts s3rver (an S3 protocol emulator) in a child process. Its own process because s3rver 3.7
 * encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers with
 * --openssl-legacy-provider: in-process, every truncated listing would fail with InternalError.
 */
async function startS3rver(
  directory: string,
  bucket: string,
): Promise<{ port: number; child: ChildProcess }> {
  const script = `const S3rver = require(process.argv[1])
new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.argv[2], configureBuckets: [{ name: process.argv[3] }] })
  .run().then(({ port }) => console.log(JSON.stringify({ port })), (e) => { console.error(e); process.exit(1) })`
  const s3rverMain = createRequire(import.meta.url).resolve('s3rver')
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', script, s3rverMain, directory, bucket],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  process.once('exit', () => child.kill())
  const lines = createInterface({ input: child.stdout ?? Readable.from([]) })
  for await (const line of lines) {
    const { port } = JSON.parse(line) as { port: number }
    return { port, child }
  }
  throw new Error(`s3rver exited (code ${child.exitCode}) before listening`)
}

blobsContract('s3', async () => {
  const tmp = tempDir('reel-s3rver-')
  const bucket = 'reel-test'
  const { port, child } = await startS3rver(tmp.dir, bucket)
  const blobs = new S3Blobs({
    bucket,
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    forcePathStyle: true,
    partSizeBytes: 5 * MiB,
    // Small pages, so that the tests walk ListObjectsV2 continuation tokens.
    listPageSize: 2,
  })
  return {
    blobs,
    cleanup: async () => {
      await blobs.close()
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill()
      await exited
      tmp.cleanup()
    },
  }
})

describe('LocalBlobs on disk', () => {
  const tmp = tempDir('reel-blobs-')
  const blobs = new LocalBlobs({ dir: tmp.dir })
  afterAll(() => tmp.cleanup())

  it('keeps each object at <root>/<key>, and removes directories a delete leaves empty', async () => {
    await blobs.put('titles/t1/720p/seg-1.m4s', 'segment')
    expect(fs.readFileSync(path.join(tmp.dir, 'titles', 't1', '720p', 'seg-1.m4s'), 'utf8')).toBe('segment')
    await blobs.delete('titles/t1/720p/seg-1.m4s')
    expect(fs.readdirSync(tmp.dir)).toEqual([LOCAL_INTERNAL_DIR])
  })

  it('reserves its internal directory', async () => {
    await expectAppError(blobs.put(`${LOCAL_INTERNAL_DIR}/tmp/x`, 'x'), 400, 'invalid_blob_key')
    await blobs.put('visible', 'x')
    expect((await blobs.list('')).map((i) => i.key)).toEqual(['visible'])
  })

  it('refuses a key whose parent is an object (a directory cannot also be a file)', async () => {
    await blobs.put('clash', 'x')
    await expectAppError(blobs.put('clash/child', 'y'), 409, 'blob_key_conflict')
    await blobs.put('clash2/child', 'y')
    await expectAppError(blobs.put('clash2', 'x'), 409, 'blob_key_conflict')
    expect(fs.readdirSync(path.join(tmp.dir, LOCAL_INTERNAL_DIR, 'tmp'))).toEqual([])
  })

  it('serves a file placed by hand, with an etag from its identity', async () => {
    fs.mkdirSync(path.join(tmp.dir, 'manual'), { recursive: true })
    fs.writeFileSync(path.join(tmp.dir, 'manual', 'playlist.m3u8'), '#EXTM3U\n')
    const info = await blobs.head('manual/playlist.m3u8')
    expect(info).toMatchObject({ size: 8, contentType: 'application/vnd.apple.mpegurl' })
    expect(info?.etag).toMatch(/^".+"$/)
  })

  it('keeps streaming the version a reader opened while a put replaces it', async () => {
    const first = Buffer.alloc(2 * MiB, 1)
    await blobs.put('replace/obj', first)
    const read = await blobs.get('replace/obj')
    await blobs.put('replace/obj', Buffer.alloc(MiB, 2))
    expect((await readAll(read.body)).equals(first)).toBe(true)
  })
})
