#!/usr/bin/env -S node --max-semi-space-size=64
// --max-semi-space-size=64 (also in package.json's start and bench scripts): a young generation of
// up to 64 MB a semispace instead of 16. A server holding a large index in its heap pays ~2 ms a
// young collection for walking that heap, whatever survives; fewer, larger collections keep them out
// of most requests (bench/search). Started as `node bin/reel.js`, Node's defaults apply.
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
