// A damaged squashfs image is ECORRUPT naming what is wrong, never a crash, a hang or unbounded
// memory: a table of hand-made damage (truncation, a directory loop, sizes that do not add up,
// a damaged compressed block for every compressor), then thousands of random mutations of real
// images. tools/squashfs-fuzz.ts runs the random part for as long as asked.
import t from 'tap'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { SquashfsImage } from '../lib/squashfs/squashfs-image.js'
import type { SquashfsInode } from '../lib/squashfs/inode.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { fuzzImage, walkAll } from './fixtures/squashfs-fuzz.js'
import { makeFuzzTree, mksquashfs, mksquashfsMissing } from './fixtures/squashfs-tree.js'
import { testSeeds } from './fixtures/random.js'
import type { TapTest } from './fixtures/tap-test.js'

const UNCOMPRESSED = ['-noI', '-noId', '-noD', '-noF', '-noX']
const COMPRESSORS = ['gzip', 'xz', 'lzo', 'lz4', 'zstd']
/** Random runs per image in `npm test` (six images): several thousand in all, well under 30 s. */
const RUNS = Number(process.env.PAGECOW_FUZZ_RUNS ?? 500)

function at(img: SquashfsImage, path: string): SquashfsInode {
  let inode: SquashfsInode = img.root
  for (const part of path.split('/').filter(Boolean)) inode = img.lookup(inode, Buffer.from(part))!
  return inode
}

/** Where the inode at `ref` starts in an image whose metadata is stored uncompressed. */
function inodeOffset(img: SquashfsImage, ref: number): number {
  return img.superblock.inodeTableStart + Math.floor(ref / 65536) + 2 + (ref % 65536)
}

const missing = mksquashfsMissing()
if (missing) {
  cannotRun(t, missing)
} else {
  const dir = t.testdir()
  const src = join(dir, 'src')
  makeFuzzTree(src)
  const plain = join(dir, 'plain.sqfs')
  mksquashfs(src, plain, ['-b', '4096', ...UNCOMPRESSED])
  const original = nodeFs.readFileSync(plain)

  /** Write `image` and expect opening and walking it to fail with ECORRUPT matching `message`. */
  const expectCorrupt = (t: TapTest, name: string, image: Buffer, message: RegExp, use: (path: string) => void = walkAll) => {
    const path = join(dir, `${name}.sqfs`)
    nodeFs.writeFileSync(path, image)
    t.throws(() => use(path), { code: 'ECORRUPT', message }, name)
  }
  /** List the root (a walk would first trip on the entries the damage broke beside it). */
  const listRoot = (path: string): void => {
    const img = SquashfsImage.open(path)
    try {
      for (const _ of img.readdir(img.root));
    } finally {
      img.close()
    }
  }
  const lookupFiles = (path: string): void => {
    const img = SquashfsImage.open(path)
    try {
      img.lookup(img.root, Buffer.from('files'))
    } finally {
      img.close()
    }
  }

  t.test('hand-made damage, each named', async (t) => {
    const img = SquashfsImage.open(plain)
    t.teardown(() => img.close())
    const sb = img.superblock
    const cases: Array<[string, (b: Buffer) => Buffer, RegExp, ((path: string) => void)?]> = [
      ['empty file', () => Buffer.alloc(0), /truncated/],
      ['truncated in the superblock', (b) => b.subarray(0, 50), /truncated/],
      ['truncated in the tables', (b) => b.subarray(0, sb.inodeTableStart + 100), /truncated/],
      ['bad magic', (b) => (b.writeUInt32LE(0x12345678, 0), b), /bad magic/],
      ['squashfs 3', (b) => (b.writeUInt16LE(3, 28), b), /squashfs 4\.0/],
      ['block size not 2^block_log', (b) => (b.writeUInt16LE(13, 22), b), /block_log|2\^/],
      ['unknown compressor', (b) => (b.writeUInt16LE(9, 20), b), /compression id/],
      ['root reference past the inode table', (b) => (b.writeBigUInt64LE(0xffff0000n, 32), b), /inode table/],
      [
        'a metadata block claiming more than 8 KiB',
        (b) => (b.writeUInt16LE(0x8000 | 9000, sb.inodeTableStart), b),
        /claims 9000 bytes/,
      ],
      [
        'a file block shorter than the file needs',
        (b) => {
          const f = at(img, 'files/f20000')
          if (f.type !== 'file') throw new Error('not a file')
          const listAt = f.blockList.block + 2 + f.blockList.offset
          b.writeUInt32LE((b.readUInt32LE(listAt) & ~0xffffff) | 1000, listAt)
          return b
        },
        /sizes do not add up/,
      ],
      [
        'a file tail past its fragment',
        (b) => {
          const f = at(img, 'files/f100')
          b.writeUInt32LE(4000, inodeOffset(img, f.ref) + 16 + 8)
          return b
        },
        /sizes do not add up/,
      ],
      [
        'a directory listing longer than its table',
        (b) => {
          const d = at(img, 'files')
          // A basic directory: the 16-bit size at 16 + 8.
          b.writeUInt16LE(0xfff0, inodeOffset(img, d.ref) + 16 + 8)
          return b
        },
        /past the end|sizes do not add up/,
      ],
      [
        'a directory entry pointing at its own directory (a loop)',
        (b) => {
          const d = at(img, 'files')
          if (d.type !== 'directory') throw new Error('not a directory')
          // Make the root's entry 'files' name the root itself: the first header of the root listing.
          const root = img.root
          const listing = root.listing.block + 2 + root.listing.offset
          const count = b.readUInt32LE(listing) + 1
          let p = listing + 12
          for (let i = 0; i < count; i++) {
            const nameLength = b.readUInt16LE(p + 6) + 1
            if (b.subarray(p + 8, p + 8 + nameLength).toString() === 'files') {
              b.writeUInt32LE(Math.floor(root.ref / 65536), listing + 4)
              b.writeUInt16LE(root.ref % 65536, p)
              return b
            }
            p += 8 + nameLength
          }
          throw new Error('no entry files in the first header')
        },
        /directory loop/,
        listRoot,
      ],
      [
        'an xattr value past Linux limits',
        (b) => {
          // The xattr id table's first entry: its count becomes huge.
          const idTable = Number(b.readBigUInt64LE(sb.xattrIdTableStart! + 16))
          b.writeUInt32LE(0x7fffffff, idTable + 2 + 8)
          return b
        },
        /attributes/,
      ],
    ]
    for (const [name, damage, message, use] of cases) expectCorrupt(t, name, damage(Buffer.from(original)), message, use)
    const loop = cases.find(([name]) => name.includes('loop'))!
    expectCorrupt(t, 'the loop, found by a lookup', loop[1](Buffer.from(original)), /directory loop/, lookupFiles)
  })

  t.test('a damaged compressed block is ECORRUPT naming the compressor, for every compressor', async (t) => {
    for (const comp of COMPRESSORS) {
      const path = join(dir, `${comp}.sqfs`)
      mksquashfs(src, path, ['-b', '4096', '-comp', comp])
      const img = SquashfsImage.open(path)
      const f = at(img, 'files/f20000')
      if (f.type !== 'file') throw new Error('not a file')
      img.close()
      const b = nodeFs.readFileSync(path)
      // Scramble the middle of the first data block (compressed: the text data compresses).
      for (let i = 8; i < 40; i++) b[f.blocksStart + i] = b[f.blocksStart + i]! ^ 0x5a
      expectCorrupt(t, `${comp}: a scrambled data block`, b, new RegExp(`${comp} cannot decompress|sizes do not add up`))
    }
  })

  t.test(`random damage: ${RUNS} mutations of each of six images`, async (t) => {
    const images: Array<[string, Buffer]> = [['uncompressed', original]]
    for (const comp of COMPRESSORS) images.push([comp, nodeFs.readFileSync(join(dir, `${comp}.sqfs`))])
    const rssBefore = process.memoryUsage().rss
    for (const seed of testSeeds([14])) {
      for (const [name, image] of images) {
        const outcome = fuzzImage(image, join(dir, 'scratch.sqfs'), RUNS, seed)
        t.strictSame(outcome.bugs, [], `${name}, seed ${seed}: every failure is a PagecowError`)
        t.ok(outcome.slowestMs < 5000, `${name}: the slowest run took ${outcome.slowestMs.toFixed(0)} ms`)
        t.comment(`${name}: ${outcome.clean} clean, ${JSON.stringify(outcome.refused)} refused, ${Object.keys(outcome.messages).length} distinct messages`)
      }
    }
    const grown = process.memoryUsage().rss - rssBefore
    t.ok(grown < 200 << 20, `RSS grew by ${(grown / 2 ** 20).toFixed(0)} MiB`)
  })
}
