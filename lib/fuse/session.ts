// The conversation with the kernel on a /dev/fuse file descriptor: a few readers, each reading
// one request at a time into its own buffer (a WRITE's data is a view into it, so the buffer is
// not reused before the reply), handing it to the dispatcher and writing the reply back.
// Reads block in libuv's thread pool: each reader holds one pool thread while it waits.
import * as fs from '../fs.js'
import { nameToBytes } from '../name-bytes.js'
import { Dispatcher, Granting, MAX_WRITE, REQUEST_BUFFER_BYTES, type DispatchLog, type Reply } from './dispatch.js'
import type { FuseOperations } from './operations.js'
import { FuseProtocolError, IN_HEADER_BYTES, notifyInvalEntry, parseRequest, replyError } from './protocol.js'

const EIO = 5

/** Notifications written at once, at most: each may hold a pool thread while the kernel waits for a lock. */
const NOTIFYING = 3

function poolSize(): number {
  return Number(process.env.UV_THREADPOOL_SIZE) || 4
}

/** Notifications in flight for the pool we have: at least one pool thread stays free for the store. */
function notifyingCount(pool = poolSize()): number {
  return Math.max(1, Math.min(NOTIFYING, pool - readerCount(pool) - 1))
}

/**
 * Requests read at once. Each waiting reader holds one of libuv's pool threads (UV_THREADPOOL_SIZE,
 * default 4; the CLI sets 8), and the store's fdatasyncs and our notifications need some too, or
 * an idle mount would starve them: up to 4 readers, leaving 3 threads free.
 */
export function readerCount(pool = poolSize()): number {
  return Math.max(1, Math.min(4, pool - 1 - NOTIFYING))
}

export class FuseSession {
  readonly #fd: number
  readonly #dispatcher: Dispatcher
  readonly #log: DispatchLog
  #ended = false
  /** Entries to invalidate, waiting for a free slot (kept small: encoded only when sent). */
  readonly #noticeParents: number[] = []
  readonly #noticeNames: string[] = []
  #noticeNext = 0
  #notifying = 0
  readonly #maxNotifying = notifyingCount()
  #started: (initialized: boolean) => void = () => {}
  /**
   * True once the kernel's INIT is answered: from then on the mount serves requests. False if a
   * reader stops first (the connection ended, or INIT failed), so a mount does not wait for ever.
   */
  readonly initialized = new Promise<boolean>((resolve) => (this.#started = resolve))

  constructor(fd: number, ops: FuseOperations, log: DispatchLog) {
    this.#fd = fd
    this.#dispatcher = new Dispatcher(ops, log)
    this.#log = log
    ops.bindNotifier?.({ invalidateEntry: (parent, name) => this.#notify(parent, name) })
  }

  /** Serve until the kernel ends the connection (unmount, abort) or DESTROY. */
  async run(): Promise<void> {
    const readers = Array.from({ length: readerCount() }, () => this.#reader())
    await Promise.all(readers)
  }

  async #reader(): Promise<void> {
    try {
      await this.#serve()
    } finally {
      this.#started(false) // nothing once INIT was answered: a promise settles once
    }
  }

  async #serve(): Promise<void> {
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
      if (reply instanceof Granting) {
        if (!this.#write(reply.reply)) await this.#takeBack(reply)
      } else if (reply) {
        this.#write(reply)
      }
      if (this.#dispatcher.initialized) this.#started(true)
      if (this.#dispatcher.ended) this.#ended = true
    }
  }

  /**
   * Send a notification without blocking the event loop: the kernel may have to wait for a
   * request in flight (a directory lock) before it takes it, and only this loop answers those.
   */
  #notify(parent: number, name: string): void {
    this.#noticeParents.push(parent)
    this.#noticeNames.push(name)
    this.#sendNotices()
  }

  #sendNotices(): void {
    while (this.#notifying < this.#maxNotifying && this.#noticeNext < this.#noticeParents.length && !this.#ended) {
      const i = this.#noticeNext++
      const message = notifyInvalEntry(this.#noticeParents[i]!, nameToBytes(this.#noticeNames[i]!))
      if (this.#noticeNext === this.#noticeParents.length) {
        this.#noticeParents.length = this.#noticeNames.length = this.#noticeNext = 0
      } else if (this.#noticeNext >= 4096) {
        // Drop what was sent from the front now and then, not on every send.
        this.#noticeParents.splice(0, this.#noticeNext)
        this.#noticeNames.splice(0, this.#noticeNext)
        this.#noticeNext = 0
      }
      this.#notifying++
      fs.write(this.#fd, message)
        .catch((err: NodeJS.ErrnoException) => {
          // ENOENT: the kernel had no such entry cached any more. ENODEV: unmounted meanwhile.
          if (err.code !== 'ENOENT' && err.code !== 'ENODEV') this.#log(`fuse: a notification failed: ${String(err)}`)
        })
        .finally(() => {
          this.#notifying--
          this.#sendNotices()
        })
    }
  }

  /** Whether the kernel took the reply. */
  #write(reply: Buffer | Buffer[]): boolean {
    try {
      if (Array.isArray(reply)) fs.writevSync(this.#fd, reply)
      else fs.writeSync(this.#fd, reply)
      return true
    } catch (err) {
      // ENOENT: the kernel gave up on the request (interrupted); nothing is waiting for it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log(`fuse: writing a reply failed: ${String(err)}`)
      return false
    }
  }

  /** The kernel never got `granted`: give back what it would have held, or that stays counted (or open) until the unmount. */
  async #takeBack(granted: Granting): Promise<void> {
    try {
      await granted.takeBack()
    } catch (err) {
      this.#log(`fuse: taking back an undelivered reply failed: ${String(err)}`)
    }
  }
}
