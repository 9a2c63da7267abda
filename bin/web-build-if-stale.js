#!/usr/bin/env node
// Before `npm start`: builds the web app when dist/web is missing or older than its sources, so the
// quick start serves the app without a separate build step (and without rebuilding every start).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const built = path.join(root, 'dist', 'web', 'index.html')

function newest(dir) {
  let latest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : fs.statSync(full).mtimeMs)
  }
  return latest
}

const sources = Math.max(newest(path.join(root, 'web')), newest(path.join(root, 'src')))
const stale = !fs.existsSync(built) || fs.statSync(built).mtimeMs < sources
if (stale && fs.existsSync(path.join(root, 'node_modules', 'vite'))) {
  console.log('building the web app…')
  const result = spawnSync(
    process.execPath,
    [
      path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'),
      'build',
      '--config',
      'web/vite.config.ts',
      '--logLevel',
      'warn',
    ],
    { cwd: root, stdio: 'inherit' },
  )
  if (result.status !== 0) process.exit(result.status ?? 1)
}
