// LowerSquashfs, the squashfs image as a tree store's lower, against LowerDir over the kernel's
// mount of the same image: the two implementations of LowerTree must answer every call alike
// (lstat with the kernel's three times, child, has, list, readlink, openFile's bytes and holes),
// and xattrs as the kernel lists them (symlinks and special files included, which LowerDir cannot
// open). Then what it refuses, and the bounds of its caches.
import t from 'tap'
import { createHash } from 'node:crypto'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { nameToBytes } from '../lib/name-bytes.js'
import { LowerDir } from '../lib/tree/lower-dir.js'
import { LowerSquashfs } from '../lib/tree/lower-squashfs.js'
import type { LowerTree } from '../lib/tree/lower-tree.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { kernelMount, kernelMountMissing, makeSmallTree, mksquashfs, mksquashfsMissing, walkKernel } from './fixtures/squashfs-tree.js'

const missing = mksquashfsMissing() ?? kernelMountMissing()

/** Every path of `lower` (name form, relative), parents before children, in listing order. */
function paths(lower: LowerTree, dir = ''): string[] {
  const out: string[] = []
  for (const e of lower.list(dir).sort((a, b) => Buffer.compare(nameToBytes(a.name), nameToBytes(b.name)))) {
    const rel = dir === '' ? e.name : `${dir}/${e.name}`
    out.push(rel)
    if (e.type === 'directory') out.push(...paths(lower, rel))
  }
  return out
}

/** Everything a LowerFile tells of the file at `rel`: size, mtime, stat, bytes, data/hole map. */
function fileFacts(lower: LowerTree, rel: string): unknown {
  const f = lower.openFile(rel)
  try {
    const bytes = Buffer.alloc(f.size)
    const n = f.readInto(bytes, 0, f.size + 10, 0)
    const map: Array<[number, number | null]> = []
    for (let pos = 0; pos < f.size; ) {
      const data = f.nextData(pos)
      if (data === null) break
      const hole = f.nextHole(data)
      map.push([data, hole])
      pos = hole
    }
    return { size: f.size, mtimeNs: f.mtimeNs, stat: f.stat(), n, sha256: createHash('sha256').update(bytes).digest('hex'), map, tail: f.readInto(Buffer.alloc(4), 0, 4, f.size) }
  } finally {
    f.close()
  }
}

if (missing) {
  cannotRun(t, missing)
} else {
  const dir = t.testdir()
  const src = join(dir, 'src')
  makeSmallTree(src)
  const image = join(dir, 'image.sqfs')
  mksquashfs(src, image, ['-b', '4096'])
  const mnt = join(dir, 'mnt')

  t.test('answers every call as LowerDir does over the kernel’s mount of the image', async (t) => {
    const unmount = kernelMount(image, mnt)
    t.teardown(unmount)
    const kernel = LowerDir.open(mnt)
    const ours = LowerSquashfs.open(image)
    t.teardown(() => ours.close())
    const all = paths(kernel)
    t.strictSame(paths(ours), all, 'the same paths')
    t.strictSame(ours.lstat(''), kernel.lstat(''), 'the root')
    const xattrs = walkKernel(mnt).objects
    let differ = 0
    const same = (a: unknown, b: unknown, what: string) => {
      if (JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) !== JSON.stringify(b, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) && differ++ < 5) t.strictSame(a, b, what)
    }
    for (const rel of all) {
      const k = kernel.lstat(rel)!
      same(ours.lstat(rel), k, `lstat ${rel}`)
      const slash = rel.lastIndexOf('/')
      const [parent, name] = slash < 0 ? ['', rel] : [rel.slice(0, slash), rel.slice(slash + 1)]
      same(ours.child(parent, name), kernel.child(parent, name), `child ${rel}`)
      same(ours.has(parent, name), true, `has ${rel}`)
      same(ours.has(parent, `${name}-no`), false, `has ${rel}-no`)
      if (k.type === 'directory') same(ours.lstat(`${rel}/x`), kernel.lstat(`${rel}/x`), `lstat of a missing name in ${rel}`)
      else same(ours.lstat(`${rel}/x`), null, `lstat under a ${k.type} is null (LowerDir's callers never ask: it would follow a symlink)`)
      if (k.type === 'directory') same(ours.list(rel), kernel.list(rel), `list ${rel}`)
      else same(ours.list(rel), [], `list of a ${k.type}`)
      if (k.type === 'symlink') same(ours.readlink(rel), kernel.readlink(rel), `readlink ${rel}`)
      if (k.type === 'file') same(fileFacts(ours, rel), fileFacts(kernel, rel), `file ${rel}`)
      const want = xattrs.get(nameToBytes(rel).toString('hex'))!.xattrs
      same(Object.fromEntries([...ours.xattrs(rel, k.type)].map(([n, v]) => [n, v.toString('hex')]).sort()), want, `xattrs ${rel}`)
    }
    t.equal(differ, 0, `all ${all.length} objects answer alike`)
    t.equal(ours.full('etc/hosts'), `${image}:/etc/hosts`, 'messages name the image and the path in it')
  })

  t.test('refuses what a lower refuses', async (t) => {
    const ours = LowerSquashfs.open(image)
    t.teardown(() => ours.close())
    const cases: Array<[string, () => unknown, string]> = [
      ['openFile of a missing path', () => ours.openFile('files/none'), 'ENOENT'],
      ['openFile under a file', () => ours.openFile('files/f1/x'), 'ENOENT'],
      ['openFile of a symlink', () => ours.openFile('links/s-short'), 'ELOOP'],
      ['openFile of a directory', () => ours.openFile('files'), 'EISDIR'],
      ['openFile of a fifo', () => ours.openFile('special/fifo'), 'EINVAL'],
      ['openFile of a device', () => ours.openFile('special/null'), 'EINVAL'],
      ['readlink of a file', () => ours.readlink('files/f1'), 'EINVAL'],
      ['readlink of a missing path', () => ours.readlink('links/none'), 'ENOENT'],
      ['the root inode of another image', () => LowerSquashfs.open(image, { rootIno: 1 }), 'ESTALE'],
      ['a misspelled option', () => LowerSquashfs.open(image, { cachebytes: 1 } as never), 'EINVAL'],
      ['a missing image', () => LowerSquashfs.open(join(dir, 'none.sqfs')), 'ENOENT'],
      ['a directory', () => LowerSquashfs.open(dir), 'EINVAL'],
    ]
    for (const [what, call, code] of cases) t.throws(call, { code }, what)
    t.same(ours.lstat('files/none'), null, 'lstat of a missing path is null')
    t.same(ours.lstat('files/f1/x'), null, 'lstat under a file is null')
    t.same(ours.list('files/none'), [], 'list of a missing directory is empty')
    t.same(ours.xattrs('files/none', 'file'), new Map(), 'no xattrs for a missing path')
    const f = ours.openFile('files/f4097')
    const buf = Buffer.alloc(10)
    t.ok(f.size > 10)
    t.equal(f.readInto(buf, 0, 10, f.size - 7), 7, 'a read stops at the end of the file')
    t.equal(f.readInto(buf, 0, 10, f.size + 100), 0, 'and reads nothing past it')
    t.equal(await f.readIntoAsync(buf, 0, 10, 0), 10, 'readIntoAsync reads too')
    await t.rejects(f.readIntoAsync(buf, 0, 100, 0), { code: 'EINVAL' }, 'readIntoAsync rejects what readInto throws')
    f.close()
    t.throws(() => f.readInto(buf, 0, 1, 0), { code: 'ECLOSED' }, 'a closed file reads nothing')
    const g = ours.openFile('files/f1')
    ours.close()
    t.throws(() => g.readInto(buf, 0, 1, 0), { code: 'ECLOSED' }, 'a file of a closed lower reads nothing')
    t.throws(() => ours.lstat('files'), { code: 'ECLOSED' }, 'a closed lower answers nothing')
  })

  t.test('a lookup in a listed directory scans nothing; memory stays bounded', async (t) => {
    const root = join(dir, 'wide')
    nodeFs.mkdirSync(join(root, 'd'), { recursive: true })
    nodeFs.writeFileSync(join(root, 'a'), 'x')
    for (let i = 0; i < 20_000; i++) nodeFs.linkSync(join(root, 'a'), join(root, 'd', `name-${String(i).padStart(6, '0')}`))
    const wide = join(dir, 'wide.sqfs')
    mksquashfs(root, wide, [])
    const ours = LowerSquashfs.open(wide)
    t.teardown(() => ours.close())
    t.equal(ours.list('d').length, 20_000, 'all 20 000 names listed')
    t.ok(ours.child('d', 'name-019999'), 'a lookup past the kept listing still finds the name (through the index)')
    t.equal(ours.child('d', 'name-020000'), null)
    const small = join(dir, 'small.sqfs')
    nodeFs.rmSync(join(root, 'd'), { recursive: true })
    nodeFs.mkdirSync(join(root, 'd'))
    for (let i = 0; i < 1000; i++) nodeFs.linkSync(join(root, 'a'), join(root, 'd', `n${i}`))
    mksquashfs(root, small, [])
    // No block cache: every metadata block a call needs is read from the file, and counted.
    const cold = LowerSquashfs.open(small, { cacheBytes: 0 })
    const kept = LowerSquashfs.open(small, { cacheBytes: 0 })
    t.teardown(() => {
      cold.close()
      kept.close()
    })
    kept.list('d')
    const reads = (lower: LowerSquashfs, name: string) => {
      const before = lower.counters.metadataReads
      const found = lower.child('d', name)
      return { found: found?.stat.nlink ?? null, reads: lower.counters.metadataReads - before }
    }
    const listed = reads(kept, 'n999')
    const looked = reads(cold, 'n999')
    t.equal(listed.found, 1001, 'found through the kept listing')
    t.equal(looked.found, 1001, 'and through the directory index')
    t.ok(listed.reads < looked.reads, `after a listing the lookup reads only the inode (${listed.reads} blocks, ${looked.reads} without)`)
    t.same(reads(kept, 'n1000'), { found: null, reads: 0 }, 'a name the listing lacks costs no read')
  })
}
