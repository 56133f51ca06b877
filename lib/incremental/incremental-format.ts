// The incremental file (`pagecow export --since`): what changed in an image, in one file of a
// tree store, or in a whole tree store, since a mark, self-describing and checked end to end, so
// that `apply` refuses a damaged or truncated one before it touches its target.
//
// Layout, little-endian:
//   "PCOWINCR" | u32 version | u32 header bytes | header (JSON, UTF-8) | u64 sum of all before it
//   records:   u8 kind | u64 start | u64 length | DATA and OP: `length` bytes | u64 sum
//   last:      the END record: start = the records before it, length = the data bytes before it
// A record's sum is the xxHash64 of its bytes seeded with the sum before it (the header's for the
// first), so a record damaged, dropped, repeated or moved breaks the chain, and a file cut short
// has no END. Nothing may follow END.
// Version 1 (kind `image` or `file`): DATA and ZERO records in offset order, never overlapping.
// Version 2 (kind `tree`): OP records (a JSON operation, tree-operation.ts) in phase order; an OP
// `file` is followed by the DATA and ZERO records of that file, in its offset order. Images and
// files are still written as version 1, so a pagecow that reads only version 1 reads them.
import { createRequire } from 'node:module'
import { z } from 'zod'
import { PagecowError, parseWith } from '../errors.js'
import { treePathSchema, type TreeOperation } from './tree-operation.js'

const require = createRequire(import.meta.url)
const { xxh64 } = require('@node-rs/xxhash') as { xxh64: (input: Uint8Array, seed?: bigint) => bigint }

export const MAGIC = Buffer.from('PCOWINCR', 'latin1')
/** The format of image and file incrementals. */
export const FORMAT_VERSION = 1
/** The format of tree incrementals (OP records). */
export const TREE_FORMAT_VERSION = 2
/** Magic, version and header length. */
export const PREAMBLE_BYTES = MAGIC.length + 8
/** Kind, start and length of a record. */
export const RECORD_HEAD_BYTES = 17
export const SUM_BYTES = 8
/** Largest DATA record: bigger extents are split, so memory and a damaged record's reach stay bounded. */
export const MAX_DATA_RECORD = 1024 * 1024
/** Largest header: the expected-content runs are bounded well below it. */
export const MAX_HEADER_BYTES = 4 * 1024 * 1024
/** Past 4 PiB no store holds an offset (SPEC's EFBIG bound). */
const MAX_OFFSET = 2 ** 52

export const RECORD_DATA = 1
export const RECORD_ZERO = 2
/** Version 2: an operation on the tree (JSON, tree-operation.ts); start 0, length its bytes. */
export const RECORD_OP = 3
export const RECORD_END = 0xff

const markSchema = z.strictObject({
  name: z.string().min(1),
  epoch: z.number().int().positive(),
  created: z.string(),
})

/** A mark as an incremental records it. */
export type IncrementalMark = z.infer<typeof markSchema>

const runSchema = z.tuple([z.number().int().nonnegative().max(MAX_OFFSET), z.number().int().positive().max(MAX_OFFSET)])

export const imageHeaderSchema = z.strictObject({
  format: z.literal('pagecow-incremental'),
  /** `image`: an image store's image; `file`: one regular file of a tree store. */
  kind: z.enum(['image', 'file']),
  /** Which store it came from (a digest of the store's creation record). */
  store: z.string().regex(/^[0-9a-f]{32}$/),
  /** `file`: the file's path in its tree store (name form). */
  path: z.string().min(1).optional(),
  pageSize: z.number().int().min(512).max(1024 * 1024),
  /** The size of the image (file) when exported: apply sets the target to it. */
  size: z.number().int().nonnegative().max(MAX_OFFSET),
  /** The mark the changes are counted from: the target must be at or after it. */
  since: markSchema,
  /** The newest mark when the export began: the result is at or after it. */
  reached: markSchema,
  /** When the export began (ISO 8601). */
  createdAt: z.string(),
  /**
   * Content the target must already hold: byte runs [start, length] of pages not changed since the
   * mark (so their content is the same at the mark and now), and the SHA-256 of their bytes in order.
   */
  expect: z.strictObject({ runs: z.array(runSchema).max(65536), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
})

export type ImageHeader = z.infer<typeof imageHeaderSchema>

export const treeHeaderSchema = z.strictObject({
  format: z.literal('pagecow-incremental'),
  /** `tree`: a whole tree store (format version 2). */
  kind: z.literal('tree'),
  store: z.string().regex(/^[0-9a-f]{32}$/),
  pageSize: z.number().int().min(512).max(1024 * 1024),
  since: markSchema,
  reached: markSchema,
  createdAt: z.string(),
  /** Whether nothing had changed since `reached` when the export began (else the result holds later changes too). */
  atReached: z.boolean(),
  /**
   * What the target must hold already, when it carries no position to check: names the
   * incremental takes away (where they were at the mark) and their types; a sample of at most 1024.
   */
  expect: z.strictObject({ paths: z.array(z.tuple([treePathSchema, z.enum(['file', 'directory', 'symlink', 'fifo', 'socket', 'char-device', 'block-device'])])).max(1024) }),
})

export type TreeHeader = z.infer<typeof treeHeaderSchema>

export type IncrementalHeader = ImageHeader | TreeHeader

/** One record as read back. `data` is only valid until the next record is read. */
export type IncrementalRecord =
  | { kind: 'data'; start: number; length: number; data: Buffer }
  | { kind: 'zero'; start: number; length: number }
  | { kind: 'op'; op: TreeOperation }

export function sumOf(bytes: Uint8Array, seed: bigint): bigint {
  return xxh64(bytes, seed)
}

/** The preamble and header of an incremental, with its sum (the seed of the first record). */
export function encodeHeader(header: IncrementalHeader): { bytes: Buffer; sum: bigint } {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const pre = Buffer.alloc(PREAMBLE_BYTES)
  MAGIC.copy(pre)
  pre.writeUInt32LE(header.kind === 'tree' ? TREE_FORMAT_VERSION : FORMAT_VERSION, MAGIC.length)
  pre.writeUInt32LE(json.length, MAGIC.length + 4)
  const body = Buffer.concat([pre, json])
  const sum = sumOf(body, 0n)
  const tail = Buffer.alloc(SUM_BYTES)
  tail.writeBigUInt64LE(sum)
  return { bytes: Buffer.concat([body, tail]), sum }
}

/** A record's head (kind, start, length). */
export function recordHead(kind: number, start: number, length: number): Buffer {
  const head = Buffer.alloc(RECORD_HEAD_BYTES)
  head[0] = kind
  head.writeBigUInt64LE(BigInt(start), 1)
  head.writeBigUInt64LE(BigInt(length), 9)
  return head
}

/** The sum of a record (its head, then its data), chained on `seed`. */
export function recordSum(head: Buffer, data: Uint8Array | undefined, seed: bigint): bigint {
  return sumOf(data === undefined ? head : Buffer.concat([head, data]), seed)
}

export function corrupt(where: string, what: string): PagecowError {
  return new PagecowError('ECORRUPT', `${where} is not a whole, undamaged pagecow incremental: ${what}; nothing was applied`)
}

/** Parse and check the preamble and header (`bytes` holds at least the preamble). */
export function decodeHeader(where: string, pre: Buffer, readMore: (length: number) => Buffer): { header: IncrementalHeader; sum: bigint; bytes: number } {
  // Empty, or the start of the magic and no more: an incremental cut short, not another file.
  if (pre.length < PREAMBLE_BYTES && pre.subarray(0, MAGIC.length).equals(MAGIC.subarray(0, Math.min(MAGIC.length, pre.length)))) throw corrupt(where, 'it ends inside its preamble')
  if (pre.length < PREAMBLE_BYTES || !pre.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new PagecowError('EINVAL', `${where} is not a pagecow incremental (no PCOWINCR magic at its start); make one with pagecow export STORE OUT --since MARK`)
  }
  const version = pre.readUInt32LE(MAGIC.length)
  if (version !== FORMAT_VERSION && version !== TREE_FORMAT_VERSION) {
    throw new PagecowError('EVERSION', `${where} is a pagecow incremental of format ${version}; this pagecow reads formats ${FORMAT_VERSION} and ${TREE_FORMAT_VERSION}`)
  }
  const length = pre.readUInt32LE(MAGIC.length + 4)
  if (length > MAX_HEADER_BYTES) throw corrupt(where, `a header of ${length} bytes`)
  const rest = readMore(length + SUM_BYTES)
  if (rest.length < length + SUM_BYTES) throw corrupt(where, 'it ends inside its header')
  const json = rest.subarray(0, length)
  const sum = sumOf(Buffer.concat([pre.subarray(0, PREAMBLE_BYTES), json]), 0n)
  if (rest.readBigUInt64LE(length) !== sum) throw corrupt(where, 'its header does not match its checksum')
  let parsed: unknown
  try {
    parsed = JSON.parse(json.toString('utf8'))
  } catch {
    throw corrupt(where, 'its header is not JSON')
  }
  let header: IncrementalHeader
  try {
    header = version === TREE_FORMAT_VERSION ? parseWith(treeHeaderSchema, parsed, 'incremental header') : parseWith(imageHeaderSchema, parsed, 'incremental header')
  } catch (err) {
    throw corrupt(where, `its header is not one pagecow writes (${(err as Error).message})`)
  }
  return { header, sum, bytes: PREAMBLE_BYTES + length + SUM_BYTES }
}

/** The identity of an incremental: its header's sum, as 16 hex digits. */
export function incrementalId(sum: bigint): string {
  return sum.toString(16).padStart(16, '0')
}
