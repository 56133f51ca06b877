// The bytes of request and reply data the NBD server may hold for all its clients together.
// Without it, clients that send big READs and never read the replies grow the server without
// bound (eight such clients reached 4 GB RSS, issue 9). Waiters are served in arrival order, so a
// big request is not starved by a stream of small ones.

interface Waiter {
  bytes: number
  resolve: () => void
  reject: (err: unknown) => void
  signal: AbortSignal | undefined
  onAbort: () => void
}

export class MemoryBudget {
  /** Bytes that may be held at once. */
  readonly limit: number
  #used = 0
  readonly #waiters: Waiter[] = []

  constructor(limit: number) {
    this.limit = limit
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used
  }

  /** Requests waiting for room. */
  get waiting(): number {
    return this.#waiters.length
  }

  /** Take `bytes` now if they fit and nobody waits before us; false otherwise (nothing taken). */
  tryTake(bytes: number): boolean {
    if (this.#waiters.length > 0 || this.#used + bytes > this.limit) return false
    this.#used += bytes
    return true
  }

  /**
   * Take `bytes`, waiting in line until they fit. `bytes` must not exceed the limit (the caller
   * bounds every request). Rejects with the signal's reason if it aborts first (nothing taken).
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.tryTake(bytes)) return Promise.resolve()
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter)
          if (i >= 0) this.#waiters.splice(i, 1)
          reject(signal?.reason)
          this.#wake() // the ones behind it may fit now
        },
      }
      signal?.addEventListener('abort', waiter.onAbort, { once: true })
      this.#waiters.push(waiter)
    })
  }

  /** Give back bytes taken before. */
  give(bytes: number): void {
    this.#used -= bytes
    if (this.#used < 0) throw new Error(`MemoryBudget: ${-this.#used} bytes given back that were never taken`)
    this.#wake()
  }

  #wake(): void {
    for (;;) {
      const next = this.#waiters[0]
      if (!next || this.#used + next.bytes > this.limit) return
      this.#waiters.shift()
      this.#used += next.bytes
      next.signal?.removeEventListener('abort', next.onAbort)
      next.resolve()
    }
  }
}
