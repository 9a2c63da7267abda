import { describe, expect, it } from 'vitest'
import { acceptsGzip } from './encoding.js'

describe('acceptsGzip', () => {
  it('reads gzip, x-gzip and * with their q values, the same way every time', () => {
    const cases: [string | string[] | undefined, boolean][] = [
      ['gzip, deflate, br, zstd', true],
      ['GZIP', true],
      ['x-gzip', true],
      ['br;q=1.0, gzip;q=0.8, *;q=0.1', true],
      ['*', true],
      ['gzip;q=0', false],
      ['identity', false],
      ['br, *;q=0', false],
      ['*;q=0.5, gzip;q=0', false],
      ['gzip;q=nonsense', false],
      [['br', 'gzip'], true],
      ['', false],
      [undefined, false],
    ]
    for (let round = 0; round < 3; round++)
      for (const [header, expected] of cases)
        expect(acceptsGzip(header), JSON.stringify(header)).toBe(expected)
  })

  it('keeps answering right past the number of values it remembers', () => {
    for (let i = 0; i < 1_000; i++) {
      expect(acceptsGzip(`br;q=0.${i % 10}, gzip;q=${i % 2}`)).toBe(i % 2 === 1)
      expect(acceptsGzip(`deflate, x-custom-${i}`)).toBe(false)
    }
  })
})
