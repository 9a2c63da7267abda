import { type ChildProcess, spawn } from 'node:child_process'

/** Starts bench/server.ts in a child process and resolves with its URL. */
export function startServer(
  mode: 'bare' | 'platform',
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess }> {
  return startScript('bench/server.ts', [mode], env)
}

/**
 * The V8 flags reel's servers start with (`npm run bench` passes package.json's, as `npm start`
 * does): benches hand them to the servers they start in child processes.
 */
export const SERVER_FLAGS = process.execArgv.filter((a) => a.startsWith('--max-semi-space-size'))

/** Runs a TypeScript server script that prints its URL once listening; resolves with that URL. */
export function startScript(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...SERVER_FLAGS, '--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, REEL_LOG_LEVEL: 'warn', ...env },
  })
  let out = ''
  let listening = false
  return new Promise((resolve, reject) => {
    // Keep reading stdout after the URL: a full pipe would stall the server's log writes.
    child.stdout?.on('data', (chunk: Buffer) => {
      if (listening) return
      out += String(chunk)
      const url = /(http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(out)?.[1]
      if (url) {
        listening = true
        resolve({ url, child })
      }
    })
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before listening`)))
  })
}

export const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b)

export function verdict(value: number, target: number, better: 'higher' | 'lower' = 'higher'): string {
  const met = better === 'higher' ? value >= target : value <= target
  return met ? 'met' : 'NOT met'
}
