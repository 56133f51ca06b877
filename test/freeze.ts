// freeze()/thaw() through the library, for image and tree stores: writers wait (every kind of
// data change), readers go on, thaw lets the writes land, the timeout fails them with EFROZEN,
// close thaws and keeps them, nothing of it survives a reopen; the write hook sees each write
// before it lands; a table of bad inputs.
import t from 'tap'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { ImageStore, TreeStore, type TreeFileHandle } from '../lib/index.js'
import { writeGateOf } from '../lib/store/write-gate.js'
import { stateOf } from './fixtures/promise-state.js'
import type { TapTest } from './fixtures/tap-test.js'

const P = 4096
const { O_RDWR, O_TRUNC, O_APPEND, O_WRONLY } = nodeFs.constants

async function imageStore(t: TapTest, autoFlushMs = 0): Promise<{ dir: string; store: ImageStore; lower: Buffer }> {
  const root = t.testdir()
  const lower = Buffer.alloc(8 * P, 'l')
  nodeFs.writeFileSync(join(root, 'lower.img'), lower)
  const dir = join(root, 'store')
  const store = await ImageStore.create(dir, { lower: join(root, 'lower.img'), autoFlushMs })
  t.teardown(() => store.close())
  return { dir, store, lower }
}

async function treeStore(t: TapTest): Promise<{ dir: string; lower: string; store: TreeStore }> {
  const root = t.testdir()
  const lower = join(root, 'lower')
  nodeFs.mkdirSync(join(lower, 'dir'), { recursive: true })
  nodeFs.writeFileSync(join(lower, 'file'), Buffer.alloc(3 * P, 'f'))
  nodeFs.linkSync(join(lower, 'file'), join(lower, 'file-link'))
  nodeFs.writeFileSync(join(lower, 'other'), 'other\n')
  nodeFs.symlinkSync('file', join(lower, 'symlink'))
  nodeFs.writeFileSync(join(lower, 'empty'), '')
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  t.teardown(() => store.close())
  return { dir, lower, store }
}

t.test('image: every change of data or size waits while frozen, reads go on, thaw lets them land', async (t) => {
  const { store, lower } = await imageStore(t)
  t.notOk(store.isFrozen())
  await store.freeze()
  t.ok(store.isFrozen())
  t.same(store.frozen(), [{ path: null, ino: null, timeoutMs: null, frozenAt: store.frozen()[0]!.frozenAt, waiting: 0 }])
  const write = store.write(100, Buffer.from('written'))
  const zero = store.zero(P, P)
  const discard = store.discard(2 * P, P)
  const truncate = store.truncate(7 * P)
  for (const [name, p] of Object.entries({ write, zero, discard, truncate })) t.equal(await stateOf(p), 'pending', `${name} waits`)
  t.equal(store.frozen()[0]!.waiting, 4, 'four writers waiting')
  t.same(await store.read(0, 8 * P), lower, 'reads go on and see the bytes before the freeze')
  t.equal(store.size, 8 * P)
  t.equal(store.info().pages.data, 0, 'nothing landed')
  await store.flush() // commits what completed (nothing): no deadlock with writers waiting
  t.equal(await stateOf(write), 'pending', 'a flush does not let a waiting write through')
  await store.thaw()
  await Promise.all([write, zero, discard, truncate])
  const expected = Buffer.from(lower)
  expected.write('written', 100)
  expected.fill(0, P, 3 * P)
  t.same(await store.read(0, 8 * P), expected.subarray(0, 7 * P), 'they landed, in the order they were made')
  t.equal(store.size, 7 * P)
  t.same(store.frozen(), [])
})

t.test('image: a timeout fails the waiting writer with EFROZEN and changes nothing', async (t) => {
  const { store, lower } = await imageStore(t)
  await store.freeze({ timeoutMs: 50 })
  t.equal(store.frozen()[0]!.timeoutMs, 50)
  await t.rejects(store.write(0, Buffer.from('x')), { code: 'EFROZEN', errno: 110 })
  await t.rejects(store.truncate(0), { code: 'EFROZEN' })
  t.same(await store.read(0, 8 * P), lower)
  await store.thaw()
  await store.write(0, Buffer.from('x'))
  t.equal((await store.read(0, 1)).toString(), 'x', 'after thaw, writes go through')
  await store.freeze(undefined, { timeoutMs: 0 })
  await t.rejects(store.zero(0, P), { code: 'EFROZEN' }, 'timeoutMs 0: a writer fails at once')
})

t.test('image: close thaws, the waiting writes land and are durable; a reopened store is not frozen', async (t) => {
  const { dir, store } = await imageStore(t)
  await store.freeze()
  const write = store.write(0, Buffer.from('kept'))
  t.equal(await stateOf(write), 'pending')
  await store.close()
  await write
  const again = await ImageStore.open(dir)
  t.teardown(() => again.close())
  t.equal((await again.read(0, 4)).toString(), 'kept')
  t.same(again.frozen(), [], 'frozen state is not persistent')
  await again.write(0, Buffer.from('free'))
  t.equal((await again.read(0, 4)).toString(), 'free')
})

t.test('image: bad inputs and states', async (t) => {
  const { dir, store } = await imageStore(t)
  const bad: Array<[string, () => Promise<unknown>, string]> = [
    ['a path', () => store.freeze('/image' as never), 'EINVAL'],
    ['a path to thaw', () => store.thaw('/image' as never), 'EINVAL'],
    ['options twice', () => store.freeze({} as never, {}), 'EINVAL'],
    ['a misspelled option', () => store.freeze({ timeout: 5 } as never), 'EINVAL'],
    ['a negative timeout', () => store.freeze({ timeoutMs: -1 }), 'EINVAL'],
    ['a fractional timeout', () => store.freeze({ timeoutMs: 1.5 }), 'EINVAL'],
    ['a timeout past setTimeout', () => store.freeze({ timeoutMs: 2 ** 31 }), 'EINVAL'],
    ['a string timeout', () => store.freeze({ timeoutMs: '5' } as never), 'EINVAL'],
    ['options not an object', () => store.freeze(5 as never), 'EINVAL'],
    ['thaw when not frozen', () => store.thaw(), 'EINVAL'],
    ['isFrozen with a path', async () => store.isFrozen('/image' as never), 'EINVAL'],
  ]
  for (const [name, call, code] of bad) await t.rejects(call(), { code }, name)
  t.same(store.frozen(), [], 'none of them froze anything')
  await store.freeze()
  await t.rejects(store.freeze(), { code: 'EBUSY' }, 'freeze twice')
  await store.thaw()
  await store.close()
  await t.rejects(store.freeze(), { code: 'ECLOSED' }, 'freeze on a closed store')
  await t.rejects(store.thaw(), { code: 'ECLOSED' }, 'thaw on a closed store')
  t.throws(() => store.frozen(), { code: 'ECLOSED' })
  t.throws(() => store.thawAll(), { code: 'ECLOSED' })
  const reader = await ImageStore.open(dir, { readOnly: true })
  t.teardown(() => reader.close())
  await t.rejects(reader.freeze(), { code: 'EROFS' }, 'a read-only store has no writers to hold')
})

t.test('tree: every change of the file\'s data or size waits, by any handle or name; reads go on', async (t) => {
  const { store } = await treeStore(t)
  const before = await store.stat('/file')
  const a = await store.open('/file', O_RDWR)
  const viaLink = await store.open('/file-link', O_WRONLY | O_APPEND)
  const reader = await store.open('/file', 'r')
  t.teardown(() => Promise.all([a.close(), viaLink.close(), reader.close()]))
  t.notOk(a.frozen)
  await store.freeze('/file')
  t.match(store.frozen(), [{ path: '/file', ino: before.ino, timeoutMs: null, waiting: 0 }])
  t.ok(a.frozen && viaLink.frozen, 'every handle of the file tells it is frozen')
  t.ok(await store.isFrozen('/file-link'), 'so does every name of it')
  t.notOk(await store.isFrozen('/other'))
  const waits: Record<string, Promise<unknown>> = {
    'handle write': a.write(0, Buffer.from('A')),
    'append through the other name': viaLink.write(0, Buffer.from('+')),
    'handle truncate': a.truncate(5 * P),
    'handle zero': a.zero(P, 10),
    'handle discard': a.discard(P, P),
    'path truncate': store.truncate('/file-link', 4 * P),
    'path zero': store.zero('/file', 0, 1),
    'path discard': store.discard('/file', 0, P),
    'open with O_TRUNC': store.open('/file', O_RDWR | O_TRUNC).then((h) => h.close()),
  }
  for (const [name, p] of Object.entries(waits)) t.equal(await stateOf(p), 'pending', `${name} waits`)
  t.same(await reader.read(0, 3 * P), Buffer.alloc(3 * P, 'f'), 'a reader sees the bytes of the freeze')
  t.equal((await store.stat('/file')).size, 3 * P)
  t.equal(store.frozen()[0]!.waiting, Object.keys(waits).length)
  // Metadata and names do not wait (see the README: a reader's bytes do not change).
  await store.chmod('/file', 0o600)
  await store.utimens('/file', { mtimeNs: 5_000_000_000n })
  await store.setxattr('/file', 'user.backup', Buffer.from('1'))
  await store.link('/file', '/file-link2')
  await store.unlink('/file-link2')
  t.equal((await store.stat('/file')).mode & 0o7777, 0o600)
  // Other files are not frozen.
  const other = await store.open('/other', O_RDWR)
  await other.write(0, Buffer.from('O'))
  await other.close()
  t.equal((await store.stat('/file')).size, 3 * P, 'still nothing landed')
  await store.thaw('/file')
  await Promise.all(Object.values(waits))
  t.equal((await store.stat('/file')).size, 0, 'they landed in order: the O_TRUNC open last')
})

t.test('tree: an append lands at the end as it is when the write lands, not when it was made', async (t) => {
  const { store } = await treeStore(t)
  const h = await store.open('/other', O_WRONLY | O_APPEND)
  t.teardown(() => h.close())
  await store.freeze('/other')
  const appended = h.write(0, Buffer.from('B'))
  const grown = store.truncate('/other', 10)
  t.equal(await stateOf(appended), 'pending')
  await store.thaw('/other')
  await Promise.all([appended, grown])
  t.equal((await store.stat('/other')).size, 10, 'the append landed first (at 6), then the truncate to 10')
  const r = await store.open('/other')
  t.same(await r.read(0, 10), Buffer.from('other\nB\0\0\0'))
  await r.close()
})

t.test('tree: rename and unlink of a frozen file do not wait; thaw by the old name; the waiting write lands on the file', async (t) => {
  const { store } = await treeStore(t)
  const h = await store.open('/file', O_RDWR)
  await store.freeze('/file')
  const write = h.write(0, Buffer.from('W'))
  await store.rename('/file', '/renamed')
  await store.unlink('/file-link')
  t.equal(await stateOf(write), 'pending')
  t.match(store.frozen(), [{ path: '/file' }], 'listed under the name it was frozen by')
  await t.rejects(store.freeze('/renamed'), { code: 'EBUSY', message: /as \/file/ }, 'the same inode under its new name is frozen already')
  await store.thaw('/file')
  await write
  await h.close()
  const r = await store.open('/renamed')
  t.equal((await r.read(0, 2)).toString(), 'Wf')
  await r.close()
  // Thaw by another name of the frozen inode.
  await store.link('/renamed', '/alias')
  await store.freeze('/renamed')
  await store.thaw('/alias')
  t.same(store.frozen(), [])
})

t.test('tree: a waiting write on a handle closed meanwhile fails ECLOSED; timeouts; close thaws and keeps', async (t) => {
  const { dir, store } = await treeStore(t)
  const h = await store.open('/file', O_RDWR)
  await store.freeze('/file', { timeoutMs: 40 })
  await t.rejects(h.write(0, Buffer.from('x')), { code: 'EFROZEN' })
  await t.rejects(store.zero('/file', 0, 1), { code: 'EFROZEN' })
  await store.thaw('/file')
  await store.freeze('/file')
  const orphan = h.write(0, Buffer.from('x'))
  await h.close()
  await store.thaw('/file')
  await t.rejects(orphan, { code: 'ECLOSED' }, 'the handle closed while the write waited')
  const h2 = await store.open('/file', O_RDWR)
  await store.freeze('/file')
  const kept = h2.write(0, Buffer.from('kept'))
  await store.close()
  await kept
  const again = await TreeStore.open(dir)
  t.teardown(() => again.close())
  const r = await again.open('/file')
  t.equal((await r.read(0, 4)).toString(), 'kept', 'the write that waited landed before the final flush')
  await r.close()
  t.same(again.frozen(), [], 'not persistent')
})

t.test('tree: bad inputs and states', async (t) => {
  const { dir, store } = await treeStore(t)
  const bad: Array<[string, () => Promise<unknown>, string]> = [
    ['the root', () => store.freeze('/'), 'EISDIR'],
    ['a directory', () => store.freeze('/dir'), 'EISDIR'],
    ['a symlink', () => store.freeze('/symlink'), 'ELOOP'],
    ['a missing file', () => store.freeze('/missing'), 'ENOENT'],
    ['under a file', () => store.freeze('/file/x'), 'ENOTDIR'],
    ['no path', () => store.freeze(undefined as never), 'EINVAL'],
    ['a path with ..', () => store.freeze('/dir/../file'), 'EINVAL'],
    ['a misspelled option', () => store.freeze('/file', { timeOutMs: 1 } as never), 'EINVAL'],
    ['a negative timeout', () => store.freeze('/file', { timeoutMs: -5 }), 'EINVAL'],
    ['thaw when not frozen', () => store.thaw('/file'), 'EINVAL'],
    ['thaw of a missing file', () => store.thaw('/missing'), 'ENOENT'],
  ]
  await store.mknod('/fifo', { type: 'fifo', mode: 0o644 })
  bad.push(['a FIFO', () => store.freeze('/fifo'), 'ENOTSUP'])
  for (const [name, call, code] of bad) await t.rejects(call(), { code }, name)
  t.same(store.frozen(), [], 'none of them froze anything')
  await store.freeze('/empty')
  await t.rejects(store.freeze('/empty'), { code: 'EBUSY' }, 'freeze twice')
  t.equal(store.thawAll(), 1)
  await store.close()
  await t.rejects(store.freeze('/file'), { code: 'ECLOSED' })
  await t.rejects(store.thaw('/file'), { code: 'ECLOSED' })
  t.throws(() => store.frozen(), { code: 'ECLOSED' })
  const reader = await TreeStore.open(dir, { readOnly: true })
  t.teardown(() => reader.close())
  await t.rejects(reader.freeze('/file'), { code: 'EROFS' })
})

t.test('the write hook: awaited before a write lands, by file key; a failure fails the write', async (t) => {
  const { store, lower } = await imageStore(t)
  const gate = writeGateOf(store)
  const seen: Array<{ key: number; before: string }> = []
  let release!: () => void
  const done = new Set<number>()
  gate.hook((key) => {
    if (done.has(key)) return undefined
    done.add(key)
    // A copy-before-write handler: what it reads is the content before the write.
    return (async () => {
      seen.push({ key, before: (await store.read(0, 4)).toString() })
      await new Promise<void>((resolve) => (release = resolve))
    })()
  })
  const w1 = store.write(0, Buffer.from('new!'))
  const w2 = store.write(P, Buffer.from('two'))
  t.equal(await stateOf(w1), 'pending', 'the first write waits for the handler')
  t.equal(await stateOf(w2), 'pending', 'so does a second write of the file meanwhile')
  t.same(seen, [{ key: 1, before: 'llll' }], 'the handler ran once, before the write landed')
  release()
  await Promise.all([w1, w2])
  t.equal((await store.read(0, 4)).toString(), 'new!')
  await store.write(0, Buffer.from('more'))
  t.equal(seen.length, 1, 'one-shot: later writes do not wait')
  gate.hook(() => Promise.reject(new Error('snapshot disk full')))
  await t.rejects(store.write(0, Buffer.from('lost')), { code: 'EIO', message: /snapshot disk full/ })
  t.equal((await store.read(0, 4)).toString(), 'more', 'the failed write changed nothing')
  gate.hook(undefined)
  t.equal(lower.length, 8 * P)

  const tree = await treeStore(t)
  const keys: number[] = []
  writeGateOf(tree.store).hook((key) => (keys.push(key), undefined))
  const h: TreeFileHandle = await tree.store.open('/other', O_RDWR)
  await h.write(0, Buffer.from('x'))
  await tree.store.truncate('/file', 1)
  await h.close()
  t.same(keys, [(await tree.store.stat('/other')).ino, (await tree.store.stat('/file')).ino], 'a tree store\'s keys are inode numbers')
})
