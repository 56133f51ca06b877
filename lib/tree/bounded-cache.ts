// A map that keeps at most a fixed number of entries, dropping the least recently used one: the
// namespace's lookup caches stay the same size whatever the size of the tree.

export class BoundedCache<K, V> {
  readonly #max: number
  readonly #map = new Map<K, V>()

  /** A cache of at most `max` entries (a positive integer). */
  constructor(max: number) {
    this.#max = max
  }

  get size(): number {
    return this.#map.size
  }

  /** The value kept for `key` (now the most recently used), or undefined. Values are never undefined. */
  get(key: K): V | undefined {
    const value = this.#map.get(key)
    if (value === undefined) return undefined
    this.#map.delete(key)
    this.#map.set(key, value)
    return value
  }

  /** Keep `value` for `key`, dropping the least recently used entry if the cache is full. */
  set(key: K, value: V): void {
    this.#map.delete(key)
    this.#map.set(key, value)
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!)
  }

  delete(key: K): void {
    this.#map.delete(key)
  }

  clear(): void {
    if (this.#map.size > 0) this.#map.clear()
  }
}
