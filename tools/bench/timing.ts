// Timing and summary statistics for the benchmarks: hrtime clocks, medians and percentiles.

/** Nanoseconds on the monotonic clock. */
export function now(): bigint {
  return process.hrtime.bigint()
}

/** Milliseconds since `start` (a value of now()). */
export function msSince(start: bigint): number {
  return Number(now() - start) / 1e6
}

/** Run `fn` and return its wall time in milliseconds. */
export async function timeMs(fn: () => Promise<void> | void): Promise<number> {
  const start = now()
  await fn()
  return msSince(start)
}

/** The p-th percentile (0–100) of `values`, linear between ranks; NaN if empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = (p / 100) * (sorted.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo)
}

export function median(values: readonly number[]): number {
  return percentile(values, 50)
}

/** min, median, max and p90 of a sample, for the JSON file. */
export interface Summary {
  n: number
  min: number
  median: number
  p90: number
  max: number
}

export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    min: Math.min(...values),
    median: median(values),
    p90: percentile(values, 90),
    max: Math.max(...values),
  }
}

/**
 * Run `a` and `b` (each returns the wall time of one repetition in ms) `reps` times, alternating
 * which goes first so drift on a noisy machine falls on both alike.
 */
export async function paired(
  reps: number,
  a: () => Promise<number>,
  b: () => Promise<number>,
): Promise<{ a: number[]; b: number[] }> {
  const out = { a: [] as number[], b: [] as number[] }
  for (let i = 0; i < reps; i++) {
    if (i % 2 === 0) {
      out.a.push(await a())
      out.b.push(await b())
    } else {
      out.b.push(await b())
      out.a.push(await a())
    }
  }
  return out
}

/**
 * Time `a` and `b` in alternating batches (a, b, b, a, a, b, …) and return the total milliseconds
 * each took. Interleaving at this grain puts the same noise on both sides (page cache, other
 * tenants, writeback), which whole-pass alternation does not on a busy machine.
 */
export async function interleaved(
  batches: number,
  a: (batch: number) => Promise<void> | void,
  b: (batch: number) => Promise<void> | void,
): Promise<{ a: number; b: number }> {
  let ta = 0n
  let tb = 0n
  const timed = async (fn: (batch: number) => Promise<void> | void, i: number): Promise<bigint> => {
    const start = now()
    const pending = fn(i)
    if (pending) await pending
    return now() - start
  }
  for (let i = 0; i < batches; i++) {
    if (i % 2 === 0) {
      ta += await timed(a, i)
      tb += await timed(b, i)
    } else {
      tb += await timed(b, i)
      ta += await timed(a, i)
    }
  }
  return { a: Number(ta) / 1e6, b: Number(tb) / 1e6 }
}

/** `reps` interleaved runs; each gives one total per side. */
export async function interleavedReps(
  reps: number,
  run: () => Promise<{ a: number; b: number }>,
): Promise<{ a: number[]; b: number[] }> {
  const out = { a: [] as number[], b: [] as number[] }
  for (let i = 0; i < reps; i++) {
    const r = await run()
    out.a.push(r.a)
    out.b.push(r.b)
  }
  return out
}

/**
 * Run `sides` over `batches` batches, each batch once per side, the order rotating every batch so
 * that every side runs first as often. Returns the milliseconds each side took in all.
 */
export async function rotated(batches: number, sides: ReadonlyArray<(batch: number) => Promise<void> | void>): Promise<number[]> {
  const totals = sides.map(() => 0n)
  for (let i = 0; i < batches; i++) {
    for (let k = 0; k < sides.length; k++) {
      const j = (i + k) % sides.length
      const start = now()
      const pending = sides[j]!(i)
      if (pending) await pending
      totals[j]! += now() - start
    }
  }
  return totals.map((t) => Number(t) / 1e6)
}
