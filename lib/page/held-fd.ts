// A file descriptor that async work (a read or an fdatasync in libuv's pool) can hold across its
// await: close() while such work is in flight defers the close(2) until the work ends. Closing at
// once would fail that work with EBADF, or worse, point it at whatever file reuses the number.
// Also the full reads (pread until done or end of file) that the upper and lower files share.
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'

export class HeldFd {
  readonly #fd: number
  /** The file as errors name it: "the upper /store/upper/7". */
  readonly #label: string
  #inFlight = 0
  #closeAsked = false
  #closed = false

  constructor(fd: number, label: string) {
    this.#fd = fd
    this.#label = label
  }

  /** The descriptor for synchronous use. */
  get fd(): number {
    return this.#fd
  }

  /** Run `work` with the descriptor; a close() meanwhile waits for it. */
  async hold<T>(work: (fd: number) => Promise<T>): Promise<T> {
    // After close() the number may already name another file.
    if (this.#closeAsked) throw new PagecowError('ECLOSED', `${this.#label} is closed`)
    this.#inFlight++
    try {
      return await work(this.#fd)
    } finally {
      if (--this.#inFlight === 0 && this.#closeAsked) {
        try {
          this.#closeNow()
        } catch {
          // The close that was asked for earlier already returned; the work's own outcome stands.
        }
      }
    }
  }

  /** pread until `length` bytes are read or the file ends; returns the bytes read. */
  readFully(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    let done = 0
    while (done < length) {
      let n: number
      try {
        n = fs.readSync(this.#fd, target, targetOffset + done, length - done, position + done)
      } catch (err) {
        throw fromSystemError(err, `reading ${this.#label} at ${position + done}`)
      }
      if (n === 0) break
      done += n
    }
    return done
  }

  /** readFully in libuv's thread pool, holding the descriptor. */
  readFullyAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number> {
    return this.hold(async (fd) => {
      let done = 0
      while (done < length) {
        let n: number
        try {
          n = (await fs.read(fd, target, targetOffset + done, length - done, position + done)).bytesRead
        } catch (err) {
          throw fromSystemError(err, `reading ${this.#label} at ${position + done}`)
        }
        if (n === 0) break
        done += n
      }
      return done
    })
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
