// One interface over the compressors mksquashfs offers, each synchronous: the store's read path
// calls lower reads synchronously, so a block must be decompressed without yielding.
import type { CompressorName } from './superblock.js'
import { gzip } from './codecs/gzip.js'
import { xz } from './codecs/xz.js'
import { lzo } from './codecs/lzo.js'
import { lz4 } from './codecs/lz4.js'
import { zstd } from './codecs/zstd.js'

export interface Decompressor {
  /**
   * The data compressed in `src` (a view the caller reuses: keep nothing of it), at most `maxOut` bytes. Throws (any error; the caller names
   * the block) if `src` is damaged or holds more than `maxOut` bytes; never allocates much more
   * than `maxOut`.
   */
  decompress(src: Buffer, maxOut: number): Buffer
}

/** The native packages behind them load on first use: a device reading gzip images needs no liblzma. */
const DECOMPRESSORS: Record<CompressorName, Decompressor | undefined> = { gzip, lzma: undefined, lzo, xz, lz4, zstd }

/**
 * The decompressor of `name`, or undefined for lzma: mksquashfs still offers it, but its blocks
 * end with a marker that liblzma refuses when the size is known, and the kernel never read it.
 */
export function decompressorFor(name: CompressorName): Decompressor | undefined {
  return DECOMPRESSORS[name]
}
