// Where an inode shows in the merged view, as a path: through its upper names first, else at its
// lower place while nothing hides it. Asked by the change listings, which start from inodes
// (records of the upper) rather than from a walk of the tree. Answers are cached for one listing.
import type { LowerTree } from './lower-tree.js'
import type { Namespace } from './namespace.js'

export function joinPlace(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`
}

export class Places {
  readonly #ns: Namespace
  readonly #lower: LowerTree
  readonly #rootIno: number
  readonly #cache = new Map<number, string | null>()

  constructor(ns: Namespace, lower: LowerTree, rootIno: number) {
    this.#ns = ns
    this.#lower = lower
    this.#rootIno = rootIno
  }

  /**
   * The merged path of inode `ino` (directories first of all), or null if no name shows it.
   * `lowerRel`: its path in the lower, when the caller knows it and the upper has no row.
   */
  of(ino: number, lowerRel?: string | null): string | null {
    if (ino === this.#rootIno) return '/'
    const cached = this.#cache.get(ino)
    if (cached !== undefined) return cached
    this.#cache.set(ino, null) // a cycle (only in a damaged store) ends here
    let place: string | null = null
    const ns = this.#ns
    const names = ns.namesOf(ino)
    if (names.length > 0) {
      const parent = this.of(names[0]!.parent)
      place = parent === null ? null : joinPlace(parent, names[0]!.name)
    } else {
      const rel = lowerRel ?? ns.inode(ino)?.origin ?? null
      if (rel !== null && rel !== '') {
        const cut = rel.lastIndexOf('/')
        const parentRel = cut < 0 ? '' : rel.slice(0, cut)
        const name = rel.slice(cut + 1)
        const parentIno = parentRel === '' ? this.#rootIno : this.#lower.lstat(parentRel)?.stat.ino
        // At its lower place only while the parent shows it: no whiteout, no other object there.
        if (parentIno !== undefined && !ns.dirent(parentIno, name)) {
          const parent = this.of(parentIno, parentRel)
          place = parent === null ? null : joinPlace(parent, name)
        }
      }
    }
    this.#cache.set(ino, place)
    return place
  }
}
