// SquashfsImage against the kernel: images built by the real mksquashfs (every compressor, and
// the options that change the layout) read whole through pagecow's reader and through the
// kernel's squashfs (a loop mount) must agree on every name, type, mode, owner, time, size,
// block count, xattr, link target, device number, inode number and byte.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { seekData, seekHole } from '../lib/fs.js'
import { SquashfsImage } from '../lib/squashfs/squashfs-image.js'
import type { SquashfsInode } from '../lib/squashfs/inode.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { kernelMount, kernelMountMissing, makeBigTree, makeSmallTree, mksquashfs, mksquashfsMissing, VARIANTS, walkImage, walkKernel } from './fixtures/squashfs-tree.js'
import type { TapTest } from './fixtures/tap-test.js'

const missing = mksquashfsMissing() ?? kernelMountMissing()

/** The holes [start, end) that lseek(SEEK_HOLE/SEEK_DATA) reports in `path`. */
function kernelHoles(path: string): Array<[number, number]> {
  const fd = nodeFs.openSync(path, 'r')
  try {
    const size = nodeFs.fstatSync(fd).size
    const holes: Array<[number, number]> = []
    for (let pos = 0; pos < size; ) {
      const hole = seekHole(fd, pos) ?? size
      if (hole >= size) break
      const data = seekData(fd, hole) ?? size
      holes.push([hole, data])
      pos = data
    }
    return holes
  } finally {
    nodeFs.closeSync(fd)
  }
}

/**
 * Compare the whole tree, and the holes of `options.sparse` where the kernel reports holes
 * (Linux's squashfs has SEEK_DATA/SEEK_HOLE since 6.x; an older one reports none, and then the
 * reader's holes are only checked to read as zeros).
 */
function compareWithKernel(t: TapTest, image: string, mnt: string, options: { xattrs?: boolean; sparse?: string } = {}): SquashfsImage {
  const unmount = kernelMount(image, mnt)
  let kernel
  let holes: Array<[number, number]> = []
  try {
    kernel = walkKernel(mnt)
    if (options.sparse !== undefined) holes = kernelHoles(join(mnt, options.sparse))
  } finally {
    unmount()
  }
  const img = SquashfsImage.open(image)
  t.teardown(() => img.close())
  if (options.sparse !== undefined) {
    const file = findPath(img, options.sparse)
    const ours = checkHoles(t, img, file, img.stat(file).size)
    if (holes.length > 0) t.strictSame(ours, holes, `the holes of ${options.sparse} are where the kernel reports them`)
    else t.comment(`this kernel reports no holes in ${options.sparse}; the reader's ${ours.length} read as zeros`)
  }
  const ours = walkImage(img)
  t.strictSame(ours.order, kernel.order, 'the same names, listed in the same order')
  let differ = 0
  for (const [key, k] of kernel.objects) {
    const o = ours.objects.get(key)
    const expected = options.xattrs === false ? { ...k, xattrs: {} } : k
    if (JSON.stringify(o) !== JSON.stringify(expected)) {
      if (differ++ < 5) t.strictSame(o, expected, `${Buffer.from(key, 'hex').toString()} as the kernel sees it`)
    }
  }
  t.equal(differ, 0, `all ${kernel.objects.size} objects as the kernel sees them`)
  return img
}

/** Every hole the reader reports reads as zeros, and data/hole boundaries tile the file. */
function checkHoles(t: TapTest, img: SquashfsImage, file: SquashfsInode, size: number): Array<[number, number]> {
  const holes: Array<[number, number]> = []
  let pos = 0
  for (;;) {
    const hole = img.nextHole(file, pos)
    if (hole >= size) break
    const data = img.nextData(file, hole) ?? size
    t.ok(data > hole, `a hole at ${hole} ends after it`)
    holes.push([hole, data])
    pos = data
    if (pos >= size) break
  }
  const buf = Buffer.alloc(1 << 20)
  for (const [start, end] of holes) {
    for (let at = start; at < end; at += buf.length) {
      const n = img.read(file, buf, 0, Math.min(buf.length, end - at), at)
      if (!buf.subarray(0, n).equals(Buffer.alloc(n))) t.fail(`hole bytes at ${at} are not zeros`)
    }
  }
  return holes
}

function findPath(img: SquashfsImage, path: string): SquashfsInode {
  let inode: SquashfsInode = img.root
  for (const part of path.split('/').filter(Boolean)) {
    const next = img.lookup(inode, Buffer.from(part))
    if (next === null) throw new Error(`no ${path}`)
    inode = next
  }
  return inode
}

if (missing) {
  cannotRun(t, missing)
} else {
  const dir = t.testdir()
  const src = join(dir, 'small')
  makeSmallTree(src)

  for (const v of VARIANTS) {
    t.test(`small tree, ${v.name}: the reader sees what the kernel sees`, async (t) => {
      const image = join(dir, `${v.name}.sqfs`)
      mksquashfs(src, image, v.args)
      const img = compareWithKernel(t, image, join(dir, `mnt-${v.name}`), { xattrs: !v.args.includes('-no-xattrs'), sparse: 'files/sparse' })
      // Every inode through the export table, where the image has one.
      const exported = img.inodeByNumber(1)
      if (v.args.includes('-no-exports')) t.equal(exported, null, 'no export table: inodeByNumber says so')
      else {
        const all = walkImage(img)
        const numbers = new Set([...all.objects.values()].map((o) => o.ino))
        let bad = 0
        for (const n of numbers) if (img.inodeByNumber(n)?.inodeNumber !== n) bad++
        t.equal(bad, 0, `the export table finds all ${numbers.size} inodes`)
      }
      // The hard links are one inode (the kernel agreed on the number above; check it is shared).
      const h1 = img.stat(findPath(img, 'links/h1'))
      t.equal(img.stat(findPath(img, 'files/h3')).inodeNumber, h1.inodeNumber, 'hard links share an inode number')
      t.equal(h1.nlink, 3, 'and count their names')
      // The sparse file: its holes read as zeros, and lie where the source had none of its data.
      const sparse = findPath(img, 'files/sparse')
      const size = img.stat(sparse).size
      const holes = checkHoles(t, img, sparse, size)
      if (!v.args.includes('-b') || v.args.includes('4096')) t.ok(holes.length > 0, 'the sparse file has holes')
      for (const [s, e] of holes) t.ok(e <= 3 << 20 || s >= (3 << 20) + 70_000, `hole [${s}, ${e}) avoids the data at 3 MiB`)
    })
  }

  t.test('the big cases: a 100 MiB sparse file, 8 MiB of mixed data, 10 000 entries', async (t) => {
    const big = join(dir, 'big')
    makeBigTree(big)
    const image = join(dir, 'big.sqfs')
    mksquashfs(big, image, [])
    const img = compareWithKernel(t, image, join(dir, 'mnt-big'), { sparse: 'sparse-100m' })
    const sparse = findPath(img, 'sparse-100m')
    const st = img.stat(sparse)
    t.equal(st.size, 100 << 20)
    t.ok(st.blocks * 512 < 1 << 20, `the sparse file counts ${st.blocks} blocks, not 100 MiB`)
    const holes = checkHoles(t, img, sparse, st.size)
    const holeBytes = holes.reduce((s, [a, b]) => s + b - a, 0)
    t.ok(holeBytes > 99 << 20, `${holeBytes} bytes of holes reported`)
    // Lookups in the 10 000-entry directory: found, and missing names are null.
    const d = findPath(img, 'dir-10000')
    for (const i of [0, 1, 4999, 9999]) t.equal(img.stat(img.lookup(d, Buffer.from(`e${i}`))!).size, i % 10 === 0 ? String(i).length : 0)
    t.equal(img.lookup(d, Buffer.from('e10000')), null)
    t.equal(img.lookup(d, Buffer.from('a')), null)
    t.equal(img.lookup(d, Buffer.from('zzz')), null)
  })

  t.test('a lookup in a 100 000-entry directory reads a few blocks, not the directory', async (t) => {
    const root = join(dir, 'wide')
    const wide = join(root, 'd')
    nodeFs.mkdirSync(wide, { recursive: true })
    // Hard links to two files (ext4 allows 65 000 links to one): cheaper than 100 000 files.
    nodeFs.writeFileSync(join(root, 'a'), 'x')
    nodeFs.writeFileSync(join(root, 'b'), 'y')
    for (let i = 0; i < 100_000; i++) nodeFs.linkSync(join(root, i % 2 ? 'a' : 'b'), join(wide, `name-${String(i).padStart(6, '0')}`))
    const image = join(dir, 'wide.sqfs')
    mksquashfs(root, image, [])
    const img = SquashfsImage.open(image, { cacheBytes: 0 })
    t.teardown(() => img.close())
    const d = findPath(img, 'd')
    const listingBlocks = Math.ceil(img.stat(d).size / 8192)
    for (const name of ['name-000000', 'name-054321', 'name-099999', 'name-1', 'zz']) {
      const before = img.counters.metadataReads
      const found = img.lookup(d, Buffer.from(name))
      const reads = img.counters.metadataReads - before
      t.equal(found !== null, name.length === 11, `${name} ${found ? 'found' : 'not found'}`)
      t.ok(reads <= 6, `lookup of ${name} read ${reads} metadata blocks (the listing has ${listingBlocks})`)
    }
    let count = 0
    for (const _ of img.readdir(d)) count++
    t.equal(count, 100_000, 'readdir still lists every entry')
  })

  t.test('reads: any range, past the end, into an offset of the target', async (t) => {
    const image = join(dir, 'gzip.sqfs')
    const img = SquashfsImage.open(image, { cacheBytes: 1 << 20 })
    t.teardown(() => img.close())
    const file = findPath(img, 'files/f300001')
    const whole = nodeFs.readFileSync(join(src, 'files/f300001'))
    const buf = Buffer.alloc(whole.length + 100)
    for (const [pos, len] of [[0, 1], [131071, 2], [131072, 131072], [299_990, 100], [300_001, 10], [400_000, 5], [5, 300_000]] as const) {
      buf.fill(7)
      const n = img.read(file, buf, 50, len, pos)
      const want = whole.subarray(pos, pos + len)
      t.equal(n, want.length, `read ${len} at ${pos}: ${want.length} bytes`)
      t.ok(buf.subarray(50, 50 + n).equals(want), 'the right bytes')
      t.equal(buf[49], 7, 'nothing written before the target offset')
      t.equal(buf[50 + n], 7, 'nothing written after')
    }
    t.ok(img.counters.cacheBytes <= 1 << 20, `the cache holds ${img.counters.cacheBytes} bytes, within its bound`)
  })

  t.test('bad calls: a table of wrong inputs, each a typed error', async (t) => {
    const image = join(dir, 'gzip.sqfs')
    const img = SquashfsImage.open(image)
    const file = findPath(img, 'files/f1')
    const link = findPath(img, 'links/s-short')
    const cases: Array<[string, () => unknown, string]> = [
      ['open: unknown option', () => SquashfsImage.open(image, { cachebytes: 1 } as never), 'EINVAL'],
      ['open: negative cache', () => SquashfsImage.open(image, { cacheBytes: -1 }), 'EINVAL'],
      ['open: missing file', () => SquashfsImage.open(join(dir, 'nope.sqfs')), 'ENOENT'],
      ['open: a directory', () => SquashfsImage.open(dir), 'EINVAL'],
      ['open: not squashfs', () => SquashfsImage.open(join(src, 'files/f300001')), 'ECORRUPT'],
      ['open: empty file', () => SquashfsImage.open(join(src, 'files/f0')), 'ECORRUPT'],
      ['lookup in a file', () => img.lookup(file, Buffer.from('x')), 'ENOTDIR'],
      ['lookup with a string', () => img.lookup(img.root, 'files' as never), 'EINVAL'],
      ['readdir of a symlink', () => [...img.readdir(link)], 'ENOTDIR'],
      ['read a directory', () => img.read(img.root, Buffer.alloc(1), 0, 1, 0), 'EISDIR'],
      ['read a symlink', () => img.read(link, Buffer.alloc(1), 0, 1, 0), 'EINVAL'],
      ['read: negative position', () => img.read(file, Buffer.alloc(1), 0, 1, -1), 'EINVAL'],
      ['read: fractional length', () => img.read(file, Buffer.alloc(1), 0, 0.5, 0), 'EINVAL'],
      ['read: past the target', () => img.read(file, Buffer.alloc(4), 2, 3, 0), 'EINVAL'],
      ['read: not a buffer', () => img.read(file, [] as never, 0, 0, 0), 'EINVAL'],
      ['readlink of a file', () => img.readlink(file), 'EINVAL'],
      ['nextData: NaN', () => img.nextData(file, NaN), 'EINVAL'],
      ['nextHole of a directory', () => img.nextHole(img.root, 0), 'EISDIR'],
      ['inode: negative ref', () => img.inode(-1), 'EINVAL'],
      ['inode: ref past the table', () => img.inode(2 ** 40), 'ECORRUPT'],
      ['inodeByNumber: 0', () => img.inodeByNumber(0), 'EINVAL'],
      ['inodeByNumber: past the count', () => img.inodeByNumber(img.superblock.inodeCount + 1), 'EINVAL'],
    ]
    for (const [what, fn, code] of cases) t.throws(fn, { code }, what)
    img.close()
    t.throws(() => img.root, { code: 'ECLOSED' }, 'root after close')
    t.throws(() => img.stat(file), { code: 'ECLOSED' }, 'stat after close')
    t.doesNotThrow(() => img.close(), 'a second close is harmless')
  })

  t.test('lzma images are refused as unsupported', async (t) => {
    const image = join(dir, 'lzma.sqfs')
    const r = spawnSync('mksquashfs', [join(src, 'files'), image, '-noappend', '-quiet', '-no-progress', '-comp', 'lzma'])
    if (r.status !== 0) return void t.comment('this mksquashfs has no lzma')
    t.throws(() => SquashfsImage.open(image), { code: 'ENOTSUP' })
  })
}
