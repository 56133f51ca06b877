// One file of the merged view: a lower, an upper data file and the page map between them.
// Image mode is one PagedFile; tree mode will have one per copied-up file. Methods here trust
// their arguments: the store validates at the edge.
import { Geometry } from '../geometry.js'
import { isZero } from '../zero-bytes.js'
import type { ChangeLog } from '../changes/change-log.js'
import type { CopyupBases } from '../integrity/copyup-bases.js'
import type { FileGuard } from '../integrity/file-guard.js'
import { pageSum } from '../integrity/hash.js'
import { ExtentMerger, type Extent, type ExtentState } from './extent.js'
import type { LowerSource } from './lower-source.js'
import { lowerPieces } from './lower-pieces.js'
import { isLayered, LayerExtentMerger, lowerLayers, type LayerExtent } from '../layers/layer-extent.js'
import type { PageMap } from './page-map.js'
import type { PageState } from './page-state.js'
import type { UpperFile } from './upper-file.js'

/** The per-file record persisted beside the page map. */
export interface FileState {
  /** Logical size in bytes. */
  size: number
  /** Bytes at or past this offset never come from the lower (SPEC §4: truncate then regrow). */
  lowerCut: number
  /** Bytes users wrote (zeroing counts only where it had to write, on partial pages). */
  bytesWritten: number
  /** Bytes written to the upper data file (whole pages on copy-up): the write amplification. */
  upperWritten: number
}

/** What a write of whole zero pages does: see PagedFile.detectZeroes. */
export type DetectZeroes = 'off' | 'on' | 'unmap'

/**
 * Reads this large or larger are worth readIntoAsync (libuv's thread pool, so that several overlap
 * on the disk); below it a cached read on the event loop costs less than the hop to the pool.
 */
export const ASYNC_READ_BYTES = 64 * 1024

export class PagedFile {
  readonly geometry: Geometry
  readonly lower: LowerSource
  readonly upper: UpperFile
  readonly map: PageMap
  /** The checksums of the DATA pages, and what vouches for pages being written. */
  readonly guard: FileGuard
  /** What partially copied-up pages were built on (the sums of their lower pages). */
  readonly bases: CopyupBases
  /** The pages changed since the marks (SPEC §7): touched before their bytes change. */
  readonly changes: ChangeLog
  readonly #state: FileState
  /** Bumped when #state changes; compared with the version the database holds. */
  #version = 0
  #savedVersion = 0
  /** Thread-pool reads in flight, counted by epoch (0 or 1; readsDone() flips it). */
  readonly #reads = [0, 0]
  #epoch = 0
  /** A readsDone() waiting for the reads of `epoch` to end. */
  #drained: { epoch: number; resolve: () => void; done: Promise<void> } | undefined
  /**
   * What a write of whole pages of zeros does (qemu's detect-zeroes): 'off' writes them; 'on'
   * makes them ZERO pages, and a page that was DATA keeps its block (as qemu keeps a zeroed
   * cluster's allocation); 'unmap' makes them ZERO pages and gives DATA pages' blocks back.
   */
  detectZeroes: DetectZeroes = 'off'

  constructor(geometry: Geometry, lower: LowerSource, upper: UpperFile, map: PageMap, guard: FileGuard, bases: CopyupBases, changes: ChangeLog, state: FileState) {
    this.geometry = geometry
    this.lower = lower
    this.upper = upper
    this.map = map
    this.guard = guard
    this.bases = bases
    this.changes = changes
    this.#state = { ...state }
  }

  get size(): number {
    return this.#state.size
  }

  get state(): FileState {
    return { ...this.#state }
  }

  get isDirty(): boolean {
    return this.map.isDirty || this.#version !== this.#savedVersion || this.guard.hasUnsummed || this.bases.isDirty || this.changes.isDirty
  }

  /** A snapshot of the file record for a flush, with its version. */
  snapshotState(): { state: FileState; version: number } {
    return { state: this.state, version: this.#version }
  }

  stateCommitted(version: number): void {
    this.#savedVersion = version
  }

  /** Replace the file record with the database's (another process committed). */
  reload(state: FileState): void {
    Object.assign(this.#state, state)
    this.#version = this.#savedVersion = 0
    this.guard.reload()
  }


  /** Read into `target` from `offset`; stops at the end of the file. Returns bytes read. */
  readInto(target: Uint8Array, offset: number): number {
    const end = Math.min(offset + target.length, this.#state.size)
    if (end <= offset) return 0
    this.#readRange(target, 0, offset, end)
    return end - offset
  }

  /**
   * readInto with the upper's and the lower's bytes read in libuv's thread pool, all pieces at
   * once: large reads overlap on the disk instead of queueing on the event loop. The pieces are
   * planned from the page map as it is at the call; a write racing the read may or may not show,
   * as with any read concurrent with a write.
   */
  async readIntoAsync(target: Uint8Array, offset: number): Promise<number> {
    const end = Math.min(offset + target.length, this.#state.size)
    if (end <= offset) return 0
    const g = this.geometry
    const reads: Array<Promise<unknown>> = []
    const lowerLimit = Math.min(this.lower.size, this.#state.lowerCut)
    for (const run of this.map.runs(g.pageOf(offset), g.pagesFor(end))) {
      const from = Math.max(offset, g.byteOf(run.start))
      const to = Math.min(end, g.byteOf(run.end))
      const at = from - offset
      if (run.state === 'data') reads.push(this.#readDataAsync(target, at, from, to, run.start, run.end))
      else if (run.state === 'zero' || from >= lowerLimit) target.fill(0, at, at + to - from)
      else {
        const want = Math.min(to, lowerLimit) - from
        reads.push(this.lower.readIntoAsync(target, at, want, from).then((n) => target.fill(0, at + n, at + to - from)))
      }
    }
    if (reads.length === 0) return end - offset
    // Counted until every piece settles (failed or not: none may write into `target` later), so
    // that readsDone() can wait for the reads planned from the map as it is now.
    const epoch = this.#epoch
    this.#reads[epoch]!++
    let settled: Array<PromiseSettledResult<unknown>>
    try {
      settled = await Promise.allSettled(reads)
    } finally {
      if (--this.#reads[epoch]! === 0 && this.#drained?.epoch === epoch) this.#drained.resolve()
    }
    const failed = settled.find((r) => r.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
    return end - offset
  }

  /**
   * Settles once every readIntoAsync() in flight now has: they planned their pieces from the map
   * as it was, so blocks that map pointed at must stay until then (compaction waits here). Reads
   * started later count in the other epoch, so a stream of new reads never holds it up.
   */
  async readsDone(): Promise<void> {
    while (this.#drained) await this.#drained.done
    const epoch = this.#epoch
    this.#epoch ^= 1
    if (this.#reads[epoch] === 0) return
    let resolve!: () => void
    const done = new Promise<void>((r) => (resolve = r))
    this.#drained = { epoch, resolve, done }
    await done
    this.#drained = undefined
  }

  /**
   * #readData in the thread pool: DATA pages [first, end) hold [from, to). Pages not trusted yet are
   * read whole (into the target where it holds them whole, else on the side) and checked once the
   * bytes are in, on this thread.
   */
  async #readDataAsync(target: Uint8Array, at: number, from: number, to: number, first: number, end: number): Promise<void> {
    if (this.guard.trusted(first, end)) {
      await this.upper.readIntoAsync(target, at, to - from, from)
      return
    }
    const g = this.geometry
    const a = g.byteOf(first)
    const b = g.byteOf(end)
    if (a === from && b === to) {
      await this.upper.readIntoAsync(target, at, to - from, from)
      this.guard.verify(first, target.subarray(at, at + to - from))
      return
    }
    const whole = Buffer.allocUnsafe(b - a)
    await this.upper.readIntoAsync(whole, 0, b - a, a)
    this.guard.verify(first, whole)
    target.set(whole.subarray(from - a, to - a), at)
  }

  /**
   * When every page of [offset, end) is LOWER: how many bytes from `offset` the lower holds (the
   * rest of the range reads as zeros). -1 if any page is DATA or ZERO. Lets a server hand the
   * lower's own bytes to the kernel (splice) instead of copying them; `end` is within the size.
   */
  lowerBytesIn(offset: number, end: number): number {
    const g = this.geometry
    for (const run of this.map.runs(g.pageOf(offset), g.pagesFor(end))) if (run.state !== 'lower') return -1
    return Math.max(0, Math.min(end, this.lower.size, this.#state.lowerCut) - offset)
  }

  /** Fill target[targetOffset…] with the merged bytes of [start, end), size not checked. */
  #readRange(target: Uint8Array, targetOffset: number, start: number, end: number): void {
    const g = this.geometry
    const startPage = g.pageOf(start)
    const endPage = g.pagesFor(end)
    if (endPage - startPage === 1) {
      // One page (a 4 KiB read from a VM): one lookup, no run search.
      this.#readPiece(target, targetOffset, start, end, this.map.stateOf(startPage))
      return
    }
    for (const run of this.map.runs(startPage, endPage)) {
      const from = Math.max(start, g.byteOf(run.start))
      const to = Math.min(end, g.byteOf(run.end))
      this.#readPiece(target, targetOffset + from - start, from, to, run.state)
    }
  }

  /** Fill target[at…] with [from, to), all of it in `state`. */
  #readPiece(target: Uint8Array, at: number, from: number, to: number, state: PageState): void {
    if (state === 'data') this.#readData(target, at, from, to)
    else if (state === 'zero') target.fill(0, at, at + to - from)
    else this.#readLower(target, at, from, to)
  }

  /**
   * Fill target[at…] with [from, to) of the upper (DATA pages), each page checked against its sum
   * unless it is trusted already: whole pages are read in place and checked there, a page the
   * range covers in part is read whole on the side, checked, and its part copied.
   */
  #readData(target: Uint8Array, at: number, from: number, to: number): void {
    const g = this.geometry
    const first = g.pageOf(from)
    const end = g.pagesFor(to)
    if (this.guard.trusted(first, end)) {
      this.upper.readInto(target, at, to - from, from)
      return
    }
    const [w0, w1] = g.wholePages(from, to)
    if (w0 < w1) {
      const a = g.byteOf(w0)
      const b = g.byteOf(w1)
      this.upper.readInto(target, at + a - from, b - a, a)
      this.guard.verify(w0, target.subarray(at + a - from, at + b - from))
    }
    // The pages at either end the range covers in part (one, if it is a single page).
    for (const page of end - 1 === first ? [first] : [first, end - 1]) {
      if (page >= w0 && page < w1) continue
      const start = g.byteOf(page)
      const whole = Buffer.allocUnsafe(g.pageSize)
      this.upper.readInto(whole, 0, g.pageSize, start)
      this.guard.verify(page, whole)
      const lo = Math.max(from, start)
      const hi = Math.min(to, start + g.pageSize)
      target.set(whole.subarray(lo - start, hi - start), at + lo - from)
    }
  }

  /**
   * What [offset, offset + target.length) would read if its pages were LOWER: the lower's bytes up
   * to where the lower ends or was cut, zeros past it (compaction compares DATA pages with it).
   */
  readAsLower(target: Uint8Array, offset: number): void {
    this.#readLower(target, 0, offset, offset + target.length)
  }

  /**
   * Compaction: DATA pages [first, end), which read the same in `state` (the caller compared),
   * become `state`. What the file reads does not change, so no change is recorded. Their upper
   * blocks still hold the old bytes: the caller gives them back (releasePages) once the map that
   * no longer points at them is committed, never before (a crash between would serve holes).
   */
  settle(first: number, end: number, state: 'lower' | 'zero'): void {
    this.bases.drop(first, end)
    this.map.set(first, end, state)
    this.#version++
  }

  /**
   * Give back the upper blocks of the pages of [first, end) that are not DATA (settled, committed,
   * and not written again since). Readers in other processes learn of the holes from the note.
   */
  releasePages(first: number, end: number): void {
    const g = this.geometry
    for (const run of this.map.runs(first, end)) {
      if (run.state === 'data') continue
      this.guard.beforePunch(run.start, run.end)
      this.upper.punch(g.byteOf(run.start), g.byteOf(run.end - run.start))
    }
  }

  #readLower(target: Uint8Array, at: number, from: number, to: number): void {
    const limit = Math.min(this.lower.size, this.#state.lowerCut)
    const n = from < limit ? this.lower.readInto(target, at, Math.min(to, limit) - from, from) : 0
    if (n < to - from) target.fill(0, at + n, at + to - from)
  }

  /** Write `data` at `offset`, copying up only the pages it touches; grows the file. */
  write(offset: number, data: Uint8Array): void {
    if (this.detectZeroes !== 'off' && data.length >= this.geometry.pageSize) {
      for (const piece of this.#zeroPieces(offset, data)) {
        if (!piece.zero) this.#writeBytes(piece.start, data.subarray(piece.start - offset, piece.end - offset))
        else {
          this.#clearTail(piece.start)
          this.#state.size = Math.max(this.#state.size, piece.end)
          this.#zeroWholePages(piece.start, piece.end, this.#state.size, this.detectZeroes === 'on')
        }
      }
      return
    }
    this.#writeBytes(offset, data)
  }

  /** detect-zeroes: `data` at `offset` cut into pieces to write and whole pages of zeros. */
  *#zeroPieces(offset: number, data: Uint8Array): Generator<{ start: number; end: number; zero: boolean }> {
    const g = this.geometry
    const end = offset + data.length
    const [w0, w1] = g.wholePages(offset, end)
    let at = offset
    let page = w0
    while (page < w1) {
      if (!this.#isZeroPage(data, g.byteOf(page) - offset)) {
        page++
        continue
      }
      let last = page + 1
      while (last < w1 && this.#isZeroPage(data, g.byteOf(last) - offset)) last++
      if (g.byteOf(page) > at) yield { start: at, end: g.byteOf(page), zero: false }
      yield { start: g.byteOf(page), end: g.byteOf(last), zero: true }
      at = g.byteOf(last)
      page = last
    }
    if (at < end) yield { start: at, end, zero: false }
  }

  #isZeroPage(data: Uint8Array, at: number): boolean {
    return isZero(data.subarray(at, at + this.geometry.pageSize))
  }

  #writeBytes(offset: number, data: Uint8Array): void {
    if (data.length === 0) return
    const g = this.geometry
    const end = offset + data.length
    this.#clearTail(offset)
    const [firstPage, endPage] = g.touchedPages(offset, end)
    this.changes.touch(firstPage, endPage)
    this.guard.beforeWrite(firstPage, endPage)
    const lastPage = endPage - 1
    let directStart = offset
    let directEnd = end
    let composed = 0
    const composedPages: number[] = []
    try {
      // A partly covered page that is not yet DATA is copied up whole (read-modify-write);
      // wholly covered pages and DATA pages take the caller's bytes directly.
      if ((!g.isAligned(offset) || end < g.byteOf(firstPage + 1)) && this.map.stateOf(firstPage) !== 'data') {
        composedPages.push(firstPage)
        this.#composePage(firstPage, offset, data)
        composed++
        directStart = Math.min(end, g.byteOf(firstPage + 1))
      }
      if (lastPage > firstPage && !g.isAligned(end) && this.map.stateOf(lastPage) !== 'data') {
        composedPages.push(lastPage)
        this.#composePage(lastPage, offset, data)
        composed++
        directEnd = g.byteOf(lastPage)
      }
      if (directStart < directEnd) this.#writeInPlace(data, offset, directStart, directEnd)
    } catch (err) {
      // The bases queued by composed pages: the map does not point at those pages.
      for (const page of composedPages) this.bases.drop(page, page + 1)
      this.#releaseUnreferenced(firstPage, endPage)
      throw err
    }
    this.map.set(firstPage, endPage, 'data')
    const [w0, w1] = g.wholePages(offset, end)
    this.bases.drop(w0, w1) // rewritten whole: built on nothing of the lower any more
    this.#state.size = Math.max(this.#state.size, end)
    this.#state.bytesWritten += data.length
    this.#state.upperWritten += composed * g.pageSize + Math.max(0, directEnd - directStart)
    this.#version++
  }

  /**
   * Lay data[start - offset, end - offset) over [start, end): pages not yet DATA first. They need
   * new blocks, so a full disk fails the write there, before any DATA page changed (SPEC §8).
   */
  #writeInPlace(data: Uint8Array, offset: number, start: number, end: number): void {
    const g = this.geometry
    const runs = [...this.map.runs(g.pageOf(start), g.pagesFor(end))]
    for (const dataPass of [false, true]) {
      for (const run of runs) {
        if ((run.state === 'data') !== dataPass) continue
        const from = Math.max(start, g.byteOf(run.start))
        const to = Math.min(end, g.byteOf(run.end))
        this.upper.write(data.subarray(from - offset, to - offset), from)
      }
    }
  }

  /**
   * Before the file grows past its end up to `upTo`: zero the bytes of the gap inside the DATA page
   * holding the end. They read as zeros (SPEC §4) but the upper may hold bytes there that a crash
   * or a failed write left (written, never committed).
   */
  #clearTail(upTo: number): void {
    const g = this.geometry
    const size = this.#state.size
    if (upTo <= size || g.isAligned(size) || this.map.stateOf(g.pageOf(size)) !== 'data') return
    const end = Math.min(upTo, g.byteOf(g.pageOf(size) + 1))
    this.guard.beforeWrite(g.pageOf(size), g.pageOf(size) + 1)
    this.upper.write(Buffer.alloc(end - size), size)
    this.#state.upperWritten += end - size
  }

  /** Write page `page` whole: its current bytes with `data` (placed at `offset`) laid over. */
  #composePage(page: number, offset: number, data: Uint8Array): void {
    const g = this.geometry
    const pageStart = g.byteOf(page)
    const buf = Buffer.alloc(g.pageSize)
    this.#readRange(buf, 0, pageStart, pageStart + g.pageSize)
    this.#noteBase(page, buf)
    const from = Math.max(offset, pageStart)
    const to = Math.min(offset + data.length, pageStart + g.pageSize)
    buf.set(data.subarray(from - offset, to - offset), from - pageStart)
    this.upper.write(buf, pageStart)
  }

  /**
   * A LOWER page about to be copied up in part: record the sum of the lower page it starts from,
   * its bytes as the lower stores them (the last page short). `merged` is the page as read.
   */
  #noteBase(page: number, merged: Buffer): void {
    if (this.map.stateOf(page) !== 'lower') return
    const g = this.geometry
    const start = g.byteOf(page)
    const limit = Math.min(this.lower.size, this.#state.lowerCut)
    if (start >= limit) return // nothing of the lower under it
    const stored = Math.min(g.pageSize, this.lower.size - start)
    if (start + stored <= limit) {
      this.bases.set(page, pageSum(merged.subarray(0, stored)))
      return
    }
    const lowerPage = Buffer.allocUnsafe(stored) // a truncation cut the page: its lower bytes apart
    const n = this.lower.readInto(lowerPage, 0, stored, start)
    this.bases.set(page, pageSum(lowerPage.subarray(0, n)))
  }

  /** After a failed write: give back blocks under pages the map does not point at. */
  #releaseUnreferenced(firstPage: number, endPage: number): void {
    const g = this.geometry
    try {
      for (const run of this.map.runs(firstPage, endPage)) {
        if (run.state !== 'data') this.upper.punch(g.byteOf(run.start), g.byteOf(run.end - run.start))
      }
    } catch {
      // Best effort: the map does not point at these blocks, so they are only wasted space.
    }
  }

  /** Make [offset, offset + length) read as zeros: whole pages become ZERO and free their blocks. */
  zero(offset: number, length: number): void {
    if (length === 0) return
    const end = offset + length
    const newSize = Math.max(this.#state.size, end)
    const g = this.geometry
    this.changes.touch(g.pageOf(offset), g.pagesFor(end))
    this.#clearTail(offset)
    // Partial pages: a LOWER one is copied up with zeros laid over, a DATA one zeroed in place, a
    // ZERO one left. Copy-ups first: they need new blocks, so a full disk fails before any change.
    const pieces = this.#partialPieces(offset, end, newSize)
    const copyUps = pieces.filter(([from]) => this.map.stateOf(g.pageOf(from)) === 'lower')
    const inPlace = pieces.filter(([from]) => this.map.stateOf(g.pageOf(from)) === 'data')
    for (const [from] of [...copyUps, ...inPlace]) this.guard.beforeWrite(g.pageOf(from), g.pageOf(from) + 1)
    try {
      for (const [from, to] of copyUps) this.#composePage(g.pageOf(from), from, Buffer.alloc(to - from))
      for (const [from, to] of inPlace) this.upper.write(Buffer.alloc(to - from), from)
    } catch (err) {
      this.#releaseUnreferenced(g.pageOf(offset), g.pagesFor(end))
      throw err
    }
    for (const [from] of copyUps) this.map.set(g.pageOf(from), g.pageOf(from) + 1, 'data')
    for (const [from, to] of pieces) this.#state.bytesWritten += to - from // whole ZERO pages store nothing, so they count nowhere
    this.#state.upperWritten += copyUps.length * g.pageSize + inPlace.reduce((sum, [from, to]) => sum + to - from, 0)
    this.#zeroWholePages(offset, end, newSize)
    this.#state.size = newSize
    this.#version++
  }

  /** Trim: whole pages of [offset, offset + length) inside the file become ZERO; edges are left. */
  discard(offset: number, length: number): void {
    const end = Math.min(offset + length, this.#state.size)
    if (end <= offset) return
    this.#zeroWholePages(offset, end, this.#state.size)
  }

  /** `keepBlocks`: DATA pages that become ZERO keep their upper blocks (detect-zeroes 'on'). */
  #zeroWholePages(offset: number, end: number, size: number, keepBlocks = false): void {
    const g = this.geometry
    const [first, last] = this.geometry.wholePagesOfFile(offset, end, size)
    if (first >= last) return
    this.changes.touch(first, last)
    this.bases.drop(first, last)
    if (keepBlocks) {
      // Nothing reads a ZERO page's block: it stays allocated, and a later write of the page
      // lands in place (fsck counts it as space no page owns; --repair gives it back).
      this.map.set(first, last, 'zero')
    } else {
      // The blocks go at once (a full disk needs them back before it can commit anything), so
      // the committed map may point at holes until the next commit: the range is noted first.
      this.guard.beforePunch(first, last)
      this.map.set(first, last, 'zero')
      this.upper.punch(g.byteOf(first), g.byteOf(last - first))
    }
    this.#version++
  }

  /** The parts of [offset, end) outside its whole pages, each inside one page. */
  #partialPieces(offset: number, end: number, size: number): Array<[number, number]> {
    const g = this.geometry
    const [first, last] = this.geometry.wholePagesOfFile(offset, end, size)
    const pieces: Array<[number, number]> = []
    if (first < last) {
      if (offset < g.byteOf(first)) pieces.push([offset, g.byteOf(first)])
      if (end > g.byteOf(last)) pieces.push([g.byteOf(last), end])
      return pieces
    }
    for (let from = offset; from < end; ) {
      const to = Math.min(end, g.byteOf(g.pageOf(from) + 1))
      pieces.push([from, to])
      from = to
    }
    return pieces
  }

  /**
   * Set the logical size. Shrinking forgets the pages past the end and cuts the lower there, so
   * growing again reads zeros, never the old lower bytes (SPEC §4). The caller commits at once
   * and then calls trimUpper().
   */
  truncate(size: number): void {
    const g = this.geometry
    const old = this.#state.size
    if (size === old) return
    if (size < old) {
      // The page holding the new end (its tail is zeroed) and every page cut off changed.
      this.changes.touch(g.pageOf(size), g.pagesFor(old))
      const page = g.pageOf(size)
      if (!g.isAligned(size) && this.map.stateOf(page) === 'data') {
        this.guard.beforeWrite(page, page + 1)
        this.upper.write(Buffer.alloc(g.byteOf(page + 1) - size), size)
      }
      this.map.set(g.pagesFor(size), g.pagesFor(old), 'lower')
      this.bases.drop(g.pagesFor(size), g.pagesFor(old))
      this.#state.lowerCut = Math.min(this.#state.lowerCut, size)
    } else {
      // Extended: the new bytes read zeros. Recorded (the page of the old end on) so that a file
      // whose only change is its size is listed.
      this.changes.touch(g.pageOf(old), g.pagesFor(size))
      this.#clearTail(size)
    }
    this.#state.size = size
    this.#version++
  }

  /** Give back the upper's blocks past the end of the file; only after the map is committed. */
  trimUpper(): void {
    const g = this.geometry
    const end = g.byteOf(g.pagesFor(this.#state.size))
    if (this.upper.diskUsage().apparent > end) this.upper.truncate(end)
  }

  /** The merged view of [start, end) as extents (SPEC §5); cost grows with the extents. */
  *extents(start: number, end: number): Generator<Extent> {
    end = Math.min(end, this.#state.size)
    if (end <= start) return
    const g = this.geometry
    const merger = new ExtentMerger()
    for (const run of this.map.runs(g.pageOf(start), g.pagesFor(end))) {
      const from = Math.max(start, g.byteOf(run.start))
      const to = Math.min(end, g.byteOf(run.end))
      if (run.state === 'lower' && isLayered(this.lower)) {
        // A store below: its layers' extents over this run only (SEEK_DATA/SEEK_HOLE on a merged
        // view would walk its extents past the run). Its DATA pages read as lower data here, its
        // ZERO pages as holes, as its own lower's data and holes.
        for (const [a, b, state] of lowerLayers(this.lower, from, to, this.#state.lowerCut)) {
          const done = merger.push(a, b, state === 'data' ? 'lower' : 'hole')
          if (done) yield done
        }
        continue
      }
      const uniform = run.state === 'lower' ? this.#uniformLower(from, to) : run.state
      if (uniform) {
        const done = merger.push(from, to, uniform)
        if (done) yield done
      } else {
        for (const [a, b, state] of lowerPieces(this.lower, from, to, this.#state.lowerCut)) {
          const done = merger.push(a, b, state)
          if (done) yield done
        }
      }
    }
    const last = merger.finish()
    if (last) yield last
  }

  /**
   * The merged view of [start, end) with the layer of each extent (SPEC §11): this file's DATA and
   * ZERO pages at depth 0, the lower's bytes at their depth in the lower plus one. Cost grows
   * with the extents of every layer over the range.
   */
  *layerExtents(start: number, end: number): Generator<LayerExtent> {
    end = Math.min(end, this.#state.size)
    if (end <= start) return
    const g = this.geometry
    const merger = new LayerExtentMerger()
    for (const run of this.map.runs(g.pageOf(start), g.pagesFor(end))) {
      const from = Math.max(start, g.byteOf(run.start))
      const to = Math.min(end, g.byteOf(run.end))
      if (run.state !== 'lower') {
        const done = merger.push(from, to, run.state, 0)
        if (done) yield done
        continue
      }
      for (const [a, b, state, depth] of lowerLayers(this.lower, from, to, this.#state.lowerCut)) {
        const done = merger.push(a, b, state, depth + 1)
        if (done) yield done
      }
    }
    const last = merger.finish()
    if (last) yield last
  }

  /**
   * The lower's state over [from, to) when it has one: all hole, or all data (the common cases
   * between scattered pages); undefined when it has both.
   */
  #uniformLower(from: number, to: number): ExtentState | undefined {
    const limit = Math.min(this.lower.size, this.#state.lowerCut)
    if (from >= limit) return 'hole'
    const data = this.lower.nextData(from)
    if (data === null || data >= Math.min(to, limit)) return 'hole'
    return data === from && to <= limit && this.lower.nextHole(from) >= to ? 'lower' : undefined
  }

  /** SEEK_DATA on the merged view: the first byte at or after `offset` holding data, or null. */
  nextData(offset: number): number | null {
    for (const e of this.extents(offset, this.#state.size)) {
      if (e.state === 'data' || e.state === 'lower') return Math.max(offset, e.start)
    }
    return null
  }

  /** SEEK_HOLE on the merged view: zero pages and holes count; the end of the file is one. */
  nextHole(offset: number): number | null {
    if (offset >= this.#state.size) return null
    for (const e of this.extents(offset, this.#state.size)) {
      if (e.state === 'zero' || e.state === 'hole') return Math.max(offset, e.start)
    }
    return this.#state.size
  }
}
