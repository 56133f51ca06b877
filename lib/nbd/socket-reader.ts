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
  /** readInto(): the bytes go straight here as they arrive; `filled` of them so far. */
  target: Buffer | undefined
  filled: number
  resolve: (data: Buffer) => void
  reject: (err: Error) => void
}

/**
 * Default bytes buffered ahead of the reader before the socket is paused: room for 60 pipelined
 * 4 KiB WRITEs, and a bound on what a client can park in the server outside the memory budget.
 */
const DEFAULT_HIGH_WATER = 256 * 1024

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
  #received = 0
  /** This reader paused the stream (past the high-water mark). */
  #paused = false

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

  /** Bytes received since the start: grows while the peer makes progress. */
  get received(): number {
    return this.#received
  }

  /** The next `length` bytes; rejects with ConnectionClosedError if the peer leaves first. */
  read(length: number): Promise<Buffer> {
    if (this.#waiter) return Promise.reject(new Error('SocketReader: one read at a time'))
    if (this.#buffered >= length) {
      const data = this.#take(length)
      if (this.#buffered < this.#highWater) this.#resume()
      return Promise.resolve(data)
    }
    if (this.#closed) return Promise.reject(this.#closed)
    return new Promise((resolve, reject) => {
      this.#waiter = { length, target: undefined, filled: 0, resolve, reject }
      this.#resume()
    })
  }

  /**
   * The next `length` bytes if they are here already, else undefined (nothing consumed): the
   * synchronous path of read(), for a batch of pipelined requests.
   */
  take(length: number): Buffer | undefined {
    if (this.#waiter || this.#buffered < length) return undefined
    const data = this.#take(length)
    if (this.#paused && this.#buffered < this.#highWater) this.#resume()
    return data
  }

  /**
   * Fill `target` with the next bytes; resolves with it. Unlike read(), a long payload is copied
   * into `target` as it arrives instead of gathered first and copied once more.
   */
  readInto(target: Buffer): Promise<Buffer> {
    if (this.#waiter) return Promise.reject(new Error('SocketReader: one read at a time'))
    const filled = this.#copyOut(target, 0)
    if (filled === target.length) {
      if (this.#buffered < this.#highWater) this.#resume()
      return Promise.resolve(target)
    }
    if (this.#closed) return Promise.reject(this.#closed)
    return new Promise((resolve, reject) => {
      this.#waiter = { length: target.length, target, filled, resolve, reject }
      this.#resume()
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
    this.#resume()
  }

  #push(chunk: Buffer): void {
    if (this.#discarding || chunk.length === 0) return
    this.#received += chunk.length
    const direct = this.#waiter
    if (direct?.target) {
      const n = Math.min(chunk.length, direct.length - direct.filled)
      chunk.copy(direct.target, direct.filled, 0, n)
      direct.filled += n
      if (direct.filled === direct.length) {
        this.#waiter = undefined
        direct.resolve(direct.target)
      }
      if (n === chunk.length) return
      chunk = chunk.subarray(n)
    }
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    const waiter = this.#waiter
    if (waiter && this.#buffered >= waiter.length) {
      this.#waiter = undefined
      waiter.resolve(this.#take(waiter.length))
    }
    if (!this.#waiter && this.#buffered >= this.#highWater) {
      this.#paused = true
      this.#socket.pause()
    }
  }

  #resume(): void {
    this.#paused = false
    this.#socket.resume()
  }

  #close(err: Error): void {
    if (this.#closed) return
    this.#closed = err
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.reject(err)
  }

  /** Move buffered bytes into target[from…] until it is full or nothing is left; the new fill. */
  #copyOut(target: Buffer, from: number): number {
    while (from < target.length && this.#buffered > 0) {
      const chunk = this.#chunks[0] as Buffer
      const n = Math.min(target.length - from, chunk.length - this.#head)
      chunk.copy(target, from, this.#head, this.#head + n)
      from += n
      this.#advance(n)
    }
    return from
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
