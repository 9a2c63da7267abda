// The edge bench's edge, in its own process: an Edge over a local blob store (argv[2]) with the
// cache budget argv[3] bytes. Prints its URL once listening.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createBlobs } from '../../src/platform/blobs/index.js'
import { createLogger } from '../../src/platform/log.js'
import { Edge } from '../../src/services/cdn/edge.js'
import { startEdgeServer } from '../../src/services/cdn/edge-server.js'
import { BlobOrigin } from '../../src/services/cdn/origin.js'
import { UrlSigner } from '../../src/services/cdn/tokens.js'

const [blobDir = '', budget = '1073741824', key = ''] = process.argv.slice(2)
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-edge-cache-'))
const edge = new Edge({
  cacheDir,
  budgetBytes: Number(budget),
  origin: new BlobOrigin(createBlobs({ dir: blobDir })),
  signer: new UrlSigner(Buffer.from(key)),
  log: createLogger('warn'),
})
const server = await startEdgeServer(edge, { port: 0, host: '127.0.0.1' })
console.log(server.url)
process.once('SIGTERM', () => {
  void server.close().finally(() => {
    fs.rmSync(cacheDir, { recursive: true, force: true })
    process.exit(0)
  })
})
