// Summarises a V8 CPU profile (BENCH_PROFILE=<dir> writes the bench server's): CPU per second of the
// run (to find a phase), then self time by file or package and by function, optionally within a
// window of seconds from the profile's start.
//   npx tsx bench/playback/cpuprofile.ts <file.cpuprofile> [fromS toS] [top]
import fs from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const [file, fromArg, toArg, topArg] = process.argv.slice(2)
if (!file) {
  console.error('usage: cpuprofile.ts <file.cpuprofile> [fromS toS] [top]')
  process.exit(2)
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
const from = fromArg === undefined ? Number.NEGATIVE_INFINITY : Number(fromArg)
const to = toArg === undefined ? Number.POSITIVE_INFINITY : Number(toArg)
const top = Number(topArg ?? 30)
const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
const local = (url: string) => url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '')
const packageOf = (url: string) => {
  const at = url.lastIndexOf('node_modules/')
  if (at < 0) return local(url)
  const [scope, name] = url.slice(at + 'node_modules/'.length).split('/')
  return `npm:${scope?.startsWith('@') ? `${scope}/${name}` : scope}`
}

const perSecond = new Map<number, number>()
const byFile = new Map<string, number>()
const byFunction = new Map<string, number>()
let total = 0
let elapsed = 0
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0
  elapsed += dt
  const frame = nodes.get(id)?.callFrame
  if (!frame) return
  const name = frame.functionName || '(anonymous)'
  const idle = name === '(idle)'
  const second = Math.floor(elapsed / 1e6)
  if (!idle) perSecond.set(second, (perSecond.get(second) ?? 0) + dt)
  const at = elapsed / 1e6
  if (idle || at < from || at > to) return
  total += dt
  const where = frame.url ? packageOf(frame.url) : name
  byFile.set(where, (byFile.get(where) ?? 0) + dt)
  const fn = `${name} ${frame.url ? `${local(frame.url)}:${frame.lineNumber + 1}` : ''}`
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt)
})

const ms = (us: number) => (us / 1000).toFixed(0).padStart(7)
const table = (title: string, m: Map<string, number>) => {
  console.log(title)
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${ms(v)} ms ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`)
}
console.log(
  `busy ms per second: ${[...perSecond].map(([s, v]) => `${s}:${(v / 1000).toFixed(0)}`).join(' ')}`,
)
console.log(`busy ${(total / 1e6).toFixed(2)} s in the window`)
table('self time by file or package', byFile)
table('self time by function', byFunction)
