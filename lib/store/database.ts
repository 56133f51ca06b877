// Opening a store's SQLite database with the settings the durability contract needs.
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { checkReadableVersion, checkSchemaVersion, migrate } from './migrations.js'
import { SharedMemory } from './shared-memory.js'
import { adoptStoreFile, checkStoreFile, openStoreFile, ownerOfDirectory } from './store-file.js'

export const DATABASE_FILE = 'pagecow.db'
/** SQLite's files beside the database: its write-ahead log and its shared-memory index. */
export const DATABASE_SIDE_FILES = ['-wal', '-shm'] as const

/**
 * Whether the store directory `dir` holds a database (a symlink or anything else at its name
 * counts: opening it is then refused with EUNSAFE, not reported as "no store").
 */
export function hasDatabase(dir: string): boolean {
  try {
    fs.lstatSync(`${dir}/${DATABASE_FILE}`)
    return true
  } catch {
    return false
  }
}

/**
 * Check the database and its side files before SQLite opens them: SQLite resolves a symlink
 * at the database's name (and would then write its log beside the target), so a store whose
 * files are not regular files owned by the store's owner is refused (EUNSAFE).
 */
export function checkDatabaseFiles(path: string): void {
  const owner = ownerOfDirectory(dirname(path))
  for (const file of [path, ...DATABASE_SIDE_FILES.map((s) => path + s)]) checkStoreFile(file, owner)
}

export interface DatabaseOptions {
  readOnly: boolean
  /** Create the file; fails if it exists. */
  create?: boolean
  /**
   * Read-only: accept a schema older than this code (only the `meta` table, the same in every
   * version, may be read then). Default false.
   */
  anyOlderSchema?: boolean
}

/** Opens whose shared-memory file another process replaced meanwhile are retried this often. */
const OPEN_ATTEMPTS = 3

/**
 * WAL with synchronous=FULL: a commit is durable when it returns, and readers in other
 * processes never block the writer. The shared-memory file is prepared first (see
 * SharedMemory): a full disk fails the open with ENOSPC, never a SIGBUS later. The returned
 * database's close() also lets that file go.
 */
export function openDatabase(path: string, options: DatabaseOptions): Database.Database {
  for (let attempt = 1; ; attempt++) {
    const db = openOnce(path, options, attempt < OPEN_ATTEMPTS)
    if (db) return db
  }
}

/** One try; undefined when the shared-memory file changed under it and `mayRetry`. */
function openOnce(path: string, options: DatabaseOptions, mayRetry: boolean): Database.Database | undefined {
  checkDatabaseFiles(path)
  const shm = SharedMemory.acquire(path, options.create === true)
  let db: Database.Database
  try {
    db = new Database(path, { readonly: options.readOnly, fileMustExist: !options.create })
  } catch (err) {
    shm?.release()
    const e = fromSystemError(err, `opening the store database ${path}`)
    if (e.code === 'ENOENT' || e.code === 'EIO') {
      throw new PagecowError('ENOENT', `no pagecow store at ${path.replace(/\/[^/]*$/, '')} (${DATABASE_FILE} is missing)`, { cause: err })
    }
    throw e
  }
  const close = db.close.bind(db)
  db.close = () => {
    try {
      return close()
    } finally {
      shm?.release()
    }
  }
  try {
    if (!options.readOnly) {
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = FULL')
    }
    db.pragma('busy_timeout = 5000')
    registerRowCountGuard(db)
    // Touching the schema makes SQLite read the header: a damaged or foreign file fails here.
    db.prepare('SELECT count(*) FROM sqlite_master').get()
    // The last process to close the store deletes the file; one racing this open may have made
    // SQLite create a new, unprepared one. Start again on it.
    if (shm && !shm.isCurrent()) {
      if (mayRetry) {
        db.close()
        return undefined
      }
      throw new PagecowError('EBUSY', `${path}: its shared-memory file kept being replaced while opening; retry`)
    }
    shm?.settle()
    // Creation sets a schema version; an existing store without one was emptied or never finished.
    if (!options.create && checkSchemaVersion(db, path) === 0) {
      throw new PagecowError('ECORRUPT', `${path} holds no pagecow schema (an empty or truncated database); run \`pagecow fsck\``)
    }
    if (options.readOnly && options.anyOlderSchema) checkSchemaVersion(db, path)
    else if (options.readOnly) checkReadableVersion(db, path)
    else migrate(db, path)
    // Root creating a store in a user's directory: the files go to that user, as the rest.
    if (options.create) for (const file of [path, ...DATABASE_SIDE_FILES.map((s) => path + s)]) adoptStoreFile(file, dirname(path))
    if (!options.readOnly) shm?.reserve(db)
    return db
  } catch (err) {
    db.close()
    throw fromSystemError(err, `opening the store database ${path}`)
  }
}

/**
 * Make what an earlier process committed to the store in `dir` durable, without writing: fsync
 * the database file, its WAL and the directory naming them. A writer killed with commits in the
 * page cache only left them there. (A durable commit would do it too, but it writes: on a full
 * disk the open would fail.) Call it before opening the database: closing a descriptor on a file
 * drops every POSIX lock the process holds on it, SQLite's included.
 */
export function syncDatabaseFiles(dir: string): void {
  const path = `${dir}/${DATABASE_FILE}`
  for (const file of [path, `${path}-wal`]) {
    let fd: number
    try {
      fd = openStoreFile(file, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && file !== path) continue // no WAL: nothing committed since the last checkpoint
      throw fromSystemError(err, `opening ${file} to sync it`)
    }
    try {
      fs.fsyncSync(fd)
    } catch (err) {
      throw fromSystemError(err, `syncing ${file}`)
    } finally {
      fs.closeSync(fd)
    }
  }
  try {
    fs.syncDirectory(dir)
  } catch (err) {
    throw fromSystemError(err, `syncing the store directory ${dir}`)
  }
}

const dataVersionStatements = new WeakMap<Database.Database, Database.Statement<[], number>>()

/**
 * SQLite's data_version: changes when another connection commits (readers follow the writer).
 * Asked before every read of a read-only store, so the statement is prepared once (`db.pragma()`
 * prepares it anew each call).
 */
export function dataVersion(db: Database.Database): number {
  let statement = dataVersionStatements.get(db)
  if (!statement) {
    statement = db.prepare<[], number>('PRAGMA data_version').pluck()
    dataVersionStatements.set(db, statement)
  }
  return statement.get()!
}

const statementCaches = new WeakMap<Database.Database, Map<string, Database.Statement>>()

/**
 * `db.prepare(sql)`, once per database: preparing costs tens of µs, and paths like a tree file's
 * first write would otherwise prepare the same statements for every file. Only for statements
 * run with get/run/all (an iterate in progress would make a shared statement busy).
 */
export function prepared<P extends unknown[] = unknown[], R = unknown>(db: Database.Database, sql: string): Database.Statement<P, R> {
  let cache = statementCaches.get(db)
  if (!cache) statementCaches.set(db, (cache = new Map()))
  let statement = cache.get(sql)
  if (!statement) cache.set(sql, (statement = db.prepare(sql)))
  return statement as unknown as Database.Statement<P, R>
}

/** Bytes the store's database takes: the file and its WAL. */
export function databaseBytes(storePath: string): number {
  let total = 0
  for (const suffix of ['', '-wal']) {
    try {
      total += fs.lstatSync(`${storePath}/${DATABASE_FILE}${suffix}`).size
    } catch {
      // No WAL right now.
    }
  }
  return total
}

/**
 * The function the row-count triggers of schema 40 call (migrations/0040-integrity.sql): only a
 * pagecow connection has it, so a row added to or removed from a namespace table by another
 * program (the sqlite3 shell) fails there instead of changing the tree behind the store's back.
 */
function registerRowCountGuard(db: Database.Database): void {
  db.function('pagecow_counted', { deterministic: true }, (n: unknown) => n)
}
