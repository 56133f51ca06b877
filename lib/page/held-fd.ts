// A file descriptor that async work (a read or an fdatasync in libuv's pool) can hold across its
// await: close() while such work is in flight defers the close(2) until the work ends. Closing at
// once would fail that work with EBADF, or worse, point it at whatever file reuses the number.
import * as fs from '../fs.js'

export class HeldFd {
  readonly #fd: number
  #inFlight = 0
  #closeAsked = false
  #closed = false

  constructor(fd: number) {
    this.#fd = fd
  }

  /** The descriptor for synchronous use. */
  get fd(): number {
    return this.#fd
  }

  /** Run `work` with the descriptor; a close() meanwhile waits for it. */
  async hold<T>(work: (fd: number) => Promise<T>): Promise<T> {
    this.#inFlight++
    try {
      return await work(this.#fd)
    } finally {
      if (--this.#inFlight === 0 && this.#closeAsked) this.#closeNow()
    }
  }

  close(): void {
    this.#closeAsked = true
    if (this.#inFlight === 0) this.#closeNow()
  }

  #closeNow(): void {
    if (this.#closed) return
    this.#closed = true
    fs.closeSync(this.#fd)
  }
}
