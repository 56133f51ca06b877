// A least-recently-used cache of decompressed blocks bounded by their bytes, so the reader's
// memory depends on this bound, not on the size of the image.

export class BlockCache<V extends { length: number }> {
  readonly #maxBytes: number
  readonly #map = new Map<number, V>()
  /** The key used or set last (the last in the map's order), or NaN. */
  #newest = NaN
  #bytes = 0
  hits = 0
  misses = 0

  readonly #onEvict: ((value: V) => void) | undefined

  /**
   * A cache holding at most `maxBytes` bytes of values (0: keep nothing); `onEvict` is given
   * each value dropped (or refused), to recycle its memory.
   */
  constructor(maxBytes: number, onEvict?: (value: V) => void) {
    this.#maxBytes = maxBytes
    this.#onEvict = onEvict
  }

  get bytes(): number {
    return this.#bytes
  }

  get size(): number {
    return this.#map.size
  }

  /** The value kept for `key`, now the most recently used; undefined on a miss. */
  get(key: number): V | undefined {
    const value = this.#map.get(key)
    if (value === undefined) {
      this.misses++
      return undefined
    }
    this.hits++
    // A walk asks for the same block many times in a row: it is the most recent already, and
    // moving it (a delete and an insert) each time costs more than the lookup.
    if (key !== this.#newest) {
      this.#map.delete(key)
      this.#map.set(key, value)
      this.#newest = key
    }
    return value
  }

  /** Keep `value`, dropping the least recently used values until the bound holds. */
  set(key: number, value: V): void {
    const old = this.#map.get(key)
    if (old !== undefined) {
      this.#map.delete(key)
      this.#bytes -= old.length
      this.#onEvict?.(old)
    }
    if (value.length > this.#maxBytes) {
      this.#onEvict?.(value)
      return
    }
    this.#map.set(key, value)
    this.#newest = key
    this.#bytes += value.length
    while (this.#bytes > this.#maxBytes) {
      const [oldestKey, oldest] = this.#map.entries().next().value!
      this.#map.delete(oldestKey)
      this.#bytes -= oldest.length
      this.#onEvict?.(oldest)
    }
  }

  clear(): void {
    for (const value of this.#map.values()) this.#onEvict?.(value)
    this.#map.clear()
    this.#newest = NaN
    this.#bytes = 0
  }
}
