// An image store: a raw image overlaid page by page (SPEC §1–5, §8, §9). The public API.
import { EventEmitter } from 'node:events'
import { dirname, resolve } from 'node:path'
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { Geometry } from '../geometry.js'
import { ChunkTable } from '../page/chunk-table.js'
import type { Extent } from '../page/extent.js'
import { ASYNC_READ_BYTES, PagedFile } from '../page/paged-file.js'
import { PageMap } from '../page/page-map.js'
import { UpperFile } from '../page/upper-file.js'
import { checkRange, closedError, prepareEmptyDirectory } from '../store/checks.js'
import { DATABASE_FILE, databaseBytes, dataVersion, hasDatabase, openDatabase } from '../store/database.js'
import { readFileState, readMeta, writeFileState, writeMeta, type StoreMeta } from '../store/meta.js'
import { checkStoreFiles, MOUNT_LOG_FILE } from '../store/store-file.js'
import { LOCK_FILE, WriterLock } from '../store/writer-lock.js'
import { describeChange, fingerprint } from './fingerprint.js'
import { LowerImage } from './lower-image.js'
import { createOptionsSchema, openOptionsSchema, type CreateOptions, type OpenOptions } from './options.js'
import { VERSION } from '../version.js'

/** The one file of an image store: its id in the store's tables. */
export const IMAGE_FILE_ID = 1
/** Where that file's upper pages live inside the store directory. */
export const UPPER_FILE = 'upper.img'
/** Largest single read: bigger ones are split by the caller, not allocated here. */
export const MAX_IO_BYTES = 256 * 1024 * 1024

/** What `info()` returns: plain data, printed as is by `pagecow inspect --json`. */
export interface StoreInfo {
  path: string
  kind: 'image'
  readOnly: boolean
  pageSize: number
  /** Logical size of the image in bytes. */
  size: number
  lower: { path: string; size: number }
  pages: { total: number; data: number; zero: number; lower: number }
  upper: { allocatedBytes: number; apparentBytes: number; databaseBytes: number }
  /** Bytes users wrote and bytes that reached the upper; amplification is their ratio. */
  written: { userBytes: number; upperBytes: number; amplification: number | null }
  /** Changes not yet committed by a flush. */
  dirty: boolean
  autoFlushMs: number
  createdAt: string
}

export class ImageStore extends EventEmitter {
  readonly kind = 'image' as const
  /** Absolute path of the store directory. */
  readonly path: string
  readonly readOnly: boolean
  readonly #meta: StoreMeta
  readonly #db: Database.Database
  readonly #lock: WriterLock | undefined
  readonly #file: PagedFile
  readonly #chunks: ChunkTable
  readonly #autoFlushMs: number
  #timer: NodeJS.Timeout | undefined
  #flushChain: Promise<void> = Promise.resolve()
  /** Bumped by every commit; a flush whose snapshot an other commit overtook skips its own. */
  #commits = 0
  #dataVersion: number
  #closed = false
  #closing: Promise<void> | undefined
  /** Reads in flight in the thread pool: close() lets them finish. */
  readonly #reads = new Set<Promise<number>>()

  private constructor(parts: {
    path: string
    readOnly: boolean
    meta: StoreMeta
    db: Database.Database
    lock: WriterLock | undefined
    file: PagedFile
    chunks: ChunkTable
    autoFlushMs: number
  }) {
    super()
    this.path = parts.path
    this.readOnly = parts.readOnly
    this.#meta = parts.meta
    this.#db = parts.db
    this.#lock = parts.lock
    this.#file = parts.file
    this.#chunks = parts.chunks
    this.#autoFlushMs = parts.autoFlushMs
    this.#dataVersion = dataVersion(this.#db)
    if (!parts.readOnly && parts.autoFlushMs > 0) {
      this.#timer = setInterval(() => this.#autoFlush(), parts.autoFlushMs)
      this.#timer.unref()
    }
  }

  /** Create a store in `dir` (which must not exist or be empty) over the raw image `lower`. */
  static async create(dir: string, options: CreateOptions): Promise<ImageStore> {
    const opts = parseWith(createOptionsSchema, options, 'create')
    const path = resolve(dir)
    prepareEmptyDirectory(path)
    const lowerPath = resolve(opts.lower)
    const lower = LowerImage.open(lowerPath)
    let db: Database.Database | undefined
    try {
      const upper = UpperFile.open(`${path}/${UPPER_FILE}`, { readOnly: false, create: true })
      upper.close()
      db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: false, create: true })
      const meta: StoreMeta = {
        format: 'pagecow',
        kind: 'image',
        pageSize: opts.pageSize,
        lower: { path: lowerPath, fingerprint: fingerprint(lower) },
        createdAt: new Date().toISOString(),
        createdBy: `pagecow ${VERSION}`,
      }
      const database = db
      database.transaction(() => {
        writeFileState(database, IMAGE_FILE_ID, { size: lower.size, lowerCut: lower.size, bytesWritten: 0, upperWritten: 0 })
        writeMeta(database, meta)
      })()
      // The new files' names must survive a power cut too, and so must the store directory's.
      fs.syncDirectory(path)
      fs.syncDirectory(dirname(path))
    } catch (err) {
      throw fromSystemError(err, `creating a store in ${path}`)
    } finally {
      db?.close()
      lower.close()
    }
    return ImageStore.open(path, { autoFlushMs: opts.autoFlushMs })
  }

  /** Open an existing store; the lower's fingerprint is checked first (SPEC §8). */
  static async open(dir: string, options: OpenOptions = {}): Promise<ImageStore> {
    const opts = parseWith(openOptionsSchema, options, 'open')
    const path = resolve(dir)
    if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
    checkStoreFiles(path, [LOCK_FILE, UPPER_FILE, MOUNT_LOG_FILE])
    const lock = opts.readOnly ? undefined : WriterLock.acquire(`${path}/${LOCK_FILE}`)
    const opened: Array<{ close(): void }> = []
    try {
      const db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: opts.readOnly })
      opened.push(db)
      const meta = readMeta(db, path)
      const lower = LowerImage.open(meta.lower.path)
      opened.push(lower)
      const change = describeChange(meta.lower.fingerprint, fingerprint(lower))
      if (change) {
        throw new PagecowError('ESTALE', `the lower image ${meta.lower.path} changed since the store was created (${change}); the store refuses to mix its pages with different lower bytes`)
      }
      const upper = UpperFile.open(`${path}/${UPPER_FILE}`, { readOnly: opts.readOnly })
      opened.push(upper)
      const chunks = new ChunkTable(db, IMAGE_FILE_ID)
      const map = new PageMap(chunks, chunks.totals(), path)
      const file = new PagedFile(new Geometry(meta.pageSize), lower, upper, map, readFileState(db, IMAGE_FILE_ID, path))
      return new ImageStore({ path, readOnly: opts.readOnly, meta, db, lock, file, chunks, autoFlushMs: opts.autoFlushMs })
    } catch (err) {
      for (const o of opened.reverse()) o.close()
      lock?.release()
      throw fromSystemError(err, `opening the store ${path}`)
    }
  }

  get pageSize(): number {
    return this.#meta.pageSize
  }

  /** Logical size of the image in bytes. */
  get size(): number {
    this.#checkOpen()
    this.#refresh()
    return this.#file.size
  }

  /** Read `length` bytes at `offset`; shorter at the end of the image. */
  async read(offset: number, length: number): Promise<Buffer> {
    this.#checkOpen()
    checkRange(offset, length, 'read')
    if (length > MAX_IO_BYTES) throw new PagecowError('EINVAL', `read: length ${length} is over the ${MAX_IO_BYTES}-byte limit of one read`)
    this.#refresh()
    const target = Buffer.alloc(Math.max(0, Math.min(length, this.#file.size - offset)))
    this.#file.readInto(target, offset)
    return target
  }

  /**
   * Read into `target` from `offset`; returns the bytes read (fewer at the end of the image).
   * Reads of 64 KiB or more run in libuv's thread pool, so that several (an NBD client's queue)
   * overlap on the disk; smaller ones stay on the event loop, where a cached page costs less
   * than the hop to the pool.
   */
  async readInto(target: Uint8Array, offset: number): Promise<number> {
    this.#checkOpen()
    if (!(target instanceof Uint8Array)) throw new PagecowError('EINVAL', 'readInto: target must be a Buffer or Uint8Array')
    checkRange(offset, target.length, 'read')
    this.#refresh()
    if (target.length < ASYNC_READ_BYTES) return this.#file.readInto(target, offset)
    const read = this.#file.readIntoAsync(target, offset)
    this.#reads.add(read)
    try {
      return await read
    } finally {
      this.#reads.delete(read)
    }
  }

  /**
   * Where the bytes of [offset, offset + length) are, if they all come from the lower image (every
   * page LOWER): the lower's descriptor, the bytes it holds from `offset`, and the zeros after them
   * to the end of the range or of the image. Undefined if any page there is in the upper, or the
   * range starts at or past the end. A hook for the FUSE server, which splices the lower's page
   * cache straight into its reply; the descriptor stays the store's (use it at once, never close it).
   */
  lowerSpan(offset: number, length: number): { fd: number; bytes: number; zeros: number } | undefined {
    this.#checkOpen()
    checkRange(offset, length, 'read')
    this.#refresh()
    const lower = this.#file.lower
    const end = Math.min(offset + length, this.#file.size)
    if (end <= offset || !(lower instanceof LowerImage)) return undefined
    const bytes = this.#file.lowerBytesIn(offset, end)
    return bytes < 0 ? undefined : { fd: lower.fd, bytes, zeros: end - offset - bytes }
  }

  /** Write `data` at `offset`; the image grows if the write ends past it. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWritable()
    if (!(data instanceof Uint8Array)) throw new PagecowError('EINVAL', 'write: data must be a Buffer or Uint8Array')
    checkRange(offset, data.length, 'write')
    this.#file.write(offset, data)
  }

  /** Write zeros over [offset, offset + length); whole pages become ZERO and free their space. */
  async zero(offset: number, length: number): Promise<void> {
    this.#checkWritable()
    checkRange(offset, length, 'zero')
    this.#file.zero(offset, length)
  }

  /** Trim: whole pages in the range become ZERO and free their space; partial pages are kept. */
  async discard(offset: number, length: number): Promise<void> {
    this.#checkWritable()
    checkRange(offset, length, 'discard')
    this.#file.discard(offset, length)
  }

  /** Set the image's size. Commits at once (it implies a flush) before giving space back. */
  async truncate(size: number): Promise<void> {
    this.#checkWritable()
    checkRange(size, 0, 'truncate')
    this.#file.truncate(size)
    this.#flushSync()
    this.#file.trimUpper()
  }

  /** Make every write completed before this call durable (SPEC §3). */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    if (this.readOnly) return Promise.resolve()
    const run = this.#flushChain.then(() => this.#flushOnce())
    this.#flushChain = run.catch(() => {})
    return run
  }

  /**
   * Flush, then release the upper, the lower, the database and the writer lock. If the flush
   * fails (a full disk), the store stays open with its writes, so the caller can retry.
   */
  close(): Promise<void> {
    // Every caller waits for the one close: a second one returning early would find the writer
    // lock still held.
    if (!this.#closing) {
      const closing = this.#closeOnce()
      this.#closing = closing
      closing.catch(() => (this.#closing = undefined)) // the flush failed: the store stays open, close() may be retried
    }
    return this.#closing
  }

  async #closeOnce(): Promise<void> {
    if (this.#closed) return
    if (!this.readOnly) await this.flush()
    clearInterval(this.#timer)
    this.#closed = true
    await Promise.allSettled(this.#reads) // the reads' targets must not be written after close returns
    this.#file.upper.close()
    this.#file.lower.close()
    if (!this.readOnly) {
      try {
        this.#db.pragma('wal_checkpoint(TRUNCATE)')
      } catch {
        // A checkpoint is housekeeping; the WAL is replayed at the next open if it failed.
      }
    }
    this.#db.close()
    this.#lock?.release()
  }

  /** The merged view of [offset, offset + length) as extents (SPEC §5). Default: all of it. */
  extents(offset = 0, length?: number): Generator<Extent> {
    // Not a generator itself: bad arguments fail at the call, and there is one level less per extent.
    this.#checkOpen()
    checkRange(offset, length ?? 0, 'map')
    this.#refresh()
    return this.#file.extents(offset, length === undefined ? this.#file.size : offset + length)
  }

  /** SEEK_DATA: the first offset at or after `offset` holding data, or null if none. */
  nextData(offset: number): number | null {
    this.#checkOpen()
    checkRange(offset, 0, 'nextData')
    this.#refresh()
    return this.#file.nextData(offset)
  }

  /** SEEK_HOLE: the first hole at or after `offset` (the end counts), or null past the end. */
  nextHole(offset: number): number | null {
    this.#checkOpen()
    checkRange(offset, 0, 'nextHole')
    this.#refresh()
    return this.#file.nextHole(offset)
  }

  /** Totals and settings as plain data. */
  info(): StoreInfo {
    this.#checkOpen()
    this.#refresh()
    const file = this.#file
    const state = file.state
    const counts = file.map.counts
    const total = file.geometry.pagesFor(state.size)
    const usage = file.upper.diskUsage()
    return {
      path: this.path,
      kind: 'image',
      readOnly: this.readOnly,
      pageSize: this.pageSize,
      size: state.size,
      lower: { path: this.#meta.lower.path, size: file.lower.size },
      pages: { total, data: counts.data, zero: counts.zero, lower: Math.max(0, total - counts.data - counts.zero) },
      upper: { allocatedBytes: usage.allocated, apparentBytes: usage.apparent, databaseBytes: databaseBytes(this.path) },
      written: {
        userBytes: state.bytesWritten,
        upperBytes: state.upperWritten,
        amplification: state.bytesWritten > 0 ? state.upperWritten / state.bytesWritten : null,
      },
      dirty: file.isDirty,
      autoFlushMs: this.#autoFlushMs,
      createdAt: this.#meta.createdAt,
    }
  }

  async #flushOnce(): Promise<void> {
    if (this.#closed || !this.#file.isDirty) return
    const commits = this.#commits
    const chunks = this.#file.map.snapshot()
    const record = this.#file.snapshotState()
    // Data first: the bitmap must never point at pages the disk does not hold yet.
    await this.#file.upper.sync()
    if (this.#commits !== commits || this.#closed) return // a truncate committed a newer state meanwhile
    this.#commit(chunks, record)
  }

  /** Commit everything now, synchronously: truncate needs no other commit to overtake it. */
  #flushSync(): void {
    const chunks = this.#file.map.snapshot()
    const record = this.#file.snapshotState()
    this.#file.upper.syncNow()
    this.#commit(chunks, record)
  }

  #commit(chunks: ReturnType<PageMap['snapshot']>, record: ReturnType<PagedFile['snapshotState']>): void {
    try {
      this.#db.transaction(() => {
        this.#chunks.save(chunks)
        writeFileState(this.#db, IMAGE_FILE_ID, record.state)
      })()
    } catch (err) {
      throw fromSystemError(err, 'committing the page map')
    }
    this.#commits++
    this.#file.map.committed(chunks)
    this.#file.stateCommitted(record.version)
    this.emit('flush')
  }

  #autoFlush(): void {
    if (!this.#file.isDirty) return
    this.flush().catch((err: unknown) => this.emit('warning', err))
  }

  /** A read-only store follows the writer: reload the map when the database changed. */
  #refresh(): void {
    if (!this.readOnly) return
    const version = dataVersion(this.#db)
    if (version === this.#dataVersion) return
    this.#dataVersion = version
    this.#file.reload(readFileState(this.#db, IMAGE_FILE_ID, this.path))
    this.#file.map.reload(this.#chunks.totals())
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError()
  }

  #checkWritable(): void {
    this.#checkOpen()
    if (this.readOnly) throw new PagecowError('EROFS', 'the store is open read-only')
  }
}
