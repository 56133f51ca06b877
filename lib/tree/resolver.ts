// Path resolution in the merged view: component by component, the upper's entries first, then
// the lower's; never following a symlink (like openat2 with RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH).
// Namespace rows come from its lookup cache: the caller refreshes it before each operation.
import { PagecowError } from '../errors.js'
import type { Entry } from './entry.js'
import { mergesLower } from './entry.js'
import type { LowerObject, LowerTree } from './lower-tree.js'
import type { InodeRow, Namespace } from './namespace.js'
import { joinPath } from './names.js'

/** A path's parent directory, walked, and the last name (not looked up). */
export interface ParentRef {
  /** The directories from the root down to the parent, the parent last. */
  chain: Entry[]
  dir: Entry
  name: string
}

/**
 * The root while the upper has no row for it. Its lower lstat is taken when first read: a walk
 * below the root does not need it (child() checks the root is still there before saying a name
 * is missing).
 */
class LowerRootEntry implements Entry {
  readonly type = 'directory'
  row: InodeRow | undefined = undefined
  readonly lowerPath = ''
  readonly ino: number
  readonly #take: () => LowerObject
  #lower: LowerObject | undefined

  constructor(ino: number, take: () => LowerObject) {
    this.ino = ino
    this.#take = take
  }

  get lower(): LowerObject {
    return (this.#lower ??= this.#take())
  }
}

export class Resolver {
  readonly #ns: Namespace
  readonly #lower: LowerTree
  readonly #rootIno: number

  constructor(ns: Namespace, lower: LowerTree, rootIno: number) {
    this.#ns = ns
    this.#lower = lower
    this.#rootIno = rootIno
  }

  root(): Entry {
    const row = this.#ns.cachedInode(this.#rootIno)
    if (row) return { ino: row.ino, type: 'directory', row, lower: undefined, lowerPath: row.origin ?? '' }
    return new LowerRootEntry(this.#rootIno, () => this.#lowerRoot())
  }

  #lowerRoot(): LowerObject {
    const lower = this.#lower.lstat('')
    if (!lower) throw new PagecowError('ESTALE', `the lower root ${this.#lower.root} is gone`)
    return lower
  }

  /** The entry `name` of directory `dir`, or undefined if there is none (or a whiteout). */
  child(dir: Entry, name: string): Entry | undefined {
    const dirent = this.#ns.cachedDirent(dir.ino, name)
    if (dirent) {
      if (dirent.ino === null) return undefined
      const row = this.#ns.cachedInode(dirent.ino)
      if (!row) throw new PagecowError('ECORRUPT', `entry "${name}" of directory ${dir.ino} names inode ${dirent.ino}, which has no record; run \`pagecow fsck\``)
      return { ino: row.ino, type: row.type, row, lower: undefined, lowerPath: row.origin ?? undefined }
    }
    if (!mergesLower(dir)) return undefined
    const lower = this.#lower.child(dir.lowerPath!, name)
    if (!lower && dir.lowerPath === '' && !dir.row) this.#lowerRoot()
    const rel = dir.lowerPath === '' ? name : `${dir.lowerPath}/${name}`
    const row = lower && this.#ns.cachedInode(lower.stat.ino)
    if (row) return { ino: row.ino, type: row.type, row, lower: undefined, lowerPath: rel }
    // The upper recorded an object here (metadata, pages) but the lower now has another or none:
    // the lower changed underneath the store, and serving either would mix two different files.
    const recorded = this.#ns.cachedInodeAtOrigin(rel)
    if (recorded) {
      const now = lower ? `inode ${lower.stat.ino}, a ${lower.type}` : 'nothing'
      throw new PagecowError('ESTALE', `the lower ${this.#lower.full(rel)} changed underneath the store (the upper recorded inode ${recorded.ino}, the lower now has ${now}); it is not served`)
    }
    if (!lower) return undefined
    return { ino: lower.stat.ino, type: lower.type, row: undefined, lower, lowerPath: rel }
  }

  /** Walk `names` as directories: ENOENT if one is missing, ELOOP on a symlink, ENOTDIR otherwise. */
  dirChain(names: readonly string[], what: string): Entry[] {
    const chain = [this.root()]
    for (let i = 0; i < names.length; i++) {
      const dir = chain[chain.length - 1]!
      const next = this.child(dir, names[i]!)
      const at = joinPath(names.slice(0, i + 1))
      if (!next) throw new PagecowError('ENOENT', `${what}: ${at} does not exist`)
      if (next.type === 'symlink') throw new PagecowError('ELOOP', `${what}: ${at} is a symlink; paths are resolved without following symlinks`)
      if (next.type !== 'directory') throw new PagecowError('ENOTDIR', `${what}: ${at} is not a directory`)
      chain.push(next)
    }
    return chain
  }

  /** The parent of a non-root path, walked; the last name is not looked up. */
  parent(names: readonly string[], what: string): ParentRef {
    if (names.length === 0) throw new PagecowError('EBUSY', `${what}: not allowed on the root directory`)
    const chain = this.dirChain(names.slice(0, -1), what)
    return { chain, dir: chain[chain.length - 1]!, name: names[names.length - 1]! }
  }

  /** The object at `names` (the last component may be anything, a symlink is not followed). */
  resolve(names: readonly string[], what: string): Entry {
    if (names.length === 0) return this.root()
    const { dir, name } = this.parent(names, what)
    const entry = this.child(dir, name)
    if (!entry) throw new PagecowError('ENOENT', `${what}: ${joinPath(names)} does not exist`)
    return entry
  }
}
