// gzip (zlib streams): Node's own zlib, bounded by maxOutputLength.
import { inflateSync } from 'node:zlib'
import type { Decompressor } from '../decompressor.js'

export const gzip: Decompressor = {
  decompress(src, maxOut) {
    // One output chunk of the block's size: no 16 KiB pieces to join (less garbage per block).
    return inflateSync(src, { maxOutputLength: maxOut, chunkSize: Math.max(64, maxOut) })
  },
}
