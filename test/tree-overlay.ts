// The overlay semantics of SPEC §6 and §4: whiteouts, opaque directories, renames without copying,
// hard links across copy-up, metadata-only copy-up, delayed and page-granular data copy-up,
// stable inode numbers. Every case ends by checking the lower's checksum: it is never written.
import t from 'tap'
import type { TapTest } from './fixtures/tap-test.js'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { TreeStore } from '../lib/index.js'
import { BIG_SIZE, buildLower, treeChecksum } from './fixtures/tree-lower.js'

const UPPER_INO_BASE = 2 ** 48

interface Setup {
  lower: string
  dir: string
  sum: string
  store: TreeStore
}

async function setup(t: TapTest, big = false): Promise<Setup> {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower, { big })
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  const s = { lower, dir, sum: treeChecksum(lower), store }
  t.teardown(async () => {
    await s.store.close()
  })
  return s
}

/** Bytes the upper data files take on disk (what copy-up costs). */
function upperBytes(dir: string): number {
  let total = 0
  for (const name of nodeFs.readdirSync(join(dir, 'upper'))) total += nodeFs.statSync(join(dir, 'upper', name)).blocks * 512
  return total
}

async function reopen(s: Setup): Promise<void> {
  await s.store.close()
  s.store = await TreeStore.open(s.dir, { autoFlushMs: 0 })
}

async function readAll(store: TreeStore, path: string): Promise<Buffer> {
  const h = await store.open(path)
  try {
    return await h.read(0, (await h.stat()).size)
  } finally {
    await h.close()
  }
}

t.test('whiteout: a removed lower file is hidden everywhere; the name can be used again', async (t) => {
  const s = await setup(t)
  await s.store.unlink('/etc/passwd')
  await t.rejects(s.store.stat('/etc/passwd'), { code: 'ENOENT' })
  await t.rejects(s.store.open('/etc/passwd'), { code: 'ENOENT' })
  t.notOk((await s.store.readdir('/etc')).some((e) => e.name === 'passwd'), 'not listed')
  t.ok(nodeFs.existsSync(join(s.lower, 'etc/passwd')), 'the lower still has it')
  const h = await s.store.open('/etc/passwd', 'wx')
  await h.write(0, Buffer.from('new'))
  await h.close()
  const st = await s.store.stat('/etc/passwd')
  t.ok(st.ino >= UPPER_INO_BASE, 'a fresh inode, not the lower one')
  t.equal((await readAll(s.store, '/etc/passwd')).toString(), 'new')
  await reopen(s)
  t.equal((await readAll(s.store, '/etc/passwd')).toString(), 'new', 'after reopening')
  t.same([...s.store.changes()].filter((c) => c.path === '/etc/passwd').map((c) => c.status), ['replaced'])
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('opaque directory: rmdir then mkdir hides everything the lower had there', async (t) => {
  const s = await setup(t)
  await t.rejects(s.store.rmdir('/usr/share/doc'), { code: 'ENOTEMPTY' })
  for (const e of await s.store.readdir('/usr/share/doc')) await s.store.unlink(`/usr/share/doc/${e.name}`)
  await s.store.rmdir('/usr/share/doc')
  await s.store.mkdir('/usr/share/doc')
  t.same(await s.store.readdir('/usr/share/doc'), [], 'empty: the lower entries stay hidden')
  await t.rejects(s.store.stat('/usr/share/doc/README'), { code: 'ENOENT' })
  await s.store.create('/usr/share/doc/NEW')
  await reopen(s)
  t.same((await s.store.readdir('/usr/share/doc')).map((e) => e.name), ['NEW'], 'after reopening')
  const change = [...s.store.changes()].find((c) => c.path === '/usr/share/doc')
  t.equal(change?.status, 'opaque')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('rename of lower files and directories copies no data', async (t) => {
  const s = await setup(t, true)
  const bigIno = nodeFs.statSync(join(s.lower, 'big.img')).ino
  await s.store.rename('/big.img', '/home/moved.img')
  await s.store.rename('/usr', '/opt')
  t.equal(upperBytes(s.dir), 0, 'no upper data at all')
  t.equal(s.store.info().files.withData, 0)
  t.equal((await s.store.stat('/home/moved.img')).ino, bigIno, 'same inode')
  t.equal((await s.store.stat('/home/moved.img')).size, BIG_SIZE)
  t.same((await s.store.readdir('/opt/bin')).map((e) => e.name), ['setuid', 'tool', 'tool-link'], 'a moved lower directory lists its lower entries')
  t.equal((await readAll(s.store, '/opt/share/doc/README')).toString(), 'documentation\n'.repeat(100))
  await t.rejects(s.store.stat('/usr'), { code: 'ENOENT' })
  // A change under the moved directory, then moving it back.
  await s.store.unlink('/opt/share/doc/empty')
  await s.store.rename('/opt', '/usr')
  t.same((await s.store.readdir('/usr/share/doc')).map((e) => e.name), ['README'], 'whiteouts move with their directory')
  await reopen(s)
  t.same((await s.store.readdir('/usr/share/doc')).map((e) => e.name), ['README'])
  const statuses = Object.fromEntries([...s.store.changes()].map((c) => [c.path, c.status]))
  t.equal(statuses['/home/moved.img'], 'renamed')
  t.equal(statuses['/big.img'], 'whiteout')
  t.equal(statuses['/usr/share/doc/empty'], 'whiteout')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('hard links stay one inode across copy-up', async (t) => {
  const s = await setup(t)
  const ino = nodeFs.statSync(join(s.lower, 'usr/bin/tool')).ino
  t.equal((await s.store.stat('/usr/bin/tool-link')).ino, ino, 'lower hard links share the lower st_ino')
  const h = await s.store.open('/usr/bin/tool', 'r+')
  await h.write(5, Buffer.from('XX'))
  await h.close()
  t.equal((await readAll(s.store, '/usr/bin/tool-link')).subarray(4, 8).toString(), 'tXXt', 'the write shows through the other name')
  t.equal((await s.store.stat('/usr/bin/tool-link')).nlink, 2)
  await s.store.link('/usr/bin/tool-link', '/home/third')
  t.equal((await s.store.stat('/usr/bin/tool')).nlink, 3)
  await s.store.unlink('/usr/bin/tool')
  await reopen(s)
  t.equal((await s.store.stat('/home/third')).nlink, 2)
  t.equal((await s.store.stat('/home/third')).ino, ino)
  t.equal((await readAll(s.store, '/home/third')).subarray(4, 8).toString(), 'tXXt')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('metadata-only copy-up: chmod, chown, utimens, xattrs copy no data', async (t) => {
  const s = await setup(t, true)
  await s.store.chmod('/big.img', 0o600)
  await s.store.chown('/big.img', 1234, 5678)
  await s.store.utimens('/big.img', { atimeMs: 1_000_000, mtimeMs: 2_000_000 })
  await s.store.setxattr('/big.img', 'user.tag', Buffer.from('v'))
  t.equal(upperBytes(s.dir), 0, 'no data copied')
  t.equal(s.store.info().files.withData, 0)
  const st = await s.store.stat('/big.img')
  t.match(st, { mode: 0o100600, uid: 1234, gid: 5678, mtimeMs: 2_000_000, atimeMs: 1_000_000, size: BIG_SIZE })
  const h = await s.store.open('/big.img')
  t.equal((await h.read(1024 ** 3, 4)).toString(), 'bbbb', 'data still read from the lower')
  await h.close()
  const changes = [...s.store.changes()]
  t.match(changes, [{ path: '/big.img', status: 'metadata', metadata: true }])
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched (mode, owner, times, xattrs)')
})

t.test('a 1-byte write into a 2 GiB sparse lower file copies one page', async (t) => {
  const s = await setup(t, true)
  const h = await s.store.open('/big.img', 'r+')
  t.equal(upperBytes(s.dir), 0, 'opening for writing copies nothing')
  await h.write(123_456_789, Buffer.from('!'))
  await h.fsync()
  t.equal(upperBytes(s.dir), s.store.pageSize, 'the upper grew by one page')
  t.equal(s.store.info().files.dataPages, 1)
  t.equal((await h.read(123_456_788, 3)).toString('hex'), '002100')
  t.equal((await h.read(1024 ** 3, 2)).toString(), 'bb', 'other pages still from the lower')
  await h.close()
  const info = await s.store.fileInfo('/big.img')
  t.match(info.pages, { data: 1, zero: 0, total: BIG_SIZE / s.store.pageSize })
  const map = [...s.store.extents('/big.img')]
  t.match(map.find((e) => e.state === 'data'), { start: Math.floor(123_456_789 / 4096) * 4096, length: 4096 })
  t.ok(map.some((e) => e.state === 'lower'), 'the lower data extent shows')
  t.ok(map.some((e) => e.state === 'hole'), 'the lower holes show')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('truncate: down then up reads zeros; to zero copies nothing (SPEC §4)', async (t) => {
  const s = await setup(t, true)
  await s.store.truncate('/etc/ssl/cert.pem', 10)
  await s.store.truncate('/etc/ssl/cert.pem', 10_000)
  const data = await readAll(s.store, '/etc/ssl/cert.pem')
  t.equal(data.subarray(0, 10).toString(), 'c'.repeat(10))
  t.ok(data.subarray(10).equals(Buffer.alloc(9990)), 'the regrown part reads zeros, not the old lower bytes')
  const h = await s.store.open('/big.img', 'w')
  t.equal((await h.stat()).size, 0, 'O_TRUNC')
  await h.close()
  t.equal(upperBytes(s.dir), 0, 'no page was copied for either')
  await reopen(s)
  t.equal((await s.store.stat('/big.img')).size, 0)
  t.equal((await s.store.stat('/etc/ssl/cert.pem')).size, 10_000)
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('zero and discard: whole pages become ZERO and store nothing; partial pages (SPEC §2)', async (t) => {
  const s = await setup(t, true)
  const ps = s.store.pageSize
  const want = Buffer.alloc(10_000, 'c') // /etc/ssl/cert.pem in the lower
  // zero over [100, 2 pages + 50): page 0's tail and page 2's head are written, page 1 ZERO.
  await s.store.zero('/etc/ssl/cert.pem', 100, 2 * ps - 50)
  want.fill(0, 100, 2 * ps + 50)
  t.ok((await readAll(s.store, '/etc/ssl/cert.pem')).equals(want), 'zero: the range reads zeros, the rest the lower')
  t.match(await s.store.fileInfo('/etc/ssl/cert.pem'), { size: 10_000, pages: { data: 2, zero: 1 } }, 'the whole page ZERO, the partial ones copied up')
  t.equal(upperBytes(s.dir), 2 * ps, 'only the partial pages take space')

  // discard leaves partial pages as they are.
  const h = await s.store.open('/big.img', 'r+')
  await h.write(0, Buffer.alloc(4 * ps, 'w'))
  await h.discard(ps / 2, 3 * ps) // pages 1 and 2 whole inside; 0 and 3 partial
  const head = await h.read(0, 4 * ps)
  t.ok(head.subarray(0, ps).equals(Buffer.alloc(ps, 'w')), 'discard: a partial page keeps its bytes')
  t.ok(head.subarray(ps, 3 * ps).equals(Buffer.alloc(2 * ps)), 'whole pages read zeros')
  t.ok(head.subarray(3 * ps).equals(Buffer.alloc(ps, 'w')), 'the partial page at the end too')
  await h.discard(BIG_SIZE + ps, ps) // past the end: nothing, the size stays
  t.equal((await h.stat()).size, BIG_SIZE, 'discard past the end does not grow the file')
  await h.zero(BIG_SIZE - 10, 20)
  t.equal((await h.stat()).size, BIG_SIZE + 10, 'zero past the end grows the file')
  await h.close()
  // Pages 1-2, and the page the zeroed range ends in: it reaches the end of the file.
  t.match(await s.store.fileInfo('/big.img'), { pages: { zero: 3 } })

  await reopen(s)
  t.ok((await readAll(s.store, '/etc/ssl/cert.pem')).equals(want), 'zeroed ranges survive a reopen')
  const big = await s.store.open('/big.img')
  t.ok((await big.read(ps, 2 * ps)).equals(Buffer.alloc(2 * ps)), 'discarded pages too')
  t.equal((await big.stat()).size, BIG_SIZE + 10)
  await big.close()
  t.ok([...s.store.extents('/etc/ssl/cert.pem')].some((e) => e.state === 'zero' && e.start === ps && e.length === ps), 'the map shows the ZERO page')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('a discard that covers no whole page changes nothing, as in image mode', async (t) => {
  const s = await setup(t)
  const before = await s.store.stat('/etc/ssl/cert.pem')
  await s.store.discard('/etc/ssl/cert.pem', 100, 1000) // inside page 0
  await s.store.discard('/etc/ssl/cert.pem', 20_000, 4096) // past the end
  const after = await s.store.stat('/etc/ssl/cert.pem')
  t.equal(after.mtimeMs, before.mtimeMs, 'mtime unchanged')
  t.equal(after.ino, before.ino)
  t.same([...s.store.changes()].filter((c) => c.path === '/etc/ssl/cert.pem'), [], 'no change recorded')
  t.equal(upperBytes(s.dir), 0, 'nothing copied up')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('zero and discard refuse what they cannot do', async (t) => {
  const s = await setup(t)
  const rejects: Array<[string, () => Promise<unknown>, string]> = [
    ['a directory', () => s.store.zero('/etc', 0, 1), 'EISDIR'],
    ['a missing file', () => s.store.discard('/etc/nope', 0, 1), 'ENOENT'],
    ['a negative offset', () => s.store.zero('/etc/hosts', -1, 1), 'EINVAL'],
    ['a fractional length', () => s.store.discard('/etc/hosts', 0, 1.5), 'EINVAL'],
    ['a symlink to a file (never followed)', () => s.store.zero('/etc/hosts-link', 0, 1), 'ELOOP'],
  ]
  for (const [what, call, code] of rejects) await t.rejects(call(), { code }, what)
  const h = await s.store.open('/etc/hosts', 'r')
  await t.rejects(h.zero(0, 1), { code: 'EBADF' }, 'a handle not open for writing')
  await h.close()
  await t.rejects(h.discard(0, 1), { code: 'ECLOSED' }, 'a closed handle')
  await s.store.close()
  const ro = await TreeStore.open(s.dir, { readOnly: true })
  await t.rejects(ro.zero('/etc/hosts', 0, 1), { code: 'EROFS' }, 'a read-only store')
  await ro.close()
  s.store = await TreeStore.open(s.dir, { autoFlushMs: 0 })
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('inode numbers are stable across copy-up, rename and reopen', async (t) => {
  const s = await setup(t)
  const lowerIno = nodeFs.statSync(join(s.lower, 'etc/hosts')).ino
  const dirIno = nodeFs.statSync(join(s.lower, 'usr/share')).ino
  const childIno = nodeFs.statSync(join(s.lower, 'usr/share/doc/README')).ino
  t.equal((await s.store.stat('/etc/hosts')).ino, lowerIno, 'a lower object reports its lower st_ino')
  const h = await s.store.open('/etc/hosts', 'r+')
  await h.write(0, Buffer.from('#'))
  t.equal((await h.stat()).ino, lowerIno, 'after data copy-up')
  await h.close()
  await s.store.rename('/etc/hosts', '/home/hosts')
  await s.store.rename('/usr/share', '/share')
  t.equal((await s.store.stat('/home/hosts')).ino, lowerIno, 'after rename')
  t.equal((await s.store.stat('/share')).ino, dirIno, 'a renamed directory')
  t.equal((await s.store.stat('/share/doc/README')).ino, childIno, 'a child of a renamed directory')
  const created = await s.store.create('/home/new')
  const dir = await s.store.mkdir('/home/newdir')
  t.ok(created.ino >= UPPER_INO_BASE && dir.ino >= UPPER_INO_BASE, 'upper objects are numbered from 2^48')
  await s.store.rename('/home/new', '/home/newdir/new')
  await reopen(s)
  t.equal((await s.store.stat('/home/hosts')).ino, lowerIno, 'after reopen')
  t.equal((await s.store.stat('/home/newdir/new')).ino, created.ino, 'an upper file after rename and reopen')
  t.equal((await s.store.stat('/home/newdir')).ino, dir.ino)
  const later = await s.store.create('/home/later')
  t.ok(later.ino > dir.ino, 'the counter persisted: no number is handed out twice')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('one view: a handle opened read-only first sees writes made through another', async (t) => {
  const s = await setup(t)
  const ro = await s.store.open('/etc/hosts', 'r')
  const rw = await s.store.open('/etc/hosts', 'r+')
  t.equal((await ro.read(0, 3)).toString(), '127')
  await rw.write(0, Buffer.from('XYZ'))
  t.equal((await ro.read(0, 3)).toString(), 'XYZ', 'seen at once, without flush or reopen')
  await rw.write(100, Buffer.from('tail'))
  t.equal((await ro.stat()).size, 104, 'the size too')
  await rw.close()
  t.equal((await ro.read(100, 4)).toString(), 'tail', 'after the writer closed')
  await ro.close()
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('a removed file stays usable through open handles, then its data is purged', async (t) => {
  const s = await setup(t)
  const h = await s.store.open('/home/user/notes.txt', 'r+')
  await h.write(0, Buffer.from('NOTES'))
  await s.store.unlink('/home/user/notes.txt')
  await t.rejects(s.store.stat('/home/user/notes.txt'), { code: 'ENOENT' })
  await h.write(5, Buffer.from('!'))
  t.equal((await h.read(0, 6)).toString(), 'NOTES!')
  t.equal(nodeFs.readdirSync(join(s.dir, 'upper')).length, 1)
  await h.close()
  t.equal(nodeFs.readdirSync(join(s.dir, 'upper')).length, 1, 'kept until the removal is durable')
  await s.store.flush()
  t.equal(nodeFs.readdirSync(join(s.dir, 'upper')).length, 0, 'the flush made it durable: the upper data file is gone')
  t.equal(s.store.info().dirty, false, 'and nothing is left to flush (forgetting the purge record is harmless)')
  t.equal(s.store.info().namespace.inodes, 1, 'only the directory record is left')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})
