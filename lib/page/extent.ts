// The public extent shape of the merged view (SPEC §5).

/**
 * `data`: in the upper. `lower`: read from the lower. `zero`: zero pages of the upper.
 * `hole`: a hole in the lower, or past the lower's end (or its truncation point).
 */
export type ExtentState = 'data' | 'lower' | 'zero' | 'hole'

/** A run of bytes in one state, FIEMAP-style; `last` marks the extent that ends the query. */
export interface Extent {
  start: number
  length: number
  state: ExtentState
  last: boolean
}

/** Merges adjacent same-state pieces and marks the last one; feeds a generator. */
export class ExtentMerger {
  #pending: Extent | undefined

  /** Add [start, end) in `state`; returns the extent that became complete, if any. */
  push(start: number, end: number, state: ExtentState): Extent | undefined {
    if (end <= start) return undefined
    const pending = this.#pending
    if (pending && pending.state === state && pending.start + pending.length === start) {
      pending.length = end - pending.start
      return undefined
    }
    this.#pending = { start, length: end - start, state, last: false }
    return pending
  }

  /** The final extent, marked last. */
  finish(): Extent | undefined {
    const pending = this.#pending
    if (pending) pending.last = true
    this.#pending = undefined
    return pending
  }
}
