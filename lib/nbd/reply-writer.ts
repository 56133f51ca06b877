// The replies of one connection on their way to the socket. Replies made in one turn of the
// event loop leave together (one writev), and at most WINDOW bytes are handed to the socket at a
// time: the rest waits here, cut in pieces, so that the bytes the client takes show as progress
// piece by piece (a socket write completes only when all its bytes are taken, and Node joins
// everything queued behind a pending write into one). The window is topped up as each write
// completes, so the kernel's buffer never runs dry while replies wait here.
import type { Socket } from 'node:net'

/** Bytes handed to the socket at once, at most (plus one piece). */
const WINDOW_BYTES = 1024 * 1024
/** Longer buffers are handed over in pieces of this size. */
const PIECE_BYTES = 256 * 1024

interface Piece {
  buf: Buffer
  /** Called once this piece (the last of its reply) is written, or will never be. */
  done: (() => void) | undefined
}

interface Waiter {
  /** Resolve once no more than this many bytes are pending. */
  bytes: number
  resolve: () => void
}

export class ReplyWriter {
  readonly #socket: Socket
  readonly #queue: Piece[] = []
  #head = 0
  #queuedBytes = 0
  #scheduled = false
  #ending = false
  readonly #waiters: Waiter[] = []
  /** Every write's callback (one function, not one per write): top up the window, wake waiters. */
  readonly #written = () => this.#afterWrite()

  constructor(socket: Socket) {
    this.#socket = socket
    socket.once('close', () => this.#dropQueue())
  }

  /** Reply bytes not yet taken by the kernel: queued here or in the socket. */
  get pendingBytes(): number {
    return this.#queuedBytes + this.#socket.writableLength
  }

  /** Reply bytes the kernel has taken since the start (grows as the client reads). */
  get takenBytes(): number {
    // bytesWritten counts the socket's own queue too.
    return this.#socket.bytesWritten - this.#socket.writableLength
  }

  /**
   * Queue one whole reply; its pieces go out in order, never interleaved with another reply's.
   * `done` runs once the socket no longer needs the buffers (written, or never will be).
   */
  send(buffers: Buffer[], done?: () => void): void {
    if (this.#socket.destroyed || this.#ending) {
      done?.()
      return
    }
    const last = buffers.length - 1
    for (let i = 0; i <= last; i++) {
      const buf = buffers[i] as Buffer
      this.#queue.push({ buf, done: i === last ? done : undefined })
      this.#queuedBytes += buf.length
    }
    if (!this.#scheduled) {
      this.#scheduled = true
      process.nextTick(() => {
        this.#scheduled = false
        this.#flush()
      })
    }
  }

  /** Resolves once at most `bytes` are pending (or the socket closed). */
  below(bytes: number): Promise<void> {
    if (this.pendingBytes <= bytes || this.#socket.destroyed) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push({ bytes, resolve }))
  }

  /** Resolves once every queued reply has been taken by the kernel (or the socket closed). */
  drained(): Promise<void> {
    return this.below(0)
  }

  /** End the stream after the replies queued so far; later replies are dropped. */
  end(): void {
    if (this.#ending) return
    this.#ending = true
    this.#flush()
  }

  #flush(): void {
    const socket = this.#socket
    if (socket.destroyed) return this.#dropQueue()
    if (this.#queuedBytes > 0 && socket.writableLength < WINDOW_BYTES) {
      socket.cork()
      while (this.#queuedBytes > 0 && socket.writableLength < WINDOW_BYTES) {
        const piece = this.#queue[this.#head] as Piece
        let buf = piece.buf
        let done = piece.done
        if (buf.length > PIECE_BYTES) {
          piece.buf = buf.subarray(PIECE_BYTES)
          buf = buf.subarray(0, PIECE_BYTES)
          done = undefined
        } else {
          this.#head++
        }
        this.#queuedBytes -= buf.length
        const replyDone = done
        socket.write(buf, replyDone ? () => (replyDone(), this.#afterWrite()) : this.#written)
      }
      this.#compact()
      socket.uncork()
    }
    if (this.#queuedBytes === 0 && this.#ending && !socket.writableEnded) socket.end()
  }

  #afterWrite(): void {
    if (this.#queuedBytes > 0) this.#flush()
    if (this.#waiters.length > 0) this.#wake()
  }

  #compact(): void {
    if (this.#head > 1024 || this.#head === this.#queue.length) {
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
  }

  #wake(): void {
    const pending = this.#socket.destroyed ? 0 : this.pendingBytes
    for (let i = 0; i < this.#waiters.length; ) {
      const waiter = this.#waiters[i] as Waiter
      if (pending <= waiter.bytes) {
        this.#waiters.splice(i, 1)
        waiter.resolve()
      } else {
        i++
      }
    }
  }

  /** The socket is gone: nothing queued will be written; give every buffer back. */
  #dropQueue(): void {
    const pieces = this.#queue.splice(this.#head)
    this.#queue.length = 0
    this.#head = 0
    this.#queuedBytes = 0
    for (const piece of pieces) piece.done?.()
    this.#wake()
  }
}
