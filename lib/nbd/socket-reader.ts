// Exact-length reads from a socket, whatever the TCP segmentation: a header split over three
// segments or a 32 MiB payload over hundreds reads the same. Holds at most about `highWater`
// bytes beyond what the current read asks for (the socket is paused past that).
import type { Duplex } from 'node:stream'

/** The peer went away (or the read was cancelled) before the bytes asked for arrived. */
export class ConnectionClosedError extends Error {
  constructor(message = 'the client closed the connection') {
    super(message)
    this.name = 'ConnectionClosedError'
  }
}

interface Waiter {
  length: number
  resolve: (data: Buffer) => void
  reject: (err: Error) => void
}

/** Default bytes buffered ahead of the reader before the socket is paused. */
const DEFAULT_HIGH_WATER = 1024 * 1024

export class SocketReader {
  readonly #socket: Duplex
  readonly #highWater: number
  readonly #chunks: Buffer[] = []
  /** Bytes of #chunks[0] already consumed. */
  #head = 0
  #buffered = 0
  #waiter: Waiter | undefined
  #closed: Error | undefined
  #discarding = false

  constructor(socket: Duplex, highWater = DEFAULT_HIGH_WATER) {
    this.#socket = socket
    this.#highWater = highWater
    socket.on('data', (chunk: Buffer) => this.#push(chunk))
    socket.on('end', () => this.#close(new ConnectionClosedError()))
    socket.on('close', () => this.#close(new ConnectionClosedError()))
    socket.on('error', (err: Error) => this.#close(new ConnectionClosedError(`the connection failed: ${err.message}`)))
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.#buffered
  }

  /** The next `length` bytes; rejects with ConnectionClosedError if the peer leaves first. */
  read(length: number): Promise<Buffer> {
    if (this.#waiter) return Promise.reject(new Error('SocketReader: one read at a time'))
    if (this.#buffered >= length) {
      const data = this.#take(length)
      if (this.#buffered < this.#highWater) this.#socket.resume()
      return Promise.resolve(data)
    }
    if (this.#closed) return Promise.reject(this.#closed)
    return new Promise((resolve, reject) => {
      this.#waiter = { length, resolve, reject }
      this.#socket.resume()
    })
  }

  /** Fail the pending read (and every later one) with `err`: used to stop a connection. */
  cancel(err: Error = new ConnectionClosedError('the server stopped reading')): void {
    this.#close(err)
  }

  /** From now on throw away everything that arrives: a connection being wound down. */
  discard(): void {
    this.#discarding = true
    this.#chunks.length = 0
    this.#head = 0
    this.#buffered = 0
    this.#close(new ConnectionClosedError('the server stopped reading'))
    this.#socket.resume()
  }

  #push(chunk: Buffer): void {
    if (this.#discarding || chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    const waiter = this.#waiter
    if (waiter && this.#buffered >= waiter.length) {
      this.#waiter = undefined
      waiter.resolve(this.#take(waiter.length))
    }
    if (!this.#waiter && this.#buffered >= this.#highWater) this.#socket.pause()
  }

  #close(err: Error): void {
    if (this.#closed) return
    this.#closed = err
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.reject(err)
  }

  /** Remove `length` buffered bytes (the caller checked they are there). */
  #take(length: number): Buffer {
    const first = this.#chunks[0]
    if (length === 0) return Buffer.alloc(0)
    if (first && first.length - this.#head >= length) {
      const data = first.subarray(this.#head, this.#head + length)
      this.#advance(length)
      return data
    }
    const data = Buffer.allocUnsafe(length)
    let done = 0
    while (done < length) {
      const chunk = this.#chunks[0] as Buffer
      const n = Math.min(length - done, chunk.length - this.#head)
      chunk.copy(data, done, this.#head, this.#head + n)
      done += n
      this.#advance(n)
    }
    return data
  }

  /** Consume `n` bytes of the first chunk. */
  #advance(n: number): void {
    this.#head += n
    this.#buffered -= n
    const first = this.#chunks[0]
    if (first && this.#head >= first.length) {
      this.#chunks.shift()
      this.#head = 0
    }
  }
}
