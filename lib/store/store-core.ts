// The life of a store, the same for every kind (image, tree): the writer lock, the database, the
// flush chain and its timer, a read-only store following its writer, and one close. A kind plugs
// in what it stores (StoreContent); the core decides when things happen, never what they are.
import type Database from 'better-sqlite3'
import { fromSystemError, PagecowError, parseWith } from '../errors.js'
import type { ChangeLog } from '../changes/change-log.js'
import { markNameSchema } from '../changes/mark-name.js'
import type { Mark } from '../changes/mark-table.js'
import { Tracking } from '../changes/tracking.js'
import { FLUX_FILE, FluxLog, type FluxNote } from '../integrity/flux-log.js'
import { GENERATION_FILE } from '../integrity/generation.js'
import { recoverFlux } from '../integrity/flux-recovery.js'
import { Generation } from '../integrity/generation.js'
import { closedError } from './checks.js'
import { DATABASE_FILE, dataVersion, hasDatabase, openDatabase, syncDatabaseFiles } from './database.js'
import { checkStoreFiles, CONTROL_SOCKET_FILE, MOUNT_LOG_FILE } from './store-file.js'
import { LOCK_FILE, WriterLock } from './writer-lock.js'

/** What a kind of store keeps, as the core drives it. */
export interface StoreContent {
  /** Whether a change is not durable yet (the auto-flush timer asks). */
  readonly dirty: boolean
  /** Make every change completed before the call durable. Runs in the flush chain, one at a time. */
  flush(): Promise<void>
  /** A read-only store: another process committed since the last look; drop what is cached. */
  reload(): void
  /** Release every descriptor (the last flush is done, no read is in flight). */
  closeFiles(): void
  /** A writable store, after closeFiles(): tidy up what only open files kept (best effort). */
  tidy?(): void
  /**
   * After a flush: the pages still being rewritten (written since their sums were taken), which
   * stay noted in the flux log; every other note's page has its sum committed now.
   */
  inFlux(): Iterable<FluxNote>
  /** Run `work` in one transaction that is durable when this returns (a mark, an unmark). */
  commitNow<T>(work: () => T): T
  /** The change logs of the files in memory (a mark going away retags what they hold). */
  changeLogs(): Iterable<ChangeLog>
}

/** Where the core reports: the store's own events. */
export interface StoreEvents {
  /** A flush made everything before it durable. */
  flushed(): void
  /** An automatic flush failed (the writes stay pending); the store goes on. */
  warning(err: unknown): void
}

export interface CoreOptions {
  readOnly: boolean
  /** Flush automatically at this interval when something is pending; 0 never. */
  autoFlushMs: number
  /** Store files the kind keeps beside the database, checked before anything is opened. */
  files: readonly string[]
}

export class StoreCore {
  /** Absolute path of the store directory. */
  readonly path: string
  readonly readOnly: boolean
  readonly db: Database.Database
  readonly autoFlushMs: number
  /** The log of pages being rewritten in place (see FluxLog). */
  readonly flux: FluxLog
  /** The count of durable commits, checked against its record beside the database. */
  readonly generation: Generation
  /** The marks and the change records (SPEC §7). */
  readonly tracking: Tracking
  readonly #lock: WriterLock | undefined
  #content: StoreContent | undefined
  #events: StoreEvents | undefined
  #timer: NodeJS.Timeout | undefined
  #chain: Promise<void> = Promise.resolve()
  #dataVersion: number
  #closed = false
  #closing: Promise<void> | undefined
  /** The notes of a killed writer could not be acted on at open (a full disk): the next flush does it. */
  #recoveryPending = false
  /** Reads in the thread pool: close() lets them finish before descriptors are closed. */
  readonly #reads = new Set<Promise<unknown>>()

  private constructor(path: string, options: CoreOptions, db: Database.Database, lock: WriterLock | undefined, generation: Generation) {
    this.path = path
    this.readOnly = options.readOnly
    this.autoFlushMs = options.autoFlushMs
    this.db = db
    this.#lock = lock
    this.flux = new FluxLog(path, options.readOnly)
    this.generation = generation
    this.tracking = new Tracking(db, path)
    this.#dataVersion = dataVersion(db)
  }

  /**
   * Open the database of the store at `path` (absolute): its files checked, the writer lock taken
   * when writable, what a killed writer committed made durable, the schema migrated. The kind
   * then reads its record, opens its files and calls attach(), or abandon() if that fails.
   */
  static open(path: string, options: CoreOptions): StoreCore {
    if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
    checkStoreFiles(path, [LOCK_FILE, MOUNT_LOG_FILE, CONTROL_SOCKET_FILE, GENERATION_FILE, FLUX_FILE, ...options.files])
    const lock = options.readOnly ? undefined : WriterLock.acquire(`${path}/${LOCK_FILE}`)
    try {
      // A killed writer's last commits may sit in the page cache only, and recovery acts on their
      // word: make them durable first. Before SQLite opens the file: closing any other descriptor
      // on it would drop the POSIX locks SQLite holds there.
      if (!options.readOnly) syncDatabaseFiles(path)
      const db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: options.readOnly })
      let generation: Generation | undefined
      try {
        generation = Generation.open(db, path, !options.readOnly)
        const core = new StoreCore(path, options, db, lock, generation)
        if (!options.readOnly) {
          try {
            recoverFlux(core)
          } catch (err) {
            // A full disk must not keep the store from opening (SPEC §8): the noted pages read
            // as noted (see FileGuard.verify) until the first flush finishes the recovery.
            if (fromSystemError(err, '').code !== 'ENOSPC') throw err
            core.#recoveryPending = true
          }
          core.flux.prepare()
        }
        return core
      } catch (err) {
        generation?.close()
        db.close()
        throw err
      }
    } catch (err) {
      lock?.release()
      throw fromSystemError(err, `opening the store ${path}`)
    }
  }

  /** The kind's content is open: the store is in service (the auto-flush timer starts). */
  attach(content: StoreContent, events: StoreEvents): void {
    this.#content = content
    this.#events = events
    if (!this.readOnly && this.autoFlushMs > 0) {
      this.#timer = setInterval(() => this.#autoFlush(), this.autoFlushMs)
      this.#timer.unref()
    }
  }

  /** The kind could not open its content: give back the database and the lock. */
  abandon(): void {
    this.#closed = true
    this.flux.close()
    this.generation.close()
    this.db.close()
    this.#lock?.release()
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Whether a change is not durable yet. */
  get dirty(): boolean {
    return this.#content?.dirty ?? false
  }

  checkOpen(): void {
    if (this.#closed) throw closedError()
  }

  /** EROFS if the store is open read-only; `what` names the call in the message. */
  checkWritable(what?: string): void {
    this.checkOpen()
    if (this.readOnly) throw new PagecowError('EROFS', `${what === undefined ? '' : `${what}: `}the store is open read-only`)
  }

  /**
   * A read-only store follows its writer: when another process committed since the last call,
   * the content reloads. Call it before each operation that reads. Returns SQLite's data_version.
   */
  refresh(): number {
    if (!this.readOnly) return this.#dataVersion
    const version = dataVersion(this.db)
    if (version !== this.#dataVersion) {
      this.#dataVersion = version
      this.tracking.reload()
      this.#content!.reload()
    }
    return version
  }

  /** Make every change completed before this call durable (SPEC §3). */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    if (this.readOnly) return Promise.resolve()
    return this.chain(() => this.#flushContent())
  }

  async #flushContent(): Promise<void> {
    // The content takes its snapshot as its flush starts: notes written from here on are not covered.
    if (this.#recoveryPending) {
      recoverFlux(this)
      this.#recoveryPending = false
    }
    const mark = this.flux.mark()
    await this.#content!.flush()
    this.flux.reset([...this.#content!.inFlux()], mark)
  }

  /** The marks, oldest first. */
  marks(): Mark[] {
    this.checkOpen()
    this.refresh()
    return this.tracking.marks.list()
  }

  /**
   * Take the mark `name`: the moment of the call (every change made after it is recorded as
   * changed since the mark), durable when the promise resolves. Everything written before the
   * call is flushed first: the content at a mark is content a crash cannot take back (SPEC §3),
   * so that "changed since" stays exact after one.
   */
  async mark(name: string): Promise<Mark> {
    this.checkWritable('mark')
    const markName = parseWith(markNameSchema, name, 'mark')
    const tracking = this.tracking
    const previous = tracking.epoch
    this.#checkNoMark(markName)
    const mark: Mark = { name: markName, epoch: Math.max(tracking.marks.nextEpoch(), previous + 1), created: new Date().toISOString() }
    // From here every change is tagged with the new epoch: the mark's moment is now, not when
    // the flush chain gets to it.
    tracking.epoch = mark.epoch
    let done = false
    try {
      await this.chain(async () => {
        this.#checkNoMark(markName) // taken meanwhile by a call that queued first
        await this.#flushContent()
        this.#content!.commitNow(() => {
          // Records left by a mark whose commit was lost, when no mark needs them.
          if (previous === 0) tracking.dropBefore(mark.epoch)
          tracking.marks.add(mark)
        })
        done = true
      })
    } finally {
      // Failed, or the store closed before the chain got to it: the epoch was never a mark's.
      if (!done) this.#forgetEpoch(mark.epoch, previous)
    }
    if (!done) throw closedError()
    return mark
  }

  #checkNoMark(name: string): void {
    if (this.tracking.marks.list().some((m) => m.name === name)) throw new PagecowError('EEXIST', `mark: there is a mark named ${JSON.stringify(name)} already`)
  }

  /** A mark could not be taken: changes tagged with its epoch belong to the one before. */
  #forgetEpoch(epoch: number, previous: number): void {
    if (this.tracking.epoch !== epoch) return
    this.tracking.epoch = previous
    for (const log of this.#content?.changeLogs() ?? []) log.fold(epoch, Number.MAX_SAFE_INTEGER, previous)
  }

  /**
   * Remove the mark `name`. The changes recorded since it stay recorded for the mark before it
   * (folded into that mark's epoch); if it was the oldest, the records only it needed go.
   */
  async unmark(name: string): Promise<void> {
    this.checkWritable('unmark')
    const markName = parseWith(markNameSchema, name, 'unmark')
    this.tracking.get(markName)
    let done = false
    await this.chain(async () => {
      const tracking = this.tracking
      const marks = tracking.marks.list()
      const mark = tracking.get(markName) // ENOENT if removed meanwhile
      const at = marks.findIndex((m) => m.name === markName)
      const before = marks[at - 1]
      const after = marks[at + 1]
      const end = after?.epoch ?? Number.MAX_SAFE_INTEGER
      this.#content!.commitNow(() => {
        tracking.marks.remove(markName)
        if (before) tracking.fold(mark.epoch, end, before.epoch)
        else tracking.dropBefore(end)
      })
      for (const log of this.#content!.changeLogs()) log.fold(before ? mark.epoch : 0, end, before?.epoch ?? 0)
      if (!after) tracking.epoch = before?.epoch ?? 0
      done = true
    })
    if (!done) throw closedError()
  }

  /**
   * Run `work` in the flush chain: after every flush asked for before it, before every one asked
   * for after. A store closed meanwhile runs nothing.
   */
  chain(work: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(async () => {
      if (this.#closed) return
      await work()
      this.#events?.flushed()
    })
    this.#chain = run.catch(() => {})
    return run
  }

  /** Keep track of a read in the thread pool: close() waits for it before closing descriptors. */
  async track<T>(read: Promise<T>): Promise<T> {
    this.#reads.add(read)
    try {
      return await read
    } finally {
      this.#reads.delete(read)
    }
  }

  /**
   * Flush, then release every file, the database and the writer lock. If that flush fails (a full
   * disk), the store stays open with its writes and close() may be called again. Every caller
   * waits for the one close: a second one returning early would find the writer lock still held.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      const closing = this.#closeOnce()
      this.#closing = closing
      closing.catch(() => (this.#closing = undefined))
    }
    return this.#closing
  }

  async #closeOnce(): Promise<void> {
    if (this.#closed) return
    if (!this.readOnly) {
      await this.flush()
      await this.generation.settle() // its record's sync, in the pool since the last commit
    }
    clearInterval(this.#timer)
    this.#closed = true
    await Promise.allSettled(this.#reads) // a descriptor closed under a read could be reused by another file
    this.#content?.closeFiles()
    this.flux.close()
    if (!this.readOnly) {
      try {
        this.#content?.tidy?.()
        this.db.pragma('wal_checkpoint(TRUNCATE)')
      } catch {
        // Housekeeping: the next open replays the WAL and tidies again if this failed.
      }
    }
    this.generation.close()
    this.db.close()
    this.#lock?.release()
  }

  /**
   * Run `work` in one durable transaction that counts as a commit of the store (its generation
   * bumped inside, and recorded beside the database once it is on disk). The database must be
   * synchronous=FULL for it (image stores always are; tree stores go through their Namespace).
   */
  commit<T>(work: () => T): T {
    let result: T
    try {
      result = this.db.transaction(() => {
        const r = work()
        this.generation.bump()
        return r
      })()
    } catch (err) {
      this.generation.rolledBack()
      throw err
    }
    this.generation.publish()
    return result
  }

  #autoFlush(): void {
    if (!this.#content?.dirty) return
    this.flush().catch((err: unknown) => this.#events?.warning(err))
  }
}
