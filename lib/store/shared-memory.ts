// SQLite's shared-memory index (pagecow.db-shm) with its blocks allocated before SQLite stores
// into it. SQLite grows the file by writing one byte at the end of each 4 KiB page and then stores
// through a shared mapping: on a file system whose blocks are smaller than 4 KiB (a small ext4 has
// 1 KiB blocks) the rest of each page stays a hole, and a store into such a hole on a full disk
// cannot allocate its block, so the kernel kills the process with SIGBUS: `pagecow read`, `fsck`
// or a mount server died that way after a write had filled the disk. Here the first process to
// open a store writes the file out whole (zeros, as SQLite's own start-up truncation leaves it) and
// holds a shared lock on SQLite's "DMS" byte until its SQLite connection holds its own, so SQLite
// sees another user and never truncates it back into holes. A full disk then fails the open with
// ENOSPC instead. A writer also reserves room for the index to grow (best effort).
import { dirname } from 'node:path'
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, isPagecowError, PagecowError } from '../errors.js'
import { openStoreFile } from './store-file.js'

/** SQLite's dead-man-switch byte in the -shm file (UNIX_SHM_DMS in os_unix.c: (22 + 8) * 4 + 8). */
const DMS_BYTE = 128
/** One region of the wal-index (WALINDEX_PGSZ): the header and the hash tables of 4062 frames. */
const REGION_BYTES = 32 * 1024
/** The header and checkpoint info: the only bytes readers store into (WALINDEX_HDR_SIZE). */
const HEADER_BYTES = 136
/**
 * What a writer reserves: 4 regions, index room for about 16 000 WAL frames (64 MiB of log with
 * 4 KiB database pages) before SQLite would have to grow the file into holes again.
 */
const WRITER_BYTES = 4 * REGION_BYTES
/** How long to wait for another process that is setting the file up. */
const SETUP_WAIT_MS = 5000

/**
 * SQLite's SHARED lock bytes in the database file (SHARED_FIRST = PENDING_BYTE + 2, SHARED_SIZE).
 * The last connection to close a store takes them exclusively, checkpoints, and deletes the -shm
 * file: a read lock here from before the -shm file is prepared until SQLite holds its own keeps
 * a closer from deleting the file this open prepared (SQLite would then make a new one of holes
 * and store into them: SIGBUS on a full disk).
 */
const SHARED_FIRST = 0x40000002
const SHARED_SIZE = 510

interface Held {
  fd: number
  /** The database file, read-locked on SQLite's SHARED bytes until settle(); open until release(). */
  dbFd: number | undefined
  /** Our lock on the DMS byte is still held (until SQLite holds its own). */
  locked: boolean
  /** The -shm file this process prepared or joined, to tell if it was replaced meanwhile. */
  ino: number
  refs: number
  path: string
}

/** One per store directory per process: its descriptor may only close with the last connection. */
const held = new Map<string, Held>()

const zeros = Buffer.alloc(REGION_BYTES)

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function writeZeros(fd: number, from: number, to: number): void {
  for (let pos = from; pos < to; ) pos += fs.writeSync(fd, zeros, 0, Math.min(zeros.length, to - pos), pos)
}

/** A connection's hold on its store's -shm file; `release()` after the database is closed. */
export class SharedMemory {
  readonly #key: string
  #released = false

  private constructor(key: string) {
    this.#key = key
  }

  /**
   * Prepare (or join) the -shm file of the database at `dbPath` before SQLite opens it.
   * Undefined where the file cannot be written (a reader without write access to the store):
   * SQLite then keeps the index in its own memory; and where there is no database to open
   * (unless `create`), so that a failed open leaves nothing behind.
   */
  static acquire(dbPath: string, create = false): SharedMemory | undefined {
    const dir = dirname(dbPath)
    let key: string
    try {
      const st = fs.statSync(dir)
      key = `${st.dev}:${st.ino}`
    } catch (err) {
      throw fromSystemError(err, `reading the store directory ${dir}`)
    }
    const already = held.get(key)
    if (already) {
      already.refs++
      return new SharedMemory(key)
    }
    const path = `${dbPath}-shm`
    let mode = 0o644
    try {
      mode = fs.lstatSync(dbPath).mode & 0o666
    } catch {
      if (!create) return undefined
      // A new database: SQLite's own default mode.
    }
    const dbFd = holdDatabase(dbPath)
    let fd: number
    try {
      fd = openStoreFile(path, 'rw', { create: true, mode })
    } catch (err) {
      if (dbFd !== undefined) fs.closeSync(dbFd)
      if (isPagecowError(err, 'EACCES') || isPagecowError(err, 'EROFS')) return undefined
      throw err
    }
    try {
      prepare(fd, path)
      held.set(key, { fd, dbFd, locked: true, ino: fs.fstatSync(fd).ino, refs: 1, path })
    } catch (err) {
      fs.closeSync(fd)
      if (dbFd !== undefined) fs.closeSync(dbFd)
      throw err
    }
    return new SharedMemory(key)
  }

  /**
   * Once SQLite has the file open (it then holds its own lock on the DMS byte, for as long as it
   * keeps it): drop ours, which would otherwise tell every SQLite closing the store that someone
   * still uses the file, and it would never delete it. The descriptor stays open (see release()).
   */
  settle(): void {
    const h = held.get(this.#key)
    if (h?.locked) {
      fs.unlockRange(h.fd, DMS_BYTE, 1)
      if (h.dbFd !== undefined) fs.unlockRange(h.dbFd, SHARED_FIRST, SHARED_SIZE)
      h.locked = false
    }
  }

  /** Whether SQLite opened the file this hold prepared (a process closing the store last deletes it). */
  isCurrent(): boolean {
    const h = held.get(this.#key)
    if (!h) return false
    try {
      return fs.lstatSync(h.path).ino === h.ino
    } catch {
      return false
    }
  }

  /**
   * For a writer: fill any hole in the index and grow it to WRITER_BYTES with zeros, holding
   * SQLite's write lock (only its holder stores past the header or grows the file, so nothing
   * there is in use). Best effort: on a full disk the store still opens, with the index as it is.
   */
  reserve(db: Database.Database): void {
    const h = held.get(this.#key)
    if (!h) return
    try {
      db.exec('BEGIN IMMEDIATE')
    } catch {
      return // busy past the timeout: the reserve is a precaution, not a condition of opening
    }
    try {
      const size = fs.fstatSync(h.fd).size
      for (let pos = fs.seekHole(h.fd, HEADER_BYTES); pos !== null && pos < size; ) {
        const end = Math.min(size, fs.seekData(h.fd, pos) ?? size)
        writeZeros(h.fd, pos, end)
        pos = end < size ? fs.seekHole(h.fd, end) : null
      }
      if (size < WRITER_BYTES) writeZeros(h.fd, size, WRITER_BYTES)
    } catch {
      // No room for more index: SQLite grows it itself if the log ever needs it.
    } finally {
      db.exec('ROLLBACK')
    }
  }

  /** After the connection's database is closed: the last one of this process lets the file go. */
  release(): void {
    if (this.#released) return
    this.#released = true
    const h = held.get(this.#key)
    if (!h || --h.refs > 0) return
    held.delete(this.#key)
    // Closing any descriptor drops every POSIX lock the process holds on the file, SQLite's
    // included: only now, with no connection of this process left on it.
    fs.closeSync(h.fd)
    if (h.dbFd !== undefined) fs.closeSync(h.dbFd)
  }
}

/**
 * Read-lock SQLite's SHARED bytes of the database at `dbPath` (see SHARED_FIRST), waiting while a
 * closing connection holds them exclusively (it is checkpointing and deleting the -shm file: let
 * it finish). Undefined when there is no database yet (a store being created) or it cannot be read.
 */
function holdDatabase(dbPath: string): number | undefined {
  let fd: number
  try {
    fd = fs.openSync(dbPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
  } catch {
    return undefined
  }
  const until = Date.now() + SETUP_WAIT_MS
  while (!fs.tryLockRange(fd, SHARED_FIRST, SHARED_SIZE, true)) {
    if (Date.now() >= until) {
      fs.closeSync(fd)
      throw new PagecowError('EBUSY', `the database ${dbPath} was held exclusively by another process for over ${SETUP_WAIT_MS} ms`)
    }
    sleep(5)
  }
  return fd
}

/** Frames of the log the index's first region covers (HASHTABLE_NPAGE_ONE), and each later one. */
const FIRST_REGION_FRAMES = 4062
const REGION_FRAMES = 4096

/**
 * The bytes of index the log at `walPath` needs as it is now: the first process to open the store
 * rebuilds the index from the log (even a reader), storing into every region it needs. Regions
 * SQLite grows itself are holes where file-system blocks are smaller than its 4 KiB steps, and a
 * store into one on a full disk is SIGBUS: a log that a writer could not checkpoint (the disk was
 * full) killed `pagecow inspect` that way. So every region is written out here, or the open fails
 * with ENOSPC.
 */
function indexBytesFor(walPath: string): number {
  let frames = 0
  try {
    const fd = fs.openSync(walPath, 'r')
    try {
      const header = Buffer.alloc(32)
      const size = fs.fstatSync(fd).size
      if (fs.readSync(fd, header, 0, 32, 0) === 32) {
        const pageSize = header.readUInt32BE(8) === 1 ? 65536 : header.readUInt32BE(8)
        if (pageSize >= 512) frames = Math.floor((size - 32) / (pageSize + 24))
      }
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    // No log (or none readable): the first region is all an empty log needs.
  }
  const regions = frames <= FIRST_REGION_FRAMES ? 1 : 1 + Math.ceil((frames - FIRST_REGION_FRAMES) / REGION_FRAMES)
  return regions * REGION_BYTES
}

/**
 * Take the DMS byte: exclusively if nobody uses the file (then write it out whole, and keep a
 * shared lock), else shared beside the SQLite connections already on it. Another process setting
 * it up holds it exclusively for a moment: wait.
 */
function prepare(fd: number, path: string): void {
  const until = Date.now() + SETUP_WAIT_MS
  for (;;) {
    if (fs.tryLockRange(fd, DMS_BYTE, 1, false)) {
      const bytes = indexBytesFor(path.slice(0, -'-shm'.length) + '-wal')
      try {
        fs.ftruncateSync(fd, 0)
        writeZeros(fd, 0, bytes)
      } catch (err) {
        try {
          fs.ftruncateSync(fd, 0) // give back what was taken: the next opener starts afresh
        } catch {
          // The file is only an index; SQLite rebuilds it.
        }
        const e = fromSystemError(err, `preparing the database's shared-memory file ${path}`)
        if (e.code === 'ENOSPC') {
          throw new PagecowError('ENOSPC', `the disk holding ${dirname(path)} is full: the database's shared-memory file needs ${bytes / 1024} KiB; free some space and retry`, { cause: err })
        }
        throw e
      }
      fs.downgradeLockRange(fd, DMS_BYTE, 1)
      return
    }
    if (fs.tryLockRange(fd, DMS_BYTE, 1, true)) return
    if (Date.now() >= until) throw new PagecowError('EBUSY', `the database's shared-memory file ${path} was being set up by another process for over ${SETUP_WAIT_MS} ms`)
    sleep(5)
  }
}
