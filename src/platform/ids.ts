import { randomFillSync } from 'node:crypto'
import { V7Generator } from 'uuidv7'

/**
 * Random 32-bit words for ids from a pool refilled 1,024 words at a time: the library's default
 * refills its 8 words with crypto.getRandomValues, a call that cost more than the rest of making
 * an id (a play start makes two).
 */
class RandomPool {
  readonly #words = new Uint32Array(1024)
  #next = this.#words.length

  nextUint32(): number {
    if (this.#next === this.#words.length) {
      randomFillSync(this.#words)
      this.#next = 0
    }
    return this.#words[this.#next++] as number
  }
}

const generator = new V7Generator(new RandomPool())

/** Opaque, time-sortable id (UUIDv7). */
export const newId = (): string => generator.generate().toString()
