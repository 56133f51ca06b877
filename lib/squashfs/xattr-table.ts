// Extended attributes: an inode's xattr index names an entry of the xattr id table, which says
// where its name/value pairs start in the key/value area and how many there are. A value may be
// stored out of line (a reference to a value stored once for many inodes).
import type { BlockReader } from './block-reader.js'
import { corrupt } from './corrupt.js'
import { LookupTable } from './lookup-table.js'
import { MetadataCursor, type TableBounds } from './metadata-cursor.js'
import { METADATA_SIZE } from './superblock.js'

const PREFIXES = ['user.', 'trusted.', 'security.']
const OUT_OF_LINE = 0x100
/** Linux's limits: XATTR_NAME_MAX and XATTR_SIZE_MAX. */
const MAX_NAME = 255
const MAX_VALUE = 65536

export class XattrTable {
  readonly #reader: BlockReader
  readonly #ids: LookupTable
  readonly #kv: TableBounds

  private constructor(reader: BlockReader, ids: LookupTable, kv: TableBounds) {
    this.#reader = reader
    this.#ids = ids
    this.#kv = kv
  }

  /** The table whose header is at `start` (the superblock's xattr id table position). */
  static open(reader: BlockReader, start: number): XattrTable {
    const header = reader.raw(start, 16, 'the xattr id table header')
    const kvStart = Number(header.readBigUInt64LE(0))
    const count = header.readUInt32LE(8)
    if (kvStart < 96 || kvStart >= start) throw corrupt(reader.path, `the xattr table starts at ${kvStart}, not before its id table (${start})`)
    return new XattrTable(reader, new LookupTable(reader, 'the xattr id table', start + 16, count, 16), { name: 'the xattr table', start: kvStart, end: start })
  }

  /** The bytes the attributes of xattr index `index` take (the kernel counts them in st_blocks). */
  size(index: number): number {
    const size = this.#ids.entry(index).readUInt32LE(12)
    if (size === 0) throw corrupt(this.#reader.path, `xattrs ${index}: a size of 0`)
    return size
  }

  /** The attributes of xattr index `index`, full names ("user.x") to values. */
  read(index: number): Map<string, Buffer> {
    const path = this.#reader.path
    const id = this.#ids.entry(index)
    const ref = Number(id.readBigUInt64LE(0) & 0xffffffffffffn)
    const count = id.readUInt32LE(8)
    const where = `xattrs ${index}`
    if (count > MAX_VALUE) throw corrupt(path, `${where}: ${count} attributes`)
    const cur = this.#cursor(ref, where)
    const out = new Map<string, Buffer>()
    for (let i = 0; i < count; i++) {
      const head = cur.read(4)
      const type = head.readUInt16LE(0)
      const nameLength = head.readUInt16LE(2)
      const prefix = PREFIXES[type & 0xff]
      if (prefix === undefined || (type & ~(OUT_OF_LINE | 0xff)) !== 0) throw corrupt(path, `${where}: unknown attribute type ${type}`)
      if (nameLength === 0 || nameLength + prefix.length > MAX_NAME) throw corrupt(path, `${where}: an attribute name of ${nameLength} bytes`)
      const name = prefix + cur.read(nameLength).toString('utf8')
      const valueLength = cur.u32()
      let value: Buffer
      if ((type & OUT_OF_LINE) !== 0) {
        if (valueLength !== 8) throw corrupt(path, `${where}: an out-of-line value reference of ${valueLength} bytes (8)`)
        const valueRef = cur.u64('an out-of-line value reference')
        const at = this.#cursor(valueRef, where)
        value = this.#value(at, at.u32(), where)
      } else {
        value = this.#value(cur, valueLength, where)
      }
      out.set(name, value)
    }
    return out
  }

  #value(cur: MetadataCursor, length: number, where: string): Buffer {
    if (length > MAX_VALUE) throw corrupt(this.#reader.path, `${where}: a value of ${length} bytes (at most ${MAX_VALUE})`)
    return Buffer.from(cur.read(length))
  }

  #cursor(ref: number, where: string): MetadataCursor {
    const block = Math.floor(ref / 65536)
    const offset = ref % 65536
    if (offset >= METADATA_SIZE) throw corrupt(this.#reader.path, `${where}: offset ${offset} is past a metadata block`)
    return new MetadataCursor(this.#reader, this.#kv, this.#kv.start + block, offset)
  }
}
