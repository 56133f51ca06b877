// Seeded randomness: every run of the benchmarks does the same I/O pattern.

/** mulberry32: a small, fast, seeded 32-bit generator; returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `count` page numbers drawn uniformly (with repeats) from [0, pages). */
export function randomPages(count: number, pages: number, seed: number): Float64Array {
  const next = rng(seed)
  const out = new Float64Array(count)
  for (let i = 0; i < count; i++) out[i] = Math.floor(next() * pages)
  return out
}

/** A random half (or any fraction) of [0, pages), distinct, in ascending order. */
export function randomSubset(pages: number, fraction: number, seed: number): Uint32Array {
  const next = rng(seed)
  const all = new Uint32Array(pages)
  for (let i = 0; i < pages; i++) all[i] = i
  const take = Math.floor(pages * fraction)
  for (let i = 0; i < take; i++) {
    const j = i + Math.floor(next() * (pages - i))
    const t = all[i]!
    all[i] = all[j]!
    all[j] = t
  }
  return all.subarray(0, take).sort()
}

/**
 * `count` distinct, never-adjacent pages scattered over [0, pages): one per stride, at a random
 * place inside it. Each page is its own extent, with lower or hole on both sides.
 */
export function scatteredPages(count: number, pages: number, seed: number): Float64Array {
  const stride = Math.floor(pages / count)
  if (stride < 2) throw new RangeError(`cannot scatter ${count} non-adjacent pages over ${pages}`)
  const next = rng(seed)
  const out = new Float64Array(count)
  for (let i = 0; i < count; i++) out[i] = i * stride + Math.floor(next() * (stride - 1))
  return out
}
