// The squashfs 4.0 superblock: the first 96 bytes of an image, read back and checked before
// anything it points at is trusted.
import { z } from 'zod'
import { corrupt } from './corrupt.js'

export const SQUASHFS_MAGIC = 0x73717368 // "hsqs" little-endian
export const SUPERBLOCK_SIZE = 96
/** Decompressed bytes of a full metadata block. */
export const METADATA_SIZE = 8192
export const MIN_BLOCK_SIZE = 4096
export const MAX_BLOCK_SIZE = 1 << 20

/** Compressors by the id the superblock stores. */
export const COMPRESSORS = ['gzip', 'lzma', 'lzo', 'xz', 'lz4', 'zstd'] as const
export type CompressorName = (typeof COMPRESSORS)[number]

/** The superblock's flags, decoded. */
export interface SuperblockFlags {
  uncompressedInodes: boolean
  uncompressedData: boolean
  uncompressedFragments: boolean
  noFragments: boolean
  alwaysFragments: boolean
  duplicates: boolean
  exportable: boolean
  uncompressedXattrs: boolean
  noXattrs: boolean
  compressorOptions: boolean
  uncompressedIds: boolean
}

export interface Superblock {
  inodeCount: number
  /** Seconds since the epoch when the image was made. */
  modificationTime: number
  blockSize: number
  blockLog: number
  fragmentCount: number
  compressor: CompressorName
  flags: SuperblockFlags
  idCount: number
  rootInodeRef: number
  bytesUsed: number
  idTableStart: number
  /** null: the image has no xattr table. */
  xattrIdTableStart: number | null
  inodeTableStart: number
  directoryTableStart: number
  /** null: the image has no fragments. */
  fragmentTableStart: number | null
  /** null: the image has no export (inode lookup) table. */
  exportTableStart: number | null
}

const NO_TABLE = 0xffffffffffffffffn

const position = z.number().int().min(SUPERBLOCK_SIZE)

const schema = z
  .object({
    magic: z.literal(SQUASHFS_MAGIC, { error: 'not a squashfs image (bad magic)' }),
    versionMajor: z.literal(4, { error: 'only squashfs 4.0 is supported' }),
    versionMinor: z.literal(0, { error: 'only squashfs 4.0 is supported' }),
    inodeCount: z.number().int().min(1),
    modificationTime: z.number().int().min(0),
    blockSize: z.number().int().min(MIN_BLOCK_SIZE).max(MAX_BLOCK_SIZE),
    blockLog: z.number().int().min(12).max(20),
    fragmentCount: z.number().int().min(0),
    compressionId: z.number().int().min(1, 'unknown compression id').max(COMPRESSORS.length, 'unknown compression id'),
    flags: z.number().int(),
    idCount: z.number().int().min(1),
    rootInodeRef: z.number().int().min(0),
    bytesUsed: position,
    idTableStart: position,
    xattrIdTableStart: position.nullable(),
    inodeTableStart: position,
    directoryTableStart: position,
    fragmentTableStart: position.nullable(),
    exportTableStart: position.nullable(),
  })
  .refine((s) => 1 << s.blockLog === s.blockSize, { message: 'the block size is not 2^block_log', path: ['blockSize'] })
  .refine((s) => s.inodeTableStart < s.directoryTableStart, { message: 'the directory table starts before the inode table', path: ['directoryTableStart'] })
  .refine((s) => [s.idTableStart, s.xattrIdTableStart, s.directoryTableStart, s.fragmentTableStart, s.exportTableStart].every((p) => p === null || p < s.bytesUsed), {
    message: 'a table starts past the end of the image',
    path: ['bytesUsed'],
  })

/** Parse and check the superblock in `buf` (at least 96 bytes) of an image of `fileSize` bytes. */
export function parseSuperblock(path: string, buf: Buffer, fileSize: number): Superblock {
  if (buf.length < SUPERBLOCK_SIZE) throw corrupt(path, `truncated: ${buf.length} bytes, shorter than a superblock`)
  const u64 = (at: number): number | null => {
    const v = buf.readBigUInt64LE(at)
    if (v === NO_TABLE) return null
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v)
  }
  const raw = {
    magic: buf.readUInt32LE(0),
    inodeCount: buf.readUInt32LE(4),
    modificationTime: buf.readUInt32LE(8),
    blockSize: buf.readUInt32LE(12),
    fragmentCount: buf.readUInt32LE(16),
    compressionId: buf.readUInt16LE(20),
    blockLog: buf.readUInt16LE(22),
    flags: buf.readUInt16LE(24),
    idCount: buf.readUInt16LE(26),
    versionMajor: buf.readUInt16LE(28),
    versionMinor: buf.readUInt16LE(30),
    rootInodeRef: u64(32) ?? -1,
    bytesUsed: u64(40) ?? -1,
    idTableStart: u64(48) ?? -1,
    xattrIdTableStart: u64(56),
    inodeTableStart: u64(64) ?? -1,
    directoryTableStart: u64(72) ?? -1,
    fragmentTableStart: u64(80),
    exportTableStart: u64(88),
  }
  const result = schema.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]
    const field = issue?.path.join('.') ?? 'superblock'
    throw corrupt(path, `superblock: ${field}: ${issue?.message ?? 'invalid'}`, result.error)
  }
  const s = result.data
  if (s.bytesUsed > fileSize) throw corrupt(path, `truncated: the superblock says ${s.bytesUsed} bytes are used, the file has ${fileSize}`)
  const f = s.flags
  return {
    inodeCount: s.inodeCount,
    modificationTime: s.modificationTime,
    blockSize: s.blockSize,
    blockLog: s.blockLog,
    fragmentCount: s.fragmentCount,
    compressor: COMPRESSORS[s.compressionId - 1]!,
    flags: {
      uncompressedInodes: (f & 0x0001) !== 0,
      uncompressedData: (f & 0x0002) !== 0,
      uncompressedFragments: (f & 0x0008) !== 0,
      noFragments: (f & 0x0010) !== 0,
      alwaysFragments: (f & 0x0020) !== 0,
      duplicates: (f & 0x0040) !== 0,
      exportable: (f & 0x0080) !== 0,
      uncompressedXattrs: (f & 0x0100) !== 0,
      noXattrs: (f & 0x0200) !== 0,
      compressorOptions: (f & 0x0400) !== 0,
      uncompressedIds: (f & 0x0800) !== 0,
    },
    idCount: s.idCount,
    rootInodeRef: s.rootInodeRef,
    bytesUsed: s.bytesUsed,
    idTableStart: s.idTableStart,
    xattrIdTableStart: s.xattrIdTableStart,
    inodeTableStart: s.inodeTableStart,
    directoryTableStart: s.directoryTableStart,
    fragmentTableStart: s.fragmentCount === 0 ? null : s.fragmentTableStart,
    exportTableStart: s.exportTableStart,
  }
}
