// The page states of one file: chunks loaded on demand, dirty chunks kept until a flush.
import { PAGES_PER_CHUNK, chunkOf, firstPageOfChunk } from '../geometry.js'
import { Chunk, type ChunkRecord, type PageRun } from './chunk.js'
import type { PageState } from './page-state.js'

/** Where a page map's chunks persist (the database); see ChunkTable. */
export interface ChunkSource {
  load(chunk: number): ChunkRecord | undefined
  /** The smallest persisted chunk index at or after `chunk`. */
  nextPersisted(chunk: number): number | undefined
}

/** A dirty chunk captured for a flush. */
export interface ChunkSnapshot extends ChunkRecord {
  chunk: number
  version: number
}

export interface PageCounts {
  data: number
  zero: number
}

/** Clean chunks kept in memory; dirty ones are never evicted. 1024 chunks is at most 16 MiB. */
const DEFAULT_CACHE_CHUNKS = 1024

export class PageMap {
  readonly #source: ChunkSource
  readonly #where: string
  readonly #cacheLimit: number
  /** Chunks in memory, least recently used first. */
  readonly #cache = new Map<number, Chunk>()
  /** Chunks changed since their last flush: pinned in #cache. */
  readonly #dirty = new Set<number>()
  /** Chunks known to be absent from the database: reads of untouched regions skip the query. */
  readonly #absent = new Set<number>()
  /** The chunk last moved to the back of #cache's order (-1: none). */
  #newest = -1
  /** Answers of source.nextPersisted(); the database changes only at commit() and reload(). */
  readonly #nextPersisted = new Map<number, number | undefined>()
  readonly #counts: PageCounts

  constructor(source: ChunkSource, counts: PageCounts, where: string, cacheLimit = DEFAULT_CACHE_CHUNKS) {
    this.#source = source
    this.#counts = { ...counts }
    this.#where = where
    this.#cacheLimit = cacheLimit
  }

  /** Pages in DATA and ZERO state, across the whole file. */
  get counts(): PageCounts {
    return { ...this.#counts }
  }

  get isDirty(): boolean {
    return this.#dirty.size > 0
  }

  stateOf(page: number): PageState {
    const chunk = this.#chunk(chunkOf(page), false)
    return chunk ? chunk.stateOf(page - firstPageOfChunk(chunkOf(page))) : 'lower'
  }

  /** Put pages [startPage, endPage) into `state`. */
  set(startPage: number, endPage: number, state: PageState): void {
    let c = chunkOf(startPage)
    while (startPage < endPage) {
      if (state === 'lower') {
        // Clearing touches only chunks that exist: truncating a 1 TiB file stays cheap.
        const next = this.#nextPresentChunk(c)
        if (next === undefined || firstPageOfChunk(next) >= endPage) return
        c = next
        startPage = Math.max(startPage, firstPageOfChunk(c))
      }
      const base = firstPageOfChunk(c)
      const stop = Math.min(endPage, base + PAGES_PER_CHUNK)
      const chunk = this.#chunk(c, true)!
      const delta = chunk.set(startPage - base, stop - base, state)
      this.#counts.data += delta.data
      this.#counts.zero += delta.zero
      if (chunk.isDirty) this.#dirty.add(c)
      startPage = stop
      c++
    }
  }

  /** Maximal runs of one state covering pages [startPage, endPage), adjacent runs merged. */
  *runs(startPage: number, endPage: number): Generator<PageRun> {
    // One generator level, and run objects passed up as made: a map of millions of scattered
    // pages is millions of runs.
    let pending: PageRun | undefined
    let page = startPage
    while (page < endPage) {
      const c = chunkOf(page)
      const chunk = this.#chunk(c, false)
      const base = firstPageOfChunk(c)
      let stop: number
      let runs: Iterable<PageRun>
      if (chunk) {
        stop = Math.min(endPage, base + PAGES_PER_CHUNK)
        runs = chunk.runs(page - base, stop - base, base)
      } else {
        // Skip the chunks nobody wrote in one step: they are all LOWER.
        const next = this.#nextPresentChunk(c + 1)
        stop = next === undefined ? endPage : Math.min(endPage, firstPageOfChunk(next))
        runs = [{ start: page, end: stop, state: 'lower' }]
      }
      for (const run of runs) {
        if (pending && pending.state === run.state && pending.end === run.start) {
          pending.end = run.end
        } else {
          if (pending) yield pending
          pending = run
        }
      }
      page = stop
    }
    if (pending) yield pending
  }

  /** Capture every dirty chunk for a flush; chunks changed afterwards stay dirty. */
  snapshot(): ChunkSnapshot[] {
    const out: ChunkSnapshot[] = []
    for (const c of this.#dirty) {
      const chunk = this.#cache.get(c)!
      out.push({ chunk: c, version: chunk.version, ...chunk.encode() })
    }
    return out
  }

  /** The snapshot is in the database: its chunks are clean unless changed since. */
  committed(snapshot: ChunkSnapshot[]): void {
    this.#nextPersisted.clear()
    for (const saved of snapshot) {
      const chunk = this.#cache.get(saved.chunk)
      if (!chunk) continue
      chunk.savedVersion = saved.version
      if (!chunk.isDirty) this.#dirty.delete(saved.chunk)
    }
    this.#evict()
  }

  /** Forget every clean chunk (another process committed; the database is newer). */
  reload(counts: PageCounts): void {
    for (const c of [...this.#cache.keys()]) if (!this.#dirty.has(c)) this.#cache.delete(c)
    this.#absent.clear()
    this.#nextPersisted.clear()
    Object.assign(this.#counts, counts)
  }

  #chunk(c: number, create: boolean): Chunk | undefined {
    const cached = this.#cache.get(c)
    if (cached) {
      // Moved to the back of the LRU order, unless it is there already (reads of one region,
      // a read going down a chain of stores: a lookup per page per layer).
      if (c !== this.#newest) {
        this.#cache.delete(c)
        this.#cache.set(c, cached)
        this.#newest = c
      }
      return cached
    }
    if (!create && this.#absent.has(c)) return undefined
    const record = this.#source.load(c)
    if (!record && !create) {
      if (this.#absent.size >= this.#cacheLimit) this.#absent.clear()
      this.#absent.add(c)
      return undefined
    }
    this.#absent.delete(c)
    const chunk = record ? Chunk.decode(record, `${this.#where}, chunk ${c}`) : Chunk.empty()
    // Make room first: the chunk handed out must stay cached, or a change to it would be lost.
    this.#evict(this.#cacheLimit - 1)
    this.#cache.set(c, chunk)
    this.#newest = c
    return chunk
  }

  #nextPresentChunk(c: number): number | undefined {
    let next: number | undefined
    if (this.#nextPersisted.has(c)) next = this.#nextPersisted.get(c)
    else {
      next = this.#source.nextPersisted(c)
      if (this.#nextPersisted.size >= this.#cacheLimit) this.#nextPersisted.clear()
      this.#nextPersisted.set(c, next)
    }
    for (const d of this.#dirty) if (d >= c && (next === undefined || d < next)) next = d
    return next
  }

  #evict(limit = this.#cacheLimit): void {
    if (this.#cache.size <= limit) return
    for (const c of this.#cache.keys()) {
      if (this.#cache.size <= limit) break
      if (!this.#dirty.has(c)) this.#cache.delete(c)
    }
  }
}
