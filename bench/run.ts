// `npm run bench -- <name>` runs bench/<name>/index.ts; without a name, lists them.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const names = fs.readdirSync(here).filter((n) => fs.existsSync(path.join(here, n, 'index.ts')))
const name = process.argv[2]
if (!name || !names.includes(name)) {
  console.log(`usage: npm run bench -- <${names.join('|')}>`)
  process.exit(name ? 2 : 0)
}
await import(pathToFileURL(path.join(here, name, 'index.ts')).href)
