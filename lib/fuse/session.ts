// The conversation with the kernel on a /dev/fuse file descriptor: a few readers, each reading
// one request at a time into its own buffer (a WRITE's data is a view into it, so the buffer is
// not reused before the reply), handing it to the dispatcher and writing the reply back.
// Reads block in libuv's thread pool: each reader holds one pool thread while it waits.
import * as fs from '../fs.js'
import { Dispatcher, MAX_WRITE, REQUEST_BUFFER_BYTES, type DispatchLog, type Reply } from './dispatch.js'
import type { FuseOperations } from './operations.js'
import { FuseProtocolError, IN_HEADER_BYTES, parseRequest, replyError } from './protocol.js'

const EIO = 5

/** Requests served at once. libuv's pool must have more threads than this (UV_THREADPOOL_SIZE). */
export const READERS = 4

export class FuseSession {
  readonly #fd: number
  readonly #dispatcher: Dispatcher
  readonly #log: DispatchLog
  #ended = false
  #initialized: () => void = () => {}
  /** Resolves once the kernel's INIT is answered: from then on the mount serves requests. */
  readonly initialized = new Promise<void>((resolve) => (this.#initialized = resolve))

  constructor(fd: number, ops: FuseOperations, log: DispatchLog) {
    this.#fd = fd
    this.#dispatcher = new Dispatcher(ops, log)
    this.#log = log
  }

  /** Serve until the kernel ends the connection (unmount, abort) or DESTROY. */
  async run(): Promise<void> {
    const readers = Array.from({ length: READERS }, () => this.#reader())
    await Promise.all(readers)
  }

  async #reader(): Promise<void> {
    const buffer = Buffer.allocUnsafe(REQUEST_BUFFER_BYTES)
    // READ replies are read into this, not into a new buffer each time: written before it is reused.
    const scratch = Buffer.allocUnsafe(MAX_WRITE)
    while (!this.#ended) {
      let n: number
      try {
        n = (await fs.read(this.#fd, buffer, 0, buffer.length, null)).bytesRead
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue // ENOENT: the request was interrupted before we read it
        if (code !== 'ENODEV') this.#log(`fuse: reading /dev/fuse failed: ${String(err)}`)
        this.#ended = true // ENODEV: unmounted
        return
      }
      let reply: Reply
      try {
        reply = await this.#dispatcher.handle(parseRequest(buffer.subarray(0, n)), scratch)
      } catch (err) {
        // Answer what cannot be decoded, or the caller waits for ever.
        this.#log(`fuse: a request could not be decoded: ${String(err)}`)
        if (n < IN_HEADER_BYTES) continue
        reply = replyError(buffer.readBigUInt64LE(8), err instanceof FuseProtocolError ? err.errno : EIO)
      }
      if (reply) this.#write(reply)
      if (this.#dispatcher.initialized) this.#initialized()
      if (this.#dispatcher.ended) this.#ended = true
    }
  }

  #write(reply: Buffer | Buffer[]): void {
    try {
      if (Array.isArray(reply)) fs.writevSync(this.#fd, reply)
      else fs.writeSync(this.#fd, reply)
    } catch (err) {
      // ENOENT: the kernel gave up on the request (interrupted); nothing is waiting for it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log(`fuse: writing a reply failed: ${String(err)}`)
    }
  }
}
