import { describe, expect, it } from 'vitest'
import { invertSpdInPlace } from './linalg.js'
import { seededRandom } from './random.js'

describe('invertSpdInPlace', () => {
  it('inverts a 2×2 by hand', () => {
    const a = Float64Array.from([4, 2, 2, 3])
    invertSpdInPlace(a, 2)
    // [[4,2],[2,3]]⁻¹ = 1/8 · [[3,-2],[-2,4]]
    expect([...a].map((x) => Math.round(x * 8 * 1e9) / 1e9)).toEqual([3, -2, -2, 4])
  })

  it.each([1, 3, 4, 5, 8, 37])('A·A⁻¹ = I for a random %i×%i Gram matrix plus a ridge', (n) => {
    const random = seededRandom(n)
    const x = Array.from({ length: 2 * n }, () => Array.from({ length: n }, () => (random() < 0.3 ? 1 : 0)))
    const a = new Float64Array(n * n)
    for (const row of x)
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++)
          a[i * n + j] = (a[i * n + j] as number) + (row[i] as number) * (row[j] as number)
    for (let i = 0; i < n; i++) a[i * n + i] = (a[i * n + i] as number) + 0.5
    const original = a.slice()
    // Only the lower triangle is read: garbage above the diagonal must not matter.
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 1e9
    invertSpdInPlace(a, n)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0
        for (let k = 0; k < n; k++) s += (original[i * n + k] as number) * (a[k * n + j] as number)
        expect(s).toBeCloseTo(i === j ? 1 : 0, 10)
        expect(a[i * n + j]).toBe(a[j * n + i])
      }
  })

  it('refuses a matrix that is not positive definite, and a buffer too small', () => {
    expect(() => invertSpdInPlace(Float64Array.from([1, 2, 2, 1]), 2)).toThrow(
      /not positive definite \(pivot 1/,
    )
    expect(() => invertSpdInPlace(new Float64Array(3), 2)).toThrow(/not 2×2/)
  })
})
