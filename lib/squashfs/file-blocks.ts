// Where a file's blocks are: a file's data blocks lie back to back from its start, so block i
// starts at the sum of the stored sizes before it, which the list after the inode gives. That
// list is read lazily, with a checkpoint every STRIDE blocks and the last position kept, so a
// sequential read costs one size per block and a seek costs at most STRIDE sizes, whatever the
// size of the file, and memory stays at 16 bytes per STRIDE blocks of the part read.
import type { BlockReader } from './block-reader.js'
import { corrupt } from './corrupt.js'
import type { FileInode } from './inode.js'
import { MetadataCursor, type TableBounds } from './metadata-cursor.js'

const STRIDE = 1024
const SIZE_MASK = (1 << 24) - 1
/** The uncompressed bit and the 24 bits of the stored size; any other bit set is damage. */
const VALID_BITS = (1 << 25) - 1

/** Block i of a file: where it lies and its size entry (0: a sparse block, all zeros). */
export interface BlockLocation {
  position: number
  entry: number
}

export class FileBlocks {
  readonly #reader: BlockReader
  readonly #table: TableBounds
  readonly #file: FileInode
  readonly #end: number
  readonly #blockSize: number
  /** Checkpoint k: block k × STRIDE starts at #starts[k]; its size entry is at #lists[k]. */
  readonly #starts: number[] = []
  readonly #lists: Array<{ block: number; offset: number }> = []
  /** The last block located, and a cursor just after its size entry. */
  #lastIndex = -1
  #lastPosition = 0
  #lastEntry = 0
  #cursor: MetadataCursor | null = null

  constructor(reader: BlockReader, inodeTable: TableBounds, file: FileInode, imageEnd: number, blockSize: number) {
    this.#reader = reader
    this.#table = inodeTable
    this.#file = file
    this.#end = imageEnd
    this.#blockSize = blockSize
    this.#starts.push(file.blocksStart)
    this.#lists.push(file.blockList)
  }

  /** Where block `i` (0 ≤ i < blockCount) lies. */
  locate(i: number): BlockLocation {
    if (i === this.#lastIndex) return { position: this.#lastPosition, entry: this.#lastEntry }
    if (!(i > this.#lastIndex && i - this.#lastIndex <= STRIDE && this.#cursor !== null)) {
      const k = Math.min(Math.floor(i / STRIDE), this.#starts.length - 1)
      const list = this.#lists[k]!
      this.#cursor = new MetadataCursor(this.#reader, this.#table, list.block, list.offset)
      this.#lastIndex = k * STRIDE - 1
      this.#lastPosition = this.#starts[k]!
      this.#lastEntry = 0
    }
    const cursor = this.#cursor!
    let position = this.#lastPosition + (this.#lastEntry & SIZE_MASK)
    let entry = this.#lastEntry
    for (let j = this.#lastIndex + 1; j <= i; j++) {
      if (j > 0 && j % STRIDE === 0 && j / STRIDE === this.#starts.length) {
        this.#starts.push(position)
        this.#lists.push(cursor.position())
      }
      entry = cursor.u32()
      if ((entry & ~VALID_BITS) !== 0 || (entry & SIZE_MASK) > this.#blockSize) {
        throw corrupt(this.#reader.path, `the file at inode ${this.#file.inodeNumber}: block ${j} has a bad size entry ${entry.toString(16)}`)
      }
      if (j < i) position += entry & SIZE_MASK
    }
    if (position + (entry & SIZE_MASK) > this.#end) {
      throw corrupt(this.#reader.path, `the file at inode ${this.#file.inodeNumber}: block ${i} at ${position} runs past the end of the image (sizes do not add up)`)
    }
    this.#lastIndex = i
    this.#lastPosition = position
    this.#lastEntry = entry
    return { position, entry }
  }
}
