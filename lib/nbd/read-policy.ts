// Where the NBD server's READs run: on the event loop while the page cache answers them, in
// libuv's thread pool while the disk does. From the page cache the hop to the pool and back costs
// more than the copy (hot sequential reads: about 0.30 CPU s per GiB inline against 0.46 through
// the pool, BENCHMARKS.md); a sequential read from the disk is mostly served by the kernel's
// readahead and stays fast inline too. But reads that wait on the disk one after the other (random
// reads of a cold image) would stall every client and never overlap: when half the recent inline
// reads were slow, reads go to the pool, and one read in a while is tried inline again.

/**
 * An inline read slower than this per MiB waited on the disk (the page cache copies a MiB in
 * 60–250 µs; a busy machine may stop us in the middle of one now and then).
 */
const SLOW_MS_PER_MIB = 2
/** ...and slower than this, whatever its length (a small read's time is mostly overhead). */
const MIN_SLOW_MS = 0.5
/** How many of the last 16 inline reads must have been slow to send reads to the pool: half. */
const SLOW_OF_16 = 8
/**
 * In the pool, one read this often runs inline, to learn whether the cache answers again; after a
 * fast one the next read is tried inline at once, so a warm cache wins the reads back within 16.
 */
const PROBE_MS = 200

export class ReadPolicy {
  /** The last 16 inline reads, one bit each: 1 slow. */
  #recent = 0
  #slow = 0
  #nextProbe = 0
  /** The read just let inline was a probe from the pool. */
  #probing = false

  /** Whether a read starting at `now` (performance.now()) should run on the event loop. */
  inline(now: number): boolean {
    if (this.#slow < SLOW_OF_16) return true
    if (now < this.#nextProbe) return false
    this.#nextProbe = now + PROBE_MS
    this.#probing = true
    return true
  }

  /** An inline read of `length` bytes took `ms`. */
  observe(length: number, ms: number): void {
    const slow = ms > Math.max(MIN_SLOW_MS, (length / 2 ** 20) * SLOW_MS_PER_MIB) ? 1 : 0
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
