// lz4 (raw lz4 blocks, no frame): lz4-napi binds lz4_flex with checked decoding. Its block API
// wants the output size in front of the input; we give the bound, and it returns what was there.
import { createRequire } from 'node:module'
import type { Decompressor } from '../decompressor.js'

const require = createRequire(import.meta.url)
let binding: { uncompressSync(data: Uint8Array): Buffer } | undefined
/** Reused for every block: the input is read by the call and not kept. */
let framed = Buffer.alloc(0)

export const lz4: Decompressor = {
  decompress(src, maxOut) {
    binding ??= require('lz4-napi') as { uncompressSync(data: Uint8Array): Buffer }
    if (framed.length < 4 + src.length) framed = Buffer.allocUnsafe(4 + Math.max(src.length, 8192))
    framed.writeUInt32LE(maxOut, 0)
    src.copy(framed, 4)
    return binding.uncompressSync(framed.subarray(0, 4 + src.length))
  },
}
