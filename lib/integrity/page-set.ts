// A set of page numbers (up to 2^43 of them, past what 32-bit bitmaps hold): one roaring bitmap
// per chunk of PAGES_PER_CHUNK pages, so runs of pages cost a few bytes and scattered ones two.
import roaring from 'roaring'
import { chunkOf, firstPageOfChunk, PAGES_PER_CHUNK } from '../geometry.js'

const { RoaringBitmap32 } = roaring
type Bitmap = InstanceType<typeof RoaringBitmap32>

export class PageSet {
  readonly #chunks = new Map<number, Bitmap>()

  get isEmpty(): boolean {
    return this.#chunks.size === 0
  }

  /** Chunks that hold members (the set's memory grows with these). */
  get chunkCount(): number {
    return this.#chunks.size
  }

  has(page: number): boolean {
    const c = chunkOf(page)
    return this.#chunks.get(c)?.has(page - firstPageOfChunk(c)) ?? false
  }

  /** Whether every page of [start, end) is in the set. */
  hasRange(start: number, end: number): boolean {
    for (let c = chunkOf(start); start < end; c++) {
      const base = firstPageOfChunk(c)
      const stop = Math.min(end, base + PAGES_PER_CHUNK)
      const bitmap = this.#chunks.get(c)
      if (!bitmap || !bitmap.hasRange(start - base, stop - base)) return false
      start = stop
    }
    return true
  }

  add(page: number): void {
    const c = chunkOf(page)
    this.#bitmap(c).add(page - firstPageOfChunk(c))
  }

  addRange(start: number, end: number): void {
    for (let c = chunkOf(start); start < end; c++) {
      const base = firstPageOfChunk(c)
      const stop = Math.min(end, base + PAGES_PER_CHUNK)
      this.#bitmap(c).addRange(start - base, stop - base)
      start = stop
    }
  }

  delete(page: number): void {
    const c = chunkOf(page)
    const bitmap = this.#chunks.get(c)
    if (!bitmap) return
    bitmap.delete(page - firstPageOfChunk(c))
    if (bitmap.isEmpty) this.#chunks.delete(c)
  }

  deleteRange(start: number, end: number): void {
    for (const c of [...this.#chunks.keys()]) {
      const base = firstPageOfChunk(c)
      if (base + PAGES_PER_CHUNK <= start || base >= end) continue
      const bitmap = this.#chunks.get(c)!
      bitmap.removeRange(Math.max(0, start - base), Math.min(PAGES_PER_CHUNK, end - base))
      if (bitmap.isEmpty) this.#chunks.delete(c)
    }
  }

  /** Drop the chunk holding the fewest members first until at most `chunks` are left (a cache's bound). */
  trimTo(chunks: number): void {
    if (this.#chunks.size <= chunks) return
    const bySize = [...this.#chunks.entries()].sort((a, b) => a[1].size - b[1].size)
    for (const [c] of bySize.slice(0, this.#chunks.size - chunks)) this.#chunks.delete(c)
  }

  clear(): void {
    this.#chunks.clear()
  }

  /** The members, in order. */
  *pages(): Generator<number> {
    for (const c of [...this.#chunks.keys()].sort((a, b) => a - b)) {
      const base = firstPageOfChunk(c)
      for (const local of this.#chunks.get(c)!) yield base + local
    }
  }

  #bitmap(c: number): Bitmap {
    let bitmap = this.#chunks.get(c)
    if (!bitmap) this.#chunks.set(c, (bitmap = new RoaringBitmap32()))
    return bitmap
  }
}
