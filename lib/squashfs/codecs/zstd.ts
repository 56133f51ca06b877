// zstd: libzstd itself through zstd-napi's low-level binding (ZSTD_decompressDCtx into a buffer
// we give it, which it never overruns). A pure-JavaScript decoder was tried first and looped for
// ever on a damaged frame the fuzz test made; libzstd is the decoder the kernel's is taken from.
import { createRequire } from 'node:module'
import type { Decompressor } from '../decompressor.js'

const require = createRequire(import.meta.url)

interface DCtx {
  decompress(dst: Uint8Array, src: Uint8Array): number
}
let dctx: DCtx | undefined
/** Output lands here, then the bytes written are copied out at their size. */
let scratch = Buffer.alloc(0)

export const zstd: Decompressor = {
  decompress(src, maxOut) {
    if (src.length === 0) throw new Error('no zstd frame')
    dctx ??= new (require('zstd-napi/binding') as { DCtx: new () => DCtx }).DCtx()
    if (scratch.length < maxOut) scratch = Buffer.allocUnsafe(maxOut)
    const n = dctx.decompress(scratch.subarray(0, maxOut), src)
    return Buffer.from(scratch.subarray(0, n))
  },
}
