// A set of integers kept as sorted, disjoint, non-adjacent runs [start, end). The first-dirty
// events remember which blocks are done this way: a truncation of a terabyte image, or a watcher
// that lives while a whole image is rewritten, is a handful of runs, where a set of block
// numbers would be millions of entries walked one by one (and past 2³² blocks, more than a
// 32-bit bitmap can name).

export class RunSet {
  /** Run i is [#starts[i], #ends[i]); runs are sorted, and neither overlap nor touch. */
  readonly #starts: number[] = []
  readonly #ends: number[] = []

  /** How many runs (not members). */
  get runs(): number {
    return this.#starts.length
  }

  has(n: number): boolean {
    const i = this.#firstEndingAfter(n)
    return i < this.#starts.length && this.#starts[i]! <= n
  }

  /** Add [start, end), merging with the runs it overlaps or touches. */
  add(start: number, end: number): void {
    if (end <= start) return
    // Runs ending before `start` stay; so do runs starting after `end`: merge everything between.
    const from = this.#firstEndingAfter(start - 1)
    let to = from
    while (to < this.#starts.length && this.#starts[to]! <= end) to++
    if (to > from) {
      start = Math.min(start, this.#starts[from]!)
      end = Math.max(end, this.#ends[to - 1]!)
    }
    this.#starts.splice(from, to - from, start)
    this.#ends.splice(from, to - from, end)
  }

  /** Remove [start, end), splitting a run that holds it. */
  delete(start: number, end: number): void {
    if (end <= start) return
    const from = this.#firstEndingAfter(start)
    let to = from
    while (to < this.#starts.length && this.#starts[to]! < end) to++
    if (to === from) return
    const keptStarts: number[] = []
    const keptEnds: number[] = []
    if (this.#starts[from]! < start) {
      keptStarts.push(this.#starts[from]!)
      keptEnds.push(start)
    }
    if (this.#ends[to - 1]! > end) {
      keptStarts.push(end)
      keptEnds.push(this.#ends[to - 1]!)
    }
    this.#starts.splice(from, to - from, ...keptStarts)
    this.#ends.splice(from, to - from, ...keptEnds)
  }

  /** The runs of [start, end) that are not in the set, in order. */
  *gaps(start: number, end: number): Generator<[number, number]> {
    let at = start
    for (let i = this.#firstEndingAfter(start); i < this.#starts.length && at < end; i++) {
      const s = this.#starts[i]!
      if (s >= end) break
      if (s > at) yield [at, s]
      at = Math.max(at, this.#ends[i]!)
    }
    if (at < end) yield [at, end]
  }

  /** The index of the first run whose end is past `n` (binary search). */
  #firstEndingAfter(n: number): number {
    let lo = 0
    let hi = this.#ends.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#ends[mid]! > n) hi = mid
      else lo = mid + 1
    }
    return lo
  }
}
