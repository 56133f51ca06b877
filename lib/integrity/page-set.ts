// A set of page numbers (up to 2^43 of them, past what 32-bit bitmaps hold): one PageChunk per
// chunk of PAGES_PER_CHUNK pages, so a few scattered pages cost a few bytes and a dense chunk
// 8 KiB. Plain JavaScript: reads and writes ask it once or twice per page.
import { chunkOf, firstPageOfChunk, PAGES_PER_CHUNK } from '../geometry.js'
import { PageChunk } from './page-chunk.js'

export class PageSet {
  readonly #chunks = new Map<number, PageChunk>()

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
      const chunk = this.#chunks.get(c)
      if (!chunk || !chunk.hasRange(start - base, stop - base)) return false
      start = stop
    }
    return true
  }

  add(page: number): void {
    const c = chunkOf(page)
    this.#chunk(c).add(page - firstPageOfChunk(c))
  }

  addRange(start: number, end: number): void {
    for (let c = chunkOf(start); start < end; c++) {
      const base = firstPageOfChunk(c)
      const stop = Math.min(end, base + PAGES_PER_CHUNK)
      this.#chunk(c).addRange(start - base, stop - base)
      start = stop
    }
  }

  delete(page: number): void {
    const c = chunkOf(page)
    const chunk = this.#chunks.get(c)
    if (!chunk) return
    chunk.delete(page - firstPageOfChunk(c))
    if (chunk.size === 0) this.#chunks.delete(c)
  }

  deleteRange(start: number, end: number): void {
    if (start >= end) return
    for (const c of [...this.#chunks.keys()]) {
      const base = firstPageOfChunk(c)
      if (base + PAGES_PER_CHUNK <= start || base >= end) continue
      const chunk = this.#chunks.get(c)!
      chunk.deleteRange(Math.max(0, start - base), Math.min(PAGES_PER_CHUNK, end - base))
      if (chunk.size === 0) this.#chunks.delete(c)
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
      for (const local of this.#chunks.get(c)!.members()) yield base + local
    }
  }

  #chunk(c: number): PageChunk {
    let chunk = this.#chunks.get(c)
    if (!chunk) this.#chunks.set(c, (chunk = new PageChunk()))
    return chunk
  }
}
