// A tree store: a directory tree (a root file system) overlaid by a writable upper (SPEC §6). The
// namespace lives in SQLite; every regular file's data is a PagedFile of the page store, so image
// mode is the one-file case of the same code. The public API: each method validates its arguments
// and does its work in the module of its concern (namespace-changes, file-ops, stat-of, tree-info);
// the store's life (lock, flushes, close) is the StoreCore's, as for images.
import { compactOptionsSchema, type CompactOptions, type CompactResult } from '../page/compaction.js'
import { compactTree } from './compact-tree.js'
import { FirstDirtyEvents, type FirstDirtyHandler } from '../changes/first-dirty.js'
import { markNameSchema } from '../changes/mark-name.js'
import { Places } from './places.js'
import type { ChangedExtent } from '../changes/changed-extents.js'
import type { Mark } from '../changes/mark-table.js'
import { changedExtentsOf, changedSince, filesChangedSince, type TreeChangeSince } from './changed-since.js'
import { namespaceDelta, type NamespaceDelta } from './namespace-delta.js'
import { checkRowCounts } from '../integrity/row-counts.js'
import { EventEmitter } from 'node:events'
import { dirname, resolve } from 'node:path'
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import type { Extent } from '../page/extent.js'
import { prepareEmptyDirectory } from '../store/checks.js'
import { DATABASE_FILE, openDatabase } from '../store/database.js'
import { readStoreMeta, writeMeta, type TreeLowerRecord, type TreeMeta } from '../store/meta.js'
import { StoreCore } from '../store/store-core.js'
import { freezeOptionsSchema, type FreezeOptions, type FrozenFile } from '../store/freeze-options.js'
import { registerWriteGate } from '../store/write-gate.js'
import { bindNew } from '../integrity/bind-new.js'
import { adoptStoreFile, checkStoreFile, ownerOfDirectory } from '../store/store-file.js'
import { VERSION } from '../version.js'
import { isNameForm, nameFromBytes, nameToBytes } from '../name-bytes.js'
import type { TreeChange } from './changes.js'
import type { TreeFileHandle } from './file-handle.js'
import * as fileOps from './file-ops.js'
import type { TreeFileInfo } from './file-ops.js'
import type { LowerTree } from './lower-tree.js'
import { lowerKindOf, openLowers, recordLower } from './open-lower.js'
import { checkNotSealed } from '../store/seal.js'
import * as changes from './namespace-changes.js'
import { checkName, compareNames, joinPath, type TreePath } from './names.js'
import { UPPER_DIR } from './node-table.js'
import {
  readdirOptionsSchema,
  rmOptionsSchema,
  treeCreateOptionsSchema,
  treeOpenOptionsSchema,
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
import { statOf, xattrsOf } from './stat-of.js'
import { treeChanges, treeInfo, type TreeStoreInfo } from './tree-info.js'
import { TreeParts } from './tree-parts.js'
import type { DirEntry, DirEntryBytes, TreeStat, TreeStatfs } from './tree-stat.js'
import { checkXattrName } from './xattr-name.js'

export type { TreeStoreInfo } from './tree-info.js'
export type { TreeFileInfo } from './file-ops.js'

/** The insides of each open store, for the code that reads a store as a lower (lower-store.ts). */
const PARTS = new WeakMap<TreeStore, TreeParts>()

/** The insides of an open tree store. @internal */
export function treePartsOf(store: TreeStore): TreeParts {
  return PARTS.get(store)!
}

export class TreeStore extends EventEmitter {
  readonly kind = 'tree' as const
  /** Absolute path of the store directory. */
  readonly path: string
  readonly readOnly: boolean
  readonly #p: TreeParts
  readonly #events: FirstDirtyEvents

  private constructor(parts: TreeParts) {
    super()
    this.path = parts.path
    this.readOnly = parts.readOnly
    this.#p = parts
    this.#events = new FirstDirtyEvents(parts.gate, {
      kind: 'tree',
      // A lower file's first write comes before its row: its lower path says where it is.
      pathOf: (ino) => new Places(parts.ns, parts.lower, parts.rootIno).of(ino, parts.nodes.get(ino)?.lowerPath),
      sizeOf: (ino) => parts.nodes.get(ino)?.size ?? 0,
    })
    registerWriteGate(this, parts.gate)
    PARTS.set(this, parts)
    const { nodes, ns } = parts
    parts.core.attach(
      {
        get dirty() {
          return parts.dirty
        },
        flush: async () => {
          await nodes.flush()
          parts.syncNamespace()
        },
        reload: () => {
          ns.refresh()
          nodes.reload()
        },
        closeFiles: () => {
          nodes.closeAll()
          parts.lower.close()
        },
        inFlux: () => nodes.inFlux(),
        commitNow: (work) => ns.transaction(work, 'now'),
        changeLogs: () => nodes.list().flatMap((n) => (n.paged ? [n.paged.changes] : [])),
        tidy: () => parts.recover(), // removed files that only open handles kept: no handle outlives the store
      },
      { flushed: () => this.emit('flush'), warning: (err) => this.emit('warning', err) },
    )
  }

  /**
   * Create a tree store in `dir` (new or empty) over `lower`: a directory, a squashfs image or a
   * tree store (sealed by this: it is never written again while this store depends on it), or a
   * list of them, leftmost on top. Nothing of a lower is read but its root.
   */
  static async create(dir: string, options: TreeCreateOptions): Promise<TreeStore> {
    const opts = parseWith(treeCreateOptionsSchema, options, 'create')
    const path = resolve(dir)
    const given = typeof opts.lower === 'string' ? [opts.lower] : opts.lower
    const lowerPaths = given.map(realLowerPath)
    for (const [i, p] of lowerPaths.entries()) {
      const first = lowerPaths.indexOf(p)
      if (first !== i) throw new PagecowError('EINVAL', `create: the lower ${p} is given twice (as ${given[first]} and ${given[i]}); a layer appears once in a stack`)
    }
    const kinds = lowerPaths.map((p) => lowerKindOf(p, opts.lowerFormat))
    const created = prepareEmptyDirectory(path)
    const real = fs.realpathSync(path)
    for (const lowerPath of lowerPaths) {
      if (real === lowerPath || real.startsWith(lowerPath + '/') || lowerPath.startsWith(real + '/')) {
        if (created) fs.rmdirSync(path)
        throw new PagecowError('EINVAL', `the store ${path} and the lower ${lowerPath} must not contain one another`)
      }
    }
    let lowers: TreeLowerRecord[]
    try {
      lowers = lowerPaths.map((p, i) => recordLower(p, kinds[i]!))
    } catch (err) {
      if (created) fs.rmdirSync(path)
      throw err
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
        lowers,
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
    if (opts.bindLower) await bindNew(path, opts.onProgress)
    return TreeStore.open(path, { autoFlushMs: opts.autoFlushMs, detectZeroes: opts.detectZeroes })
  }

  /**
   * Open a tree store; each lower must be the one it was created over (ESTALE otherwise). A sealed
   * store (other stores are made on it) opens read-only only: EROFS otherwise.
   */
  static async open(dir: string, options: TreeOpenOptions = {}): Promise<TreeStore> {
    return TreeStore.openNow(dir, options)
  }

  /** open(), synchronously: a store lower opens its base while the store above it opens. @internal */
  static openNow(dir: string, options: TreeOpenOptions = {}): TreeStore {
    const opts = parseWith(treeOpenOptionsSchema, options, 'open')
    const path = resolve(dir)
    // Upper files are opened by name inside upper/: it must be the store's own directory.
    if (fs.existsSync(`${path}/${DATABASE_FILE}`)) checkStoreFile(`${path}/${UPPER_DIR}`, ownerOfDirectory(path), 'directory')
    const core = StoreCore.open(path, { readOnly: opts.readOnly, autoFlushMs: opts.autoFlushMs, files: [] })
    let lower: LowerTree | undefined
    try {
      const meta = readStoreMeta(core.db, path)
      if (meta.kind !== 'tree') {
        throw new PagecowError('EINVAL', `${path} is an ${meta.kind} store, not a tree store; open it with openStore() or ImageStore.open()`)
      }
      if (!opts.readOnly) checkNotSealed(meta.sealed, path)
      checkRowCounts(core.db, path)
      lower = openLowers(meta.lowers)
      const parts = new TreeParts(core, meta, lower)
      parts.nodes.detectZeroes = opts.detectZeroes
      const store = new TreeStore(parts)
      if (!opts.readOnly) parts.recover()
      return store
    } catch (err) {
      lower?.close()
      core.abandon()
      throw fromSystemError(err, `opening the store ${path}`)
    }
  }

  get pageSize(): number {
    return this.#p.meta.pageSize
  }

  /** The top lower: a directory, a squashfs image or a tree store. */
  get lowerPath(): string {
    return this.#p.meta.lowers[0]!.path
  }

  /** Every lower, leftmost on top. */
  get lowerPaths(): string[] {
    return this.#p.meta.lowers.map((l) => l.path)
  }

  // ---- reading the namespace ----

  /** lstat of `path` in the merged view (a symlink is not followed). */
  async stat(path: TreePath): Promise<TreeStat> {
    const names = this.#p.begin(path, 'stat')
    return statOf(this.#p, this.#p.resolver.resolve(names, 'stat'))
  }

  /**
   * lstat of `path`, or undefined if nothing is there (a missing parent directory still throws).
   * For callers that expect misses (a FUSE lookup): no error is built for one.
   */
  async statIfExists(path: TreePath): Promise<TreeStat | undefined> {
    const names = this.#p.begin(path, 'stat')
    if (names.length === 0) return statOf(this.#p, this.#p.resolver.root())
    const { dir, name } = this.#p.resolver.parent(names, 'stat')
    const entry = this.#p.resolver.child(dir, name)
    return entry && statOf(this.#p, entry)
  }

  /**
   * lstat of each of `names` in directory `path` (undefined for a name not there), resolving the
   * directory once: what a listing with attributes (FUSE READDIRPLUS) needs.
   */
  async statChildren(path: TreePath, names: readonly string[]): Promise<Array<TreeStat | undefined>> {
    const dirNames = this.#p.begin(path, 'stat')
    const dir = this.#p.resolver.resolve(dirNames, 'stat')
    if (dir.type !== 'directory') throw new PagecowError('ENOTDIR', `stat: ${joinPath(dirNames)} is not a directory`)
    return names.map((name) => {
      checkName(name, 'stat')
      const entry = this.#p.resolver.child(dir, name)
      return entry && statOf(this.#p, entry)
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
    const names = this.#p.begin(path, 'readdir')
    let after: string | undefined
    if (opts.after instanceof Uint8Array) after = nameFromBytes(opts.after)
    else if (opts.after !== undefined) after = checkCookie(opts.after)
    const dir = this.#p.resolver.resolve(names, 'readdir')
    if (dir.type === 'symlink') throw new PagecowError('ELOOP', `readdir: ${joinPath(names)} is a symlink; it is not followed`)
    if (dir.type !== 'directory') throw new PagecowError('ENOTDIR', `readdir: ${joinPath(names)} is not a directory`)
    const entries = this.#p.dirs.list(dir)
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
    const names = this.#p.begin(path, 'readlink')
    const entry = this.#p.resolver.resolve(names, 'readlink')
    if (entry.type !== 'symlink') throw new PagecowError('EINVAL', `readlink: ${joinPath(names)} is not a symlink`)
    return entry.row?.target ?? this.#p.lower.readlink(entry.lowerPath!)
  }

  /** The value of extended attribute `name`; ENODATA if it has none. */
  async getxattr(path: TreePath, name: string): Promise<Buffer> {
    const names = this.#p.begin(path, 'getxattr')
    checkXattrName(name, 'getxattr')
    const value = xattrsOf(this.#p, this.#p.resolver.resolve(names, 'getxattr')).get(name)
    if (!value) throw new PagecowError('ENODATA', `getxattr: ${joinPath(names)} has no attribute "${name}"`)
    return Buffer.from(value)
  }

  /** The names of the extended attributes of `path`, sorted. */
  async listxattr(path: TreePath): Promise<string[]> {
    const names = this.#p.begin(path, 'listxattr')
    return [...xattrsOf(this.#p, this.#p.resolver.resolve(names, 'listxattr')).keys()].sort()
  }

  /** statfs of the file system holding the store (where new data goes). */
  async statfs(): Promise<TreeStatfs> {
    this.#p.core.checkOpen()
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
  open(path: TreePath, flags: number | string = 'r', options: NewObjectOptions = {}): Promise<TreeFileHandle> {
    return fileOps.open(this.#p, path, flags, options)
  }

  /** Create an empty regular file (EEXIST if `path` exists). */
  create(path: TreePath, options: NewObjectOptions = {}): Promise<TreeStat> {
    return fileOps.create(this.#p, path, options)
  }

  /** Set the size of regular file `path` (commits at once; a lower file's data is not copied). */
  truncate(path: TreePath, size: number): Promise<void> {
    return fileOps.truncate(this.#p, path, size)
  }

  /**
   * Make [offset, offset + length) of regular file `path` read as zeros (the file grows if the
   * range ends past it): whole pages become ZERO and store nothing, partial ones are written.
   */
  zero(path: TreePath, offset: number, length: number): Promise<void> {
    return fileOps.zero(this.#p, path, offset, length)
  }

  /** Trim: the pages of [offset, offset + length) wholly inside file `path` become ZERO; partial ones are left. */
  discard(path: TreePath, offset: number, length: number): Promise<void> {
    return fileOps.discard(this.#p, path, offset, length)
  }

  /** The merged view of a regular file as extents (SPEC §5). */
  extents(path: TreePath, offset = 0, length?: number): Generator<Extent> {
    return fileOps.extents(this.#p, path, offset, length)
  }

  /** Size and page totals of regular file `path`. */
  fileInfo(path: TreePath): Promise<TreeFileInfo> {
    return fileOps.fileInfo(this.#p, path)
  }

  // ---- changing the namespace (each change is one SQLite transaction, durable at the next flush) ----

  mkdir(path: TreePath, options: NewObjectOptions = {}): Promise<TreeStat> {
    return changes.mkdir(this.#p, path, options)
  }

  /** Make a FIFO, socket or device node: metadata only, no data. */
  mknod(path: TreePath, options: MknodOptions): Promise<TreeStat> {
    return changes.mknod(this.#p, path, options)
  }

  /** Make symlink `path` holding `target` verbatim (a string in name form, or bytes; the store never follows it). */
  symlink(target: string | Uint8Array, path: TreePath, options: Omit<NewObjectOptions, 'mode'> = {}): Promise<TreeStat> {
    return changes.symlink(this.#p, target, path, options)
  }

  /** Add name `newPath` for the non-directory `existing` (one inode, whatever was copied up). */
  link(existing: TreePath, newPath: TreePath): Promise<TreeStat> {
    return changes.link(this.#p, existing, newPath)
  }

  /** Remove the non-directory `path`; a lower one is hidden by a whiteout, the lower untouched. */
  unlink(path: TreePath): Promise<void> {
    return changes.unlink(this.#p, path)
  }

  /**
   * Remove `path`: a non-directory, or with `recursive` a directory and everything in it (one
   * transaction per object, deepest first). Returns how many objects were removed.
   */
  async rm(path: TreePath, options: RmOptions = {}): Promise<number> {
    return changes.rm(this.#p, path, parseWith(rmOptionsSchema, options, 'rm'))
  }

  /** Remove the directory `path`, empty in the merged view (ENOTEMPTY otherwise). */
  rmdir(path: TreePath): Promise<void> {
    return changes.rmdir(this.#p, path)
  }

  /**
   * Rename `from` to `to`, replacing `to` if it exists (a directory only by an empty directory).
   * `noReplace`: EEXIST if `to` exists. `exchange`: swap the two (both must exist). Lower files
   * and directories move without copying data; a moved lower directory keeps its lower entries.
   */
  rename(from: TreePath, to: TreePath, options: RenameOptions = {}): Promise<void> {
    return changes.rename(this.#p, from, to, options)
  }

  /** Set the permission bits (07777). Metadata only: a lower file's data stays in the lower. */
  chmod(path: TreePath, mode: number): Promise<void> {
    return changes.chmod(this.#p, path, mode)
  }

  /** Set owner and group; -1 leaves one as it is. Metadata only. */
  chown(path: TreePath, uid: number, gid: number): Promise<void> {
    return changes.chown(this.#p, path, uid, gid)
  }

  /**
   * Set access and modification times: nanoseconds (`atimeNs`, `mtimeNs`: bigint), milliseconds
   * (`atimeMs`, `mtimeMs`) or 'now'; a missing one is left as it is. Metadata only.
   */
  utimens(path: TreePath, times: UtimensOptions): Promise<void> {
    return changes.utimens(this.#p, path, times)
  }

  /** Set extended attribute `name` (user., trusted., security., system.). Metadata only. */
  setxattr(path: TreePath, name: string, value: Uint8Array, options: SetxattrOptions = {}): Promise<void> {
    return changes.setxattr(this.#p, path, name, value, options)
  }

  /** Remove extended attribute `name` (ENODATA if it has none); a lower one is hidden. */
  removexattr(path: TreePath, name: string): Promise<void> {
    return changes.removexattr(this.#p, path, name)
  }

  // ---- freeze and thaw (SPEC §7) ----

  /**
   * Freeze regular file `path`: every change of its data or size (write, truncate, zero, discard,
   * an open with O_TRUNC; through any handle, any of its names, FUSE) waits until thaw() while
   * reads go on. Resolves once its bytes and size stay as they are until thaw(). Metadata (chmod,
   * chown, utimens, xattrs) and names (rename, link, unlink) do not wait: none of them changes the
   * bytes a reader of the file sees. `timeoutMs`: a writer waits at most that long, then fails
   * with EFROZEN. EBUSY if frozen already; EROFS on a read-only store. Not persistent.
   */
  async freeze(path: TreePath, options: FreezeOptions = {}): Promise<void> {
    const p = this.#p
    const names = p.beginWrite(path, 'freeze')
    const opts = parseWith(freezeOptionsSchema, options, 'freeze')
    if (names.length === 0) throw new PagecowError('EISDIR', 'freeze: / is a directory; freeze its files')
    const entry = p.resolver.resolve(names, 'freeze')
    p.checkRegular(entry, names, 'freeze')
    const shown = joinPath(names)
    if (p.gate.isFrozen(entry.ino)) {
      const as = p.frozenPaths.get(entry.ino)
      throw new PagecowError('EBUSY', `freeze: ${shown} is frozen already${as !== undefined && as !== shown ? ` (as ${as})` : ''}; thaw it first`)
    }
    p.frozenPaths.set(entry.ino, shown)
    await p.gate.freeze(entry.ino, opts.timeoutMs)
  }

  /**
   * Let the waiting writers of frozen file `path` go on: the name it was frozen under (even if
   * renamed or removed since), or any name of the frozen file. EINVAL if it is not frozen.
   */
  async thaw(path: TreePath): Promise<void> {
    const p = this.#p
    const names = p.begin(path, 'thaw')
    const shown = joinPath(names)
    let ino: number | undefined
    for (const [frozen, as] of p.frozenPaths) if (as === shown) ino = frozen
    ino ??= p.resolver.resolve(names, 'thaw').ino
    if (!p.gate.isFrozen(ino)) throw new PagecowError('EINVAL', `thaw: ${shown} is not frozen`)
    p.gate.thaw(ino)
    p.frozenPaths.delete(ino)
  }

  /** Whether regular file `path` is frozen (a write to it would wait). */
  async isFrozen(path: TreePath): Promise<boolean> {
    const p = this.#p
    const names = p.begin(path, 'isFrozen')
    return p.gate.isFrozen(p.resolver.resolve(names, 'isFrozen').ino)
  }

  /** Thaw every frozen file; returns how many were. */
  thawAll(): number {
    this.#p.core.checkOpen()
    this.#p.frozenPaths.clear()
    return this.#p.gate.thawAll()
  }

  /** The frozen files, in the order they were frozen. */
  frozen(): FrozenFile[] {
    this.#p.core.checkOpen()
    return this.#p.gate.frozen().map((f) => ({
      path: this.#p.frozenPaths.get(f.key) ?? null,
      ino: f.key,
      timeoutMs: f.timeoutMs ?? null,
      frozenAt: new Date(f.since).toISOString(),
      waiting: f.waiting,
    }))
  }

  // ---- the store ----

  /** What changed, like `git status`: one record per changed name, sorted by path (names in name form). */
  changes(): Generator<TreeChange> {
    return treeChanges(this.#p)
  }

  /** Take a mark called `name` (SPEC §7): see ImageStore.mark(). Names, metadata and data are tracked. */
  mark(name: string): Promise<Mark> {
    return this.#p.core.mark(name)
  }

  /** Remove the mark `name` (ENOENT if none); the marks before it keep their changes, its first-dirty handlers end. */
  async unmark(name: string): Promise<void> {
    await this.#p.core.unmark(name)
    this.#events.dropMark(name)
  }

  /**
   * Call `handler` the first time each file's data is dirtied after the mark `mark` (a write,
   * truncate, zero, discard or O_TRUNC open), before it lands: writes to the file wait until the
   * handler's promise settles, so the handler still reads the file as it was. The event names the
   * file (path and inode). A handler that fails fails the write that waited (EIO); the next write
   * calls it again. Files changed since the mark before this call get no event. Not persistent.
   * Returns the remover.
   */
  onFirstDirty(mark: string, handler: FirstDirtyHandler): () => void {
    const p = this.#p
    p.core.checkWritable('onFirstDirty')
    const name = parseWith(markNameSchema, mark, 'onFirstDirty')
    const epoch = p.core.tracking.get(name).epoch
    const changed = filesChangedSince(p, epoch).flatMap((f) => (f.ino === undefined ? [] : [f.ino]))
    return this.#events.add(name, handler, 1, changed)
  }

  /** The marks, oldest first. */
  marks(): Mark[] {
    return this.#p.core.marks()
  }

  /** The extents of regular file `path` changed since the mark `since` (see ImageStore.changedExtents). */
  changedExtents(path: TreePath, since: string): Generator<ChangedExtent> {
    return changedExtentsOf(this.#p, path, since)
  }

  /**
   * What changed since the mark `since`, like `git diff --stat`: names created, removed, replaced
   * and renamed, files whose data changed (with the bytes of their changed pages), objects whose
   * metadata changed; one record per path, in path order.
   */
  changedSince(since: string): TreeChangeSince[] {
    return changedSince(this.#p, since)
  }

  /**
   * What changed since the mark `since`, by object rather than by path: each changed name with
   * the object it held at the mark (and where) and holds now, and the objects whose data or
   * metadata changed. What a whole-tree incremental (`exportIncremental` without a path) is made of.
   */
  namespaceDelta(since: string): NamespaceDelta {
    return namespaceDelta(this.#p, since)
  }

  /**
   * Give back the upper space of DATA pages that need none, in every file with data in the upper
   * (see ImageStore.compact): a page that reads the same as the lower file under it becomes LOWER
   * again (a file edited and reverted keeps no copy), an all-zero page becomes ZERO. Nothing reads
   * differently and nothing is recorded as changed. Progress counts files.
   */
  async compact(options: CompactOptions = {}): Promise<CompactResult & { files: number }> {
    this.#p.core.checkWritable('compact')
    const opts = parseWith(compactOptionsSchema, options, 'compact')
    return compactTree(this.#p, opts)
  }

  /** Totals and settings as plain data. */
  info(): TreeStoreInfo {
    return treeInfo(this.#p)
  }

  /** Make every change completed before this call durable: data, metadata and names (SPEC §3). */
  flush(): Promise<void> {
    return this.#p.core.flush()
  }

  /**
   * Flush, then release every file, the database and the writer lock. Open handles stop working.
   * If that flush fails (a full disk), the store stays open with its changes; close() may be retried.
   * Frozen files are thawed first: their waiting writers land and this flush makes them durable.
   */
  async close(): Promise<void> {
    if (!this.#p.core.closed) {
      this.#p.frozenPaths.clear()
      this.#p.gate.thawAll()
      await this.#p.gate.drain()
    }
    return this.#p.core.close()
  }
}

/** A lower path as given, made absolute and symlink-free (ENOENT if nothing is there). */
function realLowerPath(given: string): string {
  try {
    return fs.realpathSync(resolve(given))
  } catch (err) {
    const e = fromSystemError(err, `reading the lower ${given}`)
    if (e.code === 'ENOENT') throw new PagecowError('ENOENT', `the lower ${resolve(given)} does not exist`, { cause: err })
    throw e
  }
}

/** A readdir cookie given as a string must be a name form (it is compared as bytes). */
function checkCookie(after: string): string {
  if (!isNameForm(after)) throw new PagecowError('EINVAL', 'readdir: `after` holds a lone surrogate that escapes no byte')
  return after
}
