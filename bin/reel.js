#!/usr/bin/env node
// Runs the TypeScript sources through tsx in a checkout with dev dependencies, else the build in dist/.
import { existsSync } from 'node:fs'

const source = new URL('../src/cli/main.ts', import.meta.url)
let tsx
try {
  tsx = existsSync(source) ? await import('tsx/esm/api') : undefined
} catch {
  tsx = undefined
}
if (tsx) {
  tsx.register()
  await import(source.href)
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href)
}
