// The transmission phase of one client: read requests as they arrive, run them against the
// shared store, and answer with simple or structured replies.
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { isPagecowError, type ChangedExtent, type ImageStore, type Mark } from '../index.js'
import type { BufferPool } from './buffer-pool.js'
import type { MemoryBudget } from './memory-budget.js'
import { POLICY_MIN_BYTES, type ReadPolicy } from './read-policy.js'
import { ReplyWriter } from './reply-writer.js'
import { nbdErrnoOf, NbdRequestError } from './errors.js'
import { MAX_PAYLOAD_BYTES, type Negotiated } from './handshake.js'
import {
  MAX_STRING_BYTES,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_ENOTSUP,
  NBD_ESHUTDOWN,
  NBD_EPERM,
  NBD_FLAG_READ_ONLY,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STATE_DIRTY,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  NBD_STRUCTURED_REPLY_MAGIC,
  REQUEST_HEADER_BYTES,
} from './protocol.js'
import { ConnectionClosedError, type SocketReader } from './socket-reader.js'

/** Requests of one connection running at once; reading pauses beyond this. */
const MAX_INFLIGHT = 16
/** Reply bytes queued on the socket before reading pauses (a client that does not read). */
const MAX_QUEUED_REPLY_BYTES = 2 * 1024 * 1024
/**
 * READs this long or longer are split into data and hole chunks (holes cost no bytes); shorter
 * ones are one data chunk: the extent lookup costs more than it saves there, and the clients
 * that care about sparseness (qemu-img, nbdcopy) ask BLOCK_STATUS first anyway.
 */
const MIN_SPARSE_READ = 1024 * 1024
/** Zero runs shorter than this are sent inside data chunks rather than as holes. */
const MIN_HOLE_CHUNK = 4096
/** Most descriptors in one BLOCK_STATUS reply; the client asks again for the rest. */
const MAX_DESCRIPTORS = 64 * 1024
/** Piece size for NO_HOLE zeroing and CACHE read-ahead. */
const STEP_BYTES = 1024 * 1024
/** Offsets whose high 32-bit word is this or more are past 2^53: far past any export's end. */
const MAX_SAFE_HIGH_WORD = 2 ** 21
/** How long a client cut off after an oversized WRITE may keep sending before it is dropped. */
const DRAIN_TIMEOUT_MS = 5000
/** WRITE payloads this long or longer are read straight into a pooled buffer. */
const POOLED_PAYLOAD_BYTES = 64 * 1024

/** Command flags each command accepts (FUA is accepted everywhere, as the protocol asks). */
const ALLOWED_FLAGS: Record<number, number> = {
  [NBD_CMD_READ]: NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF,
  [NBD_CMD_WRITE]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_FLUSH]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_TRIM]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_CACHE]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_WRITE_ZEROES]: NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO,
  [NBD_CMD_BLOCK_STATUS]: NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE,
}

const COMMAND_NAMES: Record<number, string> = {
  [NBD_CMD_READ]: 'READ',
  [NBD_CMD_WRITE]: 'WRITE',
  [NBD_CMD_DISC]: 'DISC',
  [NBD_CMD_FLUSH]: 'FLUSH',
  [NBD_CMD_TRIM]: 'TRIM',
  [NBD_CMD_CACHE]: 'CACHE',
  [NBD_CMD_WRITE_ZEROES]: 'WRITE_ZEROES',
  [NBD_CMD_BLOCK_STATUS]: 'BLOCK_STATUS',
}

interface Request {
  flags: number
  type: number
  /** The client's 8 opaque bytes, echoed in every reply, as two 32-bit halves. */
  handleHi: number
  handleLo: number
  offset: number
  length: number
  /** WRITE only. */
  data?: Buffer
  /** Bytes of the memory budget this request holds (its payload or its reply's data). */
  reserved: number
  /** The reply was handed to the socket with the memory: it is given back once written. */
  handedOff: boolean
  /** The command sent its own reply (READ, BLOCK_STATUS); others get a plain OK when they succeed. */
  replied: boolean
}

export interface ConnectionOptions {
  /** Where READ replies and WRITE payloads get their buffers (shared by the server's connections). */
  buffers: BufferPool
  /** Request and reply data of every connection together stays within this. */
  budget: MemoryBudget
  /** Most bytes of the budget this connection holds at once (at least one largest request). */
  connectionLimit: number
  /** Whether READs run on the event loop or in the pool (shared: the page cache is). */
  reads: ReadPolicy
  /** Called with store failures a client cannot cause (those answered EIO): the operator should know. */
  onWarning: (err: unknown) => void
}

/** An error when the request reaches past the export's end (`errno` as the protocol asks per command). */
function rangeError(req: Request, size: number, errno: number): NbdRequestError | undefined {
  if (req.offset + req.length > size) {
    return new NbdRequestError(errno, `${COMMAND_NAMES[req.type]} of ${req.length} bytes at ${req.offset} is past the end of the export (${size} bytes)`)
  }
  return undefined
}

export class Connection {
  readonly #socket: Socket
  readonly #reader: SocketReader
  readonly #store: ImageStore
  readonly #negotiated: Negotiated
  readonly #readOnly: boolean
  readonly #options: ConnectionOptions
  /** Requests being served (dispatched, not yet answered). */
  #inflight = 0
  /** Wakes the read loop waiting for a request to finish (MAX_INFLIGHT), or serve() waiting for all. */
  #onAnswered: (() => void) | undefined
  /** Requests whose replies sit in the socket's queue with budget memory. */
  readonly #queued = new Set<Request>()
  /** Aborted by stop(): a wait for memory ends. */
  readonly #abort = new AbortController()
  /** Budget bytes this connection holds. */
  #held = 0
  /** Wakes a wait for this connection's own memory to come back. */
  #onFree: (() => void) | undefined
  #waitingForMemory = false
  /** A WRITE's payload is being received (its memory is reserved). */
  #receivingPayload = false
  /** Requests answered so far: the server's progress, which restarts the idle clock too. */
  #answered = 0
  /** Bytes received, reply bytes taken and requests answered at the last idle check; when that last grew. */
  #progress: number
  #progressAt: number
  #stopping = false
  readonly #writer: ReplyWriter
  /** The read loop is waiting for bytes from the client. */
  #waiting = false

  constructor(socket: Socket, reader: SocketReader, store: ImageStore, negotiated: Negotiated, options: ConnectionOptions) {
    this.#socket = socket
    this.#reader = reader
    this.#store = store
    this.#negotiated = negotiated
    this.#readOnly = (negotiated.flags & NBD_FLAG_READ_ONLY) !== 0
    this.#options = options
    this.#writer = new ReplyWriter(socket)
    this.#progress = reader.received + this.#writer.takenBytes
    this.#progressAt = performance.now()
    // Replies still queued when the socket closes are never written: their memory comes back,
    // and a wait for memory ends (nothing more will be read).
    socket.once('close', () => {
      for (const req of this.#queued) this.#release(req)
      this.#abort.abort(new ConnectionClosedError())
      this.#onFree?.()
    })
  }

  /**
   * Whether the client holds server memory it alone can free: replies it does not read, or a
   * WRITE payload it has not finished sending.
   */
  get holding(): boolean {
    return this.#receivingPayload || this.#writer.pendingBytes > 0
  }

  /** Whether anything is under way: requests in flight or waiting, replies or payloads moving. */
  get busy(): boolean {
    return this.holding || this.#waitingForMemory || this.#inflight > 0
  }

  /** Budget bytes this connection holds now. */
  get heldBytes(): number {
    return this.#held
  }

  /**
   * Milliseconds, as of `now` (performance.now()), since the client last made progress: sent
   * bytes, took reply bytes, had a request answered or in the store's hands (the server's time,
   * not the client's). Waiting for memory is no progress. Sampled by the server's idle check.
   */
  idleFor(now: number): number {
    const progress = this.#reader.received + this.#writer.takenBytes + this.#answered
    if (progress !== this.#progress || this.#inflight > 0) {
      this.#progress = progress
      this.#progressAt = now
    }
    return now - this.#progressAt
  }

  /**
   * Serve requests until the client disconnects (DISC or hangs up) or stop() is called.
   * Requests in flight always finish; a WRITE whose payload did not arrive whole never runs.
   */
  async serve(): Promise<void> {
    try {
      await this.#readLoop()
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err
    } finally {
      while (this.#inflight > 0) await new Promise<void>((resolve) => (this.#onAnswered = resolve))
    }
    this.#writer.end()
  }

  /**
   * Stop serving: requests in flight finish and are answered, requests already received are
   * answered ESHUTDOWN, then the socket closes.
   */
  stop(): void {
    this.#stopping = true
    if (this.#waiting) this.#reader.cancel()
    this.#abort.abort(new ConnectionClosedError('the server is shutting down'))
    this.#onFree?.()
  }

  /** Read while the loop waits for the client (stop() may cancel it then). */
  async #receive(length: number): Promise<Buffer> {
    if (this.#stopping && this.#reader.buffered < length) throw new ConnectionClosedError('the server is shutting down')
    this.#waiting = true
    try {
      return await this.#reader.read(length)
    } finally {
      this.#waiting = false
    }
  }

  /** #receive() into `target`. */
  async #receiveInto(target: Buffer): Promise<Buffer> {
    if (this.#stopping && this.#reader.buffered < target.length) throw new ConnectionClosedError('the server is shutting down')
    this.#waiting = true
    try {
      return await this.#reader.readInto(target)
    } finally {
      this.#waiting = false
    }
  }

  /**
   * Requests already received are parsed and started without waiting (one turn of the event loop
   * serves a whole pipelined batch); the loop awaits only when it needs more bytes, memory, or a
   * free slot.
   */
  async #readLoop(): Promise<void> {
    for (;;) {
      const header = this.#reader.take(REQUEST_HEADER_BYTES) ?? (await this.#receive(REQUEST_HEADER_BYTES))
      if (header.readUInt32BE(0) !== NBD_REQUEST_MAGIC) {
        this.#socket.destroy() // the stream is out of step: nothing after this can be trusted
        return
      }
      const offsetHi = header.readUInt32BE(16)
      const req: Request = {
        flags: header.readUInt16BE(4),
        type: header.readUInt16BE(6),
        handleHi: header.readUInt32BE(8),
        handleLo: header.readUInt32BE(12),
        // Past 2^53 (surely past the end) it stays past the end, and exact arithmetic is kept below.
        offset: offsetHi >= MAX_SAFE_HIGH_WORD ? Number.MAX_SAFE_INTEGER : offsetHi * 2 ** 32 + header.readUInt32BE(20),
        length: header.readUInt32BE(24),
        reserved: 0,
        handedOff: false,
        replied: false,
      }
      if (req.type === NBD_CMD_DISC) return
      if (req.type === NBD_CMD_WRITE && req.length > MAX_PAYLOAD_BYTES) {
        // The protocol lets a server hang up on a payload this big; answer first, then drain.
        this.#replyError(req, NBD_EINVAL, `WRITE of ${req.length} bytes is over the ${MAX_PAYLOAD_BYTES}-byte limit; closing the connection`)
        this.#hangUp()
        return
      }
      const need = memoryFor(req, this.#negotiated.metaContexts.length)
      if (need > 0 && !this.#reserveNow(req, need)) await this.#reserve(req, need)
      if (req.type === NBD_CMD_WRITE) {
        const data = req.length < POOLED_PAYLOAD_BYTES ? this.#reader.take(req.length) : undefined
        if (data) req.data = data
        else await this.#receivePayload(req)
      }
      if (this.#stopping) {
        this.#release(req)
        this.#replyError(req, NBD_ESHUTDOWN, 'the server is shutting down')
        continue
      }
      this.#dispatch(req)
      while (this.#inflight >= MAX_INFLIGHT) await new Promise<void>((resolve) => (this.#onAnswered = resolve))
      // Read on once the client has taken half: the kernel's buffer never runs dry meanwhile.
      if (this.#writer.pendingBytes > MAX_QUEUED_REPLY_BYTES) await this.#writer.below(MAX_QUEUED_REPLY_BYTES / 2)
    }
  }

  /** Take `bytes` of memory for `req` if they are free now, without waiting. */
  #reserveNow(req: Request, bytes: number): boolean {
    if (this.#held + bytes > this.#options.connectionLimit || !this.#options.budget.tryTake(bytes)) return false
    this.#held += bytes
    req.reserved = bytes
    return true
  }

  /** Wait for `bytes` of memory for `req`: first within this connection's share, then the server's. */
  async #reserve(req: Request, bytes: number): Promise<void> {
    this.#waitingForMemory = true
    try {
      while (this.#held + bytes > this.#options.connectionLimit) {
        if (this.#stopping || this.#socket.destroyed) throw new ConnectionClosedError('the server is shutting down')
        await new Promise<void>((resolve) => (this.#onFree = resolve))
        this.#onFree = undefined
      }
      await this.#options.budget.take(bytes, this.#abort.signal)
      this.#held += bytes
      req.reserved = bytes
    } finally {
      this.#waitingForMemory = false
    }
  }

  /** Give back the memory `req` holds (once; later calls do nothing). */
  #release(req: Request): void {
    const bytes = req.reserved
    if (bytes === 0) return
    req.reserved = 0
    this.#queued.delete(req)
    this.#held -= bytes
    this.#options.budget.give(bytes)
    this.#onFree?.()
  }

  /** Receive a WRITE's payload into req.data; its memory was reserved. */
  async #receivePayload(req: Request): Promise<void> {
    this.#receivingPayload = true
    try {
      if (req.length < POOLED_PAYLOAD_BYTES) {
        req.data = await this.#receive(req.length)
        return
      }
      const target = this.#options.buffers.take(req.length)
      try {
        req.data = await this.#receiveInto(target)
      } catch (err) {
        this.#options.buffers.release(target)
        throw err
      }
    } catch (err) {
      this.#release(req)
      throw err
    } finally {
      this.#receivingPayload = false
    }
  }

  /**
   * Start serving `req`. Commands that finish on the event loop (WRITE, TRIM, BLOCK_STATUS...)
   * cost one promise; nothing else is allocated per request but the reply.
   */
  #dispatch(req: Request): void {
    this.#inflight++
    let work: Promise<void> | void
    try {
      work = this.#start(req)
    } catch (err) {
      this.#failed(req, err)
      return
    }
    if (work) work.then(() => this.#succeeded(req), (err: unknown) => this.#failed(req, err))
    else this.#succeeded(req)
  }

  /** Run `req` (validated first); a promise if it does not finish at once. */
  #start(req: Request): Promise<void> | void {
    const allowed = ALLOWED_FLAGS[req.type]
    if (allowed === undefined) throw new NbdRequestError(NBD_EINVAL, `unknown command ${req.type}`)
    if ((req.flags & ~allowed) !== 0) {
      throw new NbdRequestError(NBD_EINVAL, `flags 0x${req.flags.toString(16)} are not valid for ${COMMAND_NAMES[req.type]}`)
    }
    if ((req.flags & NBD_CMD_FLAG_DF) !== 0 && !this.#negotiated.structuredReplies) {
      throw new NbdRequestError(NBD_EINVAL, 'the DF flag needs structured replies')
    }
    switch (req.type) {
      case NBD_CMD_READ:
        req.replied = true
        return this.#readCommand(req)
      case NBD_CMD_WRITE:
        return this.#write(req)
      case NBD_CMD_FLUSH:
        return this.#store.flush()
      case NBD_CMD_TRIM:
        return this.#trim(req)
      case NBD_CMD_WRITE_ZEROES:
        return this.#writeZeroes(req)
      case NBD_CMD_CACHE:
        return this.#cache(req)
      case NBD_CMD_BLOCK_STATUS:
        req.replied = true
        return this.#blockStatus(req)
    }
  }

  #succeeded(req: Request): void {
    if (!req.replied) this.#replyOk(req)
    this.#finished(req)
  }

  #failed(req: Request, err: unknown): void {
    try {
      const errno = nbdErrnoOf(err)
      // The store failed, not the client; a write that waited out a freeze's timeout is no failure.
      if (errno === NBD_EIO && !isPagecowError(err, 'EFROZEN')) this.#options.onWarning(err)
      this.#replyError(req, errno, err instanceof Error ? err.message : String(err))
    } catch (bug) {
      this.#options.onWarning(bug)
    }
    this.#finished(req)
  }

  /** `req` was answered: its payload's buffer and memory come back (a reply's, once written). */
  #finished(req: Request): void {
    if (req.data && req.data.length >= POOLED_PAYLOAD_BYTES) this.#options.buffers.release(req.data)
    if (!req.handedOff) this.#release(req)
    this.#inflight--
    this.#answered++
    const wake = this.#onAnswered
    if (wake) {
      this.#onAnswered = undefined
      wake()
    }
  }

  #checkWritable(req: Request): void {
    if (this.#readOnly) throw new NbdRequestError(NBD_EPERM, `${COMMAND_NAMES[req.type]} on a read-only export`)
  }

  async #readCommand(req: Request): Promise<void> {
    const err = rangeError(req, this.#negotiated.size, NBD_EINVAL)
    if (err) throw err
    if (req.length > MAX_PAYLOAD_BYTES) throw new NbdRequestError(NBD_EINVAL, `READ of ${req.length} bytes is over the ${MAX_PAYLOAD_BYTES}-byte limit`)
    if (!this.#negotiated.structuredReplies) {
      const data = this.#options.buffers.take(req.length)
      try {
        await this.#readFully(data, req.offset)
      } catch (err) {
        this.#options.buffers.release(data)
        throw err
      }
      this.#sendWithMemory(req, [simpleHeader(req, 0), data], data)
      return
    }
    if (req.length === 0) {
      this.#send([structuredHeader(req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0)])
      return
    }
    const whole = (req.flags & NBD_CMD_FLAG_DF) !== 0 || req.length < MIN_SPARSE_READ
    const pieces = whole ? [{ start: req.offset, end: req.offset + req.length, zero: false }] : this.#readPieces(req)
    // Read everything before sending anything: an error then becomes one clean error chunk.
    const data = this.#options.buffers.take(pieces.reduce((n, p) => n + (p.zero ? 0 : p.end - p.start), 0))
    try {
      this.#sendWithMemory(req, await this.#readChunks(req, pieces, data), data)
    } catch (err) {
      this.#options.buffers.release(data)
      throw err
    }
  }

  /** The chunks of a structured READ reply, data read into `data`. */
  async #readChunks(req: Request, pieces: Array<{ start: number; end: number; zero: boolean }>, data: Buffer): Promise<Buffer[]> {
    const out: Buffer[] = []
    let at = 0
    for (const piece of pieces) {
      const length = piece.end - piece.start
      const done = piece === pieces[pieces.length - 1] ? NBD_REPLY_FLAG_DONE : 0
      if (piece.zero) {
        const hole = structuredHeader(req, done, NBD_REPLY_TYPE_OFFSET_HOLE, 12, 12)
        hole.writeBigUInt64BE(BigInt(piece.start), 20)
        hole.writeUInt32BE(length, 28)
        out.push(hole)
        continue
      }
      const chunk = data.subarray(at, at + length)
      await this.#readFully(chunk, piece.start)
      at += length
      const head = structuredHeader(req, done, NBD_REPLY_TYPE_OFFSET_DATA, 8 + length, 8)
      head.writeBigUInt64BE(BigInt(piece.start), 20)
      out.push(head, chunk)
    }
    return out
  }

  /** The request cut into runs that read as zeros (sent as holes) and runs of data. */
  #readPieces(req: Request): Array<{ start: number; end: number; zero: boolean }> {
    const pieces: Array<{ start: number; end: number; zero: boolean }> = []
    for (const e of this.#store.extents(req.offset, req.length)) {
      const zero = (e.state === 'zero' || e.state === 'hole') && e.length >= MIN_HOLE_CHUNK
      const last = pieces[pieces.length - 1]
      if (last && last.zero === zero && last.end === e.start) last.end = e.start + e.length
      else pieces.push({ start: e.start, end: e.start + e.length, zero })
    }
    // The store ends at the export's end, which was checked; cover any gap as data all the same.
    const covered = pieces.length > 0 ? (pieces[pieces.length - 1] as { end: number }).end : req.offset
    if (covered < req.offset + req.length) pieces.push({ start: covered, end: req.offset + req.length, zero: false })
    return pieces
  }

  /**
   * readInto, with zeros past the store's end (the export size is fixed at the handshake): small
   * reads on the event loop, large ones there or in the pool as the server's ReadPolicy says.
   */
  async #readFully(target: Buffer, offset: number): Promise<void> {
    const policy = this.#options.reads
    let n: number
    if (target.length < POLICY_MIN_BYTES) {
      n = this.#store.readIntoSync(target, offset)
    } else {
      const start = performance.now()
      if (policy.inline(start)) {
        const mark = policy.mark()
        n = this.#store.readIntoSync(target, offset)
        policy.observe(target.length, performance.now() - start, mark)
      } else {
        n = await this.#store.readInto(target, offset, { threadPool: true })
      }
    }
    if (n < target.length) target.fill(0, n)
  }

  #write(req: Request): Promise<void> {
    this.#checkWritable(req)
    const err = rangeError(req, this.#negotiated.size, NBD_ENOSPC)
    if (err) throw err
    const written = this.#store.write(req.offset, req.data as Buffer)
    return (req.flags & NBD_CMD_FLAG_FUA) !== 0 ? written.then(() => this.#store.flush()) : written
  }

  #trim(req: Request): Promise<void> {
    this.#checkWritable(req)
    const err = rangeError(req, this.#negotiated.size, NBD_EINVAL)
    if (err) throw err
    const trimmed = this.#store.discard(req.offset, req.length)
    return (req.flags & NBD_CMD_FLAG_FUA) !== 0 ? trimmed.then(() => this.#store.flush()) : trimmed
  }

  /** ZERO pages, or with NO_HOLE zeros written as DATA (the space stays allocated). */
  async #writeZeroes(req: Request): Promise<void> {
    this.#checkWritable(req)
    const err = rangeError(req, this.#negotiated.size, NBD_ENOSPC)
    if (err) throw err
    if ((req.flags & NBD_CMD_FLAG_NO_HOLE) !== 0) {
      if ((req.flags & NBD_CMD_FLAG_FAST_ZERO) !== 0) throw new NbdRequestError(NBD_ENOTSUP, 'allocated zeros are written like data: not fast')
      if (req.length > MAX_PAYLOAD_BYTES) throw new NbdRequestError(NBD_EINVAL, `WRITE_ZEROES with NO_HOLE of ${req.length} bytes is over the ${MAX_PAYLOAD_BYTES}-byte limit`)
      const zeros = Buffer.alloc(Math.min(STEP_BYTES, req.length))
      for (let pos = req.offset, end = req.offset + req.length; pos < end; pos += zeros.length) {
        await this.#store.write(pos, zeros.subarray(0, Math.min(zeros.length, end - pos)))
      }
    } else {
      await this.#store.zero(req.offset, req.length)
    }
    if ((req.flags & NBD_CMD_FLAG_FUA) !== 0) await this.#store.flush()
  }

  /** A hint: read the range through so the lower's and upper's pages are in the page cache. */
  async #cache(req: Request): Promise<void> {
    const err = rangeError(req, this.#negotiated.size, NBD_EINVAL)
    if (err) throw err
    if (req.length > MAX_PAYLOAD_BYTES) throw new NbdRequestError(NBD_EINVAL, `CACHE of ${req.length} bytes is over the ${MAX_PAYLOAD_BYTES}-byte limit`)
    const scratch = Buffer.allocUnsafe(Math.min(STEP_BYTES, req.length))
    for (let pos = req.offset, end = req.offset + req.length; pos < end; pos += scratch.length) {
      await this.#store.readInto(scratch.subarray(0, Math.min(scratch.length, end - pos)), pos, { threadPool: true })
    }
  }

  /**
   * One BLOCK_STATUS chunk per selected context, in the order they were selected; everything is
   * worked out before anything is sent, so a failure is one clean error reply.
   */
  #blockStatus(req: Request): void {
    const contexts = this.#negotiated.metaContexts
    if (!this.#negotiated.structuredReplies || contexts.length === 0) {
      throw new NbdRequestError(NBD_EINVAL, 'BLOCK_STATUS needs structured replies and a metadata context (base:allocation or qemu:dirty-bitmap:MARK)')
    }
    if (req.length === 0) throw new NbdRequestError(NBD_EINVAL, 'BLOCK_STATUS of 0 bytes')
    const err = rangeError(req, this.#negotiated.size, NBD_EINVAL)
    if (err) throw err
    // The descriptors of one reply are shared out between its contexts (its memory was reserved for that many).
    const max = (req.flags & NBD_CMD_FLAG_REQ_ONE) !== 0 ? 1 : Math.max(1, Math.floor(MAX_DESCRIPTORS / contexts.length))
    const end = req.offset + req.length
    const out: Buffer[] = []
    contexts.forEach((context, i) => {
      const descriptors = new Descriptors(max)
      if (context.kind === 'allocation') this.#allocation(descriptors, req.offset, end)
      else this.#dirty(descriptors, context.mark, req.offset, end)
      const payload = descriptors.payload(context.id)
      out.push(structuredHeader(req, i === contexts.length - 1 ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS, payload.length), payload)
    })
    this.#sendWithMemory(req, out)
  }

  /** `base:allocation` from the merged view: zero → ZERO, hole → HOLE|ZERO, data and lower → 0. */
  #allocation(descriptors: Descriptors, start: number, end: number): void {
    let at = start
    for (const e of this.#store.extents(start, end - start)) {
      const flags = e.state === 'hole' ? NBD_STATE_HOLE | NBD_STATE_ZERO : e.state === 'zero' ? NBD_STATE_ZERO : 0
      if (!descriptors.add(e.length, flags)) return
      at = e.start + e.length
    }
    // Past the store's end (it shrank under a reader) everything reads as zeros.
    if (at < end) descriptors.add(end - at, NBD_STATE_HOLE | NBD_STATE_ZERO)
  }

  /**
   * `qemu:dirty-bitmap:NAME`: DIRTY for the bytes changed since the mark (committed or not yet:
   * the library's changes), clean elsewhere. Only the change records of the range are read. A
   * mark removed (or taken again under its name) since the client selected it is an error: its
   * changes are no longer those of the moment the client chose.
   */
  #dirty(descriptors: Descriptors, mark: Mark, start: number, end: number): void {
    let changed: Generator<ChangedExtent>
    try {
      changed = this.#store.changedExtents(mark, start, end - start)
    } catch (err) {
      if (!isPagecowError(err) || err.code !== 'ESTALE') throw err
      throw new NbdRequestError(NBD_EINVAL, `the mark "${mark.name}" (qemu:dirty-bitmap:${mark.name}) was removed or taken again since this client selected it; connect again to see the marks as they are now`)
    }
    let at = start
    for (const e of changed) {
      if (e.start > at && !descriptors.add(e.start - at, 0)) return
      if (!descriptors.add(e.length, NBD_STATE_DIRTY)) return
      at = e.start + e.length
    }
    if (at < end) descriptors.add(end - at, 0)
  }

  /** Send a reply holding `req`'s memory (and `pooled`, a buffer from the pool): both come back once written. */
  #sendWithMemory(req: Request, buffers: Buffer[], pooled?: Buffer): void {
    req.handedOff = true
    if (req.reserved > 0) this.#queued.add(req)
    this.#send(buffers, () => {
      if (pooled) this.#options.buffers.release(pooled)
      this.#release(req)
    })
  }

  #replyOk(req: Request): void {
    if (this.#negotiated.structuredReplies && req.type === NBD_CMD_READ) {
      this.#send([structuredHeader(req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0)])
    } else {
      this.#send([simpleHeader(req, 0)])
    }
  }

  #replyError(req: Request, errno: number, message: string): void {
    if (!this.#negotiated.structuredReplies) {
      this.#send([simpleHeader(req, errno)])
      return
    }
    const text = Buffer.from(message, 'utf8').subarray(0, MAX_STRING_BYTES)
    const chunk = structuredHeader(req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 6 + text.length, 6)
    chunk.writeUInt32BE(errno, 20)
    chunk.writeUInt16BE(text.length, 24)
    this.#send([chunk, text])
  }

  /** Queue one whole reply (see ReplyWriter). */
  #send(buffers: Buffer[], done?: () => void): void {
    this.#writer.send(buffers, done)
  }

  /** Close our side after the last reply and swallow what the client still sends, for a while. */
  #hangUp(): void {
    this.#reader.discard()
    this.#writer.end()
    const timer = setTimeout(() => this.#socket.destroy(), DRAIN_TIMEOUT_MS)
    timer.unref()
    this.#socket.once('close', () => clearTimeout(timer))
  }
}

/** The extent descriptors of one BLOCK_STATUS chunk: (length, flags) pairs, equal neighbours joined, at most `max`. */
class Descriptors {
  readonly #max: number
  readonly #lengths: number[] = []
  readonly #flags: number[] = []

  constructor(max: number) {
    this.#max = max
  }

  /** Append `length` bytes of `flags`; false when full (the reply then ends before this piece: the client asks again). */
  add(length: number, flags: number): boolean {
    const last = this.#lengths.length - 1
    if (last >= 0 && this.#flags[last] === flags) this.#lengths[last]! += length
    else if (this.#lengths.length < this.#max) {
      this.#lengths.push(length)
      this.#flags.push(flags)
    } else return false
    return true
  }

  /** The chunk's payload: the context ID, then each descriptor. */
  payload(id: number): Buffer {
    const payload = Buffer.alloc(4 + 8 * this.#lengths.length)
    payload.writeUInt32BE(id, 0)
    this.#lengths.forEach((length, i) => {
      payload.writeUInt32BE(length, 4 + 8 * i)
      payload.writeUInt32BE(this.#flags[i]!, 8 + 8 * i)
    })
    return payload
  }
}

/**
 * Bytes of data `req` brings or takes out, held until its payload is stored or its reply written.
 * A BLOCK_STATUS reply at its largest: per context a chunk header and ID, and MAX_DESCRIPTORS
 * descriptors shared out between the contexts.
 */
function memoryFor(req: Request, contexts: number): number {
  switch (req.type) {
    case NBD_CMD_READ:
      return req.length <= MAX_PAYLOAD_BYTES ? req.length : 0 // a longer one is refused, holding nothing
    case NBD_CMD_WRITE:
      return req.length
    case NBD_CMD_WRITE_ZEROES:
      return (req.flags & NBD_CMD_FLAG_NO_HOLE) !== 0 ? Math.min(STEP_BYTES, req.length) : 0
    case NBD_CMD_CACHE:
      return Math.min(STEP_BYTES, req.length)
    case NBD_CMD_BLOCK_STATUS:
      return 24 * Math.max(1, contexts) + 8 * MAX_DESCRIPTORS
    default:
      return 0
  }
}

function simpleHeader(req: Request, errno: number): Buffer {
  const header = Buffer.allocUnsafe(16)
  header.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0)
  header.writeUInt32BE(errno, 4)
  header.writeUInt32BE(req.handleHi, 8)
  header.writeUInt32BE(req.handleLo, 12)
  return header
}

/** A structured chunk header followed by `extra` bytes for the caller to fill. */
function structuredHeader(req: Request, flags: number, type: number, length: number, extra = 0): Buffer {
  const header = Buffer.alloc(20 + extra)
  header.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0)
  header.writeUInt16BE(flags, 4)
  header.writeUInt16BE(type, 6)
  header.writeUInt32BE(req.handleHi, 8)
  header.writeUInt32BE(req.handleLo, 12)
  header.writeUInt32BE(length, 16)
  return header
}
