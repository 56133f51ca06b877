// Directory listings: runs of entries, each run under a header naming the inode-table block its
// entries' inodes lie in and a base inode number. Extended directories add an index (the first
// name of each metadata block of the listing), so a lookup reads one or two blocks of a large
// directory instead of all of it.
import { corrupt } from './corrupt.js'
import { basicType, type SquashfsFileType } from './file-type.js'
import type { DirectoryInode, InodeContext } from './inode.js'
import { MetadataCursor } from './metadata-cursor.js'
import { METADATA_SIZE } from './superblock.js'

/** The most entries one header may cover, and the longest name (as the kernel checks). */
const MAX_RUN = 256
const MAX_NAME = 256
const SLASH = 0x2f

/** An entry of a directory listing. */
export interface SquashfsDirEntry {
  /** The name's bytes (Linux names need not be UTF-8). */
  name: Buffer
  type: SquashfsFileType
  inodeNumber: number
  /** The entry's inode reference, for `image.inode(ref)`. */
  ref: number
}

/** Where to start reading a listing: a position in the directory table and the bytes before it. */
interface ListingStart {
  block: number
  offset: number
  consumed: number
}

/**
 * The entries of `dir` in listing order (sorted by name bytes), from `start` (the listing's
 * beginning by default). Every entry is checked: names of 1 to 256 bytes without '/' or NUL and
 * not '.' or '..', known types, inode numbers in range, and a directory entry's inode before
 * its parent's in the inode table (mksquashfs writes children first), which makes a loop of
 * directories impossible to follow.
 */
export function* listEntries(ctx: InodeContext, dir: DirectoryInode, start?: ListingStart): Generator<SquashfsDirEntry> {
  const path = ctx.reader.path
  const where = `the directory at inode ${dir.inodeNumber}`
  const length = dir.size - 3
  let consumed = start?.consumed ?? 0
  if (consumed >= length) return
  const cur = new MetadataCursor(ctx.reader, ctx.directoryTable, start?.block ?? dir.listing.block, start?.offset ?? dir.listing.offset)
  while (consumed < length) {
    if (consumed + 12 > length) throw corrupt(path, `${where}: a listing header runs past the listing's ${length} bytes`)
    const header = cur.read(12)
    consumed += 12
    const count = header.readUInt32LE(0) + 1
    const inodeBlock = header.readUInt32LE(4)
    const base = header.readUInt32LE(8)
    if (count > MAX_RUN) throw corrupt(path, `${where}: a listing header counts ${count} entries (at most ${MAX_RUN})`)
    for (let i = 0; i < count; i++) {
      if (consumed + 8 > length) throw corrupt(path, `${where}: an entry runs past the listing's ${length} bytes (sizes do not add up)`)
      const e = cur.read(8)
      const offset = e.readUInt16LE(0)
      const inodeNumber = base + e.readInt16LE(2)
      const typeNumber = e.readUInt16LE(4)
      const nameLength = e.readUInt16LE(6) + 1
      consumed += 8 + nameLength
      if (consumed > length) throw corrupt(path, `${where}: an entry runs past the listing's ${length} bytes (sizes do not add up)`)
      if (nameLength > MAX_NAME) throw corrupt(path, `${where}: a name of ${nameLength} bytes`)
      const name = Buffer.from(cur.read(nameLength))
      const type = basicType(typeNumber)
      if (type === undefined) throw corrupt(path, `${where}: entry ${JSON.stringify(name.toString('latin1'))} has unknown type ${typeNumber}`)
      if (!validName(name)) throw corrupt(path, `${where}: an invalid name ${JSON.stringify(name.toString('latin1'))}`)
      if (offset >= METADATA_SIZE) throw corrupt(path, `${where}: entry ${JSON.stringify(name.toString('latin1'))} points past a metadata block`)
      if (inodeNumber < 1 || inodeNumber > ctx.superblock.inodeCount) {
        throw corrupt(path, `${where}: entry ${JSON.stringify(name.toString('latin1'))} has inode number ${inodeNumber}, outside 1..${ctx.superblock.inodeCount}`)
      }
      const ref = inodeBlock * 65536 + offset
      if (type === 'directory' && ref >= dir.ref) {
        throw corrupt(path, `${where}: subdirectory ${JSON.stringify(name.toString('latin1'))} does not come before it in the inode table (a directory loop)`)
      }
      yield { name, type, inodeNumber, ref }
    }
  }
}

function validName(name: Buffer): boolean {
  if (name.includes(SLASH) || name.includes(0)) return false
  if (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) return false
  return true
}

/** Where in `dir`'s listing a search for `name` may begin: the last index entry not after it. */
function indexStart(ctx: InodeContext, dir: DirectoryInode, name: Buffer): ListingStart | undefined {
  if (dir.indexCount === 0) return undefined
  const path = ctx.reader.path
  const where = `the directory at inode ${dir.inodeNumber}`
  const length = dir.size - 3
  const cur = new MetadataCursor(ctx.reader, ctx.inodeTable, dir.index.block, dir.index.offset)
  let best: ListingStart | undefined
  let lastIndex = -1
  for (let i = 0; i < dir.indexCount; i++) {
    const e = cur.read(12)
    const index = e.readUInt32LE(0)
    const startBlock = e.readUInt32LE(4)
    const size = e.readUInt32LE(8) + 1
    if (size > MAX_NAME) throw corrupt(path, `${where}: a directory index name of ${size} bytes`)
    const first = cur.read(size)
    if (index <= lastIndex || index >= length) throw corrupt(path, `${where}: directory index entry ${i} points at ${index} (listing of ${length} bytes, out of order or past it)`)
    lastIndex = index
    if (Buffer.compare(first, name) > 0) break
    best = { block: ctx.directoryTable.start + startBlock, offset: (dir.listing.offset + index) % METADATA_SIZE, consumed: index }
  }
  return best
}

/** The entry of `dir` named `name`, or undefined. Listings are sorted, so the scan stops early. */
export function findEntry(ctx: InodeContext, dir: DirectoryInode, name: Buffer): SquashfsDirEntry | undefined {
  for (const entry of listEntries(ctx, dir, indexStart(ctx, dir, name))) {
    const order = Buffer.compare(entry.name, name)
    if (order === 0) return entry
    if (order > 0) return undefined
  }
  return undefined
}
