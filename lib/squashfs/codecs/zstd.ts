// zstd: fzstd, a pure-JavaScript decoder with a synchronous API. It sizes its output from the
// frame header, so we read that header first: a frame must declare its content size (mksquashfs
// and the kernel's zstd always do) and that size must fit, so a damaged header cannot make it
// allocate gigabytes; the output buffer we hand it makes a second frame fail.
import { decompress as fzstdDecompress } from 'fzstd'
import type { Decompressor } from '../decompressor.js'

const ZSTD_MAGIC = 0xfd2fb528

/** The content size a zstd frame header declares, or null if it declares none. */
export function zstdContentSize(src: Buffer): number | null {
  if (src.length < 6 || src.readUInt32LE(0) !== ZSTD_MAGIC) throw new Error('not a zstd frame (bad magic)')
  const descriptor = src[4]!
  const singleSegment = (descriptor >> 5) & 1
  const sizeFlag = descriptor >> 6
  const dictBytes = [0, 1, 2, 4][descriptor & 3]!
  const sizeBytes = sizeFlag === 0 ? singleSegment : 1 << sizeFlag
  if (sizeBytes === 0) return null
  const at = 5 + (singleSegment ? 0 : 1) + dictBytes
  if (src.length < at + sizeBytes) throw new Error('truncated zstd frame header')
  if (sizeBytes === 1) return src[at]!
  if (sizeBytes === 2) return src.readUInt16LE(at) + 256
  if (sizeBytes === 4) return src.readUInt32LE(at)
  const big = src.readBigUInt64LE(at)
  return big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big)
}

export const zstd: Decompressor = {
  decompress(src, maxOut) {
    const size = zstdContentSize(src)
    if (size === null) throw new Error('zstd frame without a content size')
    if (size > maxOut) throw new Error(`zstd frame declares ${size} bytes, more than the ${maxOut} a block holds`)
    const out = new Uint8Array(size)
    fzstdDecompress(src, out)
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength)
  },
}
