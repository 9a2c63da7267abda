import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Effects that travel through the bus arrive "soon", not within a second, on a loaded CI machine.
    expect: { poll: { timeout: 15_000 } },
    reporters: ['default'],
    // Servers the tests spawn with `reel start` do not seed the demo catalog on their first start.
    env: { REEL_SEED: 'off' },
  },
})
