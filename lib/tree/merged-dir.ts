// A directory of the merged view: the upper's entries over the lower's, whiteouts hiding names.
import type { Entry } from './entry.js'
import { mergesLower } from './entry.js'
import type { LowerTree } from './lower-tree.js'
import type { Namespace } from './namespace.js'
import { compareNames } from './names.js'
import type { DirEntry } from './tree-stat.js'

/** Merged listings kept: paging through a directory reads and sorts it once, not once a page. */
const LISTINGS_CACHED = 4

export class MergedDirs {
  readonly #ns: Namespace
  readonly #lower: LowerTree
  /** The last listings by directory inode, valid while their key (namespace version, lower mtime) holds. */
  readonly #listings = new Map<number, { key: string; entries: readonly DirEntry[] }>()

  constructor(ns: Namespace, lower: LowerTree) {
    this.#ns = ns
    this.#lower = lower
  }

  /**
   * Every entry of `dir`, in byte order of name (a stable order, resumable by name). The array
   * and its entries are shared with the cache: callers must not change them.
   */
  list(dir: Entry): readonly DirEntry[] {
    const key = `${this.#ns.version()}|${dir.lowerPath ?? ''}|${dir.lower?.stat.mtimeNs ?? ''}|${mergesLower(dir)}`
    const cached = this.#listings.get(dir.ino)
    if (cached && cached.key === key) return cached.entries
    const entries = this.#read(dir)
    this.#listings.delete(dir.ino)
    if (this.#listings.size >= LISTINGS_CACHED) this.#listings.delete(this.#listings.keys().next().value!)
    this.#listings.set(dir.ino, { key, entries })
    return entries
  }

  #read(dir: Entry): DirEntry[] {
    const upper = this.#ns.direntsOf(dir.ino)
    const out: DirEntry[] = []
    for (const d of upper) if (d.ino !== null && d.type !== null) out.push({ name: d.name, type: d.type })
    if (mergesLower(dir)) {
      const shadowed = new Set(upper.map((d) => d.name))
      for (const e of this.#lower.list(dir.lowerPath!)) if (!shadowed.has(e.name)) out.push(e)
    }
    return out.sort((a, b) => compareNames(a.name, b.name))
  }

  /** Whether `dir` has no entry in the merged view (what rmdir and rename judge). */
  isEmpty(dir: Entry): boolean {
    const upper = this.#ns.direntsOf(dir.ino)
    if (upper.some((d) => d.ino !== null)) return false
    if (!mergesLower(dir)) return true
    const hidden = new Set(upper.map((d) => d.name))
    return this.#lower.list(dir.lowerPath!).every((e) => hidden.has(e.name))
  }

  /**
   * st_nlink of a directory: the lower's while the upper changed none of its entries, else
   * 2 + its subdirectories in the merged view.
   */
  nlink(dir: Entry): number {
    if (!dir.row) return dir.lower!.stat.nlink
    if (dir.row.origin !== null && !dir.row.opaque && !this.#ns.hasDirents(dir.ino)) return dir.row.nlink
    let n = 2
    for (const e of this.list(dir)) if (e.type === 'directory') n++
    return n
  }
}
