// The decompressors: each gives back what was compressed, and refuses (without allocating it)
// data that would decompress to more than a block holds — a damaged or hostile image cannot make
// the reader allocate gigabytes.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { deflateSync } from 'node:zlib'
import { decompressorFor } from '../lib/squashfs/decompressor.js'
import { xzBlockSize } from '../lib/squashfs/codecs/xz.js'
import { Random } from './fixtures/random.js'

const require = createRequire(import.meta.url)
const lz4napi = require('lz4-napi') as { compressSync(data: Buffer): Buffer }
const lzoPkg = require('lzo') as { compress(data: Buffer): Buffer }

const BLOCK = 128 << 10
const rand = new Random(7)
const text = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i} ${rand.int(0, 100)}\n`).join('')).subarray(0, BLOCK)
const zeros = Buffer.alloc(8 << 20)

/** Compress with a command-line tool (xz, zstd), as a block of a squashfs image would be. */
function tool(cmd: string, args: string[], input: Buffer): Buffer {
  return execFileSync(cmd, args, { input, maxBuffer: 64 << 20 })
}

const haveTool = (cmd: string) => {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const compressors: Record<string, ((b: Buffer) => Buffer) | null> = {
  gzip: (b) => deflateSync(b),
  lz4: (b) => lz4napi.compressSync(b).subarray(4),
  lzo: (b) => lzoPkg.compress(b),
  // As mksquashfs writes them: a zstd frame with its content size, an xz block with its sizes
  // in its header (xz(1) writes those in threaded mode only).
  zstd: haveTool('zstd') ? (b) => tool('zstd', ['-c', '-q', `--stream-size=${b.length}`], b) : null,
  xz: haveTool('xz') ? (b) => tool('xz', ['-c', '--check=crc32', '-T2', `--block-size=${Math.max(b.length, 1)}`], b) : null,
}

for (const [name, compress] of Object.entries(compressors)) {
  t.test(name, async (t) => {
    if (compress === null) return void t.comment(`${name}(1) is not installed; covered by the image tests`)
    const d = decompressorFor(name as never)!
    t.ok(d.decompress(compress(text), BLOCK).equals(text), 'a block comes back as it was')
    const bomb = compress(zeros)
    t.ok(bomb.length < 1 << 20, `8 MiB of zeros compress to ${bomb.length} bytes`)
    const before = process.memoryUsage().arrayBuffers
    t.throws(() => d.decompress(bomb, BLOCK), 'more than a block is refused')
    t.ok(process.memoryUsage().arrayBuffers - before < 32 << 20, 'without allocating what it would have been')
    t.throws(() => d.decompress(rand.bytes(300), BLOCK), 'garbage is refused')
    t.throws(() => d.decompress(Buffer.alloc(0), BLOCK), 'nothing is refused')
  })
}

t.test('zstd: frames that would not fit, and a frame that made a JavaScript decoder loop', async (t) => {
  const d = decompressorFor('zstd')!
  // A frame header (magic, descriptor 0xc0: 8-byte content size) declaring 1 TiB.
  const huge = Buffer.alloc(16)
  huge.writeUInt32LE(0xfd2fb528, 0)
  huge[4] = 0xc0
  huge.writeBigUInt64LE(1n << 40n, 6)
  t.throws(() => d.decompress(huge, BLOCK), 'a frame declaring 1 TiB')
  // Found by tools/fuzz/squashfs-fuzz.ts: fzstd never returned on it.
  const looped = Buffer.from('28b52ffd2020b50000928103 08f0ff03fa9751650acff1df750c0100191002'.replace(/ /g, ''), 'hex')
  const start = performance.now()
  t.throws(() => d.decompress(looped, 8192), 'a damaged Huffman table is refused')
  t.ok(performance.now() - start < 1000, 'at once')
})

t.test('xz: one block that declares its sizes', async (t) => {
  if (compressors.xz === null) return void t.comment('xz(1) is not installed')
  const streamed = tool('xz', ['-c', '--check=crc32'], text)
  t.throws(() => xzBlockSize(streamed, BLOCK), /does not declare/, 'a block header without sizes (streamed xz)')
  const two = tool('xz', ['-c', '--check=crc32', '-T2', '--block-size=1000'], text.subarray(0, 5000))
  t.throws(() => xzBlockSize(two, BLOCK), /more than one block/, 'a stream of several blocks')
  t.throws(() => xzBlockSize(Buffer.from('definitely not xz data!!!'), BLOCK), /magic/)
  t.equal(xzBlockSize(compressors.xz!(text), BLOCK), text.length)
})

t.test('lzma is not offered', async (t) => {
  t.equal(decompressorFor('lzma'), undefined)
})
