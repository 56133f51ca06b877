// Where the NBD server's large READs run: on the event loop while the page cache answers them, in
// libuv's thread pool while the disk does. From the page cache the hop to the pool and back costs
// more than the copy (hot sequential reads: about 0.30 CPU s per GiB inline against 0.46 through
// the pool, BENCHMARKS.md); a sequential read from the disk is mostly served by the kernel's
// readahead and stays fast inline too. But reads that wait on the disk one after the other (random
// reads of a cold image) would stall every client and never overlap: when half the recent inline
// reads waited on the disk, reads go to the pool, and one read in a while is tried inline again.
//
// A read "waited on the disk" when it took long *and* the process slept meanwhile (a voluntary
// context switch): on a busy machine a read from the cache is often just preempted, which takes as
// long but is no reason to leave the event loop.
import { resourceUsage } from 'node:process'

/** Reads shorter than this run inline whatever the disk does (the store never sends them to the pool). */
export const POLICY_MIN_BYTES = 64 * 1024
/** An inline read slower than this per MiB may have waited on the disk (the page cache copies a MiB in 60–250 µs). */
const SLOW_MS_PER_MIB = 1
/** ...and slower than this, whatever its length. */
const MIN_SLOW_MS = 0.25
/** How many of the last 16 inline reads must have waited on the disk to send reads to the pool: half. */
const SLOW_OF_16 = 8
/**
 * In the pool, one read this often runs inline, to learn whether the cache answers again; after a
 * fast one the next read is tried inline at once, so a warm cache wins the reads back within 16.
 */
const PROBE_MS = 200

/** The process's voluntary context switches so far (it slept: on I/O, for instance). */
function sleeps(): number {
  return resourceUsage().voluntaryContextSwitches
}

export class ReadPolicy {
  /** The last 16 inline reads, one bit each: 1 waited on the disk. */
  #recent = 0
  #slow = 0
  #nextProbe = 0
  /** The read just let inline was a probe from the pool. */
  #probing = false
  readonly #sleeps: () => number

  /** `countSleeps` replaces the process's voluntary context switches (tests). */
  constructor(countSleeps: () => number = sleeps) {
    this.#sleeps = countSleeps
  }

  /** Whether a read starting at `now` (performance.now()) should run on the event loop. */
  inline(now: number): boolean {
    if (this.#slow < SLOW_OF_16) return true
    if (now < this.#nextProbe) return false
    this.#nextProbe = now + PROBE_MS
    this.#probing = true
    return true
  }

  /** Call before an inline read; hand the result to observe() after it. */
  mark(): number {
    return this.#sleeps()
  }

  /** An inline read of `length` bytes took `ms`; `mark` is what mark() said before it. */
  observe(length: number, ms: number, mark: number): void {
    const slow = ms > Math.max(MIN_SLOW_MS, (length / 2 ** 20) * SLOW_MS_PER_MIB) && this.#sleeps() > mark ? 1 : 0
    this.#slow += slow - ((this.#recent >>> 15) & 1)
    this.#recent = ((this.#recent << 1) | slow) & 0xffff
    if (this.#probing && !slow) this.#nextProbe = 0
    this.#probing = false
  }

  /** Whether reads go to the pool now (for tests and the curious). */
  get pooled(): boolean {
    return this.#slow >= SLOW_OF_16
  }
}
