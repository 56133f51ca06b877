// Tree stores over squashfs images, read through the library and judged against the kernel: for
// images built by the real mksquashfs (every compressor, and the layout options the reader's
// tests use), the whole merged tree of a store over the image is what the kernel's mount of the
// same image shows: names as bytes, types, inode numbers (hard links one inode), modes, owners,
// link counts, device numbers, sizes, blocks, atime/mtime/ctime to the nanosecond, link targets,
// xattrs and every byte. Reading writes nothing: no change recorded, fsck clean, the image file
// unchanged. Then one big image: a 100 MiB file, a sparse one, 10 000 entries, and a one-byte
// write that copies up one page.
import t from 'tap'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { checkTreeStore, createStore, TreeStore } from '../lib/index.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { compareViews, fileSha256, walkStore } from './fixtures/squashfs-store.js'
import { kernelMount, kernelMountMissing, makeBigTree, makeSmallTree, mksquashfs, mksquashfsMissing, VARIANTS, walkKernel } from './fixtures/squashfs-tree.js'

const MiB = 1 << 20
const missing = mksquashfsMissing() ?? kernelMountMissing()

/** What the kernel's squashfs shows of `image`, every time included. */
function kernelView(image: string, mnt: string) {
  const unmount = kernelMount(image, mnt)
  try {
    return walkKernel(mnt, { allTimes: true })
  } finally {
    unmount()
  }
}

/** 100 MiB of text-like lines (compresses, so every block is a compressed one). */
function writeBigText(path: string): void {
  const fd = nodeFs.openSync(path, 'w')
  try {
    const chunk = Buffer.from(Array.from({ length: 30_000 }, (_, i) => `${i} /usr/lib/lib${(i * 7919) % 1000}.so\n`).join(''))
    for (let pos = 0, n = 0; pos < 100 * MiB; n++) {
      const take = Math.min(chunk.length, 100 * MiB - pos)
      chunk.writeUInt32LE(n, 0)
      nodeFs.writeSync(fd, chunk, 0, take, pos)
      pos += take
    }
  } finally {
    nodeFs.closeSync(fd)
  }
}

if (missing) {
  cannotRun(t, missing)
} else {
  const dir = t.testdir()
  const src = join(dir, 'small')
  makeSmallTree(src)

  for (const v of VARIANTS) {
    t.test(`small tree, ${v.name}: the store shows what the kernel shows`, async (t) => {
      const image = join(dir, `${v.name}.sqfs`)
      mksquashfs(src, image, v.args)
      const sum = fileSha256(image)
      const kernel = kernelView(image, join(dir, `mnt-${v.name}`))
      const storeDir = join(dir, `store-${v.name}`)
      const store = await TreeStore.create(storeDir, { lower: image, autoFlushMs: 0 })
      t.same(store.info().lower, { path: image, format: 'squashfs' }, 'a tree store over the squashfs image')
      compareViews(t, await walkStore(store), kernel, v.name)
      t.same([...store.changes()], [], 'reading recorded no change')
      await store.close()
      const report = await checkTreeStore(storeDir)
      t.same(report.problems, [], 'fsck: clean')
      t.equal(fileSha256(image), sum, 'the image file is unchanged')
    })
  }

  t.test('one big image: a 100 MiB file, a 100 MiB sparse file, 10 000 entries; a one-byte write copies one page', async (t) => {
    const big = join(dir, 'big')
    makeBigTree(big)
    writeBigText(join(big, 'text-100m'))
    const image = join(dir, 'big.sqfs')
    mksquashfs(big, image, [])
    nodeFs.rmSync(big, { recursive: true })
    const sum = fileSha256(image)
    const kernel = kernelView(image, join(dir, 'mnt-big'))
    const storeDir = join(dir, 'store-big')
    const store = (await createStore(storeDir, { lower: image, autoFlushMs: 0 })) as TreeStore
    t.equal(store.kind, 'tree', 'createStore tells a squashfs image by its magic')
    compareViews(t, await walkStore(store), kernel, 'big image')

    // The map of a file of the image: its holes are the image's sparse blocks.
    const sparse = [...store.extents('/sparse-100m')]
    const holeBytes = sparse.filter((e) => e.state === 'hole').reduce((n, e) => n + e.length, 0)
    t.ok(holeBytes > 99 * MiB, `the sparse file maps ${holeBytes} bytes of holes`)

    const before = await store.stat('/text-100m')
    const h = await store.open('/text-100m', 'r+')
    const at = 50 * MiB + 12_345
    const pageStart = at - (at % 4096)
    const old = await h.read(at, 1)
    await h.write(at, Buffer.from([old[0]! ^ 0xff]))
    await h.close()
    await store.flush()
    const info = await store.fileInfo('/text-100m')
    t.equal(info.pages.data, 1, 'one page copied up')
    t.equal(info.pages.lower, info.pages.total - 1, 'every other page still the image’s')
    t.equal(info.upper.allocatedBytes, 4096, 'the upper holds one 4 KiB page, not the file or a 128 KiB block')
    t.equal(info.lowerPath, `${image}:/text-100m`, 'the lower bytes come from the image')
    t.same([...store.changes()].map((c) => [c.path, c.status, c.pages]), [['/text-100m', 'modified', { copied: 1, zero: 0, total: 25_600 }]])
    await store.close()

    const again = await TreeStore.open(storeDir, { readOnly: true })
    const after = await again.stat('/text-100m')
    t.equal(after.ino, before.ino, 'the same inode after copy-up')
    t.equal(after.size, 100 * MiB)
    const r = await again.open('/text-100m')
    const page = await r.read(pageStart, 8192)
    await r.close()
    await again.close()
    const unmount = kernelMount(image, join(dir, 'mnt-big'))
    let expected: Buffer
    try {
      const fd = nodeFs.openSync(join(dir, 'mnt-big', 'text-100m'), 'r')
      expected = Buffer.alloc(8192)
      nodeFs.readSync(fd, expected, 0, 8192, pageStart)
      nodeFs.closeSync(fd)
    } finally {
      unmount()
    }
    expected[at - pageStart] = expected[at - pageStart]! ^ 0xff
    t.ok(page.equals(expected), 'after reopening: the changed byte, and the image’s bytes around it')
    t.same((await checkTreeStore(storeDir)).problems, [], 'fsck: clean')
    t.equal(fileSha256(image), sum, 'the image file is unchanged')
  })
}
