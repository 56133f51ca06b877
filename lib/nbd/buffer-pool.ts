// Read buffers reused across requests: a 256 KiB READ reply each time is otherwise a fresh
// allocation and garbage for the collector, and that cost showed up in sequential reads.

/** Buffers kept for reuse, in bytes, at most (by default). */
const MAX_POOLED_BYTES = 64 * 1024 * 1024
/** Smaller requests are cheap to allocate; not worth pooling. */
const MIN_POOLED_BYTES = 64 * 1024

export class BufferPool {
  /** Free buffers by size class (a power of two). */
  readonly #free = new Map<number, Buffer[]>()
  readonly #max: number
  #pooled = 0

  /** Keep at most `maxBytes` of free buffers. */
  constructor(maxBytes = MAX_POOLED_BYTES) {
    this.#max = Math.min(maxBytes, MAX_POOLED_BYTES)
  }

  /** Bytes of free buffers kept now. */
  get pooledBytes(): number {
    return this.#pooled
  }

  /** Let go of every free buffer (nothing to serve for now: the memory goes back). */
  clear(): void {
    this.#free.clear()
    this.#pooled = 0
  }

  /** A buffer of exactly `length` bytes, contents undefined. Give it back with release(). */
  take(length: number): Buffer {
    if (length < MIN_POOLED_BYTES) return Buffer.allocUnsafe(length)
    const size = sizeClass(length)
    const buf = this.#free.get(size)?.pop()
    if (buf) {
      this.#pooled -= size
      return buf.subarray(0, length)
    }
    return Buffer.allocUnsafe(size).subarray(0, length)
  }

  /** Return a buffer from take() once nothing reads it any more (the socket wrote it). */
  release(buf: Buffer): void {
    const size = buf.buffer.byteLength
    if (buf.length < MIN_POOLED_BYTES || buf.byteOffset !== 0 || size !== sizeClass(size)) return
    if (this.#pooled + size > this.#max) return
    const list = this.#free.get(size) ?? []
    list.push(Buffer.from(buf.buffer, 0, size))
    this.#free.set(size, list)
    this.#pooled += size
  }
}

function sizeClass(length: number): number {
  return 2 ** Math.ceil(Math.log2(length))
}
