// The merged view of a chain with the layer each extent comes from (SPEC §11): what `pagecow map
// --output=json` prints as qemu-img's `depth`, and what `inspect` draws per layer.
import { lowerPieces } from '../page/lower-pieces.js'
import type { LowerSource } from '../page/lower-source.js'

/**
 * `data`: bytes stored in the layer at `depth` (an upper's DATA pages, or a raw image's data).
 * `zero`: ZERO pages of the layer at `depth`. `hole`: a hole of the raw image at the bottom, or
 * bytes past where a layer's lower ends (or was cut by a truncation).
 */
export type LayerState = 'data' | 'zero' | 'hole'

/** A run of bytes served by one layer in one state; depth 0 is the store's own upper. */
export interface LayerExtent {
  start: number
  length: number
  state: LayerState
  /** 0: this store's upper; 1: the layer below (its base's upper, or the raw image); and so on. */
  depth: number
  /** Marks the extent that ends the query. */
  last: boolean
}

/** A lower that is layered itself (a store): it says which of its layers holds each byte. */
export interface LayeredLower extends LowerSource {
  /** [start, end) of the lower's merged view with depths counted from the lower (0: its own upper). */
  layerExtents(start: number, end: number): Iterable<LayerExtent>
}

export function isLayered(lower: LowerSource): lower is LayeredLower {
  return typeof (lower as Partial<LayeredLower>).layerExtents === 'function'
}

/** Merges adjacent pieces of one state and depth and marks the last one; feeds a generator. */
export class LayerExtentMerger {
  #pending: LayerExtent | undefined

  /** Add [start, end) in `state` at `depth`; returns the extent that became complete, if any. */
  push(start: number, end: number, state: LayerState, depth: number): LayerExtent | undefined {
    if (end <= start) return undefined
    const pending = this.#pending
    if (pending && pending.state === state && pending.depth === depth && pending.start + pending.length === start) {
      pending.length = end - pending.start
      return undefined
    }
    this.#pending = { start, length: end - start, state, depth, last: false }
    return pending
  }

  /** The final extent, marked last. */
  finish(): LayerExtent | undefined {
    const pending = this.#pending
    if (pending) pending.last = true
    this.#pending = undefined
    return pending
  }
}

/**
 * [from, to) of `lower` as [start, end, state, depth] pieces, depth counted from the lower (0 its
 * top layer, or the raw image itself); bytes at or past `limit` (where a truncation cut the lower)
 * or past the lower's end are a hole at depth 0.
 */
export function* lowerLayers(lower: LowerSource, from: number, to: number, limit: number): Generator<[number, number, LayerState, number]> {
  const end = Math.min(to, limit, lower.size)
  let pos = from
  if (pos < end) {
    if (isLayered(lower)) {
      for (const e of lower.layerExtents(pos, end)) yield [e.start, e.start + e.length, e.state, e.depth]
    } else {
      for (const [a, b, state] of lowerPieces(lower, pos, end, limit)) yield [a, b, state === 'lower' ? 'data' : 'hole', 0]
    }
    pos = end
  }
  if (pos < to) yield [pos, to, 'hole', 0]
}
