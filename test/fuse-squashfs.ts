// A FUSE mount of a tree store over a squashfs image, read by real programs and judged against the
// kernel's own mount of the same image: for every image variant (each compressor, the reader's
// layout options) and one big image, walking the two mount points gives the same names (bytes),
// types, inode numbers (hard links one inode), modes, owners, link counts, device numbers, sizes,
// blocks, atime/mtime/ctime to the nanosecond, link targets, xattrs and bytes. A damaged data
// block reads as EIO through the mount (ECORRUPT underneath), never as wrong bytes.
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { lutimensSync } from '../lib/fs.js'
import { checkTreeStore, SquashfsImage, StoreMount, TreeStore } from '../lib/index.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { checkNothingLeftMounted, fuseUsable, mountStore, mountTestDir, ROOT, run, unmountAndWait } from './fixtures/fuse-mounted.js'
import { compareViews, fileSha256 } from './fixtures/squashfs-store.js'
import { kernelMount, kernelMountMissing, makeBigTree, makeSmallTree, mksquashfs, mksquashfsMissing, VARIANTS, walkKernel, type SeenObject } from './fixtures/squashfs-tree.js'

const missing = mksquashfsMissing() ?? kernelMountMissing()
/** Where the damage test writes: inside the first data block, past the fingerprint's first sample. */
const DAMAGE_AT = 10_000

/** What the kernel's squashfs shows of `image`, every time included. */
function kernelView(image: string, mnt: string) {
  const unmount = kernelMount(image, mnt)
  try {
    return walkKernel(mnt, { allTimes: true })
  } finally {
    unmount()
  }
}

if (fuseUsable(t) && (missing === null || cannotRun(t, missing))) {
  t.test('reads as the kernel', async (t) => {
    const dir = mountTestDir(t)
    const src = join(dir, 'small')
    makeSmallTree(src)
    const big = join(dir, 'big')
    makeBigTree(big)
    const images = [...VARIANTS.map((v) => ({ name: v.name, source: src, args: v.args })), { name: 'big', source: big, args: [] }]
    const prepared = []
    for (const v of images) {
      const image = join(dir, `${v.name}.sqfs`)
      mksquashfs(v.source, image, v.args)
      const storeDir = join(dir, `store-${v.name}`)
      await (await TreeStore.create(storeDir, { lower: image })).close()
      const mnt = join(dir, `mnt-${v.name}`)
      nodeFs.mkdirSync(mnt)
      prepared.push({ name: v.name, image, sum: fileSha256(image), kernel: kernelView(image, join(dir, `kernel-${v.name}`)), storeDir, mnt })
    }
    // Served from this process (StoreMount, what `pagecow mount` runs) a few at a time, and one
    // child walks each batch: thirteen CLI servers would cost more than everything else here. A
    // session reads /dev/fuse on the event loop (no pool thread held while it waits), so the
    // batch size only bounds how many mounts are up at once.
    const batch = 4
    const stores: TreeStore[] = []
    const mounts: StoreMount[] = []
    t.teardown(async () => {
      for (const m of mounts) await m.unmount().catch(() => {})
      for (const s of stores) await s.close()
    })
    for (let first = 0; first < prepared.length; first += batch) {
      const some = prepared.slice(first, first + batch)
      for (const p of some) {
        const store = await TreeStore.open(p.storeDir, { readOnly: true })
        stores.push(store)
        mounts.push(await StoreMount.mount(store, p.mnt))
      }
      const walked = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'walk-mounts.ts'), ...some.map((p) => p.mnt)], { timeoutMs: 300_000 })
      t.equal(walked.code, 0, `the walk of ${some.map((p) => p.name).join(', ')}: ${walked.stderr}`)
      const views = JSON.parse(walked.stdout || '[]') as Array<{ objects: Array<[string, SeenObject]>; order: string[] }>
      for (const [i, p] of some.entries()) {
        const view = views[i] ?? { objects: [], order: [] }
        compareViews(t, { objects: new Map(view.objects), order: view.order }, p.kernel, `${p.name} through FUSE`)
      }
      for (const m of mounts.splice(0)) await m.unmount()
      for (const s of stores.splice(0)) await s.close()
    }
    for (const p of prepared) {
      t.same((await checkTreeStore(p.storeDir)).problems, [], `${p.name}: fsck clean`)
      t.equal(fileSha256(p.image), p.sum, `${p.name}: the image file is unchanged`)
    }
  })

  t.test('a damaged data block is EIO through the mount, and the bytes around it still read', async (t) => {
    const dir = mountTestDir(t)
    const src = join(dir, 'src')
    nodeFs.mkdirSync(src)
    const text = Buffer.from(Array.from({ length: 300_000 }, (_, i) => `line ${i} ${(i * 7919) % 100_003}\n`).join(''))
    nodeFs.writeFileSync(join(src, 'file'), text)
    nodeFs.writeFileSync(join(src, 'other'), 'other file\n')
    const image = join(dir, 'image.sqfs')
    mksquashfs(src, image, ['-no-fragments'])
    // The data blocks come first, after the superblock, `file`'s first.
    const img = SquashfsImage.open(image)
    const dataEnd = img.superblock.inodeTableStart
    img.close()
    t.ok(dataEnd > DAMAGE_AT + 64, 'the data blocks lie between the superblock and the inode table')
    const storeDir = join(dir, 'store')
    await (await TreeStore.create(storeDir, { lower: image })).close()
    // Damage the first compressed block after the store recorded the image, keeping its size and
    // mtime, where the fingerprint samples nothing (it hashes 4 KiB at 0, then every ~1/15th of
    // the image): reading the block is what must catch it.
    const st = nodeFs.statSync(image, { bigint: true })
    const fd = nodeFs.openSync(image, 'r+')
    nodeFs.writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, DAMAGE_AT)
    nodeFs.closeSync(fd)
    const ts = (ns: bigint) => ({ sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) })
    lutimensSync(image, ts(st.atimeNs), ts(st.mtimeNs))
    const mnt = join(dir, 'mnt')
    nodeFs.mkdirSync(mnt)
    const m = await mountStore(t, storeDir, mnt) // writable: its server logs to STORE/mount.log
    t.throws(() => nodeFs.readFileSync(join(mnt, 'file')), { code: 'EIO' }, 'reading the damaged block is EIO')
    t.equal(nodeFs.readFileSync(join(mnt, 'other'), 'utf8'), 'other file\n', 'another file still reads')
    t.equal(nodeFs.statSync(join(mnt, 'file')).size, text.length, 'and stat still answers')
    await unmountAndWait(t, m)
    t.match(nodeFs.readFileSync(join(storeDir, 'mount.log'), 'utf8'), /squashfs image .*image\.sqfs: .*data block 0/, 'the server log says what is damaged')
  })
}

checkNothingLeftMounted(t)
