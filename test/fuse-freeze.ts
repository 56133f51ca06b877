// A frozen file through a real FUSE mount (served in this process, so the test holds the store):
// a write(2) by another process blocks while reads of the same file are answered (its other
// pages: the kernel itself keeps the pages a write(2) covers locked until the WRITE is answered,
// so a read of those pages waits in the kernel, and completes after thaw), and completes after
// thaw; open(O_TRUNC) blocks too; a freeze timeout reaches the writer as ETIMEDOUT; an image
// store's image the same. The writers and readers are real processes (python3, cat, head, dd).
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ImageStore, StoreMount, TreeStore } from '../lib/index.js'
import { fuseUsable, mountTestDir, run, waitFor, type Ran } from './fixtures/fuse-mounted.js'
import { stateOf } from './fixtures/promise-state.js'

/**
 * python3: open `path` (O_WRONLY, plus O_TRUNC when asked), pwrite `text` at `offset` (`@N`: N
 * bytes of W, in one write(2)); prints "ok" or the errno name.
 */
const WRITER = `
import errno, os, sys
path, text, offset, trunc = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4] == 'trunc'
if text.startswith(b'@'):
    text = b'W' * int(text[1:])
try:
    fd = os.open(path, os.O_WRONLY | (os.O_TRUNC if trunc else 0))
    if text:
        os.pwrite(fd, text, offset)
    os.close(fd)
    print('ok')
except OSError as e:
    print(errno.errorcode[e.errno])
`

function writer(path: string, text: string, offset: number, trunc = false): Promise<Ran> {
  return run('python3', ['-c', WRITER, path, text, String(offset), trunc ? 'trunc' : ''], { timeoutMs: 60_000 })
}

async function mounted(t: Test, store: TreeStore | ImageStore, dir: string): Promise<StoreMount> {
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const mount = await StoreMount.mount(store, mnt)
  // A failed assertion must not leave a process hanging on the mount (a reader the kernel holds
  // cannot even be killed): whatever happens, everything is thawed after a while.
  const safety = setTimeout(() => store.thawAll(), 30_000)
  t.teardown(async () => {
    clearTimeout(safety)
    store.thawAll()
    await mount.unmount()
    await store.close()
  })
  return mount
}

t.test('tree store: write(2) to a frozen file blocks, reads of the file are served meanwhile, thaw completes it', async (t) => {
  if (!fuseUsable(t, ['python3', 'cat', 'head'])) return
  const dir = mountTestDir(t)
  const lower = join(dir, 'lower')
  mkdirSync(lower)
  writeFileSync(join(lower, 'disk.img'), Buffer.alloc(64 * 1024, 'a'))
  writeFileSync(join(lower, 'other'), 'other\n')
  const store = await TreeStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  const mount = await mounted(t, store, dir)
  const file = join(mount.mountpoint, 'disk.img')

  await store.freeze('/disk.img')
  const blocked = writer(file, 'NEW', 60 * 1024) // the file's last page
  t.ok(await waitFor(() => store.frozen()[0]?.waiting === 1), 'the write(2) reached the store and waits there')
  const head = await run('head', ['-c', String(48 * 1024), file], { timeoutMs: 20_000 })
  t.equal(head.code, 0, 'a read of the frozen file is answered while the write waits')
  t.equal(head.stdout, 'a'.repeat(48 * 1024), 'with the bytes of the freeze')
  const catOther = await run('cat', [join(mount.mountpoint, 'other')], { timeoutMs: 20_000 })
  t.equal(catOther.stdout, 'other\n', 'cat of another file is answered')
  const other = await writer(join(mount.mountpoint, 'other'), 'X', 0)
  t.equal(other.stdout.trim(), 'ok', 'a write to another file goes through')
  t.equal(await stateOf(blocked), 'pending', 'the writer still waits')
  const reader = await store.open('/disk.img')
  t.same(await reader.read(60 * 1024, 3), Buffer.from('aaa'), 'the store\'s bytes are those of the freeze')
  await reader.close()
  // cat of the whole file reaches the page the write covers, which the kernel holds locked while
  // its WRITE is out: that read waits in the kernel (not in the server) and ends after thaw.
  const cat = run('cat', [file], { timeoutMs: 60_000 })

  const truncating = writer(file, '', 0, true)
  t.ok(await waitFor(() => store.frozen()[0]?.waiting === 2), 'open(O_TRUNC) waits too')

  await store.thaw('/disk.img')
  t.equal((await blocked).stdout.trim(), 'ok', 'the write completes after thaw')
  t.equal((await truncating).stdout.trim(), 'ok', 'and the truncating open')
  const whole = await cat
  t.equal(whole.code, 0, 'the cat of the whole file ends after thaw')
  t.ok(`${'a'.repeat(60 * 1024)}NEW${'a'.repeat(4096 - 3)}`.startsWith(whole.stdout), 'with the bytes written (or fewer: the truncation came after them)')
  const after = await run('cat', [file])
  t.equal(after.stdout, '', 'both landed, in order: written, then truncated')
  const h = await store.open('/disk.img')
  t.equal((await h.stat()).size, 0)
  await h.close()

  await store.freeze('/disk.img', { timeoutMs: 200 })
  const timedOut = await writer(file, 'late', 0)
  t.equal(timedOut.stdout.trim(), 'ETIMEDOUT', 'past the freeze timeout the writer gets ETIMEDOUT (EFROZEN)')
  await store.thaw('/disk.img')
})

t.test('image store: write(2) to the frozen image blocks, reads of it are served, thaw completes it', async (t) => {
  if (!fuseUsable(t, ['python3', 'dd'])) return
  const dir = mountTestDir(t)
  const lowerPath = join(dir, 'base.img')
  writeFileSync(lowerPath, Buffer.alloc(1024 * 1024, 'b'))
  const store = await ImageStore.create(join(dir, 'store'), { lower: lowerPath, autoFlushMs: 0 })
  const mount = await mounted(t, store, dir)
  const image = mount.imagePath!

  await store.freeze()
  const blocked = writer(image, 'IMAGE', 4096)
  t.ok(await waitFor(() => store.frozen()[0]?.waiting === 1), 'the write reached the store and waits')
  const read = await run('dd', [`if=${image}`, 'bs=4096', 'skip=2', 'count=8', 'status=none'], { timeoutMs: 20_000 })
  t.equal(read.code, 0, 'a read of the image is answered meanwhile')
  t.equal(read.stdout, 'b'.repeat(8 * 4096), 'with the bytes of the freeze')
  t.same(await store.read(4096, 5), Buffer.from('bbbbb'), 'the store\'s bytes are those of the freeze')
  t.equal(await stateOf(blocked), 'pending')
  await store.thaw()
  t.equal((await blocked).stdout.trim(), 'ok')
  t.equal((await store.read(4096, 5)).toString(), 'IMAGE')
})

t.test('many large writes waiting at once (ten frozen files) do not stop the server answering', async (t) => {
  if (!fuseUsable(t, ['python3', 'cat'])) return
  const dir = mountTestDir(t)
  const lower = join(dir, 'lower')
  mkdirSync(lower)
  const FILES = 10
  for (let i = 0; i < FILES; i++) writeFileSync(join(lower, `f${i}`), Buffer.alloc(2 * 1024 * 1024, 'z'))
  writeFileSync(join(lower, 'other'), 'other\n')
  const store = await TreeStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  const mount = await mounted(t, store, dir)
  for (let i = 0; i < FILES; i++) await store.freeze(`/f${i}`)
  const writers = Array.from({ length: FILES }, (_, i) => writer(join(mount.mountpoint, `f${i}`), `@${1024 * 1024}`, 0))
  t.ok(await waitFor(() => store.frozen().every((f) => f.waiting === 1)), 'a large WRITE of each file waits in the store')
  const cat = await run('cat', [join(mount.mountpoint, 'other')], { timeoutMs: 20_000 })
  t.equal(cat.stdout, 'other\n', 'and the server still answers a read')
  const other = await writer(join(mount.mountpoint, 'other'), 'X', 0)
  t.equal(other.stdout.trim(), 'ok', 'and a write of another file')
  store.thawAll()
  for (const w of writers) t.equal((await w).stdout.trim(), 'ok')
  const h = await store.open('/f3')
  t.same(await h.read(0, 1024 * 1024), Buffer.alloc(1024 * 1024, 'W'), 'the writes landed')
  await h.close()
})
