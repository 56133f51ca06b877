// The one hash of a store's integrity checks: XXH64, for page checksums and for the checksums of
// the records the database holds. Our own addon computes it (native/pagecow.c, written from the
// xxHash specification; the same digests as @node-rs/xxhash, which made the sums of stores
// before it): many pages per call, four at a time with AVX-512 where the CPU has it (about 50 GB/s
// here on 1 MiB, against 14 GB/s a page at a time through @node-rs/xxhash). Not a cryptographic
// hash: it catches damage (flipped bits, torn or misplaced pages, rows edited by hand), not an
// attacker who rewrites a page and its sum together.
import { addon } from '../addon.js'

/** The sum of a page's bytes; never 0 (0 stands for "no sum" in the tables). */
export function pageSum(bytes: Uint8Array): bigint {
  return addon().pageSum(bytes)
}

/** out[i] = pageSum of page i of `bytes` (a short last page as it is); returns the pages summed. */
export function pageSums(bytes: Uint8Array, pageSize: number, out: BigUint64Array): number {
  return addon().pageSums(bytes, pageSize, out)
}

/**
 * The first whole page i >= `from` of `bytes` whose expected[i] is not 0 and differs from its
 * sum, or -1 when every such page matches (expected 0: not checked, the caller judges the page).
 */
export function firstMismatch(bytes: Uint8Array, pageSize: number, expected: BigUint64Array, from: number): number {
  return addon().verifyPages(bytes, pageSize, expected, from)
}

/**
 * The sum of a record: its fields in order, each tagged with its type and length, so that no two
 * different records encode alike ("ab","c" is not "a","bc"; 1 is not "1"). 8 bytes, little-endian.
 */
export function recordSum(fields: ReadonlyArray<number | bigint | string | Uint8Array | null>): Buffer {
  // Encoded into one buffer sized first: a page_sums row (up to 8 KiB) is summed every time it is
  // loaded, on the first read of its pages.
  let length = 0
  const texts: Array<Buffer | undefined> = []
  for (const f of fields) {
    if (f === null) length += 1
    else if (typeof f === 'number' || typeof f === 'bigint') length += 9
    else {
      const bytes = typeof f === 'string' ? Buffer.from(f, 'utf8') : undefined
      texts.push(bytes)
      length += 5 + (bytes ?? (f as Uint8Array)).length
    }
  }
  const all = Buffer.allocUnsafe(length)
  let at = 0
  let t = 0
  for (const f of fields) {
    if (f === null) all[at++] = 0
    else if (typeof f === 'number') {
      all[at] = 1
      all.writeDoubleLE(f, at + 1)
      at += 9
    } else if (typeof f === 'bigint') {
      all[at] = 2
      all.writeBigInt64LE(BigInt.asIntN(64, f), at + 1)
      at += 9
    } else {
      const bytes = texts[t++] ?? (f as Uint8Array)
      all[at] = typeof f === 'string' ? 3 : 4
      all.writeUInt32LE(bytes.length, at + 1)
      all.set(bytes, at + 5)
      at += 5 + bytes.length
    }
  }
  const out = Buffer.alloc(8)
  out.writeBigUInt64LE(addon().xxh64(all))
  return out
}
