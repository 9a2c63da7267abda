/**
 * Keeps the k best (score, index) pairs seen, best first; ties go to the lower index so results
 * are deterministic. Insertion into a sorted run: k is small (tens) and most candidates lose to
 * the current k-th at the first comparison.
 */
export class TopK {
  readonly ids: Int32Array
  readonly scores: Float64Array
  size = 0

  constructor(readonly k: number) {
    this.ids = new Int32Array(k)
    this.scores = new Float64Array(k)
  }

  reset(): void {
    this.size = 0
  }

  offer(id: number, score: number): void {
    const k = this.k
    if (k === 0 || Number.isNaN(score)) return
    let at = this.size
    if (at === k) {
      const last = this.scores[k - 1] as number
      if (score < last || (score === last && id > (this.ids[k - 1] as number))) return
      at = k - 1
    } else this.size++
    while (at > 0) {
      const s = this.scores[at - 1] as number
      if (s > score || (s === score && (this.ids[at - 1] as number) < id)) break
      this.scores[at] = s
      this.ids[at] = this.ids[at - 1] as number
      at--
    }
    this.scores[at] = score
    this.ids[at] = id
  }

  /** Writes the list into row `row` of a row-major k-wide output, -1 / 0 past its end. */
  writeTo(row: number, ids: Int32Array, scores: Float32Array): void {
    const base = row * this.k
    for (let r = 0; r < this.k; r++) {
      if (r < this.size) {
        ids[base + r] = this.ids[r] as number
        scores[base + r] = this.scores[r] as number
      } else {
        ids[base + r] = -1
        scores[base + r] = 0
      }
    }
  }
}
