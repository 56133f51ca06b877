// Reads the image's blocks: metadata blocks (a 2-byte header, then up to 8 KiB) and data or
// fragment blocks (sized by their entry), decompressed through one bounded cache. Every position
// and size read from the image is checked against the image before it is used.
import * as fs from '../fs.js'
import { fromSystemError } from '../errors.js'
import { BlockCache } from './block-cache.js'
import { corrupt } from './corrupt.js'
import type { Decompressor } from './decompressor.js'
import { METADATA_SIZE } from './superblock.js'

/** A decompressed metadata block and the position of the block after it. */
export interface MetadataBlock {
  data: Buffer
  next: number
  length: number
}

/** What the cache holds: a metadata block, or a data block (in a recycled buffer if `pooled`). */
interface CachedBlock extends MetadataBlock {
  pooled: Buffer | null
}

/** Bytes of a metadata table read at once, and the windows kept (see #tableBytes). */
const WINDOW_BYTES = 64 << 10
const WINDOWS = 2

/** Recycled data-block buffers kept for reuse, at most. */
const FREE_BUFFERS = 8

/** The bit of a data block's size entry that says it is stored uncompressed. */
export const DATA_UNCOMPRESSED = 1 << 24
const DATA_SIZE_MASK = DATA_UNCOMPRESSED - 1

export class BlockReader {
  readonly path: string
  readonly #fd: number
  readonly #end: number
  readonly #decompressor: Decompressor
  readonly #compressorName: string
  readonly #cache: BlockCache<CachedBlock>
  readonly #blockSize: number
  #scratch = Buffer.alloc(0)
  /** Metadata read ahead: the latest windows of the tables (see #tableBytes). */
  readonly #windows: Array<{ start: number; length: number; buf: Buffer }> = []
  /**
   * Data-block buffers given back by the cache. A decompressor's output is copied into one of
   * these and dropped at once: short-lived garbage is freed by V8's next scavenge, while a
   * buffer that lived in the cache would reach the old generation and stay (with the process's
   * RSS) until the next full collection, which external memory triggers only every 64 MB.
   */
  readonly #free: Buffer[] = []
  /** Counters for tests and benchmarks: blocks read from the file (cache misses). */
  metadataReads = 0
  dataReads = 0

  /** `end`: the bytes of the image in use; nothing past it is read. */
  constructor(path: string, fd: number, end: number, blockSize: number, decompressor: Decompressor, compressorName: string, cacheBytes: number) {
    this.path = path
    this.#fd = fd
    this.#end = end
    this.#blockSize = blockSize
    this.#decompressor = decompressor
    this.#compressorName = compressorName
    this.#cache = new BlockCache<CachedBlock>(cacheBytes, (block) => {
      if (block.pooled !== null && this.#free.length < FREE_BUFFERS) this.#free.push(block.pooled)
    })
  }

  get cache(): { bytes: number; hits: number; misses: number } {
    return { bytes: this.#cache.bytes, hits: this.#cache.hits, misses: this.#cache.misses }
  }

  /** `length` raw bytes at `position`, all inside the image (else ECORRUPT naming `what`). */
  raw(position: number, length: number, what: string): Buffer {
    return this.#rawInto(Buffer.allocUnsafe(length), position, length, what)
  }

  /**
   * The same bytes in a scratch buffer reused by every call: for input that is decompressed at
   * once and dropped. Every block read would otherwise leave its compressed bytes as garbage,
   * and garbage buffers are what a Node process's RSS grows with between collections.
   */
  #scratchRaw(position: number, length: number, what: string): Buffer {
    if (this.#scratch.length < length) this.#scratch = Buffer.allocUnsafe(Math.max(length, METADATA_SIZE))
    return this.#rawInto(this.#scratch, position, length, what)
  }

  /**
   * `length` bytes at `position` of a metadata table that ends at `limit`, out of a window of
   * the table read ahead: a walk reads the inode and directory tables block after block, and one
   * read of 64 KiB costs the disk one wait where sixteen small reads cost sixteen (the kernel
   * reads its squashfs through the block layer's readahead). Two windows, one per table a walk
   * goes back and forth between. The bytes are a view: use them before the next call.
   */
  #tableBytes(position: number, length: number, limit: number, what: string): Buffer {
    for (const w of this.#windows) {
      if (position >= w.start && position + length <= w.start + w.length) return w.buf.subarray(position - w.start, position - w.start + length)
    }
    const w = this.#windows.length < WINDOWS ? { start: 0, length: 0, buf: Buffer.allocUnsafeSlow(WINDOW_BYTES) } : this.#windows.shift()!
    const want = Math.max(length, Math.min(WINDOW_BYTES, limit - position, this.#end - position))
    if (want > w.buf.length) w.buf = Buffer.allocUnsafeSlow(want)
    w.length = 0
    this.#rawInto(w.buf, position, want, what)
    w.start = position
    w.length = want
    this.#windows.push(w)
    return w.buf.subarray(0, length)
  }

  #rawInto(buf: Buffer, position: number, length: number, what: string): Buffer {
    if (position < 0 || length < 0 || position + length > this.#end) {
      throw corrupt(this.path, `${what} at ${position} (+${length} bytes) lies past the end of the image (${this.#end} bytes used)`)
    }
    let done = 0
    while (done < length) {
      let n: number
      try {
        n = fs.readSync(this.#fd, buf, done, length - done, position + done)
      } catch (err) {
        throw fromSystemError(err, `reading the squashfs image ${this.path}`)
      }
      if (n === 0) throw corrupt(this.path, `truncated: ${what} at ${position} ends past the end of the file`)
      done += n
    }
    return buf.subarray(0, length)
  }

  /** The metadata block starting at `position`, which must end by `limit` (the table's end). */
  metadata(position: number, limit: number, what: string): MetadataBlock {
    const key = position * 2 + 1
    const hit = this.#cache.get(key)
    if (hit !== undefined) return hit
    if (position + 2 > limit) throw corrupt(this.path, `${what}: a metadata block at ${position} lies past the end of its table (${limit})`)
    const header = this.#tableBytes(position, 2, limit, `${what} metadata block header`).readUInt16LE(0)
    const size = header & 0x7fff
    const stored = (header & 0x8000) !== 0
    if (size === 0 || size > METADATA_SIZE) throw corrupt(this.path, `${what}: the metadata block at ${position} claims ${size} bytes (1 to ${METADATA_SIZE})`)
    if (position + 2 + size > limit) throw corrupt(this.path, `${what}: the metadata block at ${position} runs past the end of its table (${limit})`)
    const bytes = this.#tableBytes(position + 2, size, limit, `${what} metadata block`)
    const data = stored ? Buffer.from(bytes) : this.#decompress(bytes, METADATA_SIZE, `${what}: the metadata block at ${position}`)
    this.metadataReads++
    const block = { data, next: position + 2 + size, length: data.length, pooled: null }
    this.#cache.set(key, block)
    return block
  }

  /**
   * The data or fragment block at `position` with size entry `entry` (not 0: a sparse block has
   * no bytes), decompressed; its length is checked by the caller, who knows what it should be.
   * The buffer may be recycled by a later call: copy what you need before the next one.
   */
  data(position: number, entry: number, what: string): Buffer {
    const key = position * 2
    const hit = this.#cache.get(key)
    if (hit !== undefined) return hit.data
    const maxOut = this.#blockSize
    const size = entry & DATA_SIZE_MASK
    const stored = (entry & DATA_UNCOMPRESSED) !== 0
    if (size === 0 || size > maxOut) throw corrupt(this.path, `${what} at ${position} claims ${size} bytes stored (1 to ${maxOut})`)
    const pooled = this.#free.pop() ?? Buffer.allocUnsafeSlow(maxOut)
    let data: Buffer
    if (stored) {
      data = this.#rawInto(pooled, position, size, what)
    } else {
      const out = this.#decompress(this.#scratchRaw(position, size, what), maxOut, `${what} at ${position}`)
      out.copy(pooled)
      data = pooled.subarray(0, out.length)
    }
    this.dataReads++
    // The cache counts the whole buffer, which is what it holds.
    this.#cache.set(key, { data, next: 0, length: pooled.length, pooled })
    return data
  }

  #decompress(src: Buffer, maxOut: number, what: string): Buffer {
    let out: Buffer
    try {
      out = this.#decompressor.decompress(src, maxOut)
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err)
      throw corrupt(this.path, `${what}: ${this.#compressorName} cannot decompress it (${detail})`, err)
    }
    if (out.length > maxOut) throw corrupt(this.path, `${what}: decompresses to ${out.length} bytes, more than ${maxOut}`)
    // A decompressor may hand back a view of a block-sized buffer (zlib, lzo do for a short
    // output): the cache counts what a view shows, so keep a copy of the right size instead.
    return out.byteLength * 2 < out.buffer.byteLength ? Buffer.from(out) : out
  }

  clear(): void {
    this.#cache.clear()
    this.#windows.length = 0
  }
}
