// A squashfs image as the lower of a tree store, read in user space (no mount, no root, no kernel
// module): paths resolved from the image's root by directory lookups (through the directory
// index, so a lookup in a large directory reads a block or two), a bounded cache of path → inode
// so that a walk does not resolve every component again, the entries of the directories listed
// last so that the lookups after a listing scan nothing, and the image's bounded block cache under
// all of it. Objects look as the kernel's squashfs shows them (#stat).
import { PagecowError } from '../errors.js'
import type { LowerStat } from '../lower-stat.js'
import { nameFromBytes, nameToBytes } from '../name-bytes.js'
import { typeBits } from '../squashfs/file-type.js'
import type { SquashfsDirEntry } from '../squashfs/directory.js'
import type { FileInode, SquashfsInode } from '../squashfs/inode.js'
import type { SquashfsOpenOptions } from '../squashfs/options.js'
import { SquashfsImage } from '../squashfs/squashfs-image.js'
import { BoundedCache } from './bounded-cache.js'
import type { FileType } from './file-type.js'
import type { LowerFile, LowerName, LowerObject, LowerTree } from './lower-tree.js'

/** Paths whose inode (or absence) is kept: a walk finds its directories here. */
const PATHS_KEPT = 4096
/**
 * Entries of the directories listed last, kept by name (a few MiB at most): the lookups a walk
 * makes after each listing then cost no scan of the directory. A larger directory is not kept;
 * its lookups go through the directory index.
 */
const LISTED_ENTRIES_KEPT = 16_384

/** A directory entry kept after a listing; its name is the key it is kept under. */
interface ListedEntry {
  type: SquashfsDirEntry['type']
  inodeNumber: number
  ref: number
}

export class LowerSquashfs implements LowerTree {
  /** The image file, as messages name it. */
  readonly root: string
  readonly #image: SquashfsImage
  readonly #inodes = new BoundedCache<string, SquashfsInode | null>(PATHS_KEPT)
  /** Listings by directory path, the oldest first; LISTED_ENTRIES_KEPT entries in all at most. */
  readonly #listings = new Map<string, Map<string, ListedEntry>>()
  #listed = 0

  private constructor(image: SquashfsImage) {
    this.root = image.path
    this.#image = image
  }

  /**
   * Open the image at `path` (ECORRUPT if it is damaged, ENOTSUP for a compressor nothing reads);
   * `rootIno` (from the store record) must be its root directory's inode number. `cacheBytes`
   * bounds the decompressed blocks kept (default 8 MiB).
   */
  static open(path: string, options: { rootIno?: number } & SquashfsOpenOptions = {}): LowerSquashfs {
    const { rootIno, ...imageOptions } = options
    const image = SquashfsImage.open(path, imageOptions)
    const found = image.root.inodeNumber
    if (rootIno !== undefined && found !== rootIno) {
      image.close()
      throw new PagecowError('ESTALE', `the squashfs image ${path} was replaced since the store was created (root inode ${rootIno} → ${found}); the store refuses to overlay a different tree`)
    }
    return new LowerSquashfs(image)
  }

  /** The inode number of the image's root directory. */
  get rootIno(): number {
    return this.#image.root.inodeNumber
  }

  /** Blocks the image read from the file, and its cache's figures (for tests and benchmarks). */
  get counters(): SquashfsImage['counters'] {
    return this.#image.counters
  }

  /** Lower path `rel` as messages name it: the image, a colon, and the path inside it. */
  full(rel: string): string {
    return `${this.root}:/${rel}`
  }

  lstat(rel: string): LowerObject | null {
    const inode = this.#resolve(rel)
    return inode && { path: rel, type: inode.type, stat: this.#stat(inode) }
  }

  child(dir: string, name: string): LowerObject | null {
    return this.lstat(join(dir, name))
  }

  has(dir: string, name: string): boolean {
    return this.#resolve(join(dir, name)) !== null
  }

  /** The entries of directory `dir` in the image's order (by name bytes); none if it is not a directory. */
  list(dir: string): LowerName[] {
    const inode = this.#resolve(dir)
    if (inode?.type !== 'directory') return []
    const out: LowerName[] = []
    let byName: Map<string, ListedEntry> | null = new Map()
    for (const e of this.#image.readdir(inode)) {
      const name = nameFromBytes(e.name)
      out.push({ name, type: e.type })
      if (byName && byName.size < LISTED_ENTRIES_KEPT) byName.set(name, { type: e.type, inodeNumber: e.inodeNumber, ref: e.ref })
      else byName = null
    }
    if (byName) this.#keepListing(dir, byName)
    return out
  }

  readlink(rel: string): string {
    const inode = this.#resolve(rel)
    if (!inode) throw new PagecowError('ENOENT', `the lower symlink ${this.full(rel)} does not exist`)
    if (inode.type !== 'symlink') throw new PagecowError('EINVAL', `the lower ${this.full(rel)} is not a symlink`)
    return nameFromBytes(this.#image.readlink(inode))
  }

  /** The regular file at `rel`, read out of the image (ELOOP for a symlink, as O_NOFOLLOW gives). */
  openFile(rel: string): LowerFile {
    const inode = this.#resolve(rel)
    if (!inode) throw new PagecowError('ENOENT', `the lower file ${this.full(rel)} does not exist`)
    if (inode.type === 'symlink') throw new PagecowError('ELOOP', `the lower ${this.full(rel)} is a symlink`)
    if (inode.type === 'directory') throw new PagecowError('EISDIR', `the lower ${this.full(rel)} is a directory`)
    if (inode.type !== 'file') throw new PagecowError('EINVAL', `the lower ${this.full(rel)} is not a regular file`)
    return new SquashfsFile(this.#image, inode, this.#stat(inode), this.full(rel))
  }

  /** Every object's extended attributes, symlinks and special files included, as the kernel lists them. */
  xattrs(rel: string, _type: FileType): Map<string, Buffer> {
    const inode = this.#resolve(rel)
    return inode ? this.#image.xattrs(inode) : new Map()
  }

  /** Close the image; files opened from it stop reading (ECLOSED). */
  close(): void {
    this.#inodes.clear()
    this.#listings.clear()
    this.#image.close()
  }

  /** The inode at `rel`, or null if a component is missing or not a directory. */
  #resolve(rel: string): SquashfsInode | null {
    if (rel === '') return this.#image.root
    const kept = this.#inodes.get(rel)
    if (kept !== undefined) return kept
    const slash = rel.lastIndexOf('/')
    const dir = slash < 0 ? '' : rel.slice(0, slash)
    const name = rel.slice(slash + 1)
    const listing = this.#listings.get(dir)
    if (listing) {
      // The listing is the cache here: a walk does not churn the path cache with every entry.
      const e = listing.get(name)
      if (!e) return null
      const inode = this.#image.inode(e.ref)
      // What entryInode() checks, without building the name's bytes for every entry of a walk.
      if (inode.type !== e.type || inode.inodeNumber !== e.inodeNumber) this.#image.entryInode({ name: nameToBytes(name), type: e.type, inodeNumber: e.inodeNumber, ref: e.ref })
      return inode
    }
    const parent = this.#resolve(dir)
    const inode = parent?.type === 'directory' ? this.#image.lookup(parent, nameToBytes(name)) : null
    this.#inodes.set(rel, inode)
    return inode
  }

  #keepListing(dir: string, byName: Map<string, ListedEntry>): void {
    const old = this.#listings.get(dir)
    if (old) {
      this.#listings.delete(dir)
      this.#listed -= old.size
    }
    this.#listings.set(dir, byName)
    this.#listed += byName.size
    for (const [oldest, entries] of this.#listings) {
      if (this.#listed <= LISTED_ENTRIES_KEPT) break
      this.#listings.delete(oldest)
      this.#listed -= entries.size
    }
  }

  /** The kernel's lstat of `inode`: squashfs keeps one time, shown as atime, mtime and ctime. */
  #stat(inode: SquashfsInode): LowerStat {
    const st = this.#image.stat(inode)
    return {
      ino: st.inodeNumber,
      mode: typeBits(st.type) | st.mode,
      nlink: st.nlink,
      uid: st.uid,
      gid: st.gid,
      rdev: st.rdev,
      size: st.size,
      blocks: st.blocks,
      atimeNs: st.mtimeNs,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.mtimeNs,
    }
  }
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`
}

/** A regular file of the image: reads decompress the blocks they touch, through the image's cache. */
class SquashfsFile implements LowerFile {
  readonly size: number
  readonly mtimeNs: bigint
  readonly #image: SquashfsImage
  readonly #inode: FileInode
  readonly #stat: LowerStat
  readonly #name: string
  #closed = false

  constructor(image: SquashfsImage, inode: FileInode, stat: LowerStat, name: string) {
    this.#image = image
    this.#inode = inode
    this.#stat = stat
    this.#name = name
    this.size = stat.size
    this.mtimeNs = stat.mtimeNs
  }

  stat(): LowerStat {
    this.#check()
    return Object.assign({}, this.#stat)
  }

  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    this.#check()
    if (position >= this.size) return 0
    return this.#image.read(this.#inode, target, targetOffset, Math.min(length, this.size - position), position)
  }

  /** The same read: decompressing is CPU work on this thread whichever way it is called. */
  readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve) => resolve(this.readInto(target, targetOffset, length, position)))
  }

  nextData(position: number): number | null {
    this.#check()
    return this.#image.nextData(this.#inode, position)
  }

  nextHole(position: number): number {
    this.#check()
    return this.#image.nextHole(this.#inode, position)
  }

  close(): void {
    this.#closed = true
  }

  #check(): void {
    if (this.#closed) throw new PagecowError('ECLOSED', `the lower file ${this.#name} is closed`)
  }
}
