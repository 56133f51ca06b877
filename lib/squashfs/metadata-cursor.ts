// A read position in a metadata table: the stream of bytes that a run of metadata blocks holds,
// where a record may start in one block and end in the next. Positions only move forward, block
// by block, and never past the table's end, so no damaged image can make a read loop.
import type { BlockReader, MetadataBlock } from './block-reader.js'
import { corrupt } from './corrupt.js'

/** A table's bounds: metadata blocks of it lie in [start, end). */
export interface TableBounds {
  name: string
  start: number
  end: number
}

export class MetadataCursor {
  readonly #reader: BlockReader
  readonly #table: TableBounds
  #block: number
  #offset: number
  #current: MetadataBlock

  /** A cursor at byte `offset` of the decompressed block at `block` (an absolute position). */
  constructor(reader: BlockReader, table: TableBounds, block: number, offset: number) {
    this.#reader = reader
    this.#table = table
    if (block < table.start) throw corrupt(reader.path, `${table.name}: a reference to ${block} points before the table (${table.start})`)
    this.#block = block
    this.#current = reader.metadata(block, table.end, table.name)
    if (offset >= this.#current.length) {
      throw corrupt(reader.path, `${table.name}: offset ${offset} is past the end of the ${this.#current.length}-byte metadata block at ${block}`)
    }
    this.#offset = offset
  }

  /** The next `n` bytes (a view when they lie in one block, else a copy). */
  read(n: number): Buffer {
    if (this.#offset === this.#current.length && n > 0) this.#advance()
    const { data } = this.#current
    if (this.#offset + n <= data.length) {
      const out = data.subarray(this.#offset, this.#offset + n)
      this.#offset += n
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let done = 0
    while (done < n) {
      if (this.#offset === this.#current.length) this.#advance()
      const cur = this.#current.data
      const take = Math.min(n - done, cur.length - this.#offset)
      cur.copy(out, done, this.#offset, this.#offset + take)
      done += take
      this.#offset += take
    }
    return out
  }

  skip(n: number): void {
    while (n > 0) {
      if (this.#offset === this.#current.length) this.#advance()
      const take = Math.min(n, this.#current.length - this.#offset)
      this.#offset += take
      n -= take
    }
  }

  u16(): number {
    return this.read(2).readUInt16LE(0)
  }

  i16(): number {
    return this.read(2).readInt16LE(0)
  }

  u32(): number {
    return this.read(4).readUInt32LE(0)
  }

  /** A 64-bit value; one past 2^53 is damage (no image is that large). */
  u64(what: string): number {
    const v = this.read(8).readBigUInt64LE(0)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(this.#reader.path, `${this.#table.name}: ${what} is ${v}, beyond any image`)
    return Number(v)
  }

  /**
   * The position of the next byte as a (block, offset) pair that a new cursor can start from. At
   * the end of a block that is the start of the next one: read lazily, since a record may end
   * exactly where the table ends.
   */
  position(): { block: number; offset: number } {
    if (this.#offset === this.#current.length) return { block: this.#current.next, offset: 0 }
    return { block: this.#block, offset: this.#offset }
  }

  /** Step into the next block, which must lie in the table. */
  #advance(): void {
    const next = this.#current.next
    if (next >= this.#table.end) throw corrupt(this.#reader.path, `${this.#table.name}: a record runs past the end of the table (${this.#table.end})`)
    this.#current = this.#reader.metadata(next, this.#table.end, this.#table.name)
    this.#block = next
    this.#offset = 0
  }
}
