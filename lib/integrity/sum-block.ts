// One block of SUMS_PER_BLOCK page checksums (0n: no sum), in memory and as stored. Pages written
// far apart leave most blocks nearly empty: such a block is a few entries in memory and 10 bytes a
// sum on disk, not 8 KiB (a store of 10⁶ scattered pages would otherwise hold gigabytes of zeros
// in its database, and pin them in memory until its first flush). A block that fills up turns
// dense: 1024 sums in a row, 8 bytes each, in memory and on disk.
//
// Stored form, told apart by length: dense is exactly SUMS_PER_BLOCK × 8 bytes (u64 LE each);
// sparse is (u16 LE index, u64 LE sum) pairs in index order, at most SPARSE_MAX_STORED of them
// (so never that length).

export const SUMS_PER_BLOCK = 1024
const DENSE_BYTES = SUMS_PER_BLOCK * 8
const PAIR_BYTES = 10
/** The most sums stored sparse: more would take as many bytes as the dense form. */
const SPARSE_MAX_STORED = Math.floor((DENSE_BYTES - 1) / PAIR_BYTES)
/** The most sums kept as a map in memory (a map entry costs several times a dense slot). */
const SPARSE_MAX_IN_MEMORY = 64

export class SumBlock {
  #sparse: Map<number, bigint> | undefined = new Map()
  #dense: BigUint64Array | undefined

  get(index: number): bigint {
    return this.#dense ? this.#dense[index]! : (this.#sparse!.get(index) ?? 0n)
  }

  /** Copy the sums of [start, end) into out from `at` (0n: no sum). */
  copyInto(start: number, end: number, out: BigUint64Array, at: number): void {
    if (this.#dense) {
      out.set(this.#dense.subarray(start, end), at)
      return
    }
    out.fill(0n, at, at + end - start)
    for (const [i, sum] of this.#sparse!) if (i >= start && i < end) out[at + i - start] = sum
  }

  /** Set the sum at `index`; returns whether it changed. */
  set(index: number, sum: bigint): boolean {
    if (this.get(index) === sum) return false
    if (this.#dense) this.#dense[index] = sum
    else if (sum === 0n) this.#sparse!.delete(index)
    else {
      this.#sparse!.set(index, sum)
      if (this.#sparse!.size > SPARSE_MAX_IN_MEMORY) this.#densify()
    }
    return true
  }

  /** The stored form (a copy: later changes do not touch it). */
  encode(): Buffer {
    const entries = this.#entries()
    if (entries.length > SPARSE_MAX_STORED) {
      const out = Buffer.alloc(DENSE_BYTES)
      for (const [i, sum] of entries) out.writeBigUInt64LE(sum, i * 8)
      return out
    }
    const out = Buffer.alloc(entries.length * PAIR_BYTES)
    entries.forEach(([i, sum], n) => {
      out.writeUInt16LE(i, n * PAIR_BYTES)
      out.writeBigUInt64LE(sum, n * PAIR_BYTES + 2)
    })
    return out
  }

  /** A block from its stored form; undefined if the bytes cannot be one. */
  static decode(bytes: Uint8Array): SumBlock | undefined {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const block = new SumBlock()
    if (b.length === DENSE_BYTES) {
      block.#sparse = undefined
      block.#dense = new BigUint64Array(SUMS_PER_BLOCK)
      new Uint8Array(block.#dense.buffer).set(b)
      return block
    }
    if (b.length % PAIR_BYTES !== 0 || b.length / PAIR_BYTES > SPARSE_MAX_STORED) return undefined
    // Straight into the form set() would end in, a dense block without a BigInt per sum: a block
    // is decoded on the first read of any of its pages after every open.
    const count = b.length / PAIR_BYTES
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
    const dense = count > SPARSE_MAX_IN_MEMORY ? new BigUint64Array(SUMS_PER_BLOCK) : undefined
    const halves = dense ? new DataView(dense.buffer) : undefined
    let last = -1
    for (let at = 0; at < b.length; at += PAIR_BYTES) {
      const i = view.getUint16(at, true)
      const lo = view.getUint32(at + 2, true)
      const hi = view.getUint32(at + 6, true)
      if (i <= last || i >= SUMS_PER_BLOCK || (lo === 0 && hi === 0)) return undefined // not as encode() writes
      last = i
      if (halves) {
        halves.setUint32(i * 8, lo, true)
        halves.setUint32(i * 8 + 4, hi, true)
      } else block.#sparse!.set(i, (BigInt(hi) << 32n) | BigInt(lo))
    }
    if (dense) {
      block.#sparse = undefined
      block.#dense = dense
    }
    return block
  }

  /** The non-zero sums, by index. */
  #entries(): Array<[number, bigint]> {
    if (!this.#dense) return [...this.#sparse!].sort((a, b) => a[0] - b[0])
    const out: Array<[number, bigint]> = []
    for (let i = 0; i < SUMS_PER_BLOCK; i++) if (this.#dense[i] !== 0n) out.push([i, this.#dense[i]!])
    return out
  }

  #densify(): void {
    this.#dense = new BigUint64Array(SUMS_PER_BLOCK)
    for (const [i, sum] of this.#sparse!) this.#dense[i] = sum
    this.#sparse = undefined
  }
}
