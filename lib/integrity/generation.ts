// Lost commits are detected (SPEC §8): the database counts its durable commits (the meta row
// `generation`, bumped inside each one), and STORE/generation, written and synced after each, keeps
// the highest count the store has reached. A database behind that file lost commits it had made
// (its WAL deleted after a flush, a database file copied back from an older moment) and would
// serve an older state as the current one: it is refused at open (ECORRUPT). A database ahead of
// the file only means the writer stopped between its commit and the file's update.
//
// The file is written on the event loop right after each commit (so a killed process leaves it
// current: the page cache keeps the write) and synced in the thread pool, not waited for by the
// flush: until that sync lands, a power cut can only leave the file at an older count, behind the
// database, which is never refused (the record is written only after the commit is durable, so it
// is never ahead). Closing waits for the sync; a failed sync is reported by the next commit.
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { openStoreFile } from '../store/store-file.js'
import { HeldFd } from '../page/held-fd.js'
import { recordSum } from './hash.js'
import { rowSum, sumMatches } from './row-sums.js'

export const GENERATION_FILE = 'generation'
const KEY = 'generation'
/** The file: the count (u64 little-endian) and its sum (8 bytes). */
const FILE_BYTES = 16

export class Generation {
  readonly #db: Database.Database
  readonly #path: string
  readonly #where: string
  /** The count the database holds (as of its last read or bump). */
  #value: number
  #file: HeldFd | undefined
  /** The sync of the records written so far, in the thread pool; another asked for meanwhile. */
  #syncing: Promise<void> | undefined
  #syncAgain = false
  /** A sync that failed: thrown by the next publish() or settle(). */
  #syncError: unknown

  private constructor(db: Database.Database, storePath: string, value: number) {
    this.#db = db
    this.#path = `${storePath}/${GENERATION_FILE}`
    this.#where = storePath
    this.#value = value
  }

  /**
   * The generation of the store at `storePath`, checked against its file: ECORRUPT if the
   * database is behind it. `writable`: bring the file up to the database if it is behind.
   */
  static open(db: Database.Database, storePath: string, writable: boolean): Generation {
    const generation = new Generation(db, storePath, readValue(db, storePath))
    const recorded = generation.#readFile()
    if (recorded !== undefined && recorded > generation.#value) {
      throw new PagecowError(
        'ECORRUPT',
        `${storePath}: the database lost commits: it is at generation ${generation.#value}, but the store had reached ${recorded} (its WAL deleted, or an older copy of the database put back); its state is not the store's, and is not served. Run \`pagecow fsck\`; restore the lost pagecow.db-wal if you have it`,
      )
    }
    if (writable) {
      // Opened now, not at the first commit: a commit must not depend on looking up a path.
      try {
        generation.#file = new HeldFd(openStoreFile(generation.#path, 'rw', { create: true }), generation.#path)
      } catch (err) {
        throw fromSystemError(err, `opening ${generation.#path}`)
      }
      if (recorded !== generation.#value) generation.publish()
    }
    return generation
  }

  get value(): number {
    return this.#value
  }

  /** Count one more durable commit: call inside its transaction. */
  bump(): void {
    const next = this.#value + 1
    writeValue(this.#db, next)
    this.#value = next
  }

  /** A transaction that bumped the count rolled back: forget its count. */
  rolledBack(): void {
    this.#value = readValue(this.#db, this.#where)
  }

  /** The bumped commit is durable: record its count beside the database (synced in the pool). */
  publish(): void {
    this.#throwSyncError()
    const bytes = Buffer.alloc(FILE_BYTES)
    bytes.writeBigUInt64LE(BigInt(this.#value), 0)
    fileSum(this.#value).copy(bytes, 8)
    try {
      if (this.#file === undefined) throw new PagecowError('EINVAL', 'the store is read-only: its generation is not recorded')
      fs.writeSync(this.#file.fd, bytes, 0, FILE_BYTES, 0)
    } catch (err) {
      throw fromSystemError(err, `recording the store's generation in ${this.#path}`)
    }
    this.#sync()
  }

  /** Every record written so far is durable (close waits for it). */
  async settle(): Promise<void> {
    while (this.#syncing) await this.#syncing
    this.#throwSyncError()
  }

  close(): void {
    this.#file?.close() // after a sync in flight, if one is
    this.#file = undefined
  }

  #sync(): void {
    if (this.#syncing) {
      this.#syncAgain = true // the write just made may have missed the sync in flight
      return
    }
    const file = this.#file!
    this.#syncing = file
      .hold((fd) => fs.fdatasync(fd))
      .catch((err: unknown) => {
        this.#syncError ??= err
      })
      .finally(() => {
        this.#syncing = undefined
        if (this.#syncAgain && this.#file === file) {
          this.#syncAgain = false
          this.#sync()
        }
      })
  }

  #throwSyncError(): void {
    const err = this.#syncError
    if (err === undefined) return
    this.#syncError = undefined
    throw fromSystemError(err, `syncing the store's generation in ${this.#path}`)
  }

  /** The count in the file, undefined without one (a store made before generations). */
  #readFile(): number | undefined {
    let fd: number
    try {
      fd = openStoreFile(this.#path, 'r')
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined
      throw fromSystemError(err, `reading ${this.#path}`)
    }
    try {
      const bytes = Buffer.alloc(FILE_BYTES)
      const n = fs.readSync(fd, bytes, 0, FILE_BYTES, 0)
      const value = Number(bytes.readBigUInt64LE(0))
      if (n !== FILE_BYTES || !fileSum(value).equals(bytes.subarray(8))) {
        throw new PagecowError('ECORRUPT', `${this.#path} is damaged (the store's generation cannot be read); run \`pagecow fsck\``)
      }
      return value
    } finally {
      fs.closeSync(fd)
    }
  }
}

/** The generation the database holds (0 for a store that never counted). */
export function readValue(db: Database.Database, where: string): number {
  const row = db.prepare<[string], { value: string; sum: unknown }>('SELECT value, sum FROM meta WHERE key = ?').get(KEY)
  if (!row) return 0
  if (!sumMatches(row.sum, rowSum.meta(KEY, row.value)) || !/^\d{1,15}$/.test(row.value)) {
    throw new PagecowError('ECORRUPT', `${where}: the database's generation record is damaged; run \`pagecow fsck\``)
  }
  return Number(row.value)
}

function writeValue(db: Database.Database, value: number): void {
  const text = String(value)
  db.prepare('INSERT OR REPLACE INTO meta (key, value, sum) VALUES (?, ?, ?)').run(KEY, text, rowSum.meta(KEY, text))
}

function fileSum(value: number): Buffer {
  return recordSum([GENERATION_FILE, value])
}
