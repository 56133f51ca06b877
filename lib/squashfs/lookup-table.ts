// The image's lookup tables (ids, fragments, the export table, xattr ids): fixed-size entries
// packed in metadata blocks, found through an array of 64-bit block positions. The array is read
// a pointer at a time, so a damaged count costs nothing until an entry is asked for.
import type { BlockReader } from './block-reader.js'
import { corrupt } from './corrupt.js'
import { METADATA_SIZE } from './superblock.js'

export class LookupTable {
  readonly #reader: BlockReader
  readonly #name: string
  readonly #indexStart: number
  readonly count: number
  readonly #entrySize: number
  readonly #perBlock: number
  readonly #pointers = new Map<number, number>()

  /**
   * The table `name` of `count` entries of `entrySize` bytes whose block pointers start at
   * `indexStart`; its metadata blocks lie before its pointers, as mksquashfs writes them.
   */
  constructor(reader: BlockReader, name: string, indexStart: number, count: number, entrySize: number) {
    this.#reader = reader
    this.#name = name
    this.#indexStart = indexStart
    this.count = count
    this.#entrySize = entrySize
    this.#perBlock = METADATA_SIZE / entrySize
  }

  /** The bytes of entry `i` (a view into a cached block: copy what must outlive it). */
  entry(i: number): Buffer {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw corrupt(this.#reader.path, `${this.#name}: entry ${i} is past its ${this.count} entries`)
    const blockIndex = Math.floor(i / this.#perBlock)
    const block = this.#reader.metadata(this.#pointer(blockIndex), this.#indexStart, this.#name)
    const offset = (i % this.#perBlock) * this.#entrySize
    if (offset + this.#entrySize > block.length) {
      throw corrupt(this.#reader.path, `${this.#name}: entry ${i} is past the end of its ${block.length}-byte block`)
    }
    return block.data.subarray(offset, offset + this.#entrySize)
  }

  #pointer(blockIndex: number): number {
    const known = this.#pointers.get(blockIndex)
    if (known !== undefined) return known
    const raw = this.#reader.raw(this.#indexStart + blockIndex * 8, 8, `${this.#name} index`).readBigUInt64LE(0)
    if (raw < 96n || raw >= BigInt(this.#indexStart)) throw corrupt(this.#reader.path, `${this.#name}: block ${blockIndex} points at ${raw}, not before the table's index (${this.#indexStart})`)
    const pointer = Number(raw)
    if (this.#pointers.size >= 4096) this.#pointers.clear()
    this.#pointers.set(blockIndex, pointer)
    return pointer
  }
}
