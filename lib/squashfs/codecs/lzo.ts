// lzo (lzo1x, as the kernel decompresses it): the `lzo` package binds liblzo's
// lzo1x_decompress_safe, which never writes past the output buffer it is given.
import { createRequire } from 'node:module'
import type { Decompressor } from '../decompressor.js'

const require = createRequire(import.meta.url)
let binding: { decompress(input: Buffer, length: number): Buffer } | undefined

export const lzo: Decompressor = {
  decompress(src, maxOut) {
    binding ??= require('lzo') as { decompress(input: Buffer, length: number): Buffer }
    return binding.decompress(src, maxOut)
  },
}
