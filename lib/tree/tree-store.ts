// A tree store: a directory tree (a root file system) overlaid by a writable upper (SPEC §6). The
// namespace lives in SQLite; every regular file's data is a PagedFile of the page store, so image
// mode is the one-file case of the same code. The public API: validate, then delegate.
import { EventEmitter } from 'node:events'
import { dirname, resolve } from 'node:path'
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { Geometry } from '../geometry.js'
import { MAX_IO_BYTES } from '../image/image-store.js'
import type { Extent } from '../page/extent.js'
import { ExtentMerger } from '../page/extent.js'
import { lowerPieces } from '../page/lower-pieces.js'
import { ASYNC_READ_BYTES } from '../page/paged-file.js'
import { checkRange, closedError, prepareEmptyDirectory } from '../store/checks.js'
import { DATABASE_FILE, databaseBytes, dataVersion, hasDatabase, openDatabase, syncDatabaseFiles } from '../store/database.js'
import { adoptStoreFile, checkStoreFile, checkStoreFiles, MOUNT_LOG_FILE, ownerOfDirectory } from '../store/store-file.js'
import { readFileState, readStoreMeta, writeMeta, type TreeMeta } from '../store/meta.js'
import { LOCK_FILE, WriterLock } from '../store/writer-lock.js'
import { VERSION } from '../version.js'
import { byteLength, isNameForm, nameFromBytes, nameToBytes } from '../name-bytes.js'
import { msOfNs, nowNs, nsOfMs } from '../time-ns.js'
import { listChanges, type TreeChange } from './changes.js'
import type { Entry } from './entry.js'
import { mergesLower } from './entry.js'
import { TreeFileHandle, type HandleHost } from './file-handle.js'
import type { FileNode } from './file-node.js'
import { modeOf, type FileType } from './file-type.js'
import { formatOfLower, openLower, recordLower } from './open-lower.js'
import type { LowerTree } from './lower-tree.js'
import { rowFromLower } from './lower-row.js'
import { MergedDirs } from './merged-dir.js'
import { Namespace, type InodeMeta, type InodeRow } from './namespace.js'
import { checkName, compareNames, joinPath, PATH_MAX, splitPath, type TreePath } from './names.js'
import { NodeTable, UPPER_DIR } from './node-table.js'
import { parseOpenFlags } from './open-flags.js'
import {
  mknodOptionsSchema,
  newObjectOptionsSchema,
  readdirOptionsSchema,
  renameOptionsSchema,
  rmOptionsSchema,
  setxattrOptionsSchema,
  treeCreateOptionsSchema,
  treeOpenOptionsSchema,
  utimensOptionsSchema,
  type MknodOptions,
  type NewObjectOptions,
  type ReaddirOptions,
  type RenameOptions,
  type RmOptions,
  type SetxattrOptions,
  type TreeCreateOptions,
  type TreeOpenOptions,
  type UtimensOptions,
} from './options.js'
import { Resolver } from './resolver.js'
import type { DirEntry, DirEntryBytes, TreeStat, TreeStatfs } from './tree-stat.js'
import { checkXattrName, checkXattrValue } from './xattr-name.js'

/** st_size reported for a directory created in the upper. */
const DIRECTORY_SIZE = 4096

/** What `info()` returns: plain data, printed as is by `pagecow inspect --json`. */
export interface TreeStoreInfo {
  path: string
  kind: 'tree'
  readOnly: boolean
  pageSize: number
  /** The lower: a directory, or a squashfs image read in user space. */
  lower: { path: string; format: 'directory' | 'squashfs' }
  /** Objects the upper records (changed lower objects and new ones), names and whiteouts. */
  namespace: { inodes: number; entries: number; whiteouts: number; xattrs: number }
  /** Regular files with pages in the upper, and their pages by state. */
  files: { withData: number; dataPages: number; zeroPages: number }
  upper: { allocatedBytes: number; apparentBytes: number; databaseBytes: number }
  written: { userBytes: number; upperBytes: number; amplification: number | null }
  dirty: boolean
  autoFlushMs: number
  createdAt: string
}

/** The page map of one file of the tree (`pagecow inspect STORE PATH`). */
export interface TreeFileInfo {
  path: string
  ino: number
  size: number
  pageSize: number
  pages: { total: number; data: number; zero: number; lower: number }
  upper: { allocatedBytes: number }
  /** Where the data's lower bytes come from, if anywhere. */
  lowerPath: string | null
}

/** Effects of a namespace change that may only run once its transaction committed. */
interface Effects {
  after: Array<() => void>
  purge: number[]
}

export class TreeStore extends EventEmitter {
  readonly kind = 'tree' as const
  /** Absolute path of the store directory. */
  readonly path: string
  readonly readOnly: boolean
  readonly #meta: TreeMeta
  readonly #db: Database.Database
  readonly #lock: WriterLock | undefined
  readonly #ns: Namespace
  readonly #lower: LowerTree
  readonly #resolver: Resolver
  readonly #dirs: MergedDirs
  readonly #nodes: NodeTable
  readonly #autoFlushMs: number
  #timer: NodeJS.Timeout | undefined
  #flushChain: Promise<void> = Promise.resolve()
  #dataVersion: number
  #closing: Promise<void> | undefined
  readonly #geometry: Geometry
  #closed = false
  /** Reads in the thread pool: close() lets them finish before descriptors are closed. */
  readonly #reads = new Set<Promise<number>>()
  /** Upper files of removed records, deleted once that removal is durable (the next flush). */
  readonly #pendingPurge: number[] = []

  private constructor(parts: {
    path: string
    readOnly: boolean
    meta: TreeMeta
    db: Database.Database
    lock: WriterLock | undefined
    lower: LowerTree
    autoFlushMs: number
  }) {
    super()
    this.path = parts.path
    this.readOnly = parts.readOnly
    this.#meta = parts.meta
    this.#db = parts.db
    this.#lock = parts.lock
    this.#lower = parts.lower
    this.#ns = new Namespace(parts.db, parts.path)
    this.#resolver = new Resolver(this.#ns, parts.lower, parts.meta.lower.rootIno)
    this.#dirs = new MergedDirs(this.#ns, parts.lower)
    this.#geometry = new Geometry(parts.meta.pageSize)
    this.#nodes = new NodeTable({
      path: parts.path,
      db: parts.db,
      ns: this.#ns,
      lower: parts.lower,
      geometry: this.#geometry,
      readOnly: parts.readOnly,
    })
    this.#autoFlushMs = parts.autoFlushMs
    if (!parts.readOnly) this.#ns.relax()
    this.#dataVersion = dataVersion(this.#db)
    if (!parts.readOnly && parts.autoFlushMs > 0) {
      this.#timer = setInterval(() => this.#autoFlush(), parts.autoFlushMs)
      this.#timer.unref()
    }
  }

  /** Create a tree store in `dir` (new or empty) over `lower`, a directory or a squashfs image. Nothing of the lower is read but its root. */
  static async create(dir: string, options: TreeCreateOptions): Promise<TreeStore> {
    const opts = parseWith(treeCreateOptionsSchema, options, 'create')
    const path = resolve(dir)
    let lowerPath: string
    try {
      lowerPath = fs.realpathSync(resolve(opts.lower))
    } catch (err) {
      const e = fromSystemError(err, `reading the lower ${opts.lower}`)
      if (e.code === 'ENOENT') throw new PagecowError('ENOENT', `the lower ${resolve(opts.lower)} does not exist`, { cause: err })
      throw e
    }
    const lower = recordLower(lowerPath, opts.lowerFormat)
    const created = prepareEmptyDirectory(path)
    const real = fs.realpathSync(path)
    if (real === lowerPath || real.startsWith(lowerPath + '/') || lowerPath.startsWith(real + '/')) {
      if (created) fs.rmdirSync(path)
      throw new PagecowError('EINVAL', `the store ${path} and the lower ${lowerPath} must not contain one another`)
    }
    let db: Database.Database | undefined
    try {
      fs.mkdirSync(`${path}/${UPPER_DIR}`, { mode: 0o700 })
      adoptStoreFile(`${path}/${UPPER_DIR}`, path)
      db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: false, create: true })
      const meta: TreeMeta = {
        format: 'pagecow',
        kind: 'tree',
        pageSize: opts.pageSize,
        lower,
        createdAt: new Date().toISOString(),
        createdBy: `pagecow ${VERSION}`,
      }
      const database = db
      database.transaction(() => writeMeta(database, meta))()
      // The new names must survive a power cut too, and so must the store directory's.
      fs.syncDirectory(path)
      fs.syncDirectory(dirname(path))
    } catch (err) {
      throw fromSystemError(err, `creating a store in ${path}`)
    } finally {
      db?.close()
    }
    return TreeStore.open(path, { autoFlushMs: opts.autoFlushMs })
  }

  /** Open a tree store; the lower root must be the one it was created over (ESTALE otherwise). */
  static async open(dir: string, options: TreeOpenOptions = {}): Promise<TreeStore> {
    const opts = parseWith(treeOpenOptionsSchema, options, 'open')
    const path = resolve(dir)
    if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
    // Upper files are opened by name inside upper/: it must be the store's own directory.
    checkStoreFile(`${path}/${UPPER_DIR}`, ownerOfDirectory(path), 'directory')
    checkStoreFiles(path, [LOCK_FILE, MOUNT_LOG_FILE])
    const lock = opts.readOnly ? undefined : WriterLock.acquire(`${path}/${LOCK_FILE}`)
    let db: Database.Database | undefined
    let lower: LowerTree | undefined
    try {
      // A killed writer's last commits may sit in the page cache only, and recovery deletes
      // files on their word: make them durable first. Before SQLite opens the file: closing any
      // other descriptor on it would drop the POSIX locks SQLite holds there.
      if (!opts.readOnly) syncDatabaseFiles(path)
      db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: opts.readOnly })
      const meta = readStoreMeta(db, path)
      if (meta.kind !== 'tree') {
        throw new PagecowError('EINVAL', `${path} is an ${meta.kind} store, not a tree store; open it with openStore() or ImageStore.open()`)
      }
      lower = openLower(meta.lower)
      const store = new TreeStore({ path, readOnly: opts.readOnly, meta, db, lock, lower, autoFlushMs: opts.autoFlushMs })
      if (!opts.readOnly) store.#recover()
      return store
    } catch (err) {
      lower?.close()
      db?.close()
      lock?.release()
      throw fromSystemError(err, `opening the store ${path}`)
    }
  }

  get pageSize(): number {
    return this.#meta.pageSize
  }

  /** The lower directory. */
  get lowerPath(): string {
    return this.#meta.lower.path
  }

  // ---- reading the namespace ----

  /** lstat of `path` in the merged view (a symlink is not followed). */
  async stat(path: TreePath): Promise<TreeStat> {
    const names = this.#begin(path, 'stat')
    return this.#statOf(this.#resolver.resolve(names, 'stat'))
  }

  /**
   * lstat of `path`, or undefined if nothing is there (a missing parent directory still throws).
   * For callers that expect misses (a FUSE lookup): no error is built for one.
   */
  async statIfExists(path: TreePath): Promise<TreeStat | undefined> {
    const names = this.#begin(path, 'stat')
    if (names.length === 0) return this.#statOf(this.#resolver.root())
    const { dir, name } = this.#resolver.parent(names, 'stat')
    const entry = this.#resolver.child(dir, name)
    return entry && this.#statOf(entry)
  }

  /**
   * lstat of each of `names` in directory `path` (undefined for a name not there), resolving the
   * directory once: what a listing with attributes (FUSE READDIRPLUS) needs.
   */
  async statChildren(path: TreePath, names: readonly string[]): Promise<Array<TreeStat | undefined>> {
    const dirNames = this.#begin(path, 'stat')
    const dir = this.#resolver.resolve(dirNames, 'stat')
    if (dir.type !== 'directory') throw new PagecowError('ENOTDIR', `stat: ${joinPath(dirNames)} is not a directory`)
    return names.map((name) => {
      checkName(name, 'stat')
      const entry = this.#resolver.child(dir, name)
      return entry && this.#statOf(entry)
    })
  }

  /**
   * The entries of directory `path`, merged (upper over lower, whiteouts hidden), in byte order
   * of name. Resume a listing with `after`: the name of the last entry received. Names come in
   * name form (see nameToBytes), or as Buffers with `encoding: 'buffer'`.
   */
  async readdir(path: TreePath, options?: ReaddirOptions & { encoding?: 'utf8' }): Promise<DirEntry[]>
  async readdir(path: TreePath, options: ReaddirOptions & { encoding: 'buffer' }): Promise<DirEntryBytes[]>
  async readdir(path: TreePath, options: ReaddirOptions = {}): Promise<DirEntry[] | DirEntryBytes[]> {
    const opts = parseWith(readdirOptionsSchema, options, 'readdir')
    const names = this.#begin(path, 'readdir')
    let after: string | undefined
    if (opts.after instanceof Uint8Array) after = nameFromBytes(opts.after)
    else if (opts.after !== undefined) after = checkCookie(opts.after)
    const dir = this.#resolver.resolve(names, 'readdir')
    if (dir.type === 'symlink') throw new PagecowError('ELOOP', `readdir: ${joinPath(names)} is a symlink; it is not followed`)
    if (dir.type !== 'directory') throw new PagecowError('ENOTDIR', `readdir: ${joinPath(names)} is not a directory`)
    const entries = this.#dirs.list(dir)
    // The listing is sorted: find the first name after `after` by binary search, not by a scan.
    let from = 0
    if (after !== undefined) {
      let hi = entries.length
      while (from < hi) {
        const mid = (from + hi) >>> 1
        if (compareNames(entries[mid]!.name, after) <= 0) from = mid + 1
        else hi = mid
      }
    }
    const to = opts.limit === undefined ? entries.length : Math.min(entries.length, from + opts.limit)
    const page = entries.slice(from, to)
    if (opts.encoding === 'buffer') return page.map((e) => ({ name: nameToBytes(e.name), type: e.type }))
    return page.map((e) => ({ ...e }))
  }

  /** The target of symlink `path`, verbatim (never resolved). EINVAL if it is not a symlink. */
  async readlink(path: TreePath): Promise<string> {
    const names = this.#begin(path, 'readlink')
    const entry = this.#resolver.resolve(names, 'readlink')
    if (entry.type !== 'symlink') throw new PagecowError('EINVAL', `readlink: ${joinPath(names)} is not a symlink`)
    return entry.row?.target ?? this.#lower.readlink(entry.lowerPath!)
  }

  /** The value of extended attribute `name`; ENODATA if it has none. */
  async getxattr(path: TreePath, name: string): Promise<Buffer> {
    const names = this.#begin(path, 'getxattr')
    checkXattrName(name, 'getxattr')
    const value = this.#xattrsOf(this.#resolver.resolve(names, 'getxattr')).get(name)
    if (!value) throw new PagecowError('ENODATA', `getxattr: ${joinPath(names)} has no attribute "${name}"`)
    return Buffer.from(value)
  }

  /** The names of the extended attributes of `path`, sorted. */
  async listxattr(path: TreePath): Promise<string[]> {
    const names = this.#begin(path, 'listxattr')
    return [...this.#xattrsOf(this.#resolver.resolve(names, 'listxattr')).keys()].sort()
  }

  /** statfs of the file system holding the store (where new data goes). */
  async statfs(): Promise<TreeStatfs> {
    this.#checkOpen()
    try {
      const s = fs.statfsSync(this.path)
      return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, namemax: 255 }
    } catch (err) {
      throw fromSystemError(err, 'statfs')
    }
  }

  // ---- files ----

  /**
   * Open regular file `path`. `flags`: numeric O_* flags or 'r', 'r+', 'w', 'w+', 'wx', 'a', 'a+'
   * (default 'r'); O_CREAT makes the file with `options` (mode 0o644, the process's uid/gid).
   * Nothing is copied: the first write copies only its pages. Every handle on one inode shares
   * one view. A symlink is not followed (ELOOP); a directory is EISDIR.
   */
  async open(path: TreePath, flags: number | string = 'r', options: NewObjectOptions = {}): Promise<TreeFileHandle> {
    const f = parseOpenFlags(flags)
    const opts = parseWith(newObjectOptionsSchema, options, 'open')
    const names = this.#begin(path, 'open')
    if ((f.write || f.create || f.truncate) && this.readOnly) throw new PagecowError('EROFS', 'open: the store is open read-only')
    if (names.length === 0) throw new PagecowError('EISDIR', 'open: / is a directory')
    const shown = joinPath(names)
    const { dir, name } = this.#resolver.parent(names, 'open')
    let entry = this.#resolver.child(dir, name)
    const existed = entry !== undefined
    if (entry) {
      if (f.create && f.exclusive) throw new PagecowError('EEXIST', `open: ${shown} exists`)
      if (entry.type === 'directory') throw new PagecowError('EISDIR', `open: ${shown} is a directory; list it with readdir()`)
      if (f.directory) throw new PagecowError('ENOTDIR', `open: ${shown} is not a directory`)
      if (entry.type === 'symlink') throw new PagecowError('ELOOP', `open: ${shown} is a symlink; the path API does not follow symlinks (read it with readlink())`)
      if (entry.type !== 'file') throw new PagecowError('ENOTSUP', `open: ${shown} is a ${entry.type}; special files are metadata only`)
    } else {
      if (!f.create) throw new PagecowError('ENOENT', `open: ${shown} does not exist`)
      const mode = opts.mode ?? 0o644
      entry = this.#mutate('open', () => this.#newObject(dir, name, 'file', { mode, uid: opts.uid, gid: opts.gid }))
    }
    const node = this.#acquire(entry)
    try {
      // O_TRUNC truncates whatever the access mode, as Linux does (the kernel checked write
      // permission), and marks mtime and ctime even when the file is already empty (POSIX).
      if (f.truncate && existed) {
        if (node.size > 0) this.#truncateNode(node, 0)
        else this.#touchFile(entry)
      }
    } catch (err) {
      this.#releaseNode(node)
      throw err
    }
    return new TreeFileHandle(shown, entry.ino, f, this.#hostFor(node))
  }

  /** Create an empty regular file (EEXIST if `path` exists). */
  async create(path: TreePath, options: NewObjectOptions = {}): Promise<TreeStat> {
    const opts = parseWith(newObjectOptionsSchema, options, 'create')
    const { dir, name } = this.#newName(path, 'create')
    const entry = this.#mutate('create', () => this.#newObject(dir, name, 'file', { mode: opts.mode ?? 0o644, uid: opts.uid, gid: opts.gid }))
    return this.#statOf(entry)
  }

  /** Set the size of regular file `path` (commits at once; a lower file's data is not copied). */
  async truncate(path: TreePath, size: number): Promise<void> {
    const names = this.#beginWrite(path, 'truncate')
    checkRange(size, 0, 'truncate')
    this.#changeFile(names, 'truncate', (node) => this.#truncateNode(node, size))
  }

  /**
   * Make [offset, offset + length) of regular file `path` read as zeros (the file grows if the
   * range ends past it): whole pages become ZERO and store nothing, partial ones are written.
   */
  async zero(path: TreePath, offset: number, length: number): Promise<void> {
    const names = this.#beginWrite(path, 'zero')
    checkRange(offset, length, 'zero')
    this.#changeFile(names, 'zero', (node) => this.#zeroNode(node, offset, length, 'zero'))
  }

  /** Trim: the pages of [offset, offset + length) wholly inside file `path` become ZERO; partial ones are left. */
  async discard(path: TreePath, offset: number, length: number): Promise<void> {
    const names = this.#beginWrite(path, 'discard')
    checkRange(offset, length, 'discard')
    this.#changeFile(names, 'discard', (node) => this.#zeroNode(node, offset, length, 'discard'))
  }

  /** The merged view of a regular file as extents (SPEC §5). */
  *extents(path: TreePath, offset = 0, length?: number): Generator<Extent> {
    const names = this.#begin(path, 'map')
    checkRange(offset, length ?? 0, 'map')
    const entry = this.#resolver.resolve(names, 'map')
    this.#checkRegular(entry, names, 'map')
    const node = this.#acquire(entry)
    try {
      const end = length === undefined ? node.size : Math.min(node.size, offset + length)
      if (node.paged) yield* node.paged.extents(offset, end)
      else if (node.lower) yield* lowerExtents(node, offset, end)
    } finally {
      this.#releaseNode(node)
    }
  }

  /** Size and page totals of regular file `path`. */
  async fileInfo(path: TreePath): Promise<TreeFileInfo> {
    const names = this.#begin(path, 'inspect')
    const entry = this.#resolver.resolve(names, 'inspect')
    this.#checkRegular(entry, names, 'inspect')
    const node = this.#acquire(entry)
    try {
      const total = Math.ceil(node.size / this.pageSize)
      const counts = node.paged?.map.counts ?? { data: 0, zero: 0 }
      return {
        path: joinPath(names),
        ino: entry.ino,
        size: node.size,
        pageSize: this.pageSize,
        pages: { total, data: counts.data, zero: counts.zero, lower: Math.max(0, total - counts.data - counts.zero) },
        upper: { allocatedBytes: node.paged ? node.paged.upper.diskUsage().allocated : 0 },
        lowerPath: node.lowerPath === undefined || (node.paged && node.paged.state.lowerCut === 0) ? null : this.#lower.full(node.lowerPath),
      }
    } finally {
      this.#releaseNode(node)
    }
  }

  // ---- changing the namespace (each change is one SQLite transaction, durable at the next flush) ----

  async mkdir(path: TreePath, options: NewObjectOptions = {}): Promise<TreeStat> {
    const opts = parseWith(newObjectOptionsSchema, options, 'mkdir')
    const { dir, name } = this.#newName(path, 'mkdir')
    // A directory made where the lower has an entry (removed before) hides the lower's content.
    const opaque = mergesLower(dir) && this.#lower.has(dir.lowerPath!, name)
    const entry = this.#mutate('mkdir', () => this.#newObject(dir, name, 'directory', { mode: opts.mode ?? 0o755, uid: opts.uid, gid: opts.gid, opaque }))
    return this.#statOf(entry)
  }

  /** Make a FIFO, socket or device node: metadata only, no data. */
  async mknod(path: TreePath, options: MknodOptions): Promise<TreeStat> {
    const opts = parseWith(mknodOptionsSchema, options, 'mknod')
    const { dir, name } = this.#newName(path, 'mknod')
    const rdev = opts.type === 'char-device' || opts.type === 'block-device' ? opts.rdev : 0
    const entry = this.#mutate('mknod', () => this.#newObject(dir, name, opts.type, { mode: opts.mode ?? 0o644, uid: opts.uid, gid: opts.gid, rdev }))
    return this.#statOf(entry)
  }

  /** Make symlink `path` holding `target` verbatim (the store never follows it). */
  async symlink(target: string | Uint8Array, path: TreePath, options: Omit<NewObjectOptions, 'mode'> = {}): Promise<TreeStat> {
    const bytes = target instanceof Uint8Array ? target : typeof target === 'string' && isNameForm(target) ? nameToBytes(target) : undefined
    if (bytes === undefined || bytes.length === 0 || bytes.includes(0)) {
      throw new PagecowError('EINVAL', 'symlink: the target must be a non-empty string (name form) or Buffer without NUL')
    }
    if (bytes.length >= PATH_MAX) throw new PagecowError('ENAMETOOLONG', `symlink: the target is over ${PATH_MAX - 1} bytes`)
    target = nameFromBytes(bytes)
    const opts = parseWith(newObjectOptionsSchema.omit({ mode: true }), options, 'symlink')
    const { dir, name } = this.#newName(path, 'symlink')
    const entry = this.#mutate('symlink', () => this.#newObject(dir, name, 'symlink', { mode: 0o777, uid: opts.uid, gid: opts.gid, target }))
    return this.#statOf(entry)
  }

  /** Add name `newPath` for the non-directory `existing` (one inode, whatever was copied up). */
  async link(existing: TreePath, newPath: TreePath): Promise<TreeStat> {
    const from = this.#beginWrite(existing, 'link')
    const src = this.#resolver.resolve(from, 'link')
    const { dir, name } = this.#newName(newPath, 'link')
    if (src.type === 'directory') throw new PagecowError('EPERM', `link: ${joinPath(from)} is a directory; directories cannot be hard-linked`)
    this.#mutate('link', (fx) => {
      const now = nowNs()
      const row = this.#ensureRow(src)
      this.#ns.setNlink(src.ino, row.nlink + 1)
      this.#setMeta(src.ino, { ctimeNs: now }, fx)
      this.#ns.setDirent(dir.ino, name, src.ino)
      this.#touchDir(dir, now)
    })
    return this.#statOf(this.#resolver.resolve(from, 'link'))
  }

  /** Remove the non-directory `path`; a lower one is hidden by a whiteout, the lower untouched. */
  async unlink(path: TreePath): Promise<void> {
    const names = this.#beginWrite(path, 'unlink')
    if (names.length === 0) throw new PagecowError('EISDIR', 'unlink: / is a directory')
    const { dir, name } = this.#resolver.parent(names, 'unlink')
    const entry = this.#resolver.child(dir, name)
    if (!entry) throw new PagecowError('ENOENT', `unlink: ${joinPath(names)} does not exist`)
    if (entry.type === 'directory') throw new PagecowError('EISDIR', `unlink: ${joinPath(names)} is a directory; use rmdir`)
    this.#mutate('unlink', (fx) => {
      const now = nowNs()
      this.#removeName(dir, name)
      this.#dropLink(entry, fx, now)
      this.#touchDir(dir, now)
    })
  }

  /**
   * Remove `path`: a non-directory, or with `recursive` a directory and everything in it (one
   * transaction per object, deepest first). Returns how many objects were removed.
   */
  async rm(path: TreePath, options: RmOptions = {}): Promise<number> {
    const opts = parseWith(rmOptionsSchema, options, 'rm')
    const names = this.#beginWrite(path, 'rm')
    if (names.length === 0) throw new PagecowError('EBUSY', 'rm: the root cannot be removed')
    const shown = joinPath(names)
    if ((await this.stat(shown)).type !== 'directory') {
      await this.unlink(shown)
      return 1
    }
    if (!opts.recursive) throw new PagecowError('EISDIR', `rm: ${shown} is a directory; remove it with recursive: true`)
    let removed = 0
    for (let batch = await this.readdir(shown, { limit: 256 }); batch.length > 0; batch = await this.readdir(shown, { limit: 256 })) {
      for (const entry of batch) removed += await this.rm(`${shown}/${entry.name}`, { recursive: true })
    }
    await this.rmdir(shown)
    return removed + 1
  }

  /** Remove the directory `path`, empty in the merged view (ENOTEMPTY otherwise). */
  async rmdir(path: TreePath): Promise<void> {
    const names = this.#beginWrite(path, 'rmdir')
    if (names.length === 0) throw new PagecowError('EBUSY', 'rmdir: the root cannot be removed')
    const { dir, name } = this.#resolver.parent(names, 'rmdir')
    const entry = this.#resolver.child(dir, name)
    if (!entry) throw new PagecowError('ENOENT', `rmdir: ${joinPath(names)} does not exist`)
    if (entry.type !== 'directory') throw new PagecowError('ENOTDIR', `rmdir: ${joinPath(names)} is not a directory`)
    if (!this.#dirs.isEmpty(entry)) throw new PagecowError('ENOTEMPTY', `rmdir: ${joinPath(names)} is not empty`)
    this.#mutate('rmdir', () => {
      this.#removeName(dir, name)
      this.#removeDirectory(entry)
      this.#touchDir(dir, nowNs())
    })
  }

  /**
   * Rename `from` to `to`, replacing `to` if it exists (a directory only by an empty directory).
   * `noReplace`: EEXIST if `to` exists. `exchange`: swap the two (both must exist). Lower files
   * and directories move without copying data; a moved lower directory keeps its lower entries.
   */
  async rename(from: TreePath, to: TreePath, options: RenameOptions = {}): Promise<void> {
    const opts = parseWith(renameOptionsSchema, options, 'rename')
    const fromNames = this.#beginWrite(from, 'rename')
    const toNames = splitPath(to, 'rename')
    if (opts.noReplace && opts.exchange) throw new PagecowError('EINVAL', 'rename: noReplace and exchange exclude each other')
    if (fromNames.length === 0 || toNames.length === 0) throw new PagecowError('EBUSY', 'rename: the root cannot be renamed or replaced')
    const src = this.#resolver.parent(fromNames, 'rename')
    const srcEntry = this.#resolver.child(src.dir, src.name)
    if (!srcEntry) throw new PagecowError('ENOENT', `rename: ${joinPath(fromNames)} does not exist`)
    const dst = this.#resolver.parent(toNames, 'rename')
    const dstEntry = this.#resolver.child(dst.dir, dst.name)
    // The kernel's order of checks (do_renameat2, then vfs_rename), so callers see the same errors.
    if (opts.noReplace && dstEntry) throw new PagecowError('EEXIST', `rename: ${joinPath(toNames)} exists`)
    if (opts.exchange && !dstEntry) throw new PagecowError('ENOENT', `rename: ${joinPath(toNames)} does not exist (exchange needs both)`)
    if (srcEntry.type === 'directory' && dst.chain.some((e) => e.ino === srcEntry.ino)) {
      throw new PagecowError('EINVAL', `rename: cannot move ${joinPath(fromNames)} inside itself`)
    }
    if (dstEntry?.type === 'directory' && src.chain.some((e) => e.ino === dstEntry.ino)) {
      if (opts.exchange) throw new PagecowError('EINVAL', `rename: cannot move ${joinPath(toNames)} inside itself`)
      throw new PagecowError('ENOTEMPTY', `rename: ${joinPath(toNames)} contains ${joinPath(fromNames)}`)
    }
    if (dstEntry && dstEntry.ino === srcEntry.ino) return // two names of one inode: POSIX says do nothing
    if (dstEntry && !opts.exchange) {
      if (srcEntry.type === 'directory') {
        if (dstEntry.type !== 'directory') throw new PagecowError('ENOTDIR', `rename: ${joinPath(toNames)} is not a directory`)
        if (!this.#dirs.isEmpty(dstEntry)) throw new PagecowError('ENOTEMPTY', `rename: ${joinPath(toNames)} is not empty`)
      } else if (dstEntry.type === 'directory') {
        throw new PagecowError('EISDIR', `rename: ${joinPath(toNames)} is a directory`)
      }
    }
    this.#mutate('rename', (fx) => {
      const now = nowNs()
      this.#ensureRow(srcEntry)
      if (opts.exchange) {
        this.#ensureRow(dstEntry!)
        this.#ns.setDirent(src.dir.ino, src.name, dstEntry!.ino)
        this.#ns.setDirent(dst.dir.ino, dst.name, srcEntry.ino)
        this.#setMeta(dstEntry!.ino, { ctimeNs: now }, fx)
      } else {
        this.#removeName(src.dir, src.name)
        if (dstEntry?.type === 'directory') this.#removeDirectory(dstEntry)
        else if (dstEntry) this.#dropLink(dstEntry, fx, now)
        this.#ns.setDirent(dst.dir.ino, dst.name, srcEntry.ino)
      }
      this.#setMeta(srcEntry.ino, { ctimeNs: now }, fx)
      this.#touchDir(src.dir, now)
      this.#touchDir(dst.dir, now)
    })
  }

  /** Set the permission bits (07777). Metadata only: a lower file's data stays in the lower. */
  async chmod(path: TreePath, mode: number): Promise<void> {
    const names = this.#beginWrite(path, 'chmod')
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new PagecowError('EINVAL', `chmod: mode must be an integer from 0 to 0o7777, got ${String(mode)}`)
    const entry = this.#resolver.resolve(names, 'chmod')
    if (entry.type === 'symlink') throw new PagecowError('ENOTSUP', `chmod: ${joinPath(names)} is a symlink; symlinks have no mode of their own`)
    this.#mutate('chmod', (fx) => {
      this.#ensureRow(entry)
      this.#setMeta(entry.ino, { mode, ctimeNs: nowNs() }, fx)
    })
  }

  /** Set owner and group; -1 leaves one as it is. Metadata only. */
  async chown(path: TreePath, uid: number, gid: number): Promise<void> {
    const names = this.#beginWrite(path, 'chown')
    for (const [what, v] of [['uid', uid], ['gid', gid]] as const) {
      if (!Number.isInteger(v) || v < -1 || v > 2 ** 32 - 2) throw new PagecowError('EINVAL', `chown: ${what} must be an integer from -1 to ${2 ** 32 - 2}, got ${String(v)}`)
    }
    const entry = this.#resolver.resolve(names, 'chown')
    this.#mutate('chown', (fx) => {
      this.#ensureRow(entry)
      this.#setMeta(entry.ino, { uid: uid === -1 ? undefined : uid, gid: gid === -1 ? undefined : gid, ctimeNs: nowNs() }, fx)
    })
  }

  /** Set access and modification times (ms, or 'now'); a missing one is left as it is. Metadata only. */
  async utimens(path: TreePath, times: UtimensOptions): Promise<void> {
    const opts = parseWith(utimensOptionsSchema, times, 'utimens')
    const names = this.#beginWrite(path, 'utimens')
    const entry = this.#resolver.resolve(names, 'utimens')
    const now = nowNs()
    const at = (ns: bigint | 'now' | undefined, ms: number | 'now' | undefined) =>
      ns === 'now' || ms === 'now' ? now : ns !== undefined ? ns : ms !== undefined ? nsOfMs(ms) : undefined
    this.#mutate('utimens', (fx) => {
      this.#ensureRow(entry)
      this.#setMeta(entry.ino, { atimeNs: at(opts.atimeNs, opts.atimeMs), mtimeNs: at(opts.mtimeNs, opts.mtimeMs), ctimeNs: now }, fx)
    })
  }

  /** Set extended attribute `name` (user., trusted., security., system.). Metadata only. */
  async setxattr(path: TreePath, name: string, value: Uint8Array, options: SetxattrOptions = {}): Promise<void> {
    const opts = parseWith(setxattrOptionsSchema, options, 'setxattr')
    const names = this.#beginWrite(path, 'setxattr')
    checkXattrName(name, 'setxattr')
    checkXattrValue(value, 'setxattr')
    const entry = this.#resolver.resolve(names, 'setxattr')
    const exists = this.#xattrsOf(entry).has(name)
    if (opts.create && exists) throw new PagecowError('EEXIST', `setxattr: ${joinPath(names)} already has "${name}"`)
    if (opts.replace && !exists) throw new PagecowError('ENODATA', `setxattr: ${joinPath(names)} has no attribute "${name}"`)
    this.#mutate('setxattr', (fx) => {
      this.#ensureRow(entry)
      this.#ns.setXattr(entry.ino, name, Buffer.from(value))
      this.#setMeta(entry.ino, { ctimeNs: nowNs() }, fx)
    })
  }

  /** Remove extended attribute `name` (ENODATA if it has none); a lower one is hidden. */
  async removexattr(path: TreePath, name: string): Promise<void> {
    const names = this.#beginWrite(path, 'removexattr')
    checkXattrName(name, 'removexattr')
    const entry = this.#resolver.resolve(names, 'removexattr')
    if (!this.#xattrsOf(entry).has(name)) throw new PagecowError('ENODATA', `removexattr: ${joinPath(names)} has no attribute "${name}"`)
    const inLower = this.#lowerXattrs(entry).has(name)
    this.#mutate('removexattr', (fx) => {
      this.#ensureRow(entry)
      if (inLower) this.#ns.setXattr(entry.ino, name, null)
      else this.#ns.deleteXattr(entry.ino, name)
      this.#setMeta(entry.ino, { ctimeNs: nowNs() }, fx)
    })
  }

  // ---- the store ----

  /** What changed, like `git status`: one record per changed name, sorted by path. */
  *changes(): Generator<TreeChange> {
    this.#checkOpen()
    this.#refresh()
    yield* listChanges({
      ns: this.#ns,
      lower: this.#lower,
      rootIno: this.#meta.lower.rootIno,
      pageSize: this.pageSize,
      fileState: (id) => {
        const node = this.#nodeList().find((n) => n.fileId === id)
        const state = node?.paged ? node.paged.state : readFileState(this.#db, id, this.path)
        const counts = node?.paged ? node.paged.map.counts : this.#persistedCounts(id)
        return { size: state.size, data: counts.data, zero: counts.zero }
      },
    })
  }

  /** Totals and settings as plain data. */
  info(): TreeStoreInfo {
    this.#checkOpen()
    this.#refresh()
    const count = (sql: string) => (this.#db.prepare(sql).get() as { n: number }).n
    const sums = this.#db.prepare('SELECT coalesce(sum(bytes_written), 0) AS user, coalesce(sum(upper_written), 0) AS upper FROM files').get() as { user: number; upper: number }
    const pages = this.#db.prepare('SELECT coalesce(sum(data_count), 0) AS data, coalesce(sum(zero_count), 0) AS zero FROM page_chunks').get() as { data: number; zero: number }
    let userBytes = sums.user
    let upperBytes = sums.upper
    for (const node of this.#nodeList()) {
      if (!node.paged || node.fileId === undefined) continue
      const saved = this.#persistedCounts(node.fileId)
      const live = node.paged.map.counts
      pages.data += live.data - saved.data
      pages.zero += live.zero - saved.zero
      const savedState = readFileState(this.#db, node.fileId, this.path)
      userBytes += node.paged.state.bytesWritten - savedState.bytesWritten
      upperBytes += node.paged.state.upperWritten - savedState.upperWritten
    }
    let allocated = 0
    let apparent = 0
    for (const { id } of this.#db.prepare('SELECT id FROM files').all() as Array<{ id: number }>) {
      const usage = this.#nodes.upperUsage(id)
      allocated += usage.allocated
      apparent += usage.apparent
    }
    return {
      path: this.path,
      kind: 'tree',
      readOnly: this.readOnly,
      pageSize: this.pageSize,
      lower: { path: this.#meta.lower.path, format: formatOfLower(this.#meta.lower) },
      namespace: {
        inodes: count('SELECT count(*) AS n FROM inodes'),
        entries: count('SELECT count(*) AS n FROM dirents WHERE ino IS NOT NULL'),
        whiteouts: count('SELECT count(*) AS n FROM dirents WHERE ino IS NULL'),
        xattrs: count('SELECT count(*) AS n FROM xattrs'),
      },
      files: { withData: count('SELECT count(*) AS n FROM files'), dataPages: pages.data, zeroPages: pages.zero },
      upper: { allocatedBytes: allocated, apparentBytes: apparent, databaseBytes: databaseBytes(this.path) },
      written: { userBytes, upperBytes, amplification: userBytes > 0 ? upperBytes / userBytes : null },
      dirty: this.#dirty,
      autoFlushMs: this.#autoFlushMs,
      createdAt: this.#meta.createdAt,
    }
  }

  /** Make every change completed before this call durable: data, metadata and names (SPEC §3). */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    if (this.readOnly) return Promise.resolve()
    return this.#chain(async () => {
      await this.#nodes.flush()
      this.#syncNamespace()
    })
  }

  /** Flush, then release every file, the database and the writer lock. Open handles stop working. */
  close(): Promise<void> {
    // Every caller waits for the one close: a second one returning early would find the writer
    // lock still held.
    this.#closing ??= this.#closeOnce()
    return this.#closing
  }

  async #closeOnce(): Promise<void> {
    if (this.#closed) return
    clearInterval(this.#timer)
    try {
      if (!this.readOnly) await this.flush()
    } finally {
      this.#closed = true
      await Promise.allSettled(this.#reads) // a descriptor closed under a read could be reused by another file
      this.#nodes.closeAll()
      if (!this.readOnly) {
        try {
          this.#recover() // removed files that only open handles kept: no handle outlives the store
          this.#db.pragma('wal_checkpoint(TRUNCATE)')
        } catch {
          // Housekeeping: the next open drops orphans and replays the WAL if this failed.
        }
      }
      this.#db.close()
      this.#lower.close()
      this.#lock?.release()
    }
  }

  // ---- internals: these trust their callers ----

  #chain(work: () => Promise<void>): Promise<void> {
    const run = this.#flushChain.then(async () => {
      if (this.#closed) return
      await work()
      this.emit('flush')
    })
    this.#flushChain = run.catch(() => {})
    return run
  }

  #autoFlush(): void {
    if (!this.#dirty) return
    this.flush().catch((err: unknown) => this.emit('warning', err))
  }

  /** After a crash: drop inodes that only open handles kept, and upper files whose records are gone. */
  #recover(): void {
    const fx: Effects = { after: [], purge: [] }
    // Durable: the orphans' upper files are deleted right after, on this commit's word.
    this.#ns.transaction(() => {
      for (const row of this.#ns.orphans()) this.#destroy(row, fx)
    }, 'now')
    this.#nodes.purge([...new Set([...fx.purge, ...this.#ns.purgeList()])])
  }

  #begin(path: TreePath, what: string): string[] {
    this.#checkOpen()
    const names = splitPath(path, what)
    this.#refresh()
    return names
  }

  #beginWrite(path: TreePath, what: string): string[] {
    this.#checkOpen()
    if (this.readOnly) throw new PagecowError('EROFS', `${what}: the store is open read-only`)
    return splitPath(path, what)
  }

  /** The parent of a name about to be created, walked; EEXIST if the name is taken. */
  #newName(path: TreePath, what: string): { dir: Entry; name: string } {
    const names = this.#beginWrite(path, what)
    if (names.length === 0) throw new PagecowError('EEXIST', `${what}: / exists`)
    const { dir, name } = this.#resolver.parent(names, what)
    checkName(name, what)
    if (this.#resolver.child(dir, name)) throw new PagecowError('EEXIST', `${what}: ${joinPath(names)} exists`)
    return { dir, name }
  }

  /** Run a namespace change in one transaction; effects on memory and disk follow its commit. */
  #mutate<T>(what: string, fn: (fx: Effects) => T): T {
    const fx: Effects = { after: [], purge: [] }
    let result: T
    try {
      result = this.#ns.transaction(() => fn(fx))
    } catch (err) {
      throw fromSystemError(err, what)
    }
    for (const f of fx.after) f()
    this.#pendingPurge.push(...fx.purge)
    return result
  }

  /** Whether anything is not durable yet: data, times, namespace commits or removals. */
  get #dirty(): boolean {
    return this.#nodes.isDirty || !this.#ns.synced || this.#pendingPurge.length > 0
  }

  /**
   * The last step of a flush: every namespace commit durable (one fsync of the WAL, often done
   * by the data commit just before), then the upper files of records removed before it deleted.
   */
  #syncNamespace(): void {
    this.#ns.sync()
    this.#nodes.purge(this.#pendingPurge.splice(0))
  }

  #newObject(
    dir: Entry,
    name: string,
    type: FileType,
    o: { mode: number; uid?: number | undefined; gid?: number | undefined; rdev?: number; target?: string; opaque?: boolean },
  ): Entry {
    const now = nowNs()
    const row: InodeRow = {
      ino: this.#ns.allocateIno(),
      type,
      origin: null,
      nlink: type === 'directory' ? 2 : 1,
      mode: o.mode,
      uid: o.uid ?? process.getuid?.() ?? 0,
      gid: o.gid ?? process.getgid?.() ?? 0,
      rdev: o.rdev ?? 0,
      atimeNs: now,
      mtimeNs: now,
      ctimeNs: now,
      target: o.target ?? null,
      file: null,
      lowerPrint: null,
      opaque: o.opaque ?? false,
    }
    this.#ns.insertInode(row)
    this.#ns.setDirent(dir.ino, name, row.ino)
    this.#touchDir(dir, now)
    return { ino: row.ino, type, row, lower: undefined, lowerPath: undefined }
  }

  /** The entry's row, recording a lower object's metadata first if the upper had none. */
  #ensureRow(entry: Entry): InodeRow {
    if (entry.row) return entry.row
    const existing = this.#ns.inode(entry.ino)
    if (existing) return (entry.row = existing)
    const row = rowFromLower(entry.type, entry.lowerPath!, entry.lower!.stat)
    this.#ns.insertInode(row)
    return (entry.row = row)
  }

  #setMeta(ino: number, meta: Partial<InodeMeta>, fx: Effects): void {
    this.#ns.setMeta(ino, meta)
    fx.after.push(() => {
      const node = this.#nodes.get(ino)
      const times = node?.times
      if (node && times) node.setTimes({ mtimeNs: meta.mtimeNs ?? times.mtimeNs, ctimeNs: meta.ctimeNs ?? times.ctimeNs })
    })
  }

  /** mtime and ctime of a regular file to now, its data unchanged. */
  #touchFile(entry: Entry): void {
    this.#mutate('open', (fx) => {
      const now = nowNs()
      this.#ensureRow(entry)
      this.#setMeta(entry.ino, { mtimeNs: now, ctimeNs: now }, fx)
    })
  }

  #touchDir(dir: Entry, now: bigint): void {
    this.#ensureRow(dir)
    this.#ns.setMeta(dir.ino, { mtimeNs: now, ctimeNs: now })
  }

  /** Take `name` out of `dir`: a whiteout where the lower has the name, else no entry at all. */
  #removeName(dir: Entry, name: string): void {
    if (mergesLower(dir) && this.#lower.has(dir.lowerPath!, name)) this.#ns.setDirent(dir.ino, name, null)
    else this.#ns.deleteDirent(dir.ino, name)
  }

  /** One name fewer for a non-directory; the last one removes it (once no handle holds it). */
  #dropLink(entry: Entry, fx: Effects, now: bigint): void {
    if (!entry.row && (entry.lower?.stat.nlink ?? 1) <= 1 && !this.#nodes.isOpen(entry.ino) && !this.#ns.inode(entry.ino)) return
    const row = this.#ensureRow(entry)
    const nlink = Math.max(0, row.nlink - 1)
    if (nlink > 0 || this.#nodes.isOpen(entry.ino)) {
      this.#ns.setNlink(entry.ino, nlink)
      this.#setMeta(entry.ino, { ctimeNs: now }, fx)
      return
    }
    this.#destroy(row, fx)
  }

  #destroy(row: InodeRow, fx: Effects): void {
    this.#ns.deleteInode(row.ino)
    if (row.file !== null) {
      this.#ns.deleteFileRecords(row.file)
      this.#ns.addPurge(row.file)
      fx.purge.push(row.file)
    }
    fx.after.push(() => this.#nodes.forget(row.ino))
  }

  /** The records of an (empty) directory: its whiteouts and its row. */
  #removeDirectory(dir: Entry): void {
    this.#ns.deleteDirentsOf(dir.ino)
    if (dir.row || this.#ns.inode(dir.ino)) this.#ns.deleteInode(dir.ino)
  }

  #acquire(entry: Entry): FileNode {
    try {
      return this.#nodes.acquire(entry)
    } catch (err) {
      throw fromSystemError(err, `opening ${entry.lowerPath ?? `inode ${entry.ino}`}`)
    }
  }

  /** Release a node; the last handle of an unlinked file removes it. */
  #releaseNode(node: FileNode): void {
    if (this.#closed) return
    if (node.refs === 1 && !this.readOnly) {
      const row = this.#ns.inode(node.ino)
      if (row && row.nlink === 0) {
        node.refs = 0
        this.#mutate('close', (fx) => this.#destroy(row, fx))
        return
      }
    }
    this.#nodes.release(node)
  }

  /** Run `change` on the node of the regular file at `names`, held for the call. */
  #changeFile(names: string[], what: string, change: (node: FileNode) => void): void {
    const entry = this.#resolver.resolve(names, what)
    if (entry.type !== 'file' && entry.type !== 'directory' && entry.type !== 'symlink') {
      throw new PagecowError('EINVAL', `${what}: ${joinPath(names)} is a ${entry.type}, not a regular file`)
    }
    this.#checkRegular(entry, names, what)
    const node = this.#acquire(entry)
    try {
      change(node)
    } finally {
      this.#releaseNode(node)
    }
  }

  /** zero(): the range reads zeros, the file grows to its end; discard(): whole pages inside the file only. */
  #zeroNode(node: FileNode, offset: number, length: number, how: 'zero' | 'discard'): void {
    if (length === 0) return
    if (how === 'discard') {
      // A discard that covers no whole page changes nothing: no copy-up record, no new times.
      const [first, last] = this.#geometry.wholePagesOfFile(offset, Math.min(offset + length, node.size), node.size)
      if (first >= last) return
    }
    const paged = this.#nodes.beginData(node)
    if (how === 'zero') paged.zero(offset, length)
    else paged.discard(offset, length)
    const now = nowNs()
    node.setTimes({ mtimeNs: now, ctimeNs: now })
  }

  #truncateNode(node: FileNode, size: number): void {
    const paged = this.#nodes.beginData(node)
    paged.truncate(size)
    const now = nowNs()
    node.setTimes({ mtimeNs: now, ctimeNs: now })
    this.#nodes.commitNow(node)
    paged.trimUpper()
  }

  #hostFor(node: FileNode): HandleHost {
    let open = true
    const check = () => {
      this.#checkOpen()
      if (!open) throw new PagecowError('ECLOSED', 'the handle is closed')
    }
    return {
      read: (length, offset) => {
        check()
        checkRange(offset, length, 'read')
        if (length > MAX_IO_BYTES) throw new PagecowError('EINVAL', `read: length ${length} is over the ${MAX_IO_BYTES}-byte limit of one read`)
        this.#refresh()
        const target = Buffer.alloc(Math.max(0, Math.min(length, node.size - offset)))
        node.readInto(target, offset)
        return target
      },
      readInto: async (target, offset) => {
        check()
        checkRange(offset, target.length, 'read')
        this.#refresh()
        const n = Math.max(0, Math.min(target.length, node.size - offset))
        if (n === 0) return 0
        // Small reads stay on the event loop (a pool hop costs more than a cached 4 KiB read);
        // large ones go to the pool, so several overlap on the disk.
        if (n < ASYNC_READ_BYTES) return node.readInto(target.subarray(0, n), offset)
        const read = node.readIntoAsync(target.subarray(0, n), offset)
        this.#reads.add(read)
        try {
          return await read
        } finally {
          this.#reads.delete(read)
        }
      },
      write: (offset, data, append) => {
        check()
        if (this.readOnly) throw new PagecowError('EROFS', 'write: the store is open read-only')
        if (!(data instanceof Uint8Array)) throw new PagecowError('EINVAL', 'write: data must be a Buffer or Uint8Array')
        const at = append ? node.size : offset
        checkRange(at, data.length, 'write')
        if (data.length === 0) return 0
        const paged = this.#nodes.beginData(node)
        paged.write(at, data)
        const now = nowNs()
        node.setTimes({ mtimeNs: now, ctimeNs: now })
        return data.length
      },
      truncate: (size) => {
        check()
        if (this.readOnly) throw new PagecowError('EROFS', 'truncate: the store is open read-only')
        checkRange(size, 0, 'truncate')
        this.#truncateNode(node, size)
      },
      zero: (offset, length, how) => {
        check()
        if (this.readOnly) throw new PagecowError('EROFS', `${how}: the store is open read-only`)
        checkRange(offset, length, how)
        this.#zeroNode(node, offset, length, how)
      },
      stat: () => {
        check()
        this.#refresh()
        return this.#statOf(this.#entryOfNode(node))
      },
      fsync: () => {
        check()
        if (this.readOnly) return Promise.resolve()
        return this.#chain(async () => {
          await this.#nodes.flush([node])
          this.#syncNamespace() // its name and metadata too: cheap once the data commit was durable
        })
      },
      close: () => {
        if (!open) return
        open = false
        this.#releaseNode(node)
      },
    }
  }

  /** The entry of an open node, from its row, or from its lower file if the upper has none. */
  #entryOfNode(node: FileNode): Entry {
    const row = this.#ns.inode(node.ino)
    if (row) return { ino: node.ino, type: 'file', row, lower: undefined, lowerPath: row.origin ?? undefined }
    const stat = node.lower!.stat()
    return { ino: node.ino, type: 'file', row: undefined, lower: { path: node.lowerPath!, type: 'file', stat }, lowerPath: node.lowerPath }
  }

  #statOf(entry: Entry): TreeStat {
    const blksize = this.pageSize
    const row = entry.row
    if (!row) {
      const st = entry.lower!.stat
      const node = entry.type === 'file' ? this.#nodes.get(entry.ino) : undefined
      return {
        ino: entry.ino,
        mode: st.mode,
        type: entry.type,
        nlink: entry.type === 'directory' ? this.#dirs.nlink(entry) : st.nlink,
        uid: st.uid,
        gid: st.gid,
        rdev: st.rdev,
        size: node ? node.size : st.size,
        blocks: st.blocks,
        blksize,
        ...times(st.atimeNs, st.mtimeNs, st.ctimeNs),
      }
    }
    let size = 0
    let blocks = 0
    let mtimeNs = row.mtimeNs
    let ctimeNs = row.ctimeNs
    if (row.type === 'file') {
      const node = this.#nodes.get(row.ino)
      let lowerCut = row.lowerPrint?.size ?? 0
      if (node?.paged) {
        size = node.paged.size
        lowerCut = node.paged.state.lowerCut
      } else if (row.file !== null) {
        const state = readFileState(this.#db, row.file, this.path)
        size = state.size
        lowerCut = state.lowerCut
      } else {
        size = node ? node.size : (row.lowerPrint?.size ?? 0)
      }
      if (row.file !== null) blocks += Math.ceil(this.#nodes.upperUsage(row.file).allocated / 512)
      if (row.lowerPrint && lowerCut > 0) blocks += row.lowerPrint.blocks
      const times = node?.times
      if (times) {
        mtimeNs = times.mtimeNs
        ctimeNs = times.ctimeNs
      }
    } else if (row.type === 'symlink') {
      size = row.target !== null ? byteLength(row.target) : (row.lowerPrint?.size ?? 0)
      blocks = row.lowerPrint?.blocks ?? 0
    } else if (row.type === 'directory') {
      size = row.lowerPrint?.size ?? DIRECTORY_SIZE
      blocks = row.lowerPrint?.blocks ?? DIRECTORY_SIZE / 512
    }
    return {
      ino: row.ino,
      mode: modeOf(row.type, row.mode),
      type: row.type,
      nlink: row.type === 'directory' ? this.#dirs.nlink(entry) : row.nlink,
      uid: row.uid,
      gid: row.gid,
      rdev: row.rdev,
      size,
      blocks,
      blksize,
      ...times(row.atimeNs, mtimeNs, ctimeNs),
    }
  }

  #lowerXattrs(entry: Entry): Map<string, Buffer> {
    const fromLower = entry.row ? entry.row.origin !== null : entry.lowerPath !== undefined
    return fromLower ? this.#lower.xattrs(entry.lowerPath!, entry.type) : new Map()
  }

  #xattrsOf(entry: Entry): Map<string, Buffer> {
    const merged = this.#lowerXattrs(entry)
    for (const [name, value] of this.#ns.xattrs(entry.ino)) {
      if (value === null) merged.delete(name)
      else merged.set(name, value)
    }
    return merged
  }

  #checkRegular(entry: Entry, names: string[], what: string): void {
    if (entry.type === 'directory') throw new PagecowError('EISDIR', `${what}: ${joinPath(names)} is a directory`)
    if (entry.type === 'symlink') throw new PagecowError('ELOOP', `${what}: ${joinPath(names)} is a symlink; it is not followed`)
    if (entry.type !== 'file') throw new PagecowError('ENOTSUP', `${what}: ${joinPath(names)} is a ${entry.type}; special files hold no data`)
  }

  #nodeList(): FileNode[] {
    return this.#nodes.list()
  }

  #persistedCounts(id: number): { data: number; zero: number } {
    return this.#db.prepare('SELECT coalesce(sum(data_count), 0) AS data, coalesce(sum(zero_count), 0) AS zero FROM page_chunks WHERE file = ?').get(id) as { data: number; zero: number }
  }

  /** A read-only store follows the writer: reload file data (and drop cached lookups) when the database changed. */
  #refresh(): void {
    if (!this.readOnly) return
    const version = this.#ns.refresh()
    if (version === this.#dataVersion) return
    this.#dataVersion = version
    this.#nodes.reload()
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError()
  }
}

/** A readdir cookie given as a string must be a name form (it is compared as bytes). */
function checkCookie(after: string): string {
  if (!isNameForm(after)) throw new PagecowError('EINVAL', 'readdir: `after` holds a lone surrogate that escapes no byte')
  return after
}

/** A stat's times: exact nanoseconds, and milliseconds as node:fs derives them. */
function times(atimeNs: bigint, mtimeNs: bigint, ctimeNs: bigint): Pick<TreeStat, 'atimeNs' | 'mtimeNs' | 'ctimeNs' | 'atimeMs' | 'mtimeMs' | 'ctimeMs'> {
  return { atimeNs, mtimeNs, ctimeNs, atimeMs: msOfNs(atimeNs), mtimeMs: msOfNs(mtimeNs), ctimeMs: msOfNs(ctimeNs) }
}

/** Extents of a file all of whose bytes are the lower's: its data and its holes. */
function* lowerExtents(node: FileNode, start: number, end: number): Generator<Extent> {
  const merger = new ExtentMerger()
  for (const [from, to, state] of lowerPieces(node.lower!, start, end, end)) {
    const done = merger.push(from, to, state)
    if (done) yield done
  }
  const last = merger.finish()
  if (last) yield last
}
