// The sums of a lower object's pages, read in order once: what a binding records and what
// `pagecow verify` compares. Each page is hashed as the lower stores it (the last page short,
// not padded); holes are not read (a hole page's sum is the sum of zeros).
import type { LowerSource } from '../page/lower-source.js'
import { pageSum } from './hash.js'

/** Bytes read at a time (a whole number of pages). */
const PIECE_BYTES = 1024 * 1024

const zeroSums = new Map<number, bigint>()

/** The sum of `length` zero bytes (a page of a hole). */
function zeroSum(length: number): bigint {
  let sum = zeroSums.get(length)
  if (sum === undefined) zeroSums.set(length, (sum = pageSum(new Uint8Array(length))))
  return sum
}

/**
 * The sum of every page of `lower` in order, `[page, sum]`. `onBytes(n)`: n more bytes done.
 * A read that comes back short (the lower shrank while read) hashes what came.
 */
export function* lowerPageSums(lower: LowerSource, pageSize: number, onBytes?: (n: number) => void): Generator<[number, bigint]> {
  const size = lower.size
  const pieceBytes = Math.max(pageSize, PIECE_BYTES)
  const buffer = Buffer.allocUnsafe(pieceBytes)
  let page = 0
  for (let pos = 0; pos < size; pos += pieceBytes) {
    const end = Math.min(size, pos + pieceBytes)
    const data = lower.nextData(pos)
    const hole = data === null || data >= end
    const got = hole ? end - pos : lower.readInto(buffer, 0, end - pos, pos)
    for (let at = 0; at < end - pos; at += pageSize, page++) {
      const length = Math.min(pageSize, end - pos - at)
      if (hole) yield [page, zeroSum(length)]
      else yield [page, pageSum(buffer.subarray(Math.min(at, got), Math.min(at + length, got)))]
    }
    onBytes?.(end - pos)
  }
}
