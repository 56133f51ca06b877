// Another tree store's merged tree as a lower (SPEC §11), opened read-only: its names, metadata
// and bytes as its own reads give them (upper over its lowers), never written (it is sealed:
// seal.ts). Its inode numbers, its lowers' and its upper's, are renumbered into one lower's range
// (lower-inos.ts).
import { PagecowError } from '../errors.js'
import type { LowerStat } from '../lower-stat.js'
import type { Entry } from './entry.js'
import type { FileNode } from './file-node.js'
import type { FileType } from './file-type.js'
import { storeIno } from './lower-inos.js'
import type { LowerFile, LowerName, LowerObject, LowerTree } from './lower-tree.js'
import { statOf, xattrsOf } from './stat-of.js'
import { TreeStore, treePartsOf } from './tree-store.js'
import type { TreeParts } from './tree-parts.js'
import type { TreeStat } from './tree-stat.js'

export class LowerStore implements LowerTree {
  /** The base store's directory. */
  readonly root: string
  readonly #p: TreeParts

  private constructor(store: TreeStore) {
    this.root = store.path
    this.#p = treePartsOf(store)
  }

  /**
   * Open the sealed tree store at `path`, read-only. `expected` (from the store record): it must
   * still carry that seal (ESTALE if it was unsealed or sealed again: it may have been written)
   * and that root.
   */
  static open(path: string, expected?: { sealId: string; rootIno: number }): LowerStore {
    const store = TreeStore.openNow(path, { readOnly: true, autoFlushMs: 0 })
    const lower = new LowerStore(store)
    try {
      const seal = lower.#p.meta.sealed
      if (!seal || (expected && seal.id !== expected.sealId)) {
        throw new PagecowError('ESTALE', `the base store ${path} ${seal ? 'was sealed again' : 'is not sealed'} since this store was made on it; it may have been written, and this store refuses to mix its changes with a different tree`)
      }
      const root = lower.lstat('')
      if (expected && root?.stat.ino !== expected.rootIno) {
        throw new PagecowError('ESTALE', `the base store ${path} was replaced since this store was made on it (root inode ${expected.rootIno} → ${root?.stat.ino})`)
      }
    } catch (err) {
      lower.close()
      throw err
    }
    return lower
  }

  /** The seal the base carries. */
  get sealId(): string {
    return this.#p.meta.sealed!.id
  }

  /** The inode number of the base's root, as this lower numbers it. */
  get rootIno(): number {
    return this.lstat('')!.stat.ino
  }

  full(rel: string): string {
    return `${this.root}:/${rel}`
  }

  lstat(rel: string): LowerObject | null {
    const entry = this.#entry(rel)
    return entry ? { path: rel, type: entry.type, stat: this.#stat(statOf(this.#p, entry), rel) } : null
  }

  child(dir: string, name: string): LowerObject | null {
    return this.lstat(dir === '' ? name : `${dir}/${name}`)
  }

  has(dir: string, name: string): boolean {
    return this.#entry(dir === '' ? name : `${dir}/${name}`) !== undefined
  }

  list(dir: string): LowerName[] {
    const entry = this.#entry(dir)
    if (entry?.type !== 'directory') return []
    return this.#p.dirs.list(entry).map((e) => ({ name: e.name, type: e.type }))
  }

  readlink(rel: string): string {
    const entry = this.#entry(rel)
    if (entry?.type !== 'symlink') throw new PagecowError(entry ? 'EINVAL' : 'ENOENT', `the lower ${this.full(rel)} is not a symlink`)
    return entry.row?.target ?? this.#p.lower.readlink(entry.lowerPath!)
  }

  openFile(rel: string): LowerFile {
    const entry = this.#entry(rel)
    if (!entry) throw new PagecowError('ENOENT', `the lower file ${this.full(rel)} does not exist`)
    if (entry.type === 'symlink') throw new PagecowError('ELOOP', `the lower ${this.full(rel)} is a symlink`)
    if (entry.type !== 'file') throw new PagecowError('EINVAL', `the lower ${this.full(rel)} is not a regular file`)
    const node = this.#p.acquire(entry)
    return new StoreFile(this.#p, node, this.#stat(statOf(this.#p, entry), rel))
  }

  xattrs(rel: string, _type: FileType): Map<string, Buffer> {
    const entry = this.#entry(rel)
    return entry ? xattrsOf(this.#p, entry) : new Map()
  }

  /** Close the base store (it was only read: nothing to flush). */
  close(): void {
    if (this.#p.core.closed) return
    this.#p.nodes.closeAll()
    this.#p.lower.close()
    this.#p.core.abandon()
  }

  /** The base's object at lower path `rel`, or undefined (a missing or non-directory parent too). */
  #entry(rel: string): Entry | undefined {
    this.#p.core.checkOpen()
    this.#p.core.refresh()
    const r = this.#p.resolver
    if (rel === '') return r.root()
    const names = rel.split('/')
    let dir = r.root()
    for (let i = 0; i < names.length - 1; i++) {
      const next = r.child(dir, names[i]!)
      if (next?.type !== 'directory') return undefined
      dir = next
    }
    return r.child(dir, names[names.length - 1]!)
  }

  #stat(st: TreeStat, rel: string): LowerStat {
    return {
      ino: storeIno(st.ino, () => this.full(rel)),
      mode: st.mode,
      nlink: st.nlink,
      uid: st.uid,
      gid: st.gid,
      rdev: st.rdev,
      size: st.size,
      blocks: st.blocks,
      atimeNs: st.atimeNs,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
    }
  }
}

/** A regular file of the base store, read through its shared node (its pages over its lowers). */
class StoreFile implements LowerFile {
  readonly #p: TreeParts
  readonly #node: FileNode
  readonly #stat: LowerStat
  #open = true

  constructor(p: TreeParts, node: FileNode, stat: LowerStat) {
    this.#p = p
    this.#node = node
    this.#stat = stat
  }

  get size(): number {
    return this.#node.size
  }

  get mtimeNs(): bigint {
    return this.#stat.mtimeNs
  }

  stat(): LowerStat {
    return { ...this.#stat, size: this.#node.size }
  }

  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    if (position >= this.#node.size) return 0
    return this.#node.readInto(target.subarray(targetOffset, targetOffset + Math.min(length, this.#node.size - position)), position)
  }

  readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number> {
    if (position >= this.#node.size) return Promise.resolve(0)
    return this.#node.readIntoAsync(target.subarray(targetOffset, targetOffset + Math.min(length, this.#node.size - position)), position)
  }

  nextData(position: number): number | null {
    if (this.#node.paged) return this.#node.paged.nextData(position)
    return this.#node.lower?.nextData(position) ?? null
  }

  nextHole(position: number): number {
    if (this.#node.paged) return this.#node.paged.nextHole(position) ?? Math.max(position, this.#node.size)
    return this.#node.lower?.nextHole(position) ?? position
  }

  close(): void {
    if (!this.#open) return
    this.#open = false
    if (!this.#p.core.closed) this.#p.releaseNode(this.#node)
  }
}
