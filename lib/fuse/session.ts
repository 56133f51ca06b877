// The conversation with the kernel on a /dev/fuse file descriptor. Requests are read on the event
// loop when the descriptor says it is readable (a libuv poll), each handed to the dispatcher at
// once, several in flight; each reply is written when its request is done. No thread waits in
// read(2): that cost a pool hop per request (~20 µs on the loop, and more promise garbage), and
// parked up to four of libuv's pool threads for ever.
import * as fs from '../fs.js'
import { nameToBytes } from '../name-bytes.js'
import { Dispatcher, Granting, REQUEST_BUFFER_BYTES, type DispatchLog, type Reply, type SpliceChannel } from './dispatch.js'
import type { FuseOperations } from './operations.js'
import { FuseProtocolError, IN_HEADER_BYTES, notifyInvalEntry, parseRequest, replyError } from './protocol.js'

const EIO = 5
const ENOENT = 2
const ENODEV = 19
const EAGAIN = 11
const E2BIG = 7

/**
 * Requests in flight at most (the kernel sends up to 64 background requests at once: readahead,
 * cached writes); past it, reading waits for one to finish.
 */
export const MAX_IN_FLIGHT = 64
/** Requests up to this size are copied out of the read buffer; a larger one (a big WRITE) keeps it. */
const SMALL_REQUEST = 16 * 1024
/**
 * Large buffers (MAX_WRITE: a big WRITE's request, a READ reply's data) held by requests in flight,
 * at most: bounds the memory a burst of large requests takes (libuv's pool serves 8 at once anyway).
 */
const LARGE_BUFFERS = 8
/** Large buffers kept for reuse once their request is done. */
const SPARE_BUFFERS = 4
/** Notifications written at once, at most: each holds a pool thread while the kernel waits for a lock. */
const NOTIFYING = 3

function poolSize(): number {
  return Number(process.env.UV_THREADPOOL_SIZE) || 4
}

/** Notifications in flight for the pool we have: at least one pool thread stays free for the store. */
function notifyingCount(pool = poolSize()): number {
  return Math.max(1, Math.min(NOTIFYING, pool - 1))
}

export class FuseSession {
  readonly #fd: number
  readonly #dispatcher: Dispatcher
  readonly #log: DispatchLog
  #watch: fs.ReadableWatch | undefined
  #paused = false
  #ended = false
  #finished = false
  #finish: () => void = () => {}
  #inFlight = 0
  /** What the next request is read into. */
  #inbox: Buffer = Buffer.allocUnsafe(REQUEST_BUFFER_BYTES)
  /** Large buffers held by requests in flight (the inbox not counted), spares, and READs waiting for one. */
  #largeOut = 0
  readonly #spares: Buffer[] = []
  readonly #waitingForLarge: Array<(b: Buffer) => void> = []
  /**
   * Buffers for small requests, reused: a new one per request (a 4 KiB WRITE is over Node's pooled
   * size) cost ~20 µs of garbage collection per request in a burst of cached writes.
   */
  readonly #smallFree: Buffer[] = []
  /** The most file bytes a spliced reply may carry; 0 once splicing failed for good. */
  #spliceBytes = -1
  /** Entries to invalidate, waiting for a free slot (kept small: encoded only when sent). */
  readonly #noticeParents: number[] = []
  readonly #noticeNames: string[] = []
  #noticeNext = 0
  #notifying = 0
  readonly #maxNotifying = notifyingCount()
  #started: (initialized: boolean) => void = () => {}
  /**
   * True once the kernel's INIT is answered: from then on the mount serves requests. False if the
   * session ends first (the connection ended, or INIT failed), so a mount does not wait for ever.
   */
  readonly initialized = new Promise<boolean>((resolve) => (this.#started = resolve))

  /** `writebackCache`: ask the kernel to cache writes (see DispatchOptions). */
  constructor(fd: number, ops: FuseOperations, log: DispatchLog, options: { writebackCache?: boolean } = {}) {
    this.#fd = fd
    this.#dispatcher = new Dispatcher(ops, log, { channel: this.#channel(), writebackCache: options.writebackCache === true })
    this.#log = log
    ops.bindNotifier?.({ invalidateEntry: (parent, name) => this.#notify(parent, name) })
  }

  /** Whether the kernel caches writes on this mount (asked for and granted at INIT). */
  get writebackCache(): boolean {
    return this.#dispatcher.writebackCache
  }

  /** Requests read and not answered yet. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** Serve until the kernel ends the connection (unmount, abort) or DESTROY, and every request in flight is answered. */
  run(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#finish = resolve
      try {
        this.#watch = fs.watchReadable(this.#fd, (status) => this.#readable(status))
      } catch (err) {
        this.#log(`fuse: cannot watch /dev/fuse: ${String(err)}`)
        this.#ended = true
        this.#end()
      }
    })
  }

  /** Read every request waiting (up to the in-flight limit) and start serving each. */
  #readable(status: number): void {
    // A large request takes the inbox and needs a new one: one must be left to lend.
    while (!this.#ended && this.#inFlight < MAX_IN_FLIGHT && this.#largeOut < LARGE_BUFFERS) {
      let n: number
      try {
        n = fs.readSync(this.#fd, this.#inbox, 0, this.#inbox.length, null)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EAGAIN') {
          if (status >= 0) return
          // The poll failed (and stopped) but there is nothing to read: nothing would wake us again.
          this.#log(`fuse: polling /dev/fuse failed (libuv status ${status})`)
        } else if (code === 'EINTR' || code === 'ENOENT') {
          continue // ENOENT: the request was interrupted before we read it
        } else if (code !== 'ENODEV') {
          this.#log(`fuse: reading /dev/fuse failed: ${String(err)}`)
        }
        this.#ended = true // ENODEV: unmounted
        break
      }
      this.#take(n)
    }
    if (this.#ended) this.#end()
    else if (!this.#paused && this.#watch) {
      // Full: stop polling (the device stays readable) until a request is done.
      this.#paused = true
      fs.watchPause(this.#watch)
    }
  }

  /** The request just read into the inbox, `n` bytes: its own copy if small, else the inbox itself. */
  #take(n: number): void {
    let request: Buffer
    let large: Buffer | undefined
    let small: Buffer | undefined
    if (n <= SMALL_REQUEST) {
      small = this.#smallFree.pop() ?? Buffer.allocUnsafeSlow(SMALL_REQUEST)
      this.#inbox.copy(small, 0, 0, n)
      request = small.subarray(0, n)
    } else {
      large = this.#inbox
      request = large.subarray(0, n)
      this.#largeOut++
      this.#inbox = this.#spares.pop() ?? Buffer.allocUnsafe(REQUEST_BUFFER_BYTES)
    }
    this.#inFlight++
    void this.#serve(request, large, small)
  }

  async #serve(request: Buffer, large: Buffer | undefined, small: Buffer | undefined): Promise<void> {
    let scratch: Buffer | undefined
    // READ replies are read into this (not a new buffer each time); it is free again once written.
    const lend = async () => (scratch ??= await this.#takeLarge())
    // A large request whose data was copied out (a WRITE that waits for a frozen file) gives its
    // buffer back at once, and reading goes on if it had stopped for want of one.
    const detach = large
      ? () => {
          if (!large) return
          this.#giveBack(large)
          large = undefined
          this.#resume()
        }
      : undefined
    try {
      let reply: Reply
      try {
        reply = await this.#dispatcher.handle(parseRequest(request), lend, detach)
      } catch (err) {
        // Answer what cannot be decoded, or the caller waits for ever.
        this.#log(`fuse: a request could not be decoded: ${String(err)}`)
        reply = request.length < IN_HEADER_BYTES ? null : replyError(request.readBigUInt64LE(8), err instanceof FuseProtocolError ? err.errno : EIO)
      }
      if (reply instanceof Granting) {
        if (!this.#write(reply.reply)) await this.#takeBack(reply)
      } else if (reply) {
        this.#write(reply)
      }
      if (this.#dispatcher.initialized) this.#started(true)
      if (this.#dispatcher.ended) this.#ended = true
    } finally {
      // Nothing keeps a view of a request once it is answered (names and data are copied out).
      if (small && this.#smallFree.length < MAX_IN_FLIGHT) this.#smallFree.push(small)
      if (large) this.#giveBack(large)
      if (scratch) this.#giveBack(scratch)
      this.#inFlight--
      if (this.#ended) this.#end()
      else this.#resume()
    }
  }

  /** Poll /dev/fuse again if reading stopped (the in-flight or large-buffer limit was reached). */
  #resume(): void {
    if (this.#paused && this.#watch && !this.#ended) {
      this.#paused = false
      fs.watchResume(this.#watch) // still readable: the poll fires again on the next turn
    }
  }

  /** A large buffer for a READ reply, once fewer than LARGE_BUFFERS are out. */
  #takeLarge(): Buffer | Promise<Buffer> {
    if (this.#largeOut < LARGE_BUFFERS) {
      this.#largeOut++
      return this.#spares.pop() ?? Buffer.allocUnsafe(REQUEST_BUFFER_BYTES)
    }
    return new Promise((resolve) => this.#waitingForLarge.push(resolve))
  }

  #giveBack(buffer: Buffer): void {
    const waiting = this.#waitingForLarge.shift()
    if (waiting) return waiting(buffer) // stays out: handed on
    this.#largeOut--
    if (this.#spares.length < SPARE_BUFFERS) this.#spares.push(buffer)
  }

  /**
   * Once ended, every request in flight answered and every notification written: stop watching,
   * and the session is over. A notification still waiting in the pool would otherwise write to the
   * descriptor after its owner closed it, or to whatever file took its number since.
   */
  #end(): void {
    if (this.#finished || this.#inFlight > 0 || this.#notifying > 0) return
    this.#finished = true
    if (this.#watch) fs.watchClose(this.#watch)
    this.#started(false) // nothing once INIT was answered: a promise settles once
    this.#finish()
  }

  /** How the dispatcher sends a READ reply straight from a file's page cache. */
  #channel(): SpliceChannel {
    return {
      splice: (header, fd, position, bytes, zeros) => {
        if (this.#spliceBytes < 0) this.#spliceBytes = fs.spliceCapacity()
        if (bytes + zeros > this.#spliceBytes) return false
        const done = fs.spliceReply(this.#fd, header, fd, position, bytes, zeros)
        // ENOENT: the kernel gave up on the request (interrupted); ENODEV: the mount is gone.
        // Either way nothing waits for a reply.
        if (done >= 0 || done === -ENOENT || done === -ENODEV) return true
        if (done !== -EAGAIN && done !== -E2BIG) {
          this.#log(`fuse: splicing a read reply failed (errno ${-done}); read replies are copied from now on`)
          this.#spliceBytes = 0
        }
        return false
      },
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
          if (this.#ended) this.#end()
          else this.#sendNotices()
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
      // ENOENT: the kernel gave up on the request (interrupted); ENODEV: unmounted while it was
      // served. Nothing is waiting for it.
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENODEV') this.#log(`fuse: writing a reply failed: ${String(err)}`)
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
