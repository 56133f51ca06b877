// The TreeStore API: factories and options, open flags and handles, special files, xattrs,
// resumable readdir, changes(), info(), read-only openers, the writer lock, openStore().
import t from 'tap'
import type { TapTest } from './fixtures/tap-test.js'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { ImageStore, TreeStore, createStore, openStore, storeKind } from '../lib/index.js'
import { buildLower, treeChecksum } from './fixtures/tree-lower.js'

const { O_CREAT, O_EXCL, O_RDWR, O_WRONLY, O_APPEND, O_TRUNC, O_DIRECTORY, O_RDONLY } = nodeFs.constants

async function setup(t: TapTest) {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  const s = { root, lower, dir, store, sum: treeChecksum(lower) }
  t.teardown(() => s.store.close())
  return s
}

t.test('create and open validate their options and places', async (t) => {
  const root = t.testdir({ notdir: 'x', full: { a: 'a' } })
  const lower = join(root, 'lower')
  buildLower(lower)
  await t.rejects(TreeStore.create(join(root, 's1'), { lower: join(root, 'missing') }), { code: 'ENOENT' })
  await t.rejects(TreeStore.create(join(root, 's1'), { lower: join(root, 'notdir') }), { code: 'ENOTDIR' })
  await t.rejects(TreeStore.create(join(root, 'full'), { lower }), { code: 'EEXIST' })
  await t.rejects(TreeStore.create(join(lower, 'inside'), { lower }), { code: 'EINVAL' }, 'a store inside its lower')
  t.notOk(nodeFs.existsSync(join(lower, 'inside')), 'and nothing was left in the lower')
  await t.rejects(TreeStore.create(join(root, 's1'), { lower, pageSize: 1000 }), { code: 'EINVAL' })
  await t.rejects(TreeStore.create(join(root, 's1'), { lower, pagesize: 4096 } as never), { code: 'EINVAL' }, 'misspelled option')
  await t.rejects(TreeStore.open(join(root, 'nothing')), { code: 'ENOENT' })
  const store = await TreeStore.create(join(root, 's1'), { lower, pageSize: 512 })
  t.equal(store.kind, 'tree')
  t.equal(store.pageSize, 512)
  t.equal(store.lowerPath, lower)
  await t.rejects(TreeStore.open(join(root, 's1')), { code: 'EBUSY' }, 'one writer at a time')
  await t.rejects(TreeStore.open(join(root, 's1'), { readonly: true } as never), { code: 'EINVAL' })
  await store.close()
  await store.close()
  await t.rejects(store.stat('/'), { code: 'ECLOSED' })
  t.throws(() => store.info(), { code: 'ECLOSED' })
})

t.test('open flags: O_CREAT, O_EXCL, O_TRUNC, O_APPEND, access modes', async (t) => {
  const { store } = await setup(t)
  await t.rejects(store.open('/home/new', O_RDWR), { code: 'ENOENT' })
  const h = await store.open('/home/new', O_RDWR | O_CREAT | O_EXCL, { mode: 0o640, uid: 11, gid: 22 })
  t.match(await h.stat(), { mode: 0o100640, uid: 11, gid: 22, size: 0, nlink: 1, type: 'file' })
  await h.write(0, Buffer.from('abc'))
  await h.close()
  await t.rejects(h.read(0, 1), { code: 'ECLOSED' })
  await h.close()
  await t.rejects(store.open('/home/new', O_RDWR | O_CREAT | O_EXCL), { code: 'EEXIST' })
  const a = await store.open('/home/new', O_WRONLY | O_APPEND)
  await a.write(0, Buffer.from('def'))
  await t.rejects(a.read(0, 1), { code: 'EBADF' }, 'not open for reading')
  await t.rejects(a.readInto(Buffer.alloc(1), 0), { code: 'EBADF' }, 'readInto: not open for reading')
  await a.close()
  const ri = await store.open('/home/new', 'r')
  const into = Buffer.alloc(8, 0xee)
  t.equal(await ri.readInto(into, 1), 5, 'readInto: fewer bytes at the end of the file')
  t.equal(into.toString('latin1'), 'bcdef\xee\xee\xee', 'and nothing past them is touched')
  t.equal(await ri.readInto(into, 100), 0, 'past the end: nothing')
  await t.rejects(ri.readInto('x' as unknown as Buffer, 0), { code: 'EINVAL' })
  await t.rejects(ri.readInto(into, -1), { code: 'EINVAL' })
  await ri.close()
  await t.rejects(ri.readInto(into, 0), { code: 'ECLOSED' })
  const r = await store.open('/home/new', O_RDONLY)
  t.equal((await r.read(0, 10)).toString(), 'abcdef')
  await t.rejects(r.write(0, Buffer.from('x')), { code: 'EBADF' }, 'not open for writing')
  await t.rejects(r.truncate(0), { code: 'EBADF' })
  const w = await store.open('/home/new', O_WRONLY | O_TRUNC)
  t.equal((await r.stat()).size, 0, 'O_TRUNC, seen through the other handle')
  await w.close()
  await r.close()
  await t.rejects(store.open('/etc', O_RDONLY), { code: 'EISDIR' })
  await t.rejects(store.open('/etc/hosts', O_RDONLY | O_DIRECTORY), { code: 'ENOTDIR' })
  await t.rejects(store.open('/var/fifo', 'r'), { code: 'ENOTSUP' }, 'special files hold no data')
  await t.rejects(store.open('/', 'r'), { code: 'EISDIR' })
  const big = await store.open('/home/big', 'w+')
  await t.rejects(big.read(0, 257 * 1024 * 1024), { code: 'EINVAL' }, 'one read is bounded')
  await t.rejects(big.write(-1, Buffer.from('x')), { code: 'EINVAL' })
  await t.rejects(big.write(2 ** 52, Buffer.from('x')), { code: 'EFBIG' })
  await t.rejects(big.write(0, 'text' as never), { code: 'EINVAL' })
  t.equal(await big.write(0, Buffer.alloc(0)), 0)
  await big.close()
})

t.test('special files are metadata only', async (t) => {
  const { store } = await setup(t)
  const rdev = (8 << 8) | 1
  t.match(await store.mknod('/dev-sda1', { type: 'block-device', mode: 0o660, rdev }), { type: 'block-device', mode: 0o060660, rdev })
  t.match(await store.mknod('/tty', { type: 'char-device', rdev: 5 << 8 }), { type: 'char-device', rdev: 5 << 8 })
  t.match(await store.mknod('/pipe', { type: 'fifo' }), { type: 'fifo', rdev: 0 })
  t.match(await store.mknod('/sock', { type: 'socket' }), { type: 'socket' })
  await t.rejects(store.mknod('/x', { type: 'file' } as never), { code: 'EINVAL' })
  await t.rejects(store.mknod('/pipe', { type: 'fifo' }), { code: 'EEXIST' })
  await t.rejects(store.truncate('/pipe', 0), { code: 'EINVAL' })
  t.match(await store.stat('/var/fifo'), { type: 'fifo' }, 'a lower FIFO')
  t.same((await store.readdir('/')).filter((e) => ['dev-sda1', 'tty', 'pipe', 'sock'].includes(e.name)).map((e) => e.type), ['block-device', 'fifo', 'socket', 'char-device'])
})

t.test('xattrs: the lower’s merged with the upper’s; removing a lower one hides it', async (t) => {
  const s = await setup(t)
  const { store } = s
  t.same(await store.listxattr('/etc/hosts'), ['user.keep', 'user.origin'])
  t.equal((await store.getxattr('/etc/hosts', 'user.origin')).toString(), 'lower')
  await store.setxattr('/etc/hosts', 'user.origin', Buffer.from('upper'))
  await store.setxattr('/etc/hosts', 'user.new', Buffer.from([0, 1, 2]))
  await store.removexattr('/etc/hosts', 'user.keep')
  await t.rejects(store.getxattr('/etc/hosts', 'user.keep'), { code: 'ENODATA' })
  await t.rejects(store.removexattr('/etc/hosts', 'user.keep'), { code: 'ENODATA' })
  await t.rejects(store.setxattr('/etc/hosts', 'user.new', Buffer.from('x'), { create: true }), { code: 'EEXIST' })
  await t.rejects(store.setxattr('/etc/hosts', 'user.none', Buffer.from('x'), { replace: true }), { code: 'ENODATA' })
  await store.setxattr('/etc/hosts', 'user.new', Buffer.from('y'), { replace: true })
  t.same(await store.listxattr('/etc/hosts'), ['user.new', 'user.origin'])
  await store.setxattr('/home', 'trusted.dir', Buffer.from('d'))
  await store.mkdir('/fresh')
  await store.setxattr('/fresh', 'security.label', Buffer.alloc(0))
  t.equal((await store.getxattr('/fresh', 'security.label')).length, 0, 'an empty value is a value')
  await store.close()
  s.store = await TreeStore.open(s.dir)
  t.equal((await s.store.getxattr('/etc/hosts', 'user.origin')).toString(), 'upper', 'after reopening')
  t.equal((await s.store.getxattr('/etc/hosts', 'user.new')).toString(), 'y')
  t.equal(s.store.info().files.withData, 0, 'xattrs copy no data')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower keeps its xattrs')
})

t.test('large reads (through the thread pool) give the same bytes as small ones, in every page state', async (t) => {
  const { store, lower } = await setup(t)
  // A lower file of random data with a hole in the middle, then upper DATA, ZERO (truncate down
  // and up) and a cut past which the lower no longer shows.
  const size = 3 * 1024 * 1024 + 123
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4096) bytes.writeUInt32LE((i * 2654435761) >>> 0, i)
  const fd = nodeFs.openSync(join(lower, 'big.bin'), 'w')
  nodeFs.writeSync(fd, bytes, 0, 1024 * 1024, 0)
  nodeFs.writeSync(fd, bytes, 2 * 1024 * 1024, size - 2 * 1024 * 1024, 2 * 1024 * 1024)
  nodeFs.closeSync(fd)
  const h = await store.open('/big.bin', 'r+')
  await h.write(4096 * 3 + 7, Buffer.alloc(10_000, 0xab))
  await h.write(1024 * 1024 + 512, Buffer.alloc(300_000, 0xcd))
  await h.truncate(2 * 1024 * 1024 + 5000)
  await h.truncate(size + 4096)
  const whole = await h.read(0, size + 4096) // one allocation, read on the event loop
  for (const [offset, length] of [[0, size + 4096], [4095, 200_000], [1024 * 1024 - 3, 70_000], [2 * 1024 * 1024, 1024 * 1024 + 5000], [size - 10, 65_536]] as Array<[number, number]>) {
    const into = Buffer.alloc(length, 0x55)
    const n = await h.readInto(into, offset)
    t.equal(n, Math.min(length, size + 4096 - offset), `readInto ${offset}+${length}: the count`)
    t.ok(into.subarray(0, n).equals(whole.subarray(offset, offset + n)), `readInto ${offset}+${length}: the bytes`)
  }
  await h.close()
})

t.test('statChildren: the stats of names in one directory, undefined for missing ones', async (t) => {
  const { store } = await setup(t)
  await store.unlink('/etc/passwd')
  await store.create('/etc/new')
  const stats = await store.statChildren('/etc', ['hosts', 'passwd', 'new', 'nope'])
  t.same(stats[0], await store.stat('/etc/hosts'), 'a lower file')
  t.equal(stats[1], undefined, 'a whiteout')
  t.same(stats[2], await store.stat('/etc/new'), 'an upper file')
  t.equal(stats[3], undefined, 'a missing name')
  await t.rejects(store.statChildren('/etc/hosts', ['x']), { code: 'ENOTDIR' })
  await t.rejects(store.statChildren('/nope', ['x']), { code: 'ENOENT' })
  await t.rejects(store.statChildren('/etc', ['a/b']), { code: 'EINVAL' }, 'a name with a slash')
  await t.rejects(store.statChildren('/etc', ['..']), { code: 'EINVAL' })
})

t.test('statIfExists: the stat, or undefined for a missing name; a broken parent still throws', async (t) => {
  const { store } = await setup(t)
  t.same(await store.statIfExists('/etc/hosts'), await store.stat('/etc/hosts'), 'a lower file')
  t.equal((await store.statIfExists('/'))?.type, 'directory', 'the root')
  t.equal(await store.statIfExists('/etc/nope'), undefined, 'a missing name')
  await store.unlink('/etc/hosts')
  t.equal(await store.statIfExists('/etc/hosts'), undefined, 'a whiteout hides it')
  await store.create('/etc/hosts')
  t.equal((await store.statIfExists('/etc/hosts'))?.size, 0, 'created again over the whiteout')
  await t.rejects(store.statIfExists('/nope/x'), { code: 'ENOENT' }, 'a missing parent')
  await t.rejects(store.statIfExists('/etc/passwd/x'), { code: 'ENOTDIR' }, 'a file as parent')
  await t.rejects(store.statIfExists('relative/../x'), { code: 'EINVAL' }, 'a bad path')
})

t.test('readdir is sorted by name bytes and resumable after a name', async (t) => {
  const { store } = await setup(t)
  await store.mkdir('/many')
  const names = Array.from({ length: 40 }, (_, i) => `f${String(i).padStart(2, '0')}`)
  for (const n of names) await store.create(`/many/${n}`)
  const seen: string[] = []
  let after: string | undefined
  for (;;) {
    const page = await store.readdir('/many', after === undefined ? { limit: 7 } : { after, limit: 7 })
    if (page.length === 0) break
    seen.push(...page.map((e) => e.name))
    after = page[page.length - 1]!.name
    if (seen.length === 14) {
      await store.create('/many/a-before') // before the cookie: not returned, no duplicate
      await store.create('/many/z-after') // after the cookie: returned once
      await store.unlink('/many/f30')
    }
  }
  t.same(seen, [...names.filter((n) => n !== 'f30'), 'z-after'])
  // Upper and lower entries interleave in one order.
  await store.create('/etc/m-upper')
  t.same((await store.readdir('/etc')).map((e) => e.name), ['hosts', 'hosts-link', 'm-upper', 'passwd', 'shadow', 'ssl'])
  t.same((await store.readdir('/etc', { after: 'm' })).map((e) => e.name), ['m-upper', 'passwd', 'shadow', 'ssl'])
  await t.rejects(store.readdir('/etc', { limit: 0 }), { code: 'EINVAL' })
  const unicode = ['é', 'z', 'Z', '日本', '😀']
  for (const n of unicode) await store.create(`/home/${n}`)
  const sorted = [...unicode, 'user'].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  t.same((await store.readdir('/home')).map((e) => e.name), sorted, 'byte order, not UTF-16 order')
})

t.test('changes() lists what changed like git status', async (t) => {
  const { store } = await setup(t)
  const h = await store.open('/etc/ssl/cert.pem', 'r+')
  await h.write(4096, Buffer.from('x'))
  await h.close()
  await store.chmod('/etc/shadow', 0o640)
  await store.unlink('/etc/passwd')
  await store.create('/etc/passwd')
  await store.unlink('/home/user/notes.txt')
  await store.rename('/usr/share', '/share')
  await store.link('/etc/hosts', '/home/hosts')
  await store.mkdir('/new')
  await store.symlink('x', '/new/link')
  await store.setxattr('/usr/bin/tool', 'user.a', Buffer.from('1'))
  const changes = [...store.changes()]
  t.same(
    changes.map((c) => `${c.status} ${c.path}${c.from ? ` <- ${c.from}` : ''}`),
    [
      'replaced /etc/passwd',
      'metadata /etc/shadow',
      'modified /etc/ssl/cert.pem',
      'linked /home/hosts <- /etc/hosts',
      'whiteout /home/user/notes.txt',
      'new /new',
      'new /new/link',
      'renamed /share <- /usr/share',
      'metadata /usr/bin/tool',
      'whiteout /usr/share',
    ],
  )
  t.match(changes.find((c) => c.path === '/etc/ssl/cert.pem'), { type: 'file', pages: { copied: 1, zero: 0, total: 3 }, metadata: false })
})

t.test('info() and fileInfo() are plain data', async (t) => {
  const { store, lower } = await setup(t)
  const h = await store.open('/usr/bin/tool', 'r+')
  await h.write(0, Buffer.from('A'))
  await h.write(8192, Buffer.alloc(4096, 1))
  const dirty = store.info()
  t.equal(dirty.dirty, true)
  await h.fsync()
  await h.close()
  await store.unlink('/etc/passwd')
  t.equal(store.info().dirty, true, 'a namespace change is durable at the next flush, like data')
  await store.flush()
  const info = store.info()
  t.match(info, {
    kind: 'tree',
    readOnly: false,
    pageSize: 4096,
    lower: { path: lower },
    namespace: { whiteouts: 1 },
    files: { withData: 1, dataPages: 2, zeroPages: 0 },
    upper: { allocatedBytes: 8192 },
    written: { userBytes: 4097, upperBytes: 8192 },
    dirty: false,
  })
  t.same(JSON.parse(JSON.stringify(info)), info, 'serializable as is')
  t.match(await store.fileInfo('/usr/bin/tool'), { size: 20_000, pages: { total: 5, data: 2, zero: 0, lower: 3 }, lowerPath: join(lower, 'usr/bin/tool') })
  t.match(await store.fileInfo('/etc/hosts'), { pages: { data: 0 }, upper: { allocatedBytes: 0 } })
  await t.rejects(store.fileInfo('/etc'), { code: 'EISDIR' })
  t.same((await store.statfs()).namemax, 255)
})

t.test('a read-only opener shares the store with the writer and follows it', async (t) => {
  const s = await setup(t)
  const ro = await TreeStore.open(s.dir, { readOnly: true })
  t.teardown(() => ro.close())
  const reader = await ro.open('/etc/hosts')
  t.equal((await reader.read(0, 3)).toString(), '127')
  const w = await s.store.open('/etc/hosts', 'r+')
  await w.write(0, Buffer.from('XYZ'))
  await w.fsync()
  t.equal((await reader.read(0, 3)).toString(), 'XYZ', 'a committed write reaches the other process’s view')
  await s.store.mkdir('/made')
  t.match(await ro.stat('/made'), { type: 'directory' })
  await w.write(0, Buffer.from('QQQ'))
  await w.close()
  await s.store.flush()
  t.equal((await reader.read(0, 3)).toString(), 'QQQ', 'after a later flush too')
  await reader.close()
  for (const call of [async () => void (await ro.mkdir('/x')), () => ro.unlink('/etc/hosts'), async () => void (await ro.open('/etc/hosts', 'r+')), () => ro.chmod('/etc', 0o700), () => ro.setxattr('/etc', 'user.a', Buffer.from('1'))]) {
    await t.rejects(call(), { code: 'EROFS' })
  }
  await ro.flush()
})

t.test('openStore() opens either kind; each factory refuses the other kind', async (t) => {
  const s = await setup(t)
  const raw = join(s.root, 'disk.raw')
  nodeFs.writeFileSync(raw, Buffer.alloc(65536, 1))
  const image = await ImageStore.create(join(s.root, 'image'), { lower: raw })
  t.equal(image.kind, 'image')
  await image.close()
  await s.store.close()
  t.equal(await storeKind(join(s.root, 'image')), 'image')
  t.equal(await storeKind(s.dir), 'tree')
  const a = await openStore(join(s.root, 'image'), { readOnly: true })
  const b = await openStore(s.dir)
  t.equal(a.kind, 'image')
  t.equal(b.kind, 'tree')
  if (b.kind === 'tree') t.match(await b.stat('/etc/hosts'), { type: 'file' })
  await a.close()
  await b.close()
  await t.rejects(ImageStore.open(s.dir), { code: 'EINVAL' })
  await t.rejects(TreeStore.open(join(s.root, 'image')), { code: 'EINVAL' })
  await t.rejects(openStore(s.dir, { bogus: 1 } as never), { code: 'EINVAL' })
  await t.rejects(openStore(join(s.root, 'nope')), { code: 'ENOENT' })
  const byLower = [await createStore(join(s.root, 'c-tree'), { lower: s.lower }), await createStore(join(s.root, 'c-image'), { lower: raw })]
  t.same(byLower.map((x) => x.kind), ['tree', 'image'], 'createStore() picks the kind from the lower')
  for (const x of byLower) await x.close()
  await t.rejects(createStore(join(s.root, 'c-none'), { lower: join(s.root, 'nope') }), { code: 'ENOENT' })
  s.store = await TreeStore.open(s.dir)
})

t.test('unflushed writes are committed by the automatic flush', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const store = await TreeStore.create(join(root, 'store'), { lower, autoFlushMs: 50 })
  t.teardown(() => store.close())
  const h = await store.open('/etc/hosts', 'r+')
  await h.write(0, Buffer.from('auto'))
  await new Promise<void>((resolve) => {
    const keepAlive = setTimeout(() => {}, 10_000) // the store's timer does not hold the process open
    store.once('flush', () => {
      clearTimeout(keepAlive)
      resolve()
    })
  })
  t.equal(store.info().dirty, false)
  await h.close()
})

t.test('rm removes files, and directories with recursive', async (t) => {
  const s = await setup(t)
  await t.rejects(s.store.rm('/usr'), { code: 'EISDIR' })
  await t.rejects(s.store.rm('/'), { code: 'EBUSY' })
  await t.rejects(s.store.rm('/nope'), { code: 'ENOENT' })
  await t.rejects(s.store.rm('/usr', { recursive: 'yes' } as never), { code: 'EINVAL' })
  t.equal(await s.store.rm('/etc/hosts'), 1)
  await s.store.mkdir('/usr/share/new')
  await s.store.create('/usr/share/new/x')
  t.equal(await s.store.rm('/usr', { recursive: true }), 12, 'lower and upper objects, deepest first')
  await t.rejects(s.store.stat('/usr'), { code: 'ENOENT' })
  t.same((await s.store.readdir('/')).map((e) => e.name), ['etc', 'etc-abs', 'home', 'var'])
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('a flush racing the unlink and last close of a file it is syncing succeeds', async (t) => {
  const { store, dir } = await setup(t)
  for (let round = 0; round < 20; round++) {
    const path = `/race-${round}`
    const h = await store.open(path, O_CREAT | O_RDWR)
    await h.write(0, Buffer.alloc(1 << 20, round + 1))
    const flushed = store.flush()
    // Let the flush reach its fdatasync in the pool, then remove the file under it.
    await new Promise((resolve) => setImmediate(resolve))
    await store.unlink(path)
    await h.close()
    await t.resolves(flushed, `round ${round}: the flush`)
    t.equal(await store.statIfExists(path), undefined, `round ${round}: the file is gone`)
  }
  await store.flush()
  t.same([...store.changes()].filter((c) => c.path.startsWith('/race-')), [], 'nothing of the removed files is left')
  t.same(nodeFs.readdirSync(join(dir, 'upper')), [], 'their upper data files were deleted')
})

t.test('a writable open keeps the locks SQLite holds on its database file', async (t) => {
  // Linux drops every POSIX lock of a process on a file when it closes any descriptor on it: an
  // fsync of the database through a descriptor of our own, once SQLite has the file open, would
  // leave another connection free to checkpoint or delete the WAL under this one.
  const { store, dir } = await setup(t)
  await store.close()
  const reopened = await TreeStore.open(dir, { autoFlushMs: 0 })
  t.teardown(() => reopened.close())
  const ino = nodeFs.statSync(join(dir, 'pagecow.db')).ino
  const held = nodeFs
    .readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((line) => line.includes(' POSIX ') && line.split(/\s+/).some((f) => f.endsWith(`:${ino}`)) && line.split(/\s+/).includes(String(process.pid)))
  t.ok(held.length > 0, `SQLite's lock on pagecow.db is held (${held.length} entries in /proc/locks)`)
})

t.test('every close() waits for the one close: the store can be opened again when any of them returns', async (t) => {
  const { store, dir } = await setup(t)
  const h = await store.open('/etc/hosts', 'r+')
  await h.write(0, Buffer.from('CLOSE'))
  const first = store.close()
  await store.close()
  const again = await TreeStore.open(dir, { autoFlushMs: 0 })
  t.pass('opened for writing right after the second close() returned')
  const r = await again.open('/etc/hosts')
  t.equal((await r.read(0, 5)).toString(), 'CLOSE', 'with the write the close flushed')
  await r.close()
  await again.close()
  await first
})
