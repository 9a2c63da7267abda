// CDN edge against nginx (Debian package, needs `apt-get install nginx`) serving the same files
// from disk, in the same run:
//  - segment throughput of a warm edge vs nginx (target ≥ 0.5 of nginx), both one process/worker;
//  - origin offload for a simulated audience: viewers pick titles by a Zipf law and fetch their
//    segments through a cold edge whose cache holds a third of the catalog.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { UrlSigner } from '../../src/services/cdn/tokens.js'
import { ratio, SERVER_FLAGS, verdict } from '../lib.js'

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8)
const CONNECTIONS = 32
const SEGMENT_BYTES = 256 * 1024
const HOT_TITLES = 4
const SEGMENTS = 16
const AUDIENCE_TITLES = 40
const VIEWERS = 400
const KEY = randomBytes(32).toString('hex')

const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p))
if (!nginxBin) {
  console.error('bench/edge needs nginx: apt-get install -y nginx')
  process.exit(2)
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'reel-bench-edge-'))
const blobs = path.join(root, 'blobs')
// nginx workers run as an unprivileged user: let them read the files.
fs.chmodSync(root, 0o755)
const segmentKey = (title: number, n: number) =>
  `titles/t${title}/hls/360p/seg_${String(n).padStart(5, '0')}.m4s`
for (let t = 0; t < AUDIENCE_TITLES; t++)
  for (let n = 0; n < SEGMENTS; n++) {
    const file = path.join(blobs, segmentKey(t, n))
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, randomBytes(SEGMENT_BYTES))
  }

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((r) => server.close(r))
  return port
}

function startEdge(budget: number): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [...SERVER_FLAGS, '--import', 'tsx', 'bench/edge/server.ts', blobs, String(budget), KEY],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (c: Buffer) => {
      out += String(c)
      const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1]
      if (url) resolve({ url, child })
    })
    child.once('exit', (code) => reject(new Error(`edge exited (${code})`)))
  })
}

async function stop(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM')
  await once(child, 'exit')
}

const nginxPort = await freePort()
const nginxDir = path.join(root, 'nginx')
fs.mkdirSync(nginxDir)
fs.writeFileSync(
  path.join(nginxDir, 'nginx.conf'),
  `daemon off;
worker_processes 1;
pid ${nginxDir}/nginx.pid;
error_log ${nginxDir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { video/iso.segment m4s; }
  client_body_temp_path ${nginxDir}/body;
  proxy_temp_path ${nginxDir}/proxy;
  fastcgi_temp_path ${nginxDir}/fastcgi;
  uwsgi_temp_path ${nginxDir}/uwsgi;
  scgi_temp_path ${nginxDir}/scgi;
  server { listen 127.0.0.1:${nginxPort}; root ${blobs}; }
}
`,
)
execFileSync(nginxBin, ['-t', '-c', path.join(nginxDir, 'nginx.conf')], { stdio: 'ignore' })
const nginx = spawn(nginxBin, ['-c', path.join(nginxDir, 'nginx.conf')], { stdio: 'ignore' })

const signer = new UrlSigner(Buffer.from(KEY))
const token = (title: number) =>
  signer.sign({
    sid: 'bench',
    prefix: `titles/t${title}/`,
    exp: Math.floor(Date.now() / 1000) + 3600,
    maxHeight: 0,
  })

const hotPaths = (prefix: (t: number) => string) =>
  Array.from({ length: HOT_TITLES * SEGMENTS }, (_, i) => {
    const t = Math.floor(i / SEGMENTS)
    return `${prefix(t)}/${segmentKey(t, i % SEGMENTS)}`
  })

async function load(base: string, paths: string[]) {
  let i = 0
  return autocannon({
    url: base,
    connections: CONNECTIONS,
    duration: DURATION_S,
    requests: [
      { method: 'GET', setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length] as string }) },
    ],
  })
}

try {
  await new Promise((r) => setTimeout(r, 300))
  const edge = await startEdge(1024 ** 3)
  let throughput: { edge: autocannon.Result; nginx: autocannon.Result }
  try {
    const tokens = Array.from({ length: HOT_TITLES }, (_, t) => token(t))
    const edgePaths = hotPaths((t) => `/t/${tokens[t]}`)
    for (const p of edgePaths) await (await fetch(`${edge.url}${p}`)).arrayBuffer() // warm
    const nginxUrl = `http://127.0.0.1:${nginxPort}`
    await load(
      nginxUrl,
      hotPaths(() => ''),
    ) // warm the page cache and both JITs alike
    const nginxResult = await load(
      nginxUrl,
      hotPaths(() => ''),
    )
    const edgeResult = await load(edge.url, edgePaths)
    if (edgeResult.non2xx > 0 || nginxResult.non2xx > 0)
      throw new Error(`non-2xx answers under load: edge ${edgeResult.non2xx}, nginx ${nginxResult.non2xx}`)
    throughput = { edge: edgeResult, nginx: nginxResult }
  } finally {
    await stop(edge.child)
  }

  // The audience: a cold edge with room for a third of the catalog.
  const catalogBytes = AUDIENCE_TITLES * SEGMENTS * SEGMENT_BYTES
  const cold = await startEdge(Math.floor(catalogBytes / 3))
  let audience: { requests: number; originFetches: number; originBytes: number }
  try {
    const weights = Array.from({ length: AUDIENCE_TITLES }, (_, k) => 1 / (k + 1))
    const total = weights.reduce((a, b) => a + b, 0)
    let seed = 42
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed / 2 ** 31
    }
    const pick = () => {
      let r = random() * total
      for (let k = 0; k < weights.length; k++) {
        r -= weights[k] ?? 0
        if (r <= 0) return k
      }
      return weights.length - 1
    }
    const tokens = Array.from({ length: AUDIENCE_TITLES }, (_, t) => token(t))
    let requests = 0
    let next = 0
    const viewers = Array.from({ length: VIEWERS }, () => pick())
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < viewers.length) {
          const t = viewers[next++] ?? 0
          for (let n = 0; n < SEGMENTS; n++) {
            const res = await fetch(`${cold.url}/t/${tokens[t]}/${segmentKey(t, n)}`)
            await res.arrayBuffer()
            if (res.status !== 200) throw new Error(`audience fetch answered ${res.status}`)
            requests++
          }
        }
      }),
    )
    const stats = (await (await fetch(`${cold.url}/stats`)).json()) as {
      originFetches: number
      originBytes: number
    }
    audience = { requests, ...stats }
  } finally {
    await stop(cold.child)
  }

  const mbps = (r: autocannon.Result) => (r.throughput.average / 1024 ** 2).toFixed(0)
  const edgeRatio = ratio(throughput.edge.requests.average, throughput.nginx.requests.average)
  const offload = 1 - audience.originFetches / audience.requests
  console.log(
    `edge: ${DURATION_S} s per measurement, ${CONNECTIONS} connections, ${HOT_TITLES * SEGMENTS} segments of ${SEGMENT_BYTES / 1024} KiB`,
  )
  console.log(
    `  nginx (1 worker, sendfile)   ${throughput.nginx.requests.average.toFixed(0).padStart(6)} segments/s  ${mbps(throughput.nginx)} MiB/s  p99 ${throughput.nginx.latency.p99} ms`,
  )
  console.log(
    `  reel edge (warm, 1 process)  ${throughput.edge.requests.average.toFixed(0).padStart(6)} segments/s  ${mbps(throughput.edge)} MiB/s  p99 ${throughput.edge.latency.p99} ms`,
  )
  console.log(`  warm edge = ${edgeRatio.toFixed(2)} of nginx (target ≥ 0.50: ${verdict(edgeRatio, 0.5)})`)
  console.log(
    `  audience: ${VIEWERS} viewers × ${SEGMENTS} segments over ${AUDIENCE_TITLES} titles (Zipf), cache = 1/3 of the catalog: ${audience.requests} requests, ${audience.originFetches} origin fetches → offload ${(offload * 100).toFixed(1)} %`,
  )
} finally {
  nginx.kill('SIGTERM')
  await once(nginx, 'exit')
  fs.rmSync(root, { recursive: true, force: true })
}
