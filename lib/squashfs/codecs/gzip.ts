// gzip (zlib streams): Node's own zlib, bounded by maxOutputLength.
import { inflateSync } from 'node:zlib'
import type { Decompressor } from '../decompressor.js'

export const gzip: Decompressor = {
  decompress(src, maxOut) {
    return inflateSync(src, { maxOutputLength: maxOut })
  },
}
