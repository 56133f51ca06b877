// The inodes of the inode table, decoded into plain records. Each of the fourteen on-disk types
// (a basic and an extended form of seven kinds) becomes one of five shapes.
import type { BlockReader } from './block-reader.js'
import { corrupt } from './corrupt.js'
import { basicType, type SquashfsFileType } from './file-type.js'
import { MetadataCursor, type TableBounds } from './metadata-cursor.js'
import { METADATA_SIZE, type Superblock } from './superblock.js'

const NONE = 0xffffffff
/** The longest symlink target the kernel accepts (PAGE_SIZE on the machines that matter). */
export const MAX_SYMLINK = 4096

interface InodeCommon {
  /** Where the inode is: (block offset in the inode table << 16) | offset in the block. */
  readonly ref: number
  readonly inodeNumber: number
  /** Whether the image stored the extended form of the inode. */
  readonly extended: boolean
  /** Permission bits (07777). */
  readonly permissions: number
  readonly uidIndex: number
  readonly gidIndex: number
  /** Seconds since the epoch. */
  readonly mtime: number
  readonly nlink: number
  /** Index into the xattr id table, or null. */
  readonly xattrIndex: number | null
}

/** A position in a metadata table: a block's absolute position and an offset in it. */
export interface MetadataPosition {
  readonly block: number
  readonly offset: number
}

export interface FileInode extends InodeCommon {
  readonly type: 'file'
  readonly size: number
  /** Position of the first data block. */
  readonly blocksStart: number
  /** Index in the fragment table of the block holding the file's tail, or null. */
  readonly fragment: number | null
  readonly fragmentOffset: number
  /** Bytes of the file in sparse blocks (extended inodes only, else 0). */
  readonly sparse: number
  /** Full (or, without a fragment, final partial) blocks listed after the inode. */
  readonly blockCount: number
  /** Where the list of block sizes starts. */
  readonly blockList: MetadataPosition
}

export interface DirectoryInode extends InodeCommon {
  readonly type: 'directory'
  /** The listing's bytes plus 3, as the image stores it (and the kernel reports). */
  readonly size: number
  readonly listing: MetadataPosition
  readonly parentInode: number
  /** Entries of the directory index (extended inodes), which follow the inode. */
  readonly indexCount: number
  readonly index: MetadataPosition
}

export interface SymlinkInode extends InodeCommon {
  readonly type: 'symlink'
  readonly target: Buffer
}

export interface DeviceInode extends InodeCommon {
  readonly type: 'char-device' | 'block-device'
  /** The device number as the image stores it (Linux's new_encode_dev). */
  readonly device: number
}

export interface IpcInode extends InodeCommon {
  readonly type: 'fifo' | 'socket'
}

/** An inode of a squashfs image. Pass it back to the image that returned it. */
export type SquashfsInode = FileInode | DirectoryInode | SymlinkInode | DeviceInode | IpcInode

/** What decoding an inode needs to know about the image. */
export interface InodeContext {
  reader: BlockReader
  superblock: Superblock
  inodeTable: TableBounds
  directoryTable: TableBounds
}

/** Split an inode or directory reference into the block it names and the offset in it. */
export function splitRef(ref: number): { block: number; offset: number } {
  return { block: Math.floor(ref / 65536), offset: ref % 65536 }
}

/** Decode the inode at `ref`. */
export function readInode(ctx: InodeContext, ref: number): SquashfsInode {
  const { reader, superblock: sb, inodeTable } = ctx
  const path = reader.path
  // Only a damaged image needs the words: they are not built for every inode read.
  const damaged = (what: string) => `the inode at ${ref.toString(16)}: ${what}`
  const { block, offset } = splitRef(ref)
  if (offset >= METADATA_SIZE) throw corrupt(path, damaged(`offset ${offset} is past a metadata block`))
  const at = inodeTable.start + block
  if (at >= inodeTable.end) throw corrupt(path, damaged(`lies past the end of the inode table`))
  const cur = new MetadataCursor(reader, inodeTable, at, offset)
  const head = cur.read(16)
  const typeNumber = head.readUInt16LE(0)
  const extended = typeNumber > 7
  const type = basicType(extended ? typeNumber - 7 : typeNumber)
  if (type === undefined) throw corrupt(path, damaged(`unknown inode type ${typeNumber}`))
  const inodeNumber = head.readUInt32LE(12)
  if (inodeNumber < 1 || inodeNumber > sb.inodeCount) throw corrupt(path, damaged(`inode number ${inodeNumber} is outside 1..${sb.inodeCount}`))
  const uidIndex = head.readUInt16LE(4)
  const gidIndex = head.readUInt16LE(6)
  if (uidIndex >= sb.idCount || gidIndex >= sb.idCount) throw corrupt(path, damaged(`owner index ${Math.max(uidIndex, gidIndex)} is past the ${sb.idCount} ids`))
  const permissions = head.readUInt16LE(2) & 0o7777
  const mtime = head.readUInt32LE(8)
  // Each shape below is one object literal, the common fields written out: spreading a common
  // object into it cost more than the rest of the decoding (V8 clones, then grows the copy).
  switch (type) {
    case 'directory': {
      let listingBlock: number, nlink: number, size: number, listingOffset: number, parentInode: number
      let indexCount = 0
      let xattrIndex: number | null = null
      if (!extended) {
        const b = cur.read(16)
        listingBlock = b.readUInt32LE(0)
        nlink = b.readUInt32LE(4)
        size = b.readUInt16LE(8)
        listingOffset = b.readUInt16LE(10)
        parentInode = b.readUInt32LE(12)
      } else {
        const b = cur.read(24)
        nlink = b.readUInt32LE(0)
        size = b.readUInt32LE(4)
        listingBlock = b.readUInt32LE(8)
        parentInode = b.readUInt32LE(12)
        indexCount = b.readUInt16LE(16)
        listingOffset = b.readUInt16LE(18)
        xattrIndex = xattrOf(b.readUInt32LE(20))
      }
      if (size < 3) throw corrupt(path, damaged(`a directory of size ${size} (at least 3)`))
      if (listingOffset >= METADATA_SIZE) throw corrupt(path, damaged(`listing offset ${listingOffset} is past a metadata block`))
      const listing = ctx.directoryTable.start + listingBlock
      if (listing >= ctx.directoryTable.end && size > 3) throw corrupt(path, damaged(`its listing lies past the end of the directory table`))
      return { ref, inodeNumber, extended, permissions, uidIndex, gidIndex, mtime, type, nlink, xattrIndex, size, listing: { block: listing, offset: listingOffset }, parentInode, indexCount, index: cur.position() }
    }
    case 'file': {
      let blocksStart: number, fragment: number, fragmentOffset: number, size: number
      let sparse = 0
      let nlink = 1
      let xattrIndex: number | null = null
      if (!extended) {
        const b = cur.read(16)
        blocksStart = b.readUInt32LE(0)
        fragment = b.readUInt32LE(4)
        fragmentOffset = b.readUInt32LE(8)
        size = b.readUInt32LE(12)
      } else {
        blocksStart = cur.u64('a file start')
        size = cur.u64('a file size')
        sparse = cur.u64('a sparse size')
        const b = cur.read(16)
        nlink = b.readUInt32LE(0)
        fragment = b.readUInt32LE(4)
        fragmentOffset = b.readUInt32LE(8)
        xattrIndex = xattrOf(b.readUInt32LE(12))
      }
      if (blocksStart > sb.bytesUsed) throw corrupt(path, damaged(`its data starts at ${blocksStart}, past the end of the image`))
      if (sparse > size) throw corrupt(path, damaged(`${sparse} sparse bytes in a file of ${size}`))
      const hasFragment = fragment !== NONE
      if (hasFragment && fragment >= sb.fragmentCount) throw corrupt(path, damaged(`fragment ${fragment} is past the ${sb.fragmentCount} fragments`))
      if (hasFragment && fragmentOffset >= sb.blockSize) throw corrupt(path, damaged(`fragment offset ${fragmentOffset} is past a block`))
      const tail = size % sb.blockSize
      if (hasFragment && tail === 0) throw corrupt(path, damaged(`a fragment for a file of whole blocks`))
      const blockCount = hasFragment ? Math.floor(size / sb.blockSize) : Math.ceil(size / sb.blockSize)
      return {
        ref,
        inodeNumber,
        extended,
        permissions,
        uidIndex,
        gidIndex,
        mtime,
        type,
        nlink,
        xattrIndex,
        size,
        blocksStart,
        fragment: hasFragment ? fragment : null,
        fragmentOffset: hasFragment ? fragmentOffset : 0,
        sparse,
        blockCount,
        blockList: cur.position(),
      }
    }
    case 'symlink': {
      const b = cur.read(8)
      const nlink = b.readUInt32LE(0)
      const length = b.readUInt32LE(4)
      if (length === 0 || length > MAX_SYMLINK) throw corrupt(path, damaged(`a symlink target of ${length} bytes (1 to ${MAX_SYMLINK})`))
      const target = Buffer.from(cur.read(length))
      const xattrIndex = extended ? xattrOf(cur.u32()) : null
      return { ref, inodeNumber, extended, permissions, uidIndex, gidIndex, mtime, type, nlink, xattrIndex, target }
    }
    case 'char-device':
    case 'block-device': {
      const b = cur.read(extended ? 12 : 8)
      return { ref, inodeNumber, extended, permissions, uidIndex, gidIndex, mtime, type, nlink: b.readUInt32LE(0), device: b.readUInt32LE(4), xattrIndex: extended ? xattrOf(b.readUInt32LE(8)) : null }
    }
    case 'fifo':
    case 'socket': {
      const b = cur.read(extended ? 8 : 4)
      return { ref, inodeNumber, extended, permissions, uidIndex, gidIndex, mtime, type, nlink: b.readUInt32LE(0), xattrIndex: extended ? xattrOf(b.readUInt32LE(4)) : null }
    }
  }
}

/** An xattr index as stored: NONE means none. */
function xattrOf(v: number): number | null {
  return v === NONE ? null : v
}

export type { SquashfsFileType }
