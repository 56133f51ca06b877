// One chunk of a page map: the DATA and ZERO bitmaps of PAGES_PER_CHUNK consecutive pages.
import roaring from 'roaring'
import { PAGES_PER_CHUNK } from '../geometry.js'
import { PagecowError } from '../errors.js'
import type { PageState } from './page-state.js'

const { RoaringBitmap32 } = roaring
type Bitmap = InstanceType<typeof RoaringBitmap32>

/** A run of pages in one state, as indexes local to a chunk or global, half-open. */
export interface PageRun {
  start: number
  end: number
  state: PageState
}

/** The persisted form of a chunk: roaring's portable format and the cardinalities. */
export interface ChunkRecord {
  data: Uint8Array
  zero: Uint8Array
  dataCount: number
  zeroCount: number
}

export class Chunk {
  /**
   * A chunk with at most this many DATA and ZERO pages answers runs() by walking its members in
   * JavaScript (one native call per chunk) instead of asking roaring per run. Scattered pages
   * make many short runs, and this keeps a map of millions of them fast.
   */
  static arrayWalkLimit = 4096

  readonly #data: Bitmap
  readonly #zero: Bitmap
  /** The members as arrays, for walking; valid while `version` is unchanged. */
  #members: { version: number; data: Uint32Array; zero: Uint32Array } | undefined
  /** Bumped on every change; a flush persists a version and compares on completion. */
  version = 0
  /** The version the database holds. */
  savedVersion = 0

  private constructor(data: Bitmap, zero: Bitmap) {
    this.#data = data
    this.#zero = zero
  }

  static empty(): Chunk {
    return new Chunk(new RoaringBitmap32(), new RoaringBitmap32())
  }

  /** Decode a persisted chunk, refusing anything a correct store could not have written. */
  static decode(record: ChunkRecord, where: string): Chunk {
    let data: Bitmap
    let zero: Bitmap
    try {
      data = RoaringBitmap32.deserialize(record.data, 'portable')
      zero = RoaringBitmap32.deserialize(record.zero, 'portable')
    } catch (err) {
      throw new PagecowError('ECORRUPT', `${where}: page bitmap cannot be decoded; run \`pagecow fsck\``, { cause: err })
    }
    const problem = Chunk.#check(data, zero, record)
    if (problem) throw new PagecowError('ECORRUPT', `${where}: ${problem}; run \`pagecow fsck\``)
    return new Chunk(data, zero)
  }

  static #check(data: Bitmap, zero: Bitmap, record: ChunkRecord): string | null {
    if (data.size !== record.dataCount || zero.size !== record.zeroCount) return 'page bitmap count mismatch'
    const problem = checkMembers(data) ?? checkMembers(zero)
    if (problem) return problem
    if (data.intersects(zero)) return 'a page is both DATA and ZERO'
    return null
  }

  get dataCount(): number {
    return this.#data.size
  }

  get zeroCount(): number {
    return this.#zero.size
  }

  get isEmpty(): boolean {
    return this.#data.isEmpty && this.#zero.isEmpty
  }

  get isDirty(): boolean {
    return this.version !== this.savedVersion
  }

  stateOf(index: number): PageState {
    if (this.#data.has(index)) return 'data'
    if (this.#zero.has(index)) return 'zero'
    return 'lower'
  }

  /** Pages in `state` within [start, end). */
  count(start: number, end: number, state: PageState): number {
    if (state === 'data') return this.#data.rangeCardinality(start, end)
    if (state === 'zero') return this.#zero.rangeCardinality(start, end)
    return end - start - this.#data.rangeCardinality(start, end) - this.#zero.rangeCardinality(start, end)
  }

  /** Put [start, end) into `state`; returns the change in DATA and ZERO counts. */
  set(start: number, end: number, state: PageState): { data: number; zero: number } {
    const data = this.#data.size
    const zero = this.#zero.size
    if (state === 'data') {
      this.#zero.removeRange(start, end)
      this.#data.addRange(start, end)
    } else if (state === 'zero') {
      this.#data.removeRange(start, end)
      this.#zero.addRange(start, end)
    } else {
      this.#data.removeRange(start, end)
      this.#zero.removeRange(start, end)
    }
    const delta = { data: this.#data.size - data, zero: this.#zero.size - zero }
    if (delta.data !== 0 || delta.zero !== 0) this.version++
    return delta
  }

  /** Maximal runs of one state covering [start, end), in order, numbered from `base`. Cost grows with the runs. */
  *runs(start: number, end: number, base = 0): Generator<PageRun> {
    if (this.#data.size + this.#zero.size <= Chunk.arrayWalkLimit) {
      yield* this.#walkRuns(start, end, base)
      return
    }
    let pos = start
    while (pos < end) {
      let runEnd: number
      let state: PageState
      if (this.#data.has(pos)) {
        state = 'data'
        runEnd = firstAbsent(this.#data, pos, end)
      } else if (this.#zero.has(pos)) {
        state = 'zero'
        runEnd = firstAbsent(this.#zero, pos, end)
      } else {
        state = 'lower'
        runEnd = Math.min(nextPresent(this.#data, pos, end), nextPresent(this.#zero, pos, end))
      }
      yield { start: pos + base, end: runEnd + base, state }
      pos = runEnd
    }
  }

  /** runs() by walking the sorted members: O(members from `start` on) in plain JavaScript. */
  *#walkRuns(start: number, end: number, base: number): Generator<PageRun> {
    let members = this.#members
    if (!members || members.version !== this.version) {
      members = { version: this.version, data: this.#data.toUint32Array(), zero: this.#zero.toUint32Array() }
      this.#members = members
    }
    const { data, zero } = members
    let i = lowerBound(data, start)
    let j = lowerBound(zero, start)
    let pos = start
    while (pos < end) {
      const nextData = i < data.length ? data[i]! : Infinity
      const nextZero = j < zero.length ? zero[j]! : Infinity
      let runEnd: number
      let state: PageState
      if (nextData === pos) {
        state = 'data'
        for (runEnd = pos + 1, i++; i < data.length && data[i] === runEnd; i++) runEnd++
      } else if (nextZero === pos) {
        state = 'zero'
        for (runEnd = pos + 1, j++; j < zero.length && zero[j] === runEnd; j++) runEnd++
      } else {
        state = 'lower'
        runEnd = Math.min(nextData, nextZero)
      }
      runEnd = Math.min(runEnd, end)
      yield { start: pos + base, end: runEnd + base, state }
      pos = runEnd
    }
  }

  encode(): ChunkRecord {
    this.#data.runOptimize()
    this.#zero.runOptimize()
    return {
      data: this.#data.serialize('portable'),
      zero: this.#zero.serialize('portable'),
      dataCount: this.#data.size,
      zeroCount: this.#zero.size,
    }
  }
}

/**
 * roaring's portable deserializer checks bounds, not order: a damaged blob can decode into members
 * out of order or repeated, and queries on such a bitmap never end. Visit each member once.
 */
function checkMembers(bitmap: Bitmap): string | null {
  if (bitmap.size > PAGES_PER_CHUNK) return 'page bitmap holds more pages than a chunk has'
  let previous = -1
  for (const page of bitmap.toUint32Array()) {
    if (page <= previous) return 'page bitmap is out of order'
    previous = page
  }
  return previous >= PAGES_PER_CHUNK ? 'page bitmap holds a page outside its chunk' : null
}

/** The index of the first element of the sorted `values` that is >= `value`. */
function lowerBound(values: Uint32Array, value: number): number {
  let lo = 0
  let hi = values.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (values[mid]! < value) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The first member of `bitmap` in [pos, end), or `end`. */
function nextPresent(bitmap: Bitmap, pos: number, end: number): number {
  const rank = pos > 0 ? bitmap.rank(pos - 1) : 0
  const next = bitmap.select(rank)
  return next === undefined || next > end ? end : next
}

/**
 * The first non-member of `bitmap` in [pos, end), or `end`; `pos` is a member. Galloping then
 * binary search, so a run of n pages costs O(log n) native calls, whatever the chunk holds.
 */
function firstAbsent(bitmap: Bitmap, pos: number, end: number): number {
  let step = 1
  let known = pos + 1 // [pos, known) is all present
  while (known < end) {
    const probe = Math.min(end, known + step)
    if (!bitmap.hasRange(known, probe)) return binarySearchAbsent(bitmap, known, probe)
    known = probe
    step *= 2
  }
  return end
}

/** [lo, hi) holds at least one non-member; [?, lo) are members. */
function binarySearchAbsent(bitmap: Bitmap, lo: number, hi: number): number {
  const from = lo
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (bitmap.hasRange(from, mid)) lo = mid
    else hi = mid
  }
  return lo
}
