// gzip (zlib streams): Node's own zlib, bounded by maxOutputLength.
import { inflateSync } from 'node:zlib'
import type { Decompressor } from '../decompressor.js'

export const gzip: Decompressor = {
  decompress(src, maxOut) {
    // One output chunk a little larger than a block: no 16 KiB pieces to join, and a full block
    // does not exhaust the chunk (zlib would then allocate a second one to find the end).
    return inflateSync(src, { maxOutputLength: maxOut, chunkSize: maxOut + 1024 })
  },
}
