// An image store as a FUSE file system: a directory holding one file, the merged image, named
// after the lower image. qemu and dd use it as a raw disk; its pages are the store's.
import { basename } from 'node:path'
import { PagecowError } from '../errors.js'
import * as fs from '../fs.js'
import type { ImageStore } from '../image/image-store.js'
import { nowNs } from '../time-ns.js'
import { fallocateZeroRange } from './fallocate-range.js'
import type { AttrChanges, FuseOperations, Opened, Statfs } from './operations.js'
import { ATTR_VALID_MS, ENTRY_VALID_MS } from './operations.js'
import { DT, FUSE_ROOT_ID, type Attr, type DirentPlusWriter, type DirentWriter, type EntryOut } from './protocol.js'

const IMAGE_NODE = 2
const SEEK_DATA = 3
const O_ACCMODE = 3

export class ImageFs implements FuseOperations {
  readonly #store: ImageStore
  /** The image's name in the mount's root directory. */
  readonly fileName: string
  readonly #mounted = nowNs()
  #mtimeNs: bigint
  #atimeNs: bigint
  readonly #files = new Set<number>()
  #nextFh = 1

  constructor(store: ImageStore) {
    this.#store = store
    // Named after the raw image at the bottom of the chain (the disk), not after a base store.
    this.fileName = basename(store.backingChain().at(-1)!.path) || 'image'
    this.#mtimeNs = this.#atimeNs = this.#mounted
  }

  get stable(): boolean {
    return !this.#store.readOnly
  }

  get readOnly(): boolean {
    return this.#store.readOnly
  }

  async lookup(parent: number, name: string): Promise<EntryOut | null> {
    if (parent !== FUSE_ROOT_ID || name !== this.fileName) return null
    return { nodeid: IMAGE_NODE, generation: 0, entryValidMs: ENTRY_VALID_MS, attrValidMs: ATTR_VALID_MS, attr: this.#imageAttr() }
  }

  forget(): void {
    // Two fixed nodes: nothing to let go of.
  }

  async getattr(nodeid: number): Promise<Attr> {
    return this.#attr(nodeid)
  }

  async setattr(nodeid: number, changes: AttrChanges): Promise<Attr> {
    if (changes.mode !== undefined || changes.uid !== undefined || changes.gid !== undefined) {
      throw new PagecowError('EPERM', 'an image store keeps no owner or mode for its image')
    }
    if (nodeid === IMAGE_NODE) {
      if (changes.size !== undefined) await this.#store.truncate(changes.size)
      // Times live as long as the mount: an image store records pages, not file metadata.
      const now = nowNs()
      if (changes.mtimeNs !== undefined) this.#mtimeNs = changes.mtimeNs === 'now' ? now : changes.mtimeNs
      if (changes.atimeNs !== undefined) this.#atimeNs = changes.atimeNs === 'now' ? now : changes.atimeNs
    }
    return this.#attr(nodeid)
  }

  async open(nodeid: number, flags: number): Promise<Opened> {
    if (nodeid !== IMAGE_NODE) throw new PagecowError('EISDIR', 'open: the mount root is a directory')
    if (((flags & O_ACCMODE) !== 0 || flags & fs.constants.O_TRUNC) && this.#store.readOnly) throw new PagecowError('EROFS', 'open: the store is open read-only')
    // ATOMIC_O_TRUNC: the kernel leaves O_TRUNC to us (cp over the image); Linux truncates
    // whatever the access mode (the kernel checked write permission).
    if (flags & fs.constants.O_TRUNC) {
      await this.#store.truncate(0)
      this.#mtimeNs = nowNs()
    }
    const fh = this.#nextFh++
    this.#files.add(fh)
    return { fh, keepCache: this.stable }
  }

  async read(_fh: number, offset: number, size: number, scratch: Buffer): Promise<Uint8Array> {
    const into = scratch.subarray(0, size)
    return into.subarray(0, await this.#store.readInto(into, offset, { threadPool: true })) // many in flight: they overlap on the disk
  }

  spanOf(_fh: number, offset: number, size: number): { fd: number; bytes: number; zeros: number } | undefined {
    return this.#store.lowerSpan(offset, size)
  }

  async write(_fh: number, offset: number, data: Uint8Array, _killSuidgid: boolean, _cached: boolean): Promise<number> {
    await this.#store.write(offset, data)
    this.#mtimeNs = nowNs()
    return data.length
  }

  writeWaits(): boolean {
    return this.#store.isFrozen()
  }

  async fallocate(_fh: number, offset: number, length: number, mode: number): Promise<void> {
    const range = fallocateZeroRange(mode, offset, length, this.#store.size)
    // zero(): whole pages become ZERO and give their space back; partial pages are written zeros.
    if (range) await this.#store.zero(range.offset, range.length)
    this.#mtimeNs = nowNs()
  }

  async release(fh: number): Promise<void> {
    this.#files.delete(fh)
  }

  fsync(): Promise<void> {
    return this.#store.flush()
  }

  async lseek(_nodeid: number, _fh: number, offset: number, whence: number): Promise<number | null> {
    return whence === SEEK_DATA ? this.#store.nextData(offset) : this.#store.nextHole(offset)
  }

  async statfs(): Promise<Statfs> {
    const s = fs.statfsSync(this.#store.path)
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize }
  }

  async getxattr(): Promise<Buffer> {
    throw new PagecowError('ENODATA', 'an image store keeps no extended attributes')
  }

  async listxattr(): Promise<string[]> {
    return []
  }

  async opendir(nodeid: number): Promise<number> {
    if (nodeid !== FUSE_ROOT_ID) throw new PagecowError('ENOTDIR', 'opendir: the image is not a directory')
    return 0
  }

  async readdir(_fh: number, offset: number, out: DirentWriter): Promise<void> {
    const entries: Array<[number, number, Buffer]> = [
      [FUSE_ROOT_ID, DT.DIR, Buffer.from('.')],
      [FUSE_ROOT_ID, DT.DIR, Buffer.from('..')],
      [IMAGE_NODE, DT.REG, Buffer.from(this.fileName)],
    ]
    for (let i = offset; i < entries.length; i++) {
      const [ino, type, name] = entries[i]!
      if (!out.add(ino, i + 1, type, name)) return
    }
  }

  /** The kernel asks READDIRPLUS instead of READDIR once it is offered: without it `ls` gets ENOSYS. */
  async readdirplus(_fh: number, offset: number, out: DirentPlusWriter): Promise<void> {
    for (let i = offset; i < 3; i++) {
      // "." and "..": node id 0, no lookup counted; the image: a lookup (forget is a no-op here).
      const entry: EntryOut =
        i < 2
          ? { nodeid: 0, generation: 0, entryValidMs: 0, attrValidMs: 0, attr: this.#attr(FUSE_ROOT_ID) }
          : { nodeid: IMAGE_NODE, generation: 0, entryValidMs: ENTRY_VALID_MS, attrValidMs: ATTR_VALID_MS, attr: this.#imageAttr() }
      if (!out.add(entry, i + 1, i < 2 ? DT.DIR : DT.REG, Buffer.from(i === 0 ? '.' : i === 1 ? '..' : this.fileName))) return
    }
  }

  async releasedir(): Promise<void> {}

  sync(): Promise<void> {
    return this.#store.flush()
  }

  // The root holds the image and nothing else.
  readlink = refuse
  symlink = refuse
  mknod = refuse
  mkdir = refuse
  unlink = refuse
  rmdir = refuse
  rename = refuse
  link = refuse
  create = refuse
  setxattr = refuse
  removexattr = refuse

  #attr(nodeid: number): Attr {
    if (nodeid === IMAGE_NODE) return this.#imageAttr()
    if (nodeid !== FUSE_ROOT_ID) throw new PagecowError('ESTALE', `node ${nodeid} is not known`)
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    const t = this.#mounted
    return { ino: FUSE_ROOT_ID, size: 4096, blocks: 0, atimeNs: t, mtimeNs: t, ctimeNs: t, mode: 0o40755, nlink: 2, uid, gid, rdev: 0, blksize: 4096 }
  }

  #imageAttr(): Attr {
    const info = this.#store.info()
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    return {
      ino: IMAGE_NODE,
      size: info.size,
      // What the image costs on disk: the upper's allocation (the lower is shared, read-only).
      blocks: Math.ceil(info.upper.allocatedBytes / 512),
      atimeNs: this.#atimeNs,
      mtimeNs: this.#mtimeNs,
      ctimeNs: this.#mtimeNs,
      mode: this.#store.readOnly ? 0o100444 : 0o100644,
      nlink: 1,
      uid,
      gid,
      rdev: 0,
      blksize: info.pageSize,
    }
  }
}

async function refuse(): Promise<never> {
  throw new PagecowError('EPERM', 'an image store mount holds the image and nothing else')
}
