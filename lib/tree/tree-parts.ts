// The insides of an open tree store, shared by its parts (namespace changes, file operations,
// stat), and the primitives every namespace change is made of: one SQLite transaction per change,
// whose effects on memory and disk run only once it committed.
import type Database from 'better-sqlite3'
import { fromSystemError, PagecowError } from '../errors.js'
import { Geometry } from '../geometry.js'
import type { StoreCore } from '../store/store-core.js'
import type { TreeMeta } from '../store/meta.js'
import { nowNs } from '../time-ns.js'
import type { Entry } from './entry.js'
import { mergesLower } from './entry.js'
import type { FileNode } from './file-node.js'
import type { FileType } from './file-type.js'
import type { LowerTree } from './lower-tree.js'
import { rowFromLower } from './lower-row.js'
import { MergedDirs } from './merged-dir.js'
import { Namespace, type InodeMeta, type InodeRow } from './namespace.js'
import { checkName, joinPath, splitPath, type TreePath } from './names.js'
import { NodeTable } from './node-table.js'
import { Resolver } from './resolver.js'
import { rootInoOf } from './open-lower.js'
import { LowerSums } from '../integrity/lower-sums.js'
import { VerifiedLower } from '../integrity/verified-lower.js'
import { WriteGate } from '../store/write-gate.js'

/** Effects of a namespace change that may only run once its transaction committed. */
export interface Effects {
  after: Array<() => void>
  purge: number[]
}

export class TreeParts {
  readonly core: StoreCore
  readonly meta: TreeMeta
  readonly ns: Namespace
  readonly lower: LowerTree
  /** The root directory's inode number (the merged lowers' root's). */
  readonly rootIno: number
  readonly resolver: Resolver
  readonly dirs: MergedDirs
  readonly nodes: NodeTable
  readonly geometry: Geometry
  /** Upper files of removed records, deleted once that removal is durable (the next flush). */
  readonly pendingPurge: number[] = []
  /** The path each frozen inode was frozen under (thaw finds it by that name after a rename). */
  readonly frozenPaths = new Map<number, string>()
  /** Every change of a file's data passes it, keyed by inode: freeze, and the hook of first-dirty events. */
  readonly gate = new WriteGate((ino) => this.frozenPaths.get(ino) ?? `inode ${ino}`)

  constructor(core: StoreCore, meta: TreeMeta, lower: LowerTree) {
    this.core = core
    this.meta = meta
    this.lower = lower
    this.ns = new Namespace(core.db, core.path, core.generation, core.tracking)
    this.rootIno = rootInoOf(meta.lowers)
    this.resolver = new Resolver(this.ns, lower, this.rootIno)
    this.dirs = new MergedDirs(this.ns, lower)
    this.geometry = new Geometry(meta.pageSize)
    this.nodes = new NodeTable({
      path: core.path,
      db: core.db,
      flux: core.flux,
      tracking: core.tracking,
      ns: this.ns,
      lower,
      geometry: this.geometry,
      readOnly: core.readOnly,
      // A bound lower: each lower file's pages are checked against the sums recorded under its inode.
      bindLower: meta.lowerBinding && ((file, ino, where) => VerifiedLower.open(file, new LowerSums(core.db, ino, where), meta.pageSize, where)),
    })
    // Namespace commits are durable at the next flush, not each (SPEC §3).
    if (!core.readOnly) this.ns.relax()
  }

  get db(): Database.Database {
    return this.core.db
  }

  get path(): string {
    return this.core.path
  }

  get readOnly(): boolean {
    return this.core.readOnly
  }

  /** Start a call that reads: the store open, `path` split into checked names, a reader refreshed. */
  begin(path: TreePath, what: string): string[] {
    this.core.checkOpen()
    const names = splitPath(path, what)
    this.core.refresh()
    return names
  }

  /** Start a call that changes the tree: the store open and writable, `path` split into checked names. */
  beginWrite(path: TreePath, what: string): string[] {
    this.core.checkWritable(what)
    return splitPath(path, what)
  }

  /** The parent of a name about to be created, walked; EEXIST if the name is taken. */
  newName(path: TreePath, what: string): { dir: Entry; name: string } {
    const names = this.beginWrite(path, what)
    if (names.length === 0) throw new PagecowError('EEXIST', `${what}: / exists`)
    const { dir, name } = this.resolver.parent(names, what)
    checkName(name, what)
    if (this.resolver.child(dir, name)) throw new PagecowError('EEXIST', `${what}: ${joinPath(names)} exists`)
    return { dir, name }
  }

  /** Run a namespace change in one transaction; effects on memory and disk follow its commit. */
  mutate<T>(what: string, fn: (fx: Effects) => T): T {
    const fx: Effects = { after: [], purge: [] }
    let result: T
    try {
      result = this.ns.transaction(() => fn(fx))
    } catch (err) {
      throw fromSystemError(err, what)
    }
    for (const f of fx.after) f()
    this.pendingPurge.push(...fx.purge)
    return result
  }

  /** Whether anything is not durable yet: data, times, namespace commits or removals. */
  get dirty(): boolean {
    return this.nodes.isDirty || !this.ns.synced || this.pendingPurge.length > 0
  }

  /**
   * The last step of a flush: every namespace commit durable (one fsync of the WAL, often done
   * by the data commit just before), then the upper files of records removed before it deleted.
   */
  syncNamespace(): void {
    this.ns.sync()
    this.nodes.purge(this.pendingPurge.splice(0))
  }

  /** After a crash: drop inodes that only open handles kept, and upper files whose records are gone. */
  recover(): void {
    const fx: Effects = { after: [], purge: [] }
    // Durable: the orphans' upper files are deleted right after, on this commit's word. With no
    // orphans nothing is written (a store left on a full disk must still open).
    const orphans = this.ns.orphans()
    if (orphans.length > 0) {
      this.ns.transaction(() => {
        for (const row of orphans) this.destroy(row, fx)
      }, 'now')
    }
    this.nodes.purge([...new Set([...fx.purge, ...this.ns.purgeList()])])
  }

  newObject(
    dir: Entry,
    name: string,
    type: FileType,
    o: { mode: number; uid?: number | undefined; gid?: number | undefined; rdev?: number; target?: string; opaque?: boolean },
  ): Entry {
    const now = nowNs()
    const row: InodeRow = {
      ino: this.ns.allocateIno(),
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
    this.ns.insertInode(row)
    this.ns.setDirent(dir.ino, name, row.ino)
    this.touchDir(dir, now)
    return { ino: row.ino, type, row, lower: undefined, lowerPath: undefined }
  }

  /** The entry's row, recording a lower object's metadata first if the upper had none. */
  ensureRow(entry: Entry): InodeRow {
    if (entry.row) return entry.row
    const existing = this.ns.inode(entry.ino)
    if (existing) return (entry.row = existing)
    const row = rowFromLower(entry.type, entry.lowerPath!, entry.lower!.stat)
    this.ns.insertInode(row)
    return (entry.row = row)
  }

  setMeta(ino: number, meta: Partial<InodeMeta>, fx: Effects): void {
    this.ns.setMeta(ino, meta)
    fx.after.push(() => {
      const node = this.nodes.get(ino)
      const times = node?.times
      if (node && times) node.setTimes({ mtimeNs: meta.mtimeNs ?? times.mtimeNs, ctimeNs: meta.ctimeNs ?? times.ctimeNs })
    })
  }

  /** mtime and ctime of a regular file to now, its data unchanged. */
  touchFile(entry: Entry): void {
    this.mutate('open', (fx) => {
      const now = nowNs()
      this.ensureRow(entry)
      this.setMeta(entry.ino, { mtimeNs: now, ctimeNs: now }, fx)
    })
  }

  touchDir(dir: Entry, now: bigint): void {
    this.ensureRow(dir)
    this.ns.setMeta(dir.ino, { mtimeNs: now, ctimeNs: now })
  }

  /** Take `name` out of `dir`: a whiteout where the lower has the name, else no entry at all. */
  removeName(dir: Entry, name: string): void {
    if (mergesLower(dir) && this.lower.has(dir.lowerPath!, name)) this.ns.setDirent(dir.ino, name, null)
    else this.ns.deleteDirent(dir.ino, name)
  }

  /** One name fewer for a non-directory; the last one removes it (once no handle holds it). */
  dropLink(entry: Entry, fx: Effects, now: bigint): void {
    if (!entry.row && (entry.lower?.stat.nlink ?? 1) <= 1 && !this.nodes.isOpen(entry.ino) && !this.ns.inode(entry.ino)) return
    const row = this.ensureRow(entry)
    const nlink = Math.max(0, row.nlink - 1)
    if (nlink > 0 || this.nodes.isOpen(entry.ino)) {
      this.ns.setNlink(entry.ino, nlink)
      this.setMeta(entry.ino, { ctimeNs: now }, fx)
      return
    }
    this.destroy(row, fx)
  }

  destroy(row: InodeRow, fx: Effects): void {
    this.ns.deleteInode(row.ino)
    if (row.file !== null) {
      this.ns.deleteFileRecords(row.file)
      this.ns.addPurge(row.file)
      fx.purge.push(row.file)
    }
    fx.after.push(() => this.nodes.forget(row.ino))
  }

  /** The records of an (empty) directory: its whiteouts and its row. */
  removeDirectory(dir: Entry): void {
    this.ns.deleteDirentsOf(dir.ino)
    if (dir.row || this.ns.inode(dir.ino)) this.ns.deleteInode(dir.ino)
  }

  acquire(entry: Entry): FileNode {
    try {
      return this.nodes.acquire(entry)
    } catch (err) {
      throw fromSystemError(err, `opening ${entry.lowerPath ?? `inode ${entry.ino}`}`)
    }
  }

  /** Release a node; the last handle of an unlinked file removes it. */
  releaseNode(node: FileNode): void {
    if (this.core.closed) return
    if (node.refs === 1 && !this.readOnly) {
      const row = this.ns.inode(node.ino)
      if (row && row.nlink === 0) {
        node.refs = 0
        this.mutate('close', (fx) => this.destroy(row, fx))
        return
      }
    }
    this.nodes.release(node)
  }

  checkRegular(entry: Entry, names: string[], what: string): void {
    if (entry.type === 'directory') throw new PagecowError('EISDIR', `${what}: ${joinPath(names)} is a directory`)
    if (entry.type === 'symlink') throw new PagecowError('ELOOP', `${what}: ${joinPath(names)} is a symlink; it is not followed`)
    if (entry.type !== 'file') throw new PagecowError('ENOTSUP', `${what}: ${joinPath(names)} is a ${entry.type}; special files hold no data`)
  }

  persistedCounts(id: number): { data: number; zero: number } {
    return this.db.prepare('SELECT coalesce(sum(data_count), 0) AS data, coalesce(sum(zero_count), 0) AS zero FROM page_chunks WHERE file = ?').get(id) as { data: number; zero: number }
  }
}
