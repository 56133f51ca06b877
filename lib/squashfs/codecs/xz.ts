// xz: liblzma through lzma-native (the same decoder xz(1) uses: every BCJ
// filter mksquashfs's -Xbcj offers, CRC checks, a memory limit). lzma-native's streams are
// asynchronous, but its native stream codes synchronously when asked to, which is what we drive.
//
// Neither format is trusted to bound its own output: an xz stream as mksquashfs writes it holds
// one block whose header declares its sizes, and liblzma stops with an error the moment a block
// outgrows its declared size; so we read that header first and refuse a stream that does not
// declare a size that fits, or that holds a second block.
import { createRequire } from 'node:module'
import type { Decompressor } from '../decompressor.js'

const require = createRequire(import.meta.url)

interface NativeStream {
  streamDecoder_(memlimit: number, flags: number): number
  code(chunk: Buffer | null, async: boolean): void
  bufferHandler: (buf: Buffer | null, processedChunks: unknown, err: Error | null | undefined) => void
}
let lzmaNative: { Stream: new () => NativeStream } | undefined

/** liblzma's memory limit: a 64 MiB dictionary is far beyond any squashfs block. */
const MEMLIMIT = 128 << 20
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64]

function run(src: Buffer): Buffer {
  lzmaNative ??= require('lzma-native') as { Stream: new () => NativeStream }
  const stream = new lzmaNative.Stream()
  const status = stream.streamDecoder_(MEMLIMIT, 0)
  if (status !== 0) throw new Error(`liblzma could not start a decoder (status ${status})`)
  const chunks: Buffer[] = []
  let failure: Error | null = null
  stream.bufferHandler = (buf, _processed, err) => {
    if (buf) chunks.push(buf)
    if (err) failure = err
  }
  stream.code(src, false)
  if (failure === null) stream.code(null, false)
  if (failure !== null) throw failure
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}

/** Read a multibyte integer of the xz format at `at`: [value, next position]. */
function varint(src: Buffer, at: number, end: number): [number, number] {
  let value = 0
  for (let i = 0; i < 9; i++) {
    if (at + i >= end) break
    const byte = src[at + i]!
    value += (byte & 0x7f) * 2 ** (7 * i)
    if ((byte & 0x80) === 0) return [value, at + i + 1]
  }
  throw new Error('bad integer in an xz block header')
}

/** The uncompressed size of the single block of the xz stream `src`, checked to fit in `maxOut`. */
export function xzBlockSize(src: Buffer, maxOut: number): number {
  if (src.length < 12 + 12 || !src.subarray(0, 6).equals(XZ_MAGIC)) throw new Error('not an xz stream (bad magic)')
  const check = CHECK_SIZES[src[7]! & 0x0f]!
  const headerAt = 12
  const headerSize = (src[headerAt]! + 1) * 4
  if (src[headerAt] === 0 || headerAt + headerSize > src.length) throw new Error('bad xz block header')
  const flags = src[headerAt + 1]!
  if ((flags & 0x40) === 0 || (flags & 0x80) === 0) throw new Error('xz block header does not declare its sizes')
  const headerEnd = headerAt + headerSize
  const [compressed, next] = varint(src, headerAt + 2, headerEnd)
  const [uncompressed] = varint(src, next, headerEnd)
  if (uncompressed > maxOut) throw new Error(`xz block declares ${uncompressed} bytes, more than the ${maxOut} a block holds`)
  // The block's data, its padding to 4 bytes and its check, then the index: nothing else.
  const indexAt = headerEnd + Math.ceil(compressed / 4) * 4 + check
  if (indexAt >= src.length || src[indexAt] !== 0) throw new Error('xz stream holds more than one block')
  return uncompressed
}

export const xz: Decompressor = {
  decompress(src, maxOut) {
    const size = xzBlockSize(src, maxOut)
    const out = run(src)
    if (out.length !== size) throw new Error(`xz block holds ${out.length} bytes, its header says ${size}`)
    return out
  },
}
