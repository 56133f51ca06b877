// Another image store read as a lower (SPEC §11, a chain): its merged image, read through its own
// paged file, so every DATA page it serves is checked against its sum as the base's own reads are.
// Opened read-only and sealed: nothing under it changes while a store above reads it.
import type { PagedFile } from '../page/paged-file.js'
import type { ChainLayer } from './chain-layer.js'
import type { LayerExtent, LayeredLower } from './layer-extent.js'

/** What the base store hands the store above it. */
export interface BaseHandle {
  /** The base's own record: its identity, and its count of durable commits when opened. */
  identity: string
  generation: number
  pageSize: number
  /** The base's chain, the base first (depth 0). */
  chain(): ChainLayer[]
  /** Release the base and everything under it (no flush: it is open read-only). */
  close(): void
}

export class StoreLower implements LayeredLower {
  /** The base store's directory, as found (the record's relative path resolved, or its path). */
  readonly path: string
  readonly size: number
  readonly base: BaseHandle
  readonly #file: PagedFile

  constructor(path: string, file: PagedFile, base: BaseHandle) {
    this.path = path
    this.#file = file
    this.size = file.size
    this.base = base
  }

  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    // The whole target (a page read through the chain): no view made at each layer.
    if (targetOffset === 0 && length === target.length) return this.#file.readInto(target, position)
    return this.#file.readInto(target.subarray(targetOffset, targetOffset + length), position)
  }

  readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number> {
    return this.#file.readIntoAsync(target.subarray(targetOffset, targetOffset + length), position)
  }

  /** The base's ZERO pages are holes here, as its lower's holes are: they store nothing. */
  nextData(position: number): number | null {
    return position >= this.size ? null : this.#file.nextData(position)
  }

  nextHole(position: number): number {
    return position >= this.size ? position : (this.#file.nextHole(position) ?? this.size)
  }

  layerExtents(start: number, end: number): Iterable<LayerExtent> {
    return this.#file.layerExtents(start, end)
  }

  chain(): ChainLayer[] {
    return this.base.chain()
  }

  close(): void {
    this.base.close()
  }
}
