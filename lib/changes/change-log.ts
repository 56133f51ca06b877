// The changes of one paged file: pages changed since its last commit, tagged with the epoch they
// were made in, saved with the file's page map (same transaction), and the query of everything
// changed since an epoch (the records plus what is not committed yet).
import roaring from 'roaring'
import { PAGES_PER_CHUNK, chunkOf, firstPageOfChunk } from '../geometry.js'
import type { Bitmap } from './change-table.js'
import type { Tracking } from './tracking.js'

const { RoaringBitmap32 } = roaring

interface Pending {
  pages: Bitmap
  /** Bumped by every touch: a commit clears the entry only if nothing touched it since its snapshot. */
  version: number
}

/** What a commit takes of a ChangeLog. */
export interface ChangesSnapshot {
  entries: Array<{ epoch: number; chunk: number; pages: Bitmap; version: number }>
}

export class ChangeLog {
  readonly #tracking: Tracking
  readonly #file: number
  /** Per epoch, per chunk: the pages changed and not yet committed. */
  readonly #pending = new Map<number, Map<number, Pending>>()

  constructor(tracking: Tracking, file: number) {
    this.#tracking = tracking
    this.#file = file
  }

  get isDirty(): boolean {
    return this.#pending.size > 0
  }

  /** Pages [start, end) change now (before or as their bytes do). Free when no mark exists. */
  touch(start: number, end: number): void {
    const epoch = this.#tracking.epoch
    if (epoch === 0 || start >= end) return
    let chunks = this.#pending.get(epoch)
    if (!chunks) this.#pending.set(epoch, (chunks = new Map()))
    for (let c = chunkOf(start); start < end; c++) {
      const base = firstPageOfChunk(c)
      const stop = Math.min(end, base + PAGES_PER_CHUNK)
      let entry = chunks.get(c)
      if (!entry) chunks.set(c, (entry = { pages: new RoaringBitmap32(), version: 0 }))
      if (stop - start === 1) entry.pages.add(start - base)
      else entry.pages.addRange(start - base, stop - base)
      entry.version++
      start = stop
    }
  }

  snapshot(): ChangesSnapshot {
    const entries: ChangesSnapshot['entries'] = []
    for (const [epoch, chunks] of this.#pending) {
      for (const [chunk, p] of chunks) entries.push({ epoch, chunk, pages: p.pages.clone(), version: p.version })
    }
    return { entries }
  }

  /** Write a snapshot; call inside the commit's transaction. */
  save(snapshot: ChangesSnapshot): void {
    for (const e of snapshot.entries) this.#tracking.table.merge(this.#file, e.epoch, e.chunk, e.pages)
  }

  /** The snapshot is committed: its entries are clean unless touched since. */
  committed(snapshot: ChangesSnapshot): void {
    for (const e of snapshot.entries) {
      const chunks = this.#pending.get(e.epoch)
      if (chunks?.get(e.chunk)?.version !== e.version) continue
      chunks.delete(e.chunk)
      if (chunks.size === 0) this.#pending.delete(e.epoch)
    }
  }

  /**
   * A mark went away: the pending changes of the epochs in [from, to) belong to epoch `into` now
   * (as ChangeTable.fold does for the records), or to none if `into` is 0.
   */
  fold(from: number, to: number, into: number): void {
    for (const [epoch, moving] of [...this.#pending]) {
      if (epoch < from || epoch >= to || epoch === into) continue
      this.#pending.delete(epoch)
      if (into === 0) continue
      let there = this.#pending.get(into)
      if (!there) this.#pending.set(into, (there = new Map()))
      for (const [chunk, p] of moving) {
        const old = there.get(chunk)
        if (old) {
          old.pages.orInPlace(p.pages)
          old.version++
        } else there.set(chunk, { pages: p.pages, version: p.version + 1 })
      }
    }
  }

  /** Whether changes of epoch `since` or later are not committed yet. */
  pendingSince(since: number): boolean {
    for (const epoch of this.#pending.keys()) if (epoch >= since) return true
    return false
  }

  /**
   * The pages changed in epoch `since` or later, committed or not, as runs [start, end) in page
   * order, cut to the pages [first, end) (default: all). Only the records of the chunks there are
   * read: the cost follows the changes in the range, not the file's size.
   */
  *changedRuns(since: number, first = 0, end = Number.MAX_SAFE_INTEGER): Generator<[number, number]> {
    if (end <= first) return
    const firstChunk = chunkOf(first)
    const lastChunk = chunkOf(end - 1)
    const pending = new Map<number, Bitmap>()
    for (const [epoch, chunks] of this.#pending) {
      if (epoch < since) continue
      for (const [chunk, p] of chunks) {
        if (chunk < firstChunk || chunk > lastChunk) continue
        const there = pending.get(chunk)
        if (there) there.orInPlace(p.pages)
        else pending.set(chunk, p.pages.clone())
      }
    }
    for (const [a, b] of this.#runs(since, firstChunk, lastChunk, pending)) {
      if (b <= first) continue
      if (a >= end) return
      yield [Math.max(a, first), Math.min(b, end)]
    }
  }

  /** The runs of the records of chunks [firstChunk, lastChunk] joined with `pending` (per chunk, not committed yet). */
  *#runs(since: number, firstChunk: number, lastChunk: number, pending: Map<number, Bitmap>): Generator<[number, number]> {
    const order = [...pending.keys()].sort((a, b) => a - b)
    let next = 0
    for (const { chunk, pages } of this.#tracking.table.since(this.#file, since, firstChunk, lastChunk)) {
      while (next < order.length && order[next]! < chunk) yield* runsOf(order[next]!, pending.get(order[next++]!)!)
      if (order[next] === chunk) pages.orInPlace(pending.get(order[next++]!)!)
      yield* runsOf(chunk, pages)
    }
    while (next < order.length) yield* runsOf(order[next]!, pending.get(order[next++]!)!)
  }
}

/** The set pages of one chunk's bitmap as runs of global page indexes. */
function* runsOf(chunk: number, pages: Bitmap): Generator<[number, number]> {
  if (pages.isEmpty) return
  const base = firstPageOfChunk(chunk)
  const min = pages.minimum()
  const max = pages.maximum()
  if (max - min + 1 === pages.size) {
    yield [base + min, base + max + 1]
    return
  }
  let start = -1
  let prev = -2
  for (const p of pages.toUint32Array()) {
    if (p !== prev + 1) {
      if (start >= 0) yield [base + start, base + prev + 1]
      start = p
    }
    prev = p
  }
  yield [base + start, base + prev + 1]
}
