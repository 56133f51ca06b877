// A squashfs 4.0 image read in user space, synchronously: the inode-oriented API a tree lower
// needs (lookup, readdir, stat, read, readlink, xattrs, SEEK_DATA/SEEK_HOLE), decompressing only
// the blocks a call needs through one bounded cache. Every structure read back is checked; a
// damaged image gives ECORRUPT naming what is wrong.
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { BlockCache } from './block-cache.js'
import { BlockReader } from './block-reader.js'
import { corrupt } from './corrupt.js'
import { decompressorFor } from './decompressor.js'
import { findEntry, listEntries, type SquashfsDirEntry } from './directory.js'
import { FileBlocks } from './file-blocks.js'
import { readInode, type DirectoryInode, type FileInode, type InodeContext, type SquashfsInode } from './inode.js'
import { LookupTable } from './lookup-table.js'
import type { TableBounds } from './metadata-cursor.js'
import { openOptionsSchema, type SquashfsOpenOptions } from './options.js'
import { rdevOf, type SquashfsStat } from './squashfs-stat.js'
import { parseSuperblock, SUPERBLOCK_SIZE, type Superblock } from './superblock.js'
import { XattrTable } from './xattr-table.js'

interface ImageParts {
  ctx: InodeContext
  root: DirectoryInode
  ids: LookupTable
  fragments: LookupTable | null
  exports: LookupTable | null
  xattrs: XattrTable | null
}

/** How many files keep their block positions (FileBlocks) between calls. */
const FILE_BLOCKS_KEPT = 64

export class SquashfsImage {
  readonly path: string
  readonly superblock: Superblock
  readonly #fd: number
  readonly #reader: BlockReader
  readonly #ctx: InodeContext
  readonly #ids: LookupTable
  readonly #fragments: LookupTable | null
  readonly #exports: LookupTable | null
  readonly #xattrs: XattrTable | null
  readonly #root: DirectoryInode
  readonly #fileBlocks = new BlockCache<FileBlocks & { length: number }>(FILE_BLOCKS_KEPT)
  readonly #idValues = new Map<number, number>()
  #closed = false

  private constructor(path: string, fd: number, parts: ImageParts) {
    this.path = path
    this.#fd = fd
    this.superblock = parts.ctx.superblock
    this.#reader = parts.ctx.reader
    this.#ctx = parts.ctx
    this.#ids = parts.ids
    this.#fragments = parts.fragments
    this.#exports = parts.exports
    this.#xattrs = parts.xattrs
    this.#root = parts.root
  }

  /** Everything read at open: the tables' bounds, the lookup tables, the root. */
  static #parts(path: string, sb: Superblock, reader: BlockReader): ImageParts {
    const starts = [sb.idTableStart, sb.xattrIdTableStart, sb.fragmentTableStart, sb.exportTableStart, sb.directoryTableStart, sb.bytesUsed].filter((p): p is number => p !== null)
    const after = (p: number) => Math.min(...starts.filter((s) => s > p), sb.bytesUsed)
    const inodeTable: TableBounds = { name: 'the inode table', start: sb.inodeTableStart, end: sb.directoryTableStart }
    const directoryTable: TableBounds = { name: 'the directory table', start: sb.directoryTableStart, end: after(sb.directoryTableStart) }
    const ctx: InodeContext = { reader, superblock: sb, inodeTable, directoryTable }
    const root = readInode(ctx, sb.rootInodeRef)
    if (root.type !== 'directory') throw corrupt(path, `the root inode is a ${root.type}, not a directory`)
    return {
      ctx,
      root,
      ids: new LookupTable(reader, 'the id table', sb.idTableStart, sb.idCount, 4),
      fragments: sb.fragmentTableStart === null ? null : new LookupTable(reader, 'the fragment table', sb.fragmentTableStart, sb.fragmentCount, 16),
      exports: sb.exportTableStart === null ? null : new LookupTable(reader, 'the export table', sb.exportTableStart, sb.inodeCount, 8),
      xattrs: sb.xattrIdTableStart === null ? null : XattrTable.open(reader, sb.xattrIdTableStart),
    }
  }

  /**
   * Open the image at `path` read-only and check its superblock and root. `cacheBytes` bounds
   * the decompressed blocks kept (default 8 MiB).
   */
  static open(path: string, options: SquashfsOpenOptions = {}): SquashfsImage {
    const opts = parseWith(openOptionsSchema, options, 'SquashfsImage.open')
    if (typeof path !== 'string' || path === '') throw new PagecowError('EINVAL', 'SquashfsImage.open: path must be a non-empty string')
    let fd: number
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY)
    } catch (err) {
      throw fromSystemError(err, `opening the squashfs image ${path}`)
    }
    try {
      const st = fs.fstatSync(fd)
      if (!st.isFile() && !st.isBlockDevice()) throw new PagecowError('EINVAL', `the squashfs image ${path} is not a regular file`)
      const head = Buffer.alloc(SUPERBLOCK_SIZE)
      const n = fs.readSync(fd, head, 0, SUPERBLOCK_SIZE, 0)
      const size = st.isFile() ? st.size : Number.MAX_SAFE_INTEGER
      const superblock = parseSuperblock(path, head.subarray(0, n), size)
      const decompressor = decompressorFor(superblock.compressor)
      if (decompressor === undefined) throw new PagecowError('ENOTSUP', `the squashfs image ${path} is compressed with ${superblock.compressor}, which pagecow does not read (nor does Linux); rebuild it with xz`)
      const reader = new BlockReader(path, fd, superblock.bytesUsed, superblock.blockSize, decompressor, superblock.compressor, opts.cacheBytes)
      return new SquashfsImage(path, fd, SquashfsImage.#parts(path, superblock, reader))
    } catch (err) {
      fs.closeSync(fd)
      throw fromSystemError(err, `reading the squashfs image ${path}`)
    }
  }

  /** The root directory. */
  get root(): DirectoryInode {
    this.#check()
    return this.#root
  }

  /** Blocks read from the file and cache figures, for tests and benchmarks. */
  get counters(): { metadataReads: number; dataReads: number; cacheBytes: number; cacheHits: number; cacheMisses: number } {
    const c = this.#reader.cache
    return { metadataReads: this.#reader.metadataReads, dataReads: this.#reader.dataReads, cacheBytes: c.bytes, cacheHits: c.hits, cacheMisses: c.misses }
  }

  /** The inode at reference `ref` (a directory entry's `ref`). */
  inode(ref: number): SquashfsInode {
    this.#check()
    if (!Number.isSafeInteger(ref) || ref < 0) throw new PagecowError('EINVAL', `inode: ref must be a non-negative integer, got ${String(ref)}`)
    return readInode(this.#ctx, ref)
  }

  /** The inode of a directory entry; its type must be the one the entry says. */
  entryInode(entry: SquashfsDirEntry): SquashfsInode {
    const inode = this.inode(entry.ref)
    if (inode.type !== entry.type || inode.inodeNumber !== entry.inodeNumber) {
      throw corrupt(this.path, `entry ${JSON.stringify(entry.name.toString('latin1'))} says ${entry.type} ${entry.inodeNumber}, its inode is ${inode.type} ${inode.inodeNumber}`)
    }
    return inode
  }

  /**
   * The inode numbered `inodeNumber` through the export table, or null if the image has none
   * (mksquashfs -no-exports).
   */
  inodeByNumber(inodeNumber: number): SquashfsInode | null {
    this.#check()
    if (!Number.isInteger(inodeNumber) || inodeNumber < 1 || inodeNumber > this.superblock.inodeCount) {
      throw new PagecowError('EINVAL', `inodeByNumber: ${String(inodeNumber)} is not an inode number of this image (1..${this.superblock.inodeCount})`)
    }
    if (this.#exports === null) return null
    const raw = this.#exports.entry(inodeNumber - 1).readBigUInt64LE(0)
    if (raw > 0xffffffffffffn) throw corrupt(this.path, `the export table: inode ${inodeNumber} has a bad reference ${raw.toString(16)}`)
    const inode = readInode(this.#ctx, Number(raw))
    if (inode.inodeNumber !== inodeNumber) throw corrupt(this.path, `the export table: inode ${inodeNumber} points at inode ${inode.inodeNumber}`)
    return inode
  }

  /** The entry named `name` in `dir`, or null. Uses the directory index: a large directory is not read whole. */
  lookup(dir: SquashfsInode, name: Buffer): SquashfsInode | null {
    this.#check()
    const d = this.#directory(dir, 'lookup')
    if (!Buffer.isBuffer(name)) throw new PagecowError('EINVAL', 'lookup: name must be a Buffer')
    const entry = findEntry(this.#ctx, d, name)
    return entry === undefined ? null : this.entryInode(entry)
  }

  /** The entries of `dir` (not '.' and '..'), sorted by name bytes, read as they are iterated. */
  readdir(dir: SquashfsInode): Iterable<SquashfsDirEntry> {
    this.#check()
    const d = this.#directory(dir, 'readdir')
    const ctx = this.#ctx
    return { [Symbol.iterator]: () => listEntries(ctx, d) }
  }

  stat(inode: SquashfsInode): SquashfsStat {
    this.#check()
    const uid = this.#id(inode.uidIndex)
    const gid = this.#id(inode.gidIndex)
    let size = 0
    let blocks = 0
    let rdev = 0
    if (inode.type === 'file') {
      size = inode.size
      // As the kernel counts: whole 512-byte units of the bytes that are not sparse.
      blocks = inode.extended ? Math.floor((inode.size - inode.sparse + 511) / 512) : inode.size === 0 ? 0 : Math.floor((inode.size - 1) / 512) + 1
    } else if (inode.type === 'directory') {
      size = inode.size
    } else if (inode.type === 'symlink') {
      size = inode.target.length
    } else if (inode.type === 'char-device' || inode.type === 'block-device') {
      rdev = rdevOf(inode.device)
    }
    // The kernel adds the 512-byte units the inode's xattrs take.
    if (inode.xattrIndex !== null && this.#xattrs !== null) blocks += Math.floor((this.#xattrs.size(inode.xattrIndex) - 1) / 512) + 1
    return { inodeNumber: inode.inodeNumber, type: inode.type, mode: inode.permissions, uid, gid, nlink: inode.nlink, rdev, size, blocks, mtimeNs: BigInt(inode.mtime) * 1_000_000_000n }
  }

  /** A symlink's target, as bytes. */
  readlink(inode: SquashfsInode): Buffer {
    this.#check()
    if (inode?.type !== 'symlink') throw new PagecowError('EINVAL', `readlink: inode ${String(inode?.inodeNumber)} is not a symlink`)
    return Buffer.from(inode.target)
  }

  /** The extended attributes of `inode`: full names ("user.x") to values. */
  xattrs(inode: SquashfsInode): Map<string, Buffer> {
    this.#check()
    // As the kernel does, an xattr index in an image without an xattr table means none.
    if (inode.xattrIndex === null || this.#xattrs === null) return new Map()
    return this.#xattrs.read(inode.xattrIndex)
  }

  /**
   * Read up to `length` bytes of `file` at `position` into `target` at `targetOffset`; returns
   * the bytes read (short only at the end of the file). Sparse blocks read as zeros.
   */
  read(file: SquashfsInode, target: Uint8Array, targetOffset: number, length: number, position: number): number {
    this.#check()
    const f = this.#file(file, 'read')
    if (!(target instanceof Uint8Array)) throw new PagecowError('EINVAL', 'read: target must be a Buffer or Uint8Array')
    for (const [name, v] of [['targetOffset', targetOffset], ['length', length], ['position', position]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new PagecowError('EINVAL', `read: ${name} must be a non-negative integer, got ${String(v)}`)
    }
    if (targetOffset + length > target.length) throw new PagecowError('EINVAL', `read: ${length} bytes at ${targetOffset} do not fit a target of ${target.length}`)
    const end = Math.min(f.size, position + length)
    const bs = this.superblock.blockSize
    let done = 0
    for (let pos = position; pos < end; ) {
      const index = Math.floor(pos / bs)
      const within = pos - index * bs
      const take = Math.min(end - pos, bs - within)
      const block = this.#block(f, index)
      if (block === null) target.fill(0, targetOffset + done, targetOffset + done + take)
      else target.set(block.subarray(within, within + take), targetOffset + done)
      done += take
      pos += take
    }
    return done
  }

  /** SEEK_DATA: the first offset at or after `offset` not in a sparse block, or null past the data. */
  nextData(file: SquashfsInode, offset: number): number | null {
    this.#check()
    const f = this.#file(file, 'nextData')
    this.#offset(offset, 'nextData')
    if (offset >= f.size) return null
    const bs = this.superblock.blockSize
    for (let i = Math.floor(offset / bs); i < f.blockCount; i++) {
      if (this.#blocks(f).locate(i).entry !== 0) return Math.max(offset, i * bs)
    }
    return f.fragment !== null ? Math.max(offset, f.blockCount * bs) : null
  }

  /** SEEK_HOLE: the first offset at or after `offset` in a sparse block, or the file's size. */
  nextHole(file: SquashfsInode, offset: number): number {
    this.#check()
    const f = this.#file(file, 'nextHole')
    this.#offset(offset, 'nextHole')
    if (offset >= f.size) return offset
    const bs = this.superblock.blockSize
    for (let i = Math.floor(offset / bs); i < f.blockCount; i++) {
      if (this.#blocks(f).locate(i).entry === 0) return Math.min(f.size, Math.max(offset, i * bs))
    }
    return f.size
  }

  /** Close the image; later calls are ECLOSED. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#reader.clear()
    this.#fileBlocks.clear()
    fs.closeSync(this.#fd)
  }

  /** Block `index` of `f` decompressed, exactly as long as the file needs; null for a sparse block. */
  #block(f: FileInode, index: number): Buffer | null {
    const bs = this.superblock.blockSize
    const where = `the file at inode ${f.inodeNumber}`
    if (index < f.blockCount) {
      const { position, entry } = this.#blocks(f).locate(index)
      if (entry === 0) return null
      const expected = Math.min(bs, f.size - index * bs)
      const data = this.#reader.data(position, entry, `${where}: data block ${index}`)
      if (data.length !== expected) throw corrupt(this.path, `${where}: data block ${index} holds ${data.length} bytes, ${expected} expected (sizes do not add up)`)
      return data
    }
    // The tail, packed in a fragment block with the tails of other files.
    if (f.fragment === null || this.#fragments === null) throw corrupt(this.path, `${where}: its tail has no fragment`)
    const e = this.#fragments.entry(f.fragment)
    const start = e.readBigUInt64LE(0)
    const entry = e.readUInt32LE(8)
    if (start >= BigInt(this.superblock.bytesUsed)) throw corrupt(this.path, `fragment ${f.fragment} starts past the end of the image`)
    if ((entry & ~((1 << 25) - 1)) !== 0) throw corrupt(this.path, `fragment ${f.fragment} has a bad size entry ${entry.toString(16)}`)
    const data = this.#reader.data(Number(start), entry, `fragment block ${f.fragment}`)
    const tail = f.size - index * bs
    if (f.fragmentOffset + tail > data.length) {
      throw corrupt(this.path, `${where}: its ${tail}-byte tail at ${f.fragmentOffset} is past the ${data.length} bytes of fragment ${f.fragment} (sizes do not add up)`)
    }
    return data.subarray(f.fragmentOffset, f.fragmentOffset + tail)
  }

  /** Entry `index` of the id table; kept once read (an image has at most 65 536 ids, most a handful). */
  #id(index: number): number {
    let id = this.#idValues.get(index)
    if (id === undefined) {
      id = this.#ids.entry(index).readUInt32LE(0)
      this.#idValues.set(index, id)
    }
    return id
  }

  #blocks(f: FileInode): FileBlocks {
    const kept = this.#fileBlocks.get(f.ref)
    if (kept !== undefined) return kept
    const blocks = Object.assign(new FileBlocks(this.#reader, this.#ctx.inodeTable, f, this.superblock.bytesUsed, this.superblock.blockSize), { length: 1 })
    this.#fileBlocks.set(f.ref, blocks)
    return blocks
  }

  #directory(inode: SquashfsInode, what: string): DirectoryInode {
    if (inode?.type !== 'directory') throw new PagecowError('ENOTDIR', `${what}: inode ${String(inode?.inodeNumber)} is not a directory`)
    return inode
  }

  #file(inode: SquashfsInode, what: string): FileInode {
    if (inode?.type === 'directory') throw new PagecowError('EISDIR', `${what}: inode ${inode.inodeNumber} is a directory`)
    if (inode?.type !== 'file') throw new PagecowError('EINVAL', `${what}: inode ${String(inode?.inodeNumber)} is not a regular file`)
    return inode
  }

  #offset(offset: number, what: string): void {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new PagecowError('EINVAL', `${what}: offset must be a non-negative integer, got ${String(offset)}`)
  }

  #check(): void {
    if (this.#closed) throw new PagecowError('ECLOSED', `the squashfs image ${this.path} is closed`)
  }
}
