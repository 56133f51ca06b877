// Self-describing bytes for crash and model tests: every 16-byte cell says which operation wrote
// it and at which absolute offset, so garbage and another page's bytes are recognised at a glance.

/** Cells are 16 bytes at offsets that are multiples of 16. */
export const CELL = 16
/** The op number the lower's bytes carry. */
export const LOWER_OP = 0xffffffff
const MAGIC = 0x7a5c

/** What a cell's bytes say about themselves. */
export type CellInfo = { kind: 'zero' } | { kind: 'cell'; op: number; offset: number } | { kind: 'garbage' }

function checksum(op: number, lo: number, hi: number): number {
  let h = 0x811c9dc5
  for (const v of [op, lo, hi, MAGIC]) {
    h = Math.imul(h ^ (v & 0xffff), 0x01000193)
    h = Math.imul(h ^ (v >>> 16), 0x01000193)
  }
  return h >>> 0
}

function cell(op: number, offset: number): Buffer {
  const b = Buffer.alloc(CELL)
  const lo = offset % 2 ** 32
  const hi = Math.floor(offset / 2 ** 32)
  b.writeUInt32LE(op >>> 0, 0)
  b.writeUInt32LE(lo, 4)
  b.writeUInt16LE(hi, 8)
  b.writeUInt16LE(MAGIC, 10)
  b.writeUInt32LE(checksum(op >>> 0, lo, hi), 12)
  return b
}

/** The bytes op `op` writes at absolute offsets [offset, offset + length). */
export function pattern(op: number, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length)
  fillPattern(out, op, offset)
  return out
}

/** Fill `target` with op `op`'s bytes for absolute offsets [offset, offset + target.length). */
export function fillPattern(target: Uint8Array, op: number, offset: number): void {
  const end = offset + target.length
  for (let c = offset - (offset % CELL); c < end; c += CELL) {
    const bytes = cell(op, c)
    const from = Math.max(c, offset)
    const to = Math.min(c + CELL, end)
    target.set(bytes.subarray(from - c, to - c), from - offset)
  }
}

/** Decode the aligned cell at absolute offset `offset` (a multiple of CELL) of `bytes`. */
export function describeCell(bytes: Uint8Array): CellInfo {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(CELL, bytes.length))
  if (b.every((v) => v === 0)) return { kind: 'zero' }
  if (b.length < CELL || b.readUInt16LE(10) !== MAGIC) return { kind: 'garbage' }
  const op = b.readUInt32LE(0)
  const lo = b.readUInt32LE(4)
  const hi = b.readUInt16LE(8)
  if (b.readUInt32LE(12) !== checksum(op, lo, hi)) return { kind: 'garbage' }
  return { kind: 'cell', op, offset: hi * 2 ** 32 + lo }
}

/**
 * A short human description of `bytes`, read at absolute offset `offset` (a multiple of CELL):
 * which ops' cells it holds, whether they belong elsewhere, and whether any cell is garbage.
 */
export function describeBytes(bytes: Uint8Array, offset: number): string {
  const ops = new Map<string, number>()
  for (let i = 0; i + CELL <= bytes.length; i += CELL) {
    const info = describeCell(bytes.subarray(i, i + CELL))
    let key: string
    if (info.kind === 'cell') {
      const who = info.op === LOWER_OP ? 'lower' : `op ${info.op}`
      key = info.offset === offset + i ? who : `${who} (misplaced, from offset ${info.offset})`
    } else {
      key = info.kind
    }
    ops.set(key, (ops.get(key) ?? 0) + 1)
  }
  return [...ops].map(([k, n]) => `${n}×${k}`).join(', ')
}
