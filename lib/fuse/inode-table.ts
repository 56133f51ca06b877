// The kernel's handles on our objects. FUSE names objects by node id; the tree store names them by
// path. A node per store inode the kernel holds (so hard links are one kernel inode and share one
// page cache), each with the names it was looked up by, so a node id turns back into a path.
import { PagecowError } from '../errors.js'
import { PATH_MAX } from '../tree/names.js'
import { FUSE_ROOT_ID } from './protocol.js'

interface Name {
  parent: number
  name: string
}

export interface FuseNode {
  readonly nodeid: number
  readonly ino: number
  /** Lookups the kernel has not forgotten yet; the node goes at zero. */
  lookups: number
  /** Names the kernel knows this object by, the most recent first. */
  names: Name[]
  /** We asked the kernel to drop it; its FORGET is on the way (unless it is looked up again). */
  shedding: boolean
}

export class InodeTable {
  readonly #byNodeid = new Map<number, FuseNode>()
  readonly #byIno = new Map<number, FuseNode>()
  /** `parent\0name` → the node known by that name. */
  readonly #byName = new Map<string, FuseNode>()
  /** Nodes not being shed, least recently looked up first (the root is not in it). */
  readonly #lru = new Map<number, FuseNode>()
  /** Nodes we asked the kernel to drop whose FORGET has not come yet. */
  #shedding = 0
  #nextNodeid = FUSE_ROOT_ID + 1

  constructor(rootIno: number) {
    // The root is never forgotten: its count never drops to zero.
    const root: FuseNode = { nodeid: FUSE_ROOT_ID, ino: rootIno, lookups: Infinity, names: [], shedding: false }
    this.#byNodeid.set(FUSE_ROOT_ID, root)
    this.#byIno.set(rootIno, root)
  }

  get size(): number {
    return this.#byNodeid.size
  }

  /** Nodes the kernel holds that we have not asked it to drop. */
  get active(): number {
    return this.#byNodeid.size - 1 - this.#shedding
  }

  node(nodeid: number): FuseNode {
    const node = this.#byNodeid.get(nodeid)
    if (!node) throw new PagecowError('ESTALE', `node ${nodeid} is not known (the kernel forgot it)`)
    return node
  }

  /**
   * Mark up to `count` of the least recently looked-up nodes (not `keep`) as being shed and
   * return them: the caller asks the kernel to drop them. Cost: the nodes looked at, not the table.
   */
  shed(count: number, keep: (node: FuseNode) => boolean): FuseNode[] {
    const out: FuseNode[] = []
    for (const node of this.#lru.values()) {
      if (out.length >= count) break
      if (keep(node)) continue
      out.push(node)
    }
    for (const node of out) this.markShedding(node)
    return out
  }

  /** The node `nodeid`, if the kernel holds it. */
  find(nodeid: number): FuseNode | undefined {
    return this.#byNodeid.get(nodeid)
  }

  /** We asked the kernel to drop `node` (or the directory it is in). */
  markShedding(node: FuseNode): void {
    if (node.shedding || node.nodeid === FUSE_ROOT_ID) return
    this.#lru.delete(node.nodeid)
    node.shedding = true
    this.#shedding++
  }

  /** A successful lookup (or create) of `name` in `parent`: count it and remember the name. */
  remember(parent: number, name: string, ino: number): FuseNode {
    let node = this.#byIno.get(ino)
    if (!node) {
      node = { nodeid: this.#nextNodeid++, ino, lookups: 0, names: [], shedding: false }
      this.#byIno.set(ino, node)
      this.#byNodeid.set(node.nodeid, node)
    }
    if (node.nodeid !== FUSE_ROOT_ID) {
      this.#lru.delete(node.nodeid) // to the recent end
      this.#lru.set(node.nodeid, node)
    }
    node.lookups++
    if (node.shedding) {
      node.shedding = false // looked up again before its FORGET: keep it
      this.#shedding--
    }
    const key = nameKey(parent, name)
    const holder = this.#byName.get(key)
    if (holder !== node) {
      if (holder) dropName(holder, parent, name)
      this.#byName.set(key, node)
    } else {
      dropName(node, parent, name)
    }
    node.names.unshift({ parent, name })
    return node
  }

  forget(nodeid: number, count: number): void {
    const node = this.#byNodeid.get(nodeid)
    if (!node) return
    node.lookups -= count
    if (node.lookups > 0) return
    this.#byNodeid.delete(nodeid)
    this.#byIno.delete(node.ino)
    this.#lru.delete(nodeid)
    if (node.shedding) this.#shedding--
    for (const n of node.names) this.#byName.delete(nameKey(n.parent, n.name))
  }

  /** `name` in `parent` is gone (unlink, rmdir, or replaced by a rename). */
  removed(parent: number, name: string): void {
    const key = nameKey(parent, name)
    const node = this.#byName.get(key)
    if (!node) return
    this.#byName.delete(key)
    dropName(node, parent, name)
  }

  /** A rename went through: the object moves its name; whatever the target name held loses it. */
  renamed(from: Name, to: Name, exchange: boolean): void {
    const fromKey = nameKey(from.parent, from.name)
    const toKey = nameKey(to.parent, to.name)
    const moving = this.#byName.get(fromKey)
    const target = this.#byName.get(toKey)
    this.#byName.delete(fromKey)
    this.#byName.delete(toKey)
    if (moving) {
      dropName(moving, from.parent, from.name)
      moving.names.unshift(to)
      this.#byName.set(toKey, moving)
    }
    if (target) {
      dropName(target, to.parent, to.name)
      if (exchange) {
        target.names.unshift(from)
        this.#byName.set(fromKey, target)
      }
    }
  }

  /**
   * The store path of a node: its first name, up to the root. ENOENT for an object the kernel
   * holds no name of any more (an unlinked open file: use its handle); ENAMETOOLONG past
   * PATH_MAX, checked before the string is built.
   */
  path(nodeid: number): string {
    const parts: string[] = []
    let bytes = 0
    let node = this.node(nodeid)
    while (node.nodeid !== FUSE_ROOT_ID) {
      const name = this.#liveName(node)
      if (!name) throw new PagecowError('ENOENT', `node ${nodeid} has no name left (it was removed)`)
      bytes += Buffer.byteLength(name.name) + 1
      if (bytes > PATH_MAX) throw new PagecowError('ENAMETOOLONG', `the path of node ${nodeid} is longer than ${PATH_MAX} bytes`)
      parts.push(name.name)
      node = this.node(name.parent)
    }
    return '/' + parts.reverse().join('/')
  }

  /**
   * The directory holding the node's name: what its ".." is (the root's own for the root).
   * ENOENT as path().
   */
  parent(nodeid: number): FuseNode {
    const node = this.node(nodeid)
    if (node.nodeid === FUSE_ROOT_ID) return node
    const name = this.#liveName(node)
    if (!name) throw new PagecowError('ENOENT', `node ${nodeid} has no name left (it was removed)`)
    return this.node(name.parent)
  }

  /** The path of a node, or undefined if the kernel holds no name of it any more. */
  pathIfNamed(nodeid: number): string | undefined {
    try {
      return this.path(nodeid)
    } catch (err) {
      if (err instanceof PagecowError && err.code === 'ENOENT') return undefined
      throw err
    }
  }

  /** The path of `name` in directory `parent`, with the same limits. */
  childPath(parent: number, name: string): string {
    const dir = this.path(parent)
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`
    if (Buffer.byteLength(path) > PATH_MAX) throw new PagecowError('ENAMETOOLONG', `${dir}/${name.slice(0, 32)}…: longer than ${PATH_MAX} bytes`)
    return path
  }

  /** The node's first name in a directory the kernel still holds, if it has one. */
  #liveName(node: FuseNode): Name | undefined {
    // A hard link's name may sit in a directory the kernel has since forgotten (it drops
    // dentries, and tells us only when an inode goes): such names are dropped, the next used.
    let name = node.names[0]
    while (name && !this.#byNodeid.has(name.parent)) {
      this.#byName.delete(nameKey(name.parent, name.name))
      node.names.shift()
      name = node.names[0]
    }
    return name
  }
}

function nameKey(parent: number, name: string): string {
  return `${parent}\0${name}`
}

function dropName(node: FuseNode, parent: number, name: string): void {
  const i = node.names.findIndex((n) => n.parent === parent && n.name === name)
  if (i >= 0) node.names.splice(i, 1)
}
