// An image store: a raw image, or another image store's merged image (a chain), overlaid page by
// page (SPEC §1–5, §8, §9, §11). The public API.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { dirname, relative, resolve } from 'node:path'
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { Geometry, MAX_FILE_SIZE } from '../geometry.js'
import { ChangeLog } from '../changes/change-log.js'
import { changedExtents, type ChangedExtent } from '../changes/changed-extents.js'
import type { Mark } from '../changes/mark-table.js'
import { markNameSchema, sinceSchema, type Since } from '../changes/mark-name.js'
import { DEFAULT_EVENT_BLOCK, FirstDirtyEvents, firstDirtyOptionsSchema, type FirstDirtyHandler, type FirstDirtyOptions } from '../changes/first-dirty.js'
import { ChunkTable } from '../page/chunk-table.js'
import type { Extent } from '../page/extent.js'
import { ASYNC_READ_BYTES, PagedFile, type DetectZeroes } from '../page/paged-file.js'
import { FileGuard } from '../integrity/file-guard.js'
import { FileCommit } from '../page/file-commit.js'
import { CopyupBases, type CopyupBase } from '../integrity/copyup-bases.js'
import { IMAGE_LOWER_KEY, LowerSums } from '../integrity/lower-sums.js'
import { VerifiedLower } from '../integrity/verified-lower.js'
import { bindNew } from '../integrity/bind-new.js'
import { PageMap } from '../page/page-map.js'
import { UpperFile } from '../page/upper-file.js'
import { compactFile, compactOptionsSchema, type CompactOptions, type CompactResult } from '../page/compaction.js'
import { checkRange, prepareEmptyDirectory } from '../store/checks.js'
import { DATABASE_FILE, databaseBytes, hasDatabase, openDatabase } from '../store/database.js'
import { isStoreLower, readFileRecord, readFileState, readMeta, writeFileState, writeMeta, type ImageMeta } from '../store/meta.js'
import { peekStoreMeta } from '../store/peek-meta.js'
import type { LowerSource } from '../page/lower-source.js'
import { checkChainStep, openBase, realStorePath, storeLowerRecord } from '../layers/base-store.js'
import { rawLayer, type ChainLayer } from '../layers/chain-layer.js'
import type { LayerExtent } from '../layers/layer-extent.js'
import { checkNotSealed } from '../layers/seal.js'
import { StoreLower } from '../layers/store-lower.js'
import { rebaseUnsafe, type RebaseUnsafeOptions, type RebaseUnsafeResult } from '../layers/rebase-unsafe.js'
import { StoreCore } from '../store/store-core.js'
import { freezeOptionsSchema, type FreezeOptions, type FrozenFile } from '../store/freeze-options.js'
import { registerWriteGate, WriteGate } from '../store/write-gate.js'
import { describeChange, fingerprint } from './fingerprint.js'
import { LowerImage } from './lower-image.js'
import { locateRawLower } from './locate-lower.js'
import { createOptionsSchema, openOptionsSchema, type CreateOptions, type OpenOptions } from './options.js'
import { VERSION } from '../version.js'
import { storeIdentity } from '../incremental/store-identity.js'

/** The one file of an image store: its id in the store's tables. */
export const IMAGE_FILE_ID = 1
/** Where that file's upper pages live inside the store directory. */
export const UPPER_FILE = 'upper.img'
/** Largest single read: bigger ones are split by the caller, not allocated here. */
export const MAX_IO_BYTES = 256 * 1024 * 1024

/** Options of `readInto()`. */
export interface ReadOptions {
  /**
   * Read in libuv's thread pool (reads of 64 KiB or more): for servers with many reads in flight,
   * which then overlap on the disk. Default false: read on the calling thread.
   */
  threadPool?: boolean
}

/** Checked by hand, not with zod: this is the per-read hot path. A misspelled option is EINVAL. */
function readOptions(options: ReadOptions): boolean {
  if (typeof options !== 'object' || options === null) throw new PagecowError('EINVAL', 'readInto: options must be an object')
  for (const key in options) if (key !== 'threadPool') throw new PagecowError('EINVAL', `readInto: unknown option "${key}"`)
  const { threadPool } = options
  if (threadPool !== undefined && typeof threadPool !== 'boolean') throw new PagecowError('EINVAL', 'readInto: threadPool must be a boolean')
  return threadPool === true
}

/** What `info()` returns: plain data, printed as is by `pagecow inspect --json`. */
export interface StoreInfo {
  path: string
  kind: 'image'
  readOnly: boolean
  pageSize: number
  /** Logical size of the image in bytes. */
  size: number
  /** `bound`: every lower page's sum is recorded and reads check them (`pagecow verify --record`). */
  lower: { path: string; size: number; bound: boolean; format: 'raw' | 'store' }
  pages: { total: number; data: number; zero: number; lower: number }
  upper: { allocatedBytes: number; apparentBytes: number; databaseBytes: number }
  /** Bytes users wrote and bytes that reached the upper; amplification is their ratio. */
  written: { userBytes: number; upperBytes: number; amplification: number | null }
  /** DATA pages copied up in part whose lower page's sum is recorded (committed ones). */
  copyupBases: number
  /** Changes not yet committed by a flush. */
  dirty: boolean
  autoFlushMs: number
  createdAt: string
  /**
   * 32 hex digits naming the store for good: what a store made on it and an incremental export
   * record. Made at creation; a store made before 0.4 has the digest of its kind, creation time and
   * recorded lower path (what its exports recorded already).
   */
  identity: string
}

export class ImageStore extends EventEmitter {
  readonly kind = 'image' as const
  /** Absolute path of the store directory. */
  readonly path: string
  readonly readOnly: boolean
  readonly #core: StoreCore
  readonly #meta: ImageMeta
  readonly #file: PagedFile
  readonly #chunks: ChunkTable
  /** The lower as found at open: the raw image, or the base store's directory. */
  readonly #lowerPath: string
  /** Every change of the image's data passes it: freeze, and the hook of first-dirty events. */
  readonly #gate = new WriteGate(() => 'the image')
  readonly #events = new FirstDirtyEvents(this.#gate, { kind: 'image', pathOf: () => null, sizeOf: () => this.#file.size })
  /** Bumped by every commit; a flush whose snapshot an other commit overtook skips its own. */
  #commits = 0

  private constructor(core: StoreCore, meta: ImageMeta, file: PagedFile, chunks: ChunkTable, lowerPath: string) {
    super()
    this.#lowerPath = lowerPath
    this.path = core.path
    this.readOnly = core.readOnly
    this.#core = core
    this.#meta = meta
    this.#file = file
    this.#chunks = chunks
    registerWriteGate(this, this.#gate)
    core.attach(
      {
        get dirty() {
          return file.isDirty
        },
        flush: () => this.#flushOnce(),
        reload: () => {
          file.reload(readFileState(core.db, IMAGE_FILE_ID, core.path))
          file.map.reload(chunks.totals())
        },
        closeFiles: () => {
          file.upper.close()
          file.lower.close()
        },
        inFlux: () => file.guard.inFlux(),
        commitNow: (work) => core.commit(work),
        changeLogs: () => [file.changes],
      },
      { flushed: () => this.emit('flush'), warning: (err) => this.emit('warning', err) },
    )
  }

  /**
   * Create a store in `dir` (which must not exist or be empty) over the raw image `lower`, or over
   * the image store `lower` (a directory holding one: a chain, SPEC §11). A base store is sealed
   * first, durably, before the new store exists: it is never written again. Its page size is the
   * new store's (pages move between layers whole); `pageSize`, if given, must be the same.
   */
  static async create(dir: string, options: CreateOptions): Promise<ImageStore> {
    const opts = parseWith(createOptionsSchema, options, 'create')
    const path = resolve(dir)
    const lowerPath = resolve(opts.lower)
    if (hasDatabase(lowerPath)) {
      const pageSizeGiven = (options as { pageSize?: unknown }).pageSize !== undefined
      await ImageStore.#createOnStore(path, lowerPath, { ...opts, pageSizeGiven })
      return ImageStore.open(path, { autoFlushMs: opts.autoFlushMs, detectZeroes: opts.detectZeroes })
    }
    prepareEmptyDirectory(path)
    const lower = LowerImage.open(lowerPath)
    try {
      ImageStore.#writeNewStore(path, { pageSize: opts.pageSize, lower: { path: lowerPath, relative: relative(path, lowerPath), fingerprint: fingerprint(lower) } }, lower.size)
    } finally {
      lower.close()
    }
    if (opts.bindLower) await bindNew(path, opts.onProgress)
    return ImageStore.open(path, { autoFlushMs: opts.autoFlushMs, detectZeroes: opts.detectZeroes })
  }

  /** The files of a new store: its upper, its database with its record and the image's file record. */
  static #writeNewStore(path: string, record: Pick<ImageMeta, 'pageSize' | 'lower'>, size: number): void {
    let db: Database.Database | undefined
    try {
      const upper = UpperFile.open(`${path}/${UPPER_FILE}`, { readOnly: false, create: true })
      upper.close()
      db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: false, create: true })
      const meta: ImageMeta = {
        format: 'pagecow',
        kind: 'image',
        ...record,
        createdAt: new Date().toISOString(),
        createdBy: `pagecow ${VERSION}`,
        identity: newIdentity(),
      }
      const database = db
      database.transaction(() => {
        writeFileState(database, IMAGE_FILE_ID, { size, lowerCut: size, bytesWritten: 0, upperWritten: 0 }, { data: 0, zero: 0 })
        writeMeta(database, meta)
      })()
      // The new files' names must survive a power cut too, and so must the store directory's.
      fs.syncDirectory(path)
      fs.syncDirectory(dirname(path))
    } catch (err) {
      throw fromSystemError(err, `creating a store in ${path}`)
    } finally {
      db?.close()
    }
  }

  /** create() over the image store at `basePath`: checked, sealed, then the new store made on it. */
  static async #createOnStore(path: string, basePath: string, opts: { pageSize: number; pageSizeGiven: boolean; bindLower: boolean }): Promise<void> {
    const peek = peekStoreMeta(basePath)
    if (peek.kind !== 'image') throw new PagecowError('EINVAL', `the lower ${basePath} is a tree store; only an image store can be the base of an image store`)
    if (opts.pageSizeGiven && opts.pageSize !== peek.pageSize) {
      throw new PagecowError('EINVAL', `create: page size ${opts.pageSize} differs from the base store's (${peek.pageSize}); the layers of a chain share one page size (leave it out to take the base's)`)
    }
    if (opts.bindLower) {
      throw new PagecowError('EINVAL', `create: bindLower is for a raw lower; a base store vouches for its own pages (each DATA page has its sum): bind the raw image at the bottom of its chain`)
    }
    prepareEmptyDirectory(path)
    if (!peek.sealed) await ImageStore.#seal(basePath, path)
    const base = await ImageStore.#openLayer(basePath, [realStorePath(path)])
    try {
      ImageStore.#writeNewStore(path, { pageSize: peek.pageSize, lower: storeLowerRecord(path, base) }, base.size)
    } finally {
      base.close()
    }
  }

  /**
   * Seal the store at `path` for `by` (the store about to be made on it): its record says so,
   * committed durably. Its writer lock is taken for it: a store open for writing elsewhere is EBUSY.
   */
  static async #seal(path: string, by: string): Promise<void> {
    const store = await ImageStore.#open(path, { readOnly: false, autoFlushMs: 0 }, [])
    try {
      await store.flush()
      const meta: ImageMeta = { ...store.#meta, identity: identityOf(store.#meta), sealed: { at: new Date().toISOString(), by } }
      store.#core.commit(() => writeMeta(store.#core.db, meta))
    } finally {
      await store.close()
    }
  }

  /**
   * Point the store in `dir` at its lower where it is now (a moved base store or raw image), as
   * `qemu-img rebase -u`: no page is read or changed. The lower must be the one recorded (a store
   * by its identity and generation, a raw image by its fingerprint) unless `force`. A base store
   * not sealed yet (only with `force`) is sealed. Takes the store's writer lock.
   */
  static async rebaseUnsafe(dir: string, onto: string, options: RebaseUnsafeOptions = {}): Promise<RebaseUnsafeResult> {
    return rebaseUnsafe(dir, onto, options, { seal: (p, by) => ImageStore.#seal(p, by), openLayer: (p, a) => ImageStore.#openLayer(p, a), upperFile: UPPER_FILE })
  }

  /** The image store at `path` opened read-only as the lower of a store above (`above`: their real paths). */
  static async #openLayer(path: string, above: readonly string[]): Promise<StoreLower> {
    const store = await ImageStore.#open(path, { readOnly: true, autoFlushMs: 0 }, above)
    return new StoreLower(path, store.#file, {
      identity: identityOf(store.#meta),
      generation: store.#core.generation.value,
      pageSize: store.pageSize,
      chain: () => store.backingChain(),
      close: () => store.#closeLayer(),
    })
  }

  /** A store opened as a layer: read-only, nothing to flush, no read of its own in flight. */
  #closeLayer(): void {
    if (this.#core.closed) return
    this.#file.upper.close()
    this.#file.lower.close()
    this.#core.abandon()
  }

  /**
   * Open an existing store; the lower's fingerprint (or the base store's identity and generation)
   * is checked first (SPEC §8, §11). A sealed store opens read-only only (EROFS otherwise).
   */
  static async open(dir: string, options: OpenOptions = {}): Promise<ImageStore> {
    const opts = parseWith(openOptionsSchema, options, 'open')
    return ImageStore.#open(resolve(dir), opts, [])
  }

  static async #open(path: string, opts: { readOnly: boolean; autoFlushMs: number; detectZeroes?: DetectZeroes }, above: readonly string[]): Promise<ImageStore> {
    checkChainStep(path, above)
    const core = StoreCore.open(path, { readOnly: opts.readOnly, autoFlushMs: opts.autoFlushMs, files: [UPPER_FILE] })
    const opened: Array<{ close(): void }> = []
    try {
      const db = core.db
      const meta = readMeta(db, path)
      if (!opts.readOnly) checkNotSealed(path, meta)
      let source: LowerSource
      let lowerPath: string
      if (isStoreLower(meta.lower)) {
        const base = await openBase(path, meta.lower, [...above, realStorePath(path)], (p, a) => ImageStore.#openLayer(p, a))
        opened.push(base)
        source = base
        lowerPath = base.path
      } else {
        lowerPath = locateRawLower(path, meta.lower)
        const lower = LowerImage.open(lowerPath)
        opened.push(lower)
        const change = describeChange(meta.lower.fingerprint, fingerprint(lower))
        if (change) {
          throw new PagecowError('ESTALE', `the lower image ${lowerPath} changed since the store was created (${change}); the store refuses to mix its pages with different lower bytes`)
        }
        // A bound lower: every page read is checked against its recorded sum (ESTALE if it changed).
        source = meta.lowerBinding ? VerifiedLower.open(lower, new LowerSums(db, IMAGE_LOWER_KEY, path), meta.pageSize, `the lower image ${lowerPath}`) : lower
      }
      const upper = UpperFile.open(`${path}/${UPPER_FILE}`, { readOnly: opts.readOnly })
      opened.push(upper)
      const record = readFileRecord(db, IMAGE_FILE_ID, path)
      const chunks = new ChunkTable(db, IMAGE_FILE_ID)
      const map = new PageMap(chunks, chunks.checkTotals(record.pages), path)
      const guard = FileGuard.open(db, core.flux, core.readOnly, IMAGE_FILE_ID, meta.pageSize, 'the image')
      const file = new PagedFile(new Geometry(meta.pageSize), source, upper, map, guard, new CopyupBases(db, IMAGE_FILE_ID), new ChangeLog(core.tracking, IMAGE_FILE_ID), record.state)
      file.detectZeroes = opts.detectZeroes ?? 'off'
      return new ImageStore(core, meta, file, chunks, lowerPath)
    } catch (err) {
      for (const o of opened.reverse()) o.close()
      core.abandon()
      throw fromSystemError(err, `opening the store ${path}`)
    }
  }

  get pageSize(): number {
    return this.#meta.pageSize
  }

  /** Logical size of the image in bytes. */
  get size(): number {
    this.#core.checkOpen()
    this.#core.refresh()
    return this.#file.size
  }

  /** Read `length` bytes at `offset`; shorter at the end of the image. */
  async read(offset: number, length: number): Promise<Buffer> {
    this.#core.checkOpen()
    checkRange(offset, length, 'read')
    if (length > MAX_IO_BYTES) throw new PagecowError('EINVAL', `read: length ${length} is over the ${MAX_IO_BYTES}-byte limit of one read`)
    this.#core.refresh()
    const target = Buffer.alloc(Math.max(0, Math.min(length, this.#file.size - offset)))
    this.#file.readInto(target, offset)
    return target
  }

  /**
   * Read into `target` from `offset`; returns the bytes read (fewer at the end of the image).
   * By default the read runs on the calling thread: for one caller at a time, and for data in the
   * page cache, that is fastest (a 1 MiB hot read through the pool ran at 0.3–0.8× `fs.readSync`
   * on a loaded machine, see BENCHMARKS.md). With `{ threadPool: true }` a read of 64 KiB or more
   * runs in libuv's thread pool instead, so that the reads of many requests in flight (an NBD
   * client's queue, a FUSE mount) overlap on the disk and a slow disk does not hold the event loop.
   */
  async readInto(target: Uint8Array, offset: number, options?: ReadOptions): Promise<number> {
    this.#core.checkOpen()
    if (!(target instanceof Uint8Array)) throw new PagecowError('EINVAL', 'readInto: target must be a Buffer or Uint8Array')
    checkRange(offset, target.length, 'read')
    const threadPool = options === undefined ? false : readOptions(options)
    this.#core.refresh()
    if (!threadPool || target.length < ASYNC_READ_BYTES) return this.#file.readInto(target, offset)
    return this.#core.track(this.#file.readIntoAsync(target, offset))
  }

  /**
   * readInto on the calling thread, whatever the length: no hop to the thread pool, but the event
   * loop waits while the disk answers. For a caller that knows the bytes are likely cached (an NBD
   * server measures its reads), where the hop costs more than the copy.
   */
  readIntoSync(target: Uint8Array, offset: number): number {
    this.#core.checkOpen()
    if (!(target instanceof Uint8Array)) throw new PagecowError('EINVAL', 'readIntoSync: target must be a Buffer or Uint8Array')
    checkRange(offset, target.length, 'read')
    this.#core.refresh()
    return this.#file.readInto(target, offset)
  }

  /**
   * Where the bytes of [offset, offset + length) are, if they all come from the lower image (every
   * page LOWER): the lower's descriptor, the bytes it holds from `offset`, and the zeros after them
   * to the end of the range or of the image. Undefined if any page there is in the upper, or the
   * range starts at or past the end. A hook for the FUSE server, which splices the lower's page
   * cache straight into its reply; the descriptor stays the store's (use it at once, never close it).
   */
  lowerSpan(offset: number, length: number): { fd: number; bytes: number; zeros: number } | undefined {
    this.#core.checkOpen()
    checkRange(offset, length, 'read')
    this.#core.refresh()
    const lower = this.#file.lower
    const end = Math.min(offset + length, this.#file.size)
    // A bound lower is a VerifiedLower, never spliced: its pages are checked as they are read.
    if (end <= offset || !(lower instanceof LowerImage)) return undefined
    const bytes = this.#file.lowerBytesIn(offset, end)
    return bytes < 0 ? undefined : { fd: lower.fd, bytes, zeros: end - offset - bytes }
  }

  /** Write `data` at `offset`; the image grows if the write ends past it. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#core.checkWritable()
    if (!(data instanceof Uint8Array)) throw new PagecowError('EINVAL', 'write: data must be a Buffer or Uint8Array')
    checkRange(offset, data.length, 'write')
    if (this.#gate.open) return this.#file.write(offset, data)
    await this.#gate.through(
      IMAGE_FILE_ID,
      () => {
        this.#core.checkWritable()
        this.#file.write(offset, data)
      },
      { start: offset, end: offset + data.length },
    )
  }

  /** Write zeros over [offset, offset + length); whole pages become ZERO and free their space. */
  async zero(offset: number, length: number): Promise<void> {
    this.#core.checkWritable()
    checkRange(offset, length, 'zero')
    if (this.#gate.open) return this.#file.zero(offset, length)
    await this.#gate.through(
      IMAGE_FILE_ID,
      () => {
        this.#core.checkWritable()
        this.#file.zero(offset, length)
      },
      { start: offset, end: offset + length },
    )
  }

  /** Trim: whole pages in the range become ZERO and free their space; partial pages are kept. */
  async discard(offset: number, length: number): Promise<void> {
    this.#core.checkWritable()
    checkRange(offset, length, 'discard')
    if (this.#gate.open) return this.#file.discard(offset, length)
    await this.#gate.through(
      IMAGE_FILE_ID,
      () => {
        this.#core.checkWritable()
        this.#file.discard(offset, length)
      },
      { start: offset, end: offset + length },
    )
  }

  /** Set the image's size. Commits at once (it implies a flush) before giving space back. */
  async truncate(size: number): Promise<void> {
    this.#core.checkWritable()
    checkRange(size, 0, 'truncate')
    if (this.#gate.open) return this.#truncate(size)
    await this.#gate.through(
      IMAGE_FILE_ID,
      () => {
        this.#core.checkWritable()
        this.#truncate(size)
      },
      // What a shrink cuts off (growth reads zeros: nothing of the past to save).
      () => ({ start: size, end: Math.max(this.#file.size, size) }),
    )
  }

  /**
   * Give back the upper space of DATA pages that need none (issue 13): a page that reads the same
   * as the lower under it becomes LOWER again, an all-zero page becomes ZERO. What the image reads
   * does not change, and nothing is recorded as changed since a mark. Batch by batch, each batch
   * committed before its space is given back; writers and readers go on meanwhile.
   */
  async compact(options: CompactOptions = {}): Promise<CompactResult> {
    this.#core.checkWritable('compact')
    const opts = parseWith(compactOptionsSchema, options, 'compact')
    const total = this.#file.geometry.pagesFor(this.#file.size)
    let done = 0
    return compactFile(this.#file, () => this.#flushSync(), {
      signal: opts.signal,
      checkWritable: () => this.#core.checkWritable('compact'),
      progress: (pages) => opts.onProgress?.({ done: (done += pages), total }),
    })
  }

  #truncate(size: number): void {
    this.#file.truncate(size)
    this.#flushSync()
    this.#file.trimUpper()
  }

  /**
   * Freeze the image: every write, zero, discard and truncate (through this object, NBD or FUSE)
   * waits until thaw() while reads go on. Resolves once the image's bytes and size stay as they
   * are until thaw(). `path` is for the shape every store shares: an image store takes none.
   * EBUSY if frozen already; EROFS on a read-only store. Not persistent: a reopened store is thawed.
   */
  freeze(options?: FreezeOptions): Promise<void>
  freeze(path: undefined, options?: FreezeOptions): Promise<void>
  async freeze(pathOrOptions?: FreezeOptions, options?: FreezeOptions): Promise<void> {
    this.#core.checkWritable('freeze')
    if (typeof pathOrOptions === 'string') throw new PagecowError('EINVAL', 'freeze: an image store has one file; call freeze() without a path')
    if (pathOrOptions !== undefined && options !== undefined) throw new PagecowError('EINVAL', 'freeze: give the options once')
    const opts = parseWith(freezeOptionsSchema, pathOrOptions ?? options ?? {}, 'freeze')
    await this.#gate.freeze(IMAGE_FILE_ID, opts.timeoutMs)
  }

  /** Let the image's waiting writers go on. EINVAL if it is not frozen. */
  async thaw(path?: undefined): Promise<void> {
    this.#core.checkOpen()
    if (path !== undefined) throw new PagecowError('EINVAL', 'thaw: an image store has one file; call thaw() without a path')
    this.#gate.thaw(IMAGE_FILE_ID)
  }

  /** Whether the image is frozen (a write would wait). `path` as for freeze(): none. */
  isFrozen(path?: undefined): boolean {
    this.#core.checkOpen()
    if (path !== undefined) throw new PagecowError('EINVAL', 'isFrozen: an image store has one file; call isFrozen() without a path')
    return this.#gate.isFrozen(IMAGE_FILE_ID)
  }

  /** Thaw whatever is frozen (the image, if it is); returns how many files were thawed. */
  thawAll(): number {
    this.#core.checkOpen()
    return this.#gate.thawAll()
  }

  /** What is frozen: the image, or nothing. */
  frozen(): FrozenFile[] {
    this.#core.checkOpen()
    return this.#gate.frozen().map((f) => ({ path: null, ino: null, timeoutMs: f.timeoutMs ?? null, frozenAt: new Date(f.since).toISOString(), waiting: f.waiting }))
  }

  /** Make every write completed before this call durable (SPEC §3). */
  flush(): Promise<void> {
    return this.#core.flush()
  }

  /**
   * Flush, then release the upper, the lower, the database and the writer lock. If the flush
   * fails (a full disk), the store stays open with its writes, so the caller can retry. A frozen
   * image is thawed first: its waiting writers land and this flush makes them durable.
   */
  async close(): Promise<void> {
    if (!this.#core.closed) {
      this.#gate.thawAll()
      await this.#gate.drain()
    }
    return this.#core.close()
  }

  /**
   * Take a mark called `name`: the image as it is at the call, every later change recorded as
   * changed since it (SPEC §7). Everything written before the call is flushed; durable when the
   * promise resolves. EEXIST if the name is taken.
   */
  mark(name: string): Promise<Mark> {
    return this.#core.mark(name)
  }

  /** Remove the mark `name` (ENOENT if none); the marks before it keep their changes, its first-dirty handlers end. */
  async unmark(name: string): Promise<void> {
    await this.#core.unmark(name)
    this.#events.dropMark(name)
  }

  /**
   * Call `handler` the first time each block of the image (`blockSize`, 64 KiB by default) is
   * dirtied after the mark `mark`, before the write lands: the write (and every write to the image
   * meanwhile) waits until the handler's promise settles, so the handler still reads the block as
   * it was (copy-before-write). A handler that fails fails the write that waited (EIO); the next
   * write to the block calls it again. Blocks changed since the mark before this call get no
   * event. Not persistent: handlers live as long as this object. Returns the remover.
   */
  onFirstDirty(mark: string, handler: FirstDirtyHandler, options: FirstDirtyOptions = {}): () => void {
    this.#core.checkWritable('onFirstDirty')
    const opts = parseWith(firstDirtyOptionsSchema, options, 'onFirstDirty')
    const name = parseWith(markNameSchema, mark, 'onFirstDirty')
    const epoch = this.#core.tracking.get(name).epoch
    const blockSize = opts.blockSize ?? Math.max(DEFAULT_EVENT_BLOCK, this.pageSize)
    if (blockSize < this.pageSize) throw new PagecowError('EINVAL', `onFirstDirty: blockSize ${blockSize} is smaller than the page size ${this.pageSize}`)
    const g = this.#file.geometry
    const changed = [...this.#file.changes.changedRuns(epoch)].map(([a, b]) => ({ start: g.byteOf(a), end: g.byteOf(b) }))
    return this.#events.add(name, handler, blockSize, changed)
  }

  /** The marks, oldest first. */
  marks(): Mark[] {
    return this.#core.marks()
  }

  /**
   * What changed since the mark `since`, as extents of the image in offset order: every page
   * written, zeroed, discarded or cut off since, said as what it reads now. Pages are whole, and
   * a page may be listed that was rewritten with the same bytes: never less than what differs.
   * Costs in proportion to the changes, not to the image. With `offset` and `length`, only the
   * changes in [offset, offset + length) (pieces cut to it), and only the records of that range
   * are read (an NBD dirty bitmap asks this way). Default: all, past the end of the image too
   * (pages cut off by a truncation). `since` may be a Mark from marks(): ESTALE if that mark was
   * removed or taken again meanwhile.
   */
  changedExtents(since: Since, offset = 0, length?: number): Generator<ChangedExtent> {
    this.#core.checkOpen()
    const from = parseWith(sinceSchema, since, 'changedExtents')
    checkRange(offset, length ?? 0, 'changedExtents')
    this.#core.refresh()
    const mark = this.#core.tracking.get(from)
    if (offset === 0 && length === undefined) return changedExtents(this.#file, this.#file.changes.changedRuns(mark.epoch))
    const g = this.#file.geometry
    const end = length === undefined ? MAX_FILE_SIZE : offset + length
    const [first, endPage] = g.touchedPages(offset, end)
    return changedExtents(this.#file, this.#file.changes.changedRuns(mark.epoch, first, endPage), [offset, end])
  }

  /** The merged view of [offset, offset + length) as extents (SPEC §5). Default: all of it. */
  extents(offset = 0, length?: number): Generator<Extent> {
    // Not a generator itself: bad arguments fail at the call, and there is one level less per extent.
    this.#core.checkOpen()
    checkRange(offset, length ?? 0, 'map')
    this.#core.refresh()
    return this.#file.extents(offset, length === undefined ? this.#file.size : offset + length)
  }

  /**
   * The merged view of [offset, offset + length) with the layer each extent comes from (SPEC §11):
   * depth 0 is this store's upper (DATA and ZERO pages), 1 the layer below (the base store's upper,
   * or the raw image), and so on down the chain; `hole` is a hole of the raw image at the bottom or
   * bytes past a layer's end. What `pagecow map --output=json` prints as qemu-img's `depth`.
   */
  extentsByLayer(offset = 0, length?: number): Generator<LayerExtent> {
    this.#core.checkOpen()
    checkRange(offset, length ?? 0, 'map')
    this.#core.refresh()
    return this.#file.layerExtents(offset, length === undefined ? this.#file.size : offset + length)
  }

  /**
   * The chain of layers under this store, as `qemu-img info --backing-chain` lists it: this store
   * first (depth 0), then its base store and the base's base, the raw image last.
   */
  backingChain(): ChainLayer[] {
    this.#core.checkOpen()
    const info = this.info()
    const lower = this.#file.lower
    const below = lower instanceof StoreLower ? lower.chain() : [rawLayer(this.#lowerPath, 0)]
    const next = below[0]!
    const own: ChainLayer = {
      depth: 0,
      path: this.path,
      format: 'pagecow',
      size: info.size,
      allocatedBytes: info.upper.allocatedBytes,
      pageSize: info.pageSize,
      pages: { data: info.pages.data, zero: info.pages.zero },
      sealed: this.#meta.sealed !== undefined,
      backing: next.path,
      backingFormat: next.format,
    }
    return [own, ...below.map((layer) => ({ ...layer, depth: layer.depth + 1 }))]
  }

  /** SEEK_DATA: the first offset at or after `offset` holding data, or null if none. */
  nextData(offset: number): number | null {
    this.#core.checkOpen()
    checkRange(offset, 0, 'nextData')
    this.#core.refresh()
    return this.#file.nextData(offset)
  }

  /** SEEK_HOLE: the first hole at or after `offset` (the end counts), or null past the end. */
  nextHole(offset: number): number | null {
    this.#core.checkOpen()
    checkRange(offset, 0, 'nextHole')
    this.#core.refresh()
    return this.#file.nextHole(offset)
  }

  /** Totals and settings as plain data. */
  info(): StoreInfo {
    this.#core.checkOpen()
    this.#core.refresh()
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
      lower: { path: this.#lowerPath, size: file.lower.size, bound: this.#meta.lowerBinding !== undefined, format: file.lower instanceof StoreLower ? 'store' : 'raw' },
      pages: { total, data: counts.data, zero: counts.zero, lower: Math.max(0, total - counts.data - counts.zero) },
      upper: { allocatedBytes: usage.allocated, apparentBytes: usage.apparent, databaseBytes: databaseBytes(this.path) },
      written: {
        userBytes: state.bytesWritten,
        upperBytes: state.upperWritten,
        amplification: state.bytesWritten > 0 ? state.upperWritten / state.bytesWritten : null,
      },
      copyupBases: CopyupBases.count(this.#core.db, IMAGE_FILE_ID),
      dirty: file.isDirty,
      autoFlushMs: this.#core.autoFlushMs,
      createdAt: this.#meta.createdAt,
      identity: identityOf(this.#meta),
    }
  }

  /**
   * The committed copy-up bases: for each DATA page copied up in part from the lower, the sum
   * (xxHash64) of the lower page it was built on, in page order. Read-only.
   */
  copyupBases(): CopyupBase[] {
    this.#core.checkOpen()
    this.#core.refresh()
    return [...CopyupBases.list(this.#core.db, IMAGE_FILE_ID, 'the image')]
  }

  async #flushOnce(): Promise<void> {
    const commit = FileCommit.take(this.#file, this.#chunks, IMAGE_FILE_ID)
    if (!commit) return
    const commits = this.#commits
    await commit.sync()
    if (this.#commits !== commits || this.#core.closed) return // a truncate committed a newer state meanwhile
    this.#commit(commit)
  }

  /** Commit everything now, synchronously: truncate needs no other commit to overtake it. */
  #flushSync(): void {
    const commit = FileCommit.take(this.#file, this.#chunks, IMAGE_FILE_ID)
    if (!commit) return
    commit.syncNow()
    this.#commit(commit)
  }

  #commit(commit: FileCommit): void {
    const db = this.#core.db
    try {
      this.#core.commit(() => commit.save(db))
    } catch (err) {
      throw fromSystemError(err, 'committing the page map')
    }
    this.#commits++
    commit.committed()
  }
}

/** A new store's identity: 32 random hex digits. */
function newIdentity(): string {
  return randomBytes(16).toString('hex')
}

/** The store's identity: the one recorded, or for a store made before identities what its exports recorded. */
function identityOf(meta: ImageMeta): string {
  return meta.identity ?? storeIdentity({ kind: 'image', createdAt: meta.createdAt, lower: { path: meta.lower.path } })
}
