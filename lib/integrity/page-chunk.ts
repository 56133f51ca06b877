// The members of one chunk of a PageSet (local page numbers 0 … PAGES_PER_CHUNK-1), in plain
// JavaScript: a read checks a page here on every call, and a call into a native bitmap per page
// cost more than the check. A few members are a small Set; past SPARSE_MAX the chunk becomes a bit
// array (PAGES_PER_CHUNK / 8 bytes: 8 KiB), so pages scattered one per chunk do not cost 8 KiB each.
import { PAGES_PER_CHUNK } from '../geometry.js'

const WORDS = PAGES_PER_CHUNK / 32
/** The most members kept as a Set (a Set entry costs several times a bit-array word's share). */
const SPARSE_MAX = 128

export class PageChunk {
  #sparse: Set<number> | undefined = new Set()
  #words: Uint32Array | undefined
  #size = 0

  get size(): number {
    return this.#sparse ? this.#sparse.size : this.#size
  }

  has(i: number): boolean {
    const w = this.#words
    return w ? (w[i >>> 5]! & (1 << (i & 31))) !== 0 : this.#sparse!.has(i)
  }

  /** Whether every page of [start, end) is a member (start < end). */
  hasRange(start: number, end: number): boolean {
    const w = this.#words
    if (!w) {
      if (end - start > this.#sparse!.size) return false
      for (let i = start; i < end; i++) if (!this.#sparse!.has(i)) return false
      return true
    }
    for (let i = start; i < end; ) {
      const word = i >>> 5
      const lo = i & 31
      const hi = Math.min(32, lo + end - i)
      const mask = maskOf(lo, hi)
      if ((w[word]! & mask) !== mask) return false
      i += hi - lo
    }
    return true
  }

  add(i: number): void {
    const w = this.#words
    if (w) {
      const bit = 1 << (i & 31)
      if ((w[i >>> 5]! & bit) === 0) {
        w[i >>> 5]! |= bit
        this.#size++
      }
      return
    }
    this.#sparse!.add(i)
    if (this.#sparse!.size > SPARSE_MAX) this.#densify()
  }

  addRange(start: number, end: number): void {
    if (!this.#words && this.#sparse!.size + end - start > SPARSE_MAX) this.#densify()
    if (!this.#words) {
      for (let i = start; i < end; i++) this.#sparse!.add(i)
      return
    }
    this.#setRange(start, end, true)
  }

  delete(i: number): void {
    const w = this.#words
    if (!w) {
      this.#sparse!.delete(i)
      return
    }
    const bit = 1 << (i & 31)
    if ((w[i >>> 5]! & bit) !== 0) {
      w[i >>> 5]! &= ~bit
      this.#size--
    }
  }

  deleteRange(start: number, end: number): void {
    if (!this.#words) {
      if (end - start < this.#sparse!.size) for (let i = start; i < end; i++) this.#sparse!.delete(i)
      else for (const i of [...this.#sparse!]) if (i >= start && i < end) this.#sparse!.delete(i)
      return
    }
    this.#setRange(start, end, false)
  }

  /** The members, in order. */
  *members(): Generator<number> {
    if (!this.#words) {
      yield* [...this.#sparse!].sort((a, b) => a - b)
      return
    }
    const w = this.#words
    for (let word = 0; word < WORDS; word++) {
      let bits = w[word]!
      while (bits !== 0) {
        const low = bits & -bits
        yield word * 32 + 31 - Math.clz32(low)
        bits ^= low
      }
    }
  }

  #setRange(start: number, end: number, on: boolean): void {
    const w = this.#words!
    for (let i = start; i < end; ) {
      const word = i >>> 5
      const lo = i & 31
      const hi = Math.min(32, lo + end - i)
      const mask = maskOf(lo, hi)
      const before = popcount(w[word]! & mask)
      if (on) {
        w[word]! |= mask
        this.#size += hi - lo - before
      } else {
        w[word]! &= ~mask
        this.#size -= before
      }
      i += hi - lo
    }
  }

  #densify(): void {
    const w = new Uint32Array(WORDS)
    for (const i of this.#sparse!) w[i >>> 5]! |= 1 << (i & 31)
    this.#size = this.#sparse!.size
    this.#words = w
    this.#sparse = undefined
  }
}

/** Bits [lo, hi) of a 32-bit word (0 ≤ lo < hi ≤ 32). */
function maskOf(lo: number, hi: number): number {
  return (-1 >>> (32 - (hi - lo))) << lo
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
}
