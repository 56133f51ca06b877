// exportTree(): the merged tree written out as a plain directory equals the kernel's result of the
// same changes; sparse files stay sparse; owners, modes, times, xattrs and hard links are kept.
import t from 'tap'
import * as nodeFs from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { TreeStore, exportTree, type ExportTreeProgress } from '../lib/index.js'
import { PlainAdapter, snapshot, type FsAdapter } from './fixtures/tree-adapters.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { lowerChecksum, makePair, pairMissing } from './fixtures/tree-pair.js'
import { BIG_SIZE, IS_ROOT as isRoot, canRunAsRoot, treeChecksum } from './fixtures/tree-lower.js'

const require = createRequire(import.meta.url)
const native = require('fs-native-extensions') as { getAttrSync(fd: number, name: string): Buffer | null; listAttrsSync(fd: number): string[] }

async function changes(a: FsAdapter, big = true): Promise<void> {
  if (big) await a.write('/big.img', 300 * 4096 + 10, Buffer.from('upper bytes'))
  await a.write('/etc/hosts', 0, Buffer.from('# edited\n'))
  await a.unlink('/etc/passwd')
  await a.mkdir('/srv')
  await a.create('/srv/new')
  await a.write('/srv/new', 100_000, Buffer.from('after a hole'))
  await a.rename('/usr/share', '/srv/share')
  await a.link('/usr/bin/tool', '/srv/tool-again')
  await a.symlink('../etc/hosts', '/srv/hosts-link')
  await a.chmod('/home/user', 0o700)
  if (isRoot) await a.chown('/home/user/notes.txt', 1000, 1000)
  await a.truncate('/etc/ssl/cert.pem', 3)
}

t.test('export reproduces the merged tree', async (t) => {
  const dir = t.testdir()
  const pair = await makePair(dir, { big: true })
  await changes(pair.store)
  await changes(pair.plain)
  const store = pair.store.store
  await store.setxattr('/etc/hosts', 'user.added', Buffer.from('new'))
  await store.removexattr('/etc/hosts', 'user.keep')
  await store.mknod('/srv/pipe', { type: 'fifo', mode: 0o640 })
  await store.mknod('/srv/sock', { type: 'socket' })
  if (isRoot) await store.mknod('/srv/null', { type: 'char-device', mode: 0o666, rdev: (1 << 8) | 3 })
  await store.utimens('/srv/new', { atimeMs: 1_600_000_000_123, mtimeMs: 1_500_000_000_456 })
  const out = join(dir, 'out')
  const progress: ExportTreeProgress[] = []
  const result = await exportTree(store, out, { onProgress: (p) => progress.push(p) })
  const times /* before anything reads the file */ = nodeFs.statSync(join(out, 'srv/new'))
  t.equal(Math.round(times.mtimeMs), 1_500_000_000_456, 'mtime kept')
  t.equal(Math.round(times.atimeMs), 1_600_000_000_123, 'atime kept')
  t.ok(progress.length > 10 && progress.at(-1)!.entries === result.entries, 'progress reported')
  t.same(result.skipped.map((s) => s.path), ['/srv/sock'], 'only the socket is skipped')
  for (const extra of ['/srv/pipe', '/srv/sock', '/srv/null']) {
    try {
      nodeFs.rmSync(join(out, extra))
    } catch {
      // not there
    }
  }
  t.same(await snapshot(new PlainAdapter(out)), await snapshot(pair.plain), 'the same tree as the kernel made')

  const big = nodeFs.statSync(join(out, 'big.img'))
  t.equal(big.size, BIG_SIZE)
  t.ok(big.blocks * 512 <= 4 * 4096, `sparse: ${big.blocks * 512} bytes allocated for 2 GiB`)
  t.ok(result.bytesCopied < 200_000, 'only data was copied')
  const fd = nodeFs.openSync(join(out, 'etc/hosts'), 'r')
  t.same(native.listAttrsSync(fd).sort(), ['user.added', 'user.origin'])
  t.equal(native.getAttrSync(fd, 'user.added')?.toString(), 'new')
  nodeFs.closeSync(fd)
  t.equal(nodeFs.statSync(join(out, 'usr/bin/tool')).ino, nodeFs.statSync(join(out, 'srv/tool-again')).ino, 'hard links kept')
  t.equal(nodeFs.statSync(join(out, 'usr/bin/tool')).nlink, 3)
  t.equal(nodeFs.statSync(join(out, 'usr/bin/setuid')).mode & 0o7777, 0o4755, 'setuid kept')
  t.equal(nodeFs.readlinkSync(join(out, 'usr/escape')), '../../..', 'symlinks are written verbatim')
  t.equal(nodeFs.readlinkSync(join(out, 'etc-abs')), '/etc')
  if (canRunAsRoot(t, 'checking exported owners')) {
    t.equal(nodeFs.statSync(join(out, 'home/user/notes.txt')).uid, 1000, 'owner kept')
    t.equal(nodeFs.statSync(join(out, 'home/user')).mode & 0o7777, 0o700, 'directory mode kept')
  }
  await store.close()
  t.equal(treeChecksum(pair.lower), pair.lowerSum, 'the lower is untouched')
})

t.test('export of a store over a squashfs image reproduces the merged tree', async (t) => {
  const missing = pairMissing('squashfs')
  if (missing) return cannotRun(t, missing)
  const dir = t.testdir()
  const pair = await makePair(dir, { lowerFormat: 'squashfs' })
  await changes(pair.store, false)
  await changes(pair.plain, false)
  const store = pair.store.store
  const out = join(dir, 'out')
  const result = await exportTree(store, out)
  t.same(result.skipped, [], 'nothing skipped')
  t.same(await snapshot(new PlainAdapter(out)), await snapshot(pair.plain), 'the same tree as the kernel made on a copy of the image’s mount')
  const fd = nodeFs.openSync(join(out, 'etc/hosts'), 'r')
  t.same(native.listAttrsSync(fd).sort(), ['user.keep', 'user.origin'], 'the image’s xattrs')
  nodeFs.closeSync(fd)
  const kernelTimes = nodeFs.statSync(join(dir, 'plain', 'usr/bin/tool'), { bigint: true })
  const exported = nodeFs.statSync(join(out, 'usr/bin/tool'), { bigint: true })
  t.equal(exported.mtimeNs, kernelTimes.mtimeNs, 'the image’s mtime (cp -a kept the kernel’s)')
  t.equal(exported.nlink, 3n, 'hard links kept')
  await store.close()
  t.equal(lowerChecksum(pair), pair.lowerSum, 'the image is untouched')
})

t.test('special files: FIFOs and device nodes', async (t) => {
  if (!canRunAsRoot(t, 'exporting device nodes')) return
  const dir = t.testdir()
  const pair = await makePair(dir)
  const store = pair.store.store
  await store.mknod('/null', { type: 'char-device', mode: 0o666, rdev: (1 << 8) | 3 })
  await store.mknod('/loop0', { type: 'block-device', mode: 0o660, rdev: (7 << 8) | 0 })
  const out = join(dir, 'out')
  await exportTree(store, out)
  const nul = nodeFs.lstatSync(join(out, 'null'))
  t.ok(nul.isCharacterDevice())
  t.equal(nul.rdev, (1 << 8) | 3)
  t.equal(nul.mode & 0o7777, 0o666)
  t.ok(nodeFs.lstatSync(join(out, 'loop0')).isBlockDevice())
  t.ok(nodeFs.lstatSync(join(out, 'var/fifo')).isFIFO(), 'the lower FIFO')
  await store.close()
})

t.test('export refuses a non-empty directory and works from a read-only opener', async (t) => {
  const dir = t.testdir({ full: { x: 'x' } })
  const pair = await makePair(dir)
  await pair.store.close()
  const ro = await TreeStore.open(pair.storeDir, { readOnly: true })
  t.teardown(() => ro.close())
  await t.rejects(exportTree(ro, join(dir, 'full')), { code: 'EEXIST' })
  await t.rejects(exportTree(ro, join(pair.lower, 'etc/out')), { code: 'EINVAL' }, 'never into the lower')
  t.notOk(nodeFs.existsSync(join(pair.lower, 'etc/out')))
  await t.rejects(exportTree(ro, join(pair.storeDir, 'out')), { code: 'EINVAL' }, 'never into the store')
  await t.rejects(exportTree(ro, dir), { code: 'EINVAL' }, 'never around them')
  await t.rejects(exportTree(ro, join(dir, 'o'), { onProgres: () => {} } as never), { code: 'EINVAL' })
  const result = await exportTree(ro, join(dir, 'out'), { owners: false })
  t.ok(result.entries > 20)
  t.same(await snapshot(new PlainAdapter(join(dir, 'out'))), await snapshot(pair.plain))
})
