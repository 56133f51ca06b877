// First-dirty events (SPEC §7, issue 12): a handler awaited before the first write after a mark to
// each block of an image (each file of a tree) lands. The test that matters: a point-in-time copy
// taken with the event (copy-before-write) while writers keep writing equals the content at the
// mark, byte for byte, with writers in this process and real clients through NBD and FUSE.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ImageStore, NbdServer, StoreMount, TreeStore, type FirstDirtyEvent } from '../lib/index.js'
import { fuseUsable, mountTestDir, run } from './fixtures/fuse-mounted.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import { makeLower } from './fixtures/lower.js'
import { haveTools, shortTempDir } from './fixtures/nbd-served.js'
import { Random } from './fixtures/random.js'
import { rejectsWith } from './fixtures/rejects-with.js'

const P = 4096
const BLOCK = 64 * 1024

/**
 * A copy-before-write backup of `store` at mark `mark`: the handler saves each block as it is
 * before its first write lands; `copy()` walks the image block by block, taking the saved block
 * where there is one and the store's where not (a block not saved is not changed yet, and cannot
 * change during the synchronous read).
 */
function copyBeforeWrite(store: ImageStore, mark: string, size: number) {
  const saved = new Map<number, Buffer>()
  const events: FirstDirtyEvent[] = []
  const remove = store.onFirstDirty(mark, async (e) => {
    events.push(e)
    for (let at = e.offset; at < e.offset + e.length; at += BLOCK) {
      if (at >= size) break
      if (!saved.has(at)) saved.set(at, readBlock(store, at, size))
    }
    await new Promise((resolve) => setTimeout(resolve, 1)) // a slow snapshotter: the write waits
  })
  return {
    events,
    remove,
    copy: async (): Promise<Buffer> => {
      const out = Buffer.alloc(size)
      for (let at = 0; at < size; at += BLOCK) {
        const block = saved.get(at) ?? readBlock(store, at, size)
        block.copy(out, at)
        await new Promise((resolve) => setImmediate(resolve)) // writers run between blocks
      }
      return out
    },
  }
}

function readBlock(store: ImageStore, at: number, size: number): Buffer {
  const b = Buffer.alloc(Math.min(BLOCK, size - at))
  store.readIntoSync(b, at)
  return b
}

t.test('image: a copy-before-write backup under live writers equals the content at the mark', async (t) => {
  const dir = t.testdir()
  const rng = new Random(5)
  const size = 64 * BLOCK
  const lower = makeLower(`${dir}/lower.img`, size, rng, 0.7)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.write(3 * BLOCK + 5, Buffer.alloc(100, 9))
  await store.mark('M')
  const atMark = await store.read(0, size)
  const backup = copyBeforeWrite(store, 'M', size)
  let writing = true
  const writers = [1, 2, 3].map(async (w) => {
    const r = new Random(w)
    while (writing) {
      const offset = r.int(0, size - 3 * P)
      const op = r.int(0, 10)
      if (op < 7) await store.write(offset, Buffer.alloc(r.int(1, 3 * P), 16 * w + r.int(0, 16)))
      else if (op < 9) await store.zero(offset, r.int(1, 3 * P))
      else await store.discard(offset, 2 * P)
      await new Promise((resolve) => setImmediate(resolve))
    }
  })
  const copy = await backup.copy()
  writing = false
  await Promise.all(writers)
  t.ok(copy.equals(atMark), 'the backup is the image at the mark, byte for byte')
  t.ok(!(await store.read(0, size)).equals(atMark), 'while the image itself moved on')
  t.ok(backup.events.length > 5, `${backup.events.length} first-dirty events`)
  const blocks = backup.events.flatMap((e) => Array.from({ length: e.length / BLOCK }, (_, i) => e.offset / BLOCK + i))
  t.equal(new Set(blocks).size, blocks.length, 'each block is reported once')
  t.ok(backup.events.every((e) => e.mark === 'M' && e.path === null && e.offset % BLOCK === 0), 'events are whole blocks of the image')
  backup.remove()
  await store.close()
})

t.test('image: what fires and what does not', async (t) => {
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 16 * BLOCK, new Random(6), 1)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  await store.write(0, Buffer.from('before the handler'))
  const seen: Array<[number, number]> = []
  const remove = store.onFirstDirty('A', (e) => {
    seen.push([e.offset, e.length])
  })
  await store.write(10, Buffer.from('x'))
  t.same(seen, [], 'a block changed since the mark before the handler was added: not a first')
  await store.write(BLOCK - 1, Buffer.from('spans two blocks'))
  t.same(seen, [[BLOCK, BLOCK]], 'a write over a changed and a clean block: one event, the clean block')
  await store.zero(4 * BLOCK, 3 * BLOCK)
  t.same(seen.at(-1), [4 * BLOCK, 3 * BLOCK], 'zeroing three clean blocks: one event for the run')
  await store.write(4 * BLOCK, Buffer.from('again'))
  t.equal(seen.length, 2, 'a block already reported does not fire again')
  await store.truncate(10 * BLOCK)
  t.same(seen.at(-1), [10 * BLOCK, 6 * BLOCK], 'a shrink: the blocks cut off')
  await store.truncate(20 * BLOCK)
  t.equal(seen.length, 3, 'growth: nothing of the past to save, no event')

  let fail = true
  const remove2 = store.onFirstDirty('A', () => {
    if (fail) throw new Error('the snapshot disk is full')
  })
  const failed = await store.write(8 * BLOCK, Buffer.from('y')).catch((err: unknown) => err)
  t.match(failed, { code: 'EIO', message: /the snapshot disk is full/ }, 'a handler that fails fails the write that waited (EIO)')
  t.notSame((await store.read(8 * BLOCK, 1)).toString(), 'y', 'and the write did not land')
  fail = false
  await store.write(8 * BLOCK, Buffer.from('y'))
  t.equal((await store.read(8 * BLOCK, 1)).toString(), 'y', 'the next write asks again, and lands')
  remove2()

  await store.mark('B')
  const seenB: number[] = []
  store.onFirstDirty('B', (e) => void seenB.push(e.offset))
  await store.unmark('B')
  await store.write(12 * BLOCK, Buffer.from('z'))
  t.same(seenB, [], 'a removed mark ends its handlers')
  remove()
  await store.write(13 * BLOCK, Buffer.from('z'))
  t.equal(seen.length, 4, 'a removed handler is not called')
  await rejectsWith(t, () => store.onFirstDirty('nope', () => {}), 'ENOENT', 'no such mark')
  await rejectsWith(t, () => store.onFirstDirty('A', 'x' as never), 'EINVAL', 'a handler that is not a function')
  await rejectsWith(t, () => store.onFirstDirty('A', () => {}, { blockSize: 3000 }), 'EINVAL', 'a block size not a power of two')
  await rejectsWith(t, () => store.onFirstDirty('A', () => {}, { blockSize: 1024 }), 'EINVAL', 'a block size under the page size')
  await rejectsWith(t, () => store.onFirstDirty('A', () => {}, { size: 1 } as never), 'EINVAL', 'an unknown option')
  await store.close()
})

t.test('image: a shrink of a 4 TiB image with 4 KiB blocks is one event per clean run', async (t) => {
  // 2³⁰ blocks: remembered as runs, never one by one (that took minutes and gigabytes).
  const dir = t.testdir()
  const TiB = 2 ** 40
  makeSparseLower(`${dir}/lower.img`, 4 * TiB, [[TiB, P]])
  const store = await ImageStore.create(`${dir}/store`, { lower: `${dir}/lower.img`, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  const seen: Array<[number, number]> = []
  store.onFirstDirty('A', (e) => void seen.push([e.offset, e.length]), { blockSize: P })
  await store.write(2 * TiB, Buffer.from('x'))
  await store.truncate(P)
  t.same(
    seen,
    [
      [2 * TiB, P],
      [P, 2 * TiB - P],
      [2 * TiB + P, 2 * TiB - P],
    ],
    'the written block, then the cut blocks around it as two runs',
  )
  // A handler added now finds everything cut already changed: no event for it, none per block.
  const late: number[] = []
  store.onFirstDirty('A', (e) => void late.push(e.offset), { blockSize: P })
  await store.truncate(3 * TiB)
  await store.write(TiB, Buffer.from('y'))
  t.same(late, [], 'blocks changed since the mark before the handler was added (a 4 TiB cut) are not firsts')
  await store.write(0, Buffer.from('z'))
  t.same(late, [0], 'a block never changed since the mark is')
  await store.close()
})

t.test('tree: one event per file, before its first write lands', async (t) => {
  const dir = t.testdir({ lower: { etc: { hosts: 'old hosts\n' }, data: 'old data\n' } })
  const store = await TreeStore.create(`${dir}/store`, { lower: `${dir}/lower`, autoFlushMs: 0 })
  await store.mark('M')
  const seen: Array<{ path: string | null; old: string }> = []
  store.onFirstDirty('M', async (e) => {
    const h = await store.open(e.path!, 'r')
    seen.push({ path: e.path, old: (await h.read(0, e.length)).toString() })
    await h.close()
  })
  const h = await store.open('/etc/hosts', 'r+')
  await h.write(0, Buffer.from('NEW'))
  await h.write(4, Buffer.from('AGAIN'))
  await h.close()
  await store.truncate('/data', 3)
  t.same(seen, [
    { path: '/etc/hosts', old: 'old hosts\n' },
    { path: '/data', old: 'old data\n' },
  ], 'each file once, read by the handler as it was before the write')
  await store.close()
})

t.test('image: copy-before-write under real clients writing through NBD and FUSE', async (t) => {
  if (!haveTools(t, ['qemu-io']) || !fuseUsable(t, ['dd'])) return
  const dir = mountTestDir(t)
  const size = 64 * BLOCK
  const lower = makeLower(join(dir, 'disk.img'), size, new Random(8), 0.8)
  const store = await ImageStore.create(join(dir, 'store'), { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  const server = await NbdServer.listen(store, { socket: join(shortTempDir(t), 'nbd.sock') })
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const mount = await StoreMount.mount(store, mnt)
  t.teardown(async () => {
    await mount.unmount()
    await server.close()
    await store.close()
  })
  await store.mark('M')
  const atMark = await store.read(0, size)
  const backup = copyBeforeWrite(store, 'M', size)
  const nbdWrites = Array.from({ length: 24 }, (_, i) => `aio_write -P ${0x40 + i} ${((i * 37) % 60) * BLOCK + 512} 8k`)
  const nbd = run('qemu-io', ['-f', 'raw', server.uri, ...nbdWrites.flatMap((c) => ['-c', c]), '-c', 'aio_flush'], { timeoutMs: 60_000 })
  const fuse = (async () => {
    for (let i = 0; i < 16; i++) {
      const r = await run('dd', ['if=/dev/urandom', `of=${join(mnt, 'disk.img')}`, 'bs=4096', 'count=3', `seek=${((i * 23) % 60) * 16 + 3}`, 'conv=notrunc', 'oflag=direct'], { timeoutMs: 60_000 })
      t.equal(r.code, 0, `dd ${i} wrote through the mount`)
    }
  })()
  const copy = await backup.copy()
  t.equal((await nbd).code, 0, 'qemu-io wrote through NBD')
  await fuse
  t.ok(copy.equals(atMark), 'the backup is the image at the mark, byte for byte')
  t.ok(!(await store.read(0, size)).equals(atMark), 'while NBD and FUSE writers changed the image')
  t.ok(backup.events.length > 0, `${backup.events.length} first-dirty events from real clients`)
})

t.test('tree: a per-file copy-before-write under writers through a FUSE mount keeps the files as at the mark', async (t) => {
  if (!fuseUsable(t, ['dd'])) return
  const dir = mountTestDir(t)
  const lower = join(dir, 'lower')
  mkdirSync(join(lower, 'db'), { recursive: true })
  const files = ['/db/data', '/db/log', '/config']
  const rng = new Random(12)
  for (const f of files) writeFileSync(join(lower, f), Buffer.from(Array.from({ length: 40 * P + rng.int(0, P) }, () => rng.int(0, 256))))
  const store = await TreeStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const mount = await StoreMount.mount(store, mnt)
  t.teardown(async () => {
    await mount.unmount()
    await store.close()
  })
  await store.mark('M')
  const atMark = new Map<string, Buffer>()
  for (const f of files) atMark.set(f, readFileSync(join(lower, f)))
  const saved = new Map<string, Buffer>()
  store.onFirstDirty('M', async (e) => {
    const h = await store.open(e.path!, 'r')
    saved.set(e.path!, await h.read(0, e.length))
    await h.close()
  })
  for (let i = 0; i < 12; i++) {
    const f = files[i % 2]! // /config is never written
    const r = await run('dd', ['if=/dev/urandom', `of=${join(mnt, f)}`, 'bs=4096', 'count=2', `seek=${(i * 7) % 38}`, 'conv=notrunc'], { timeoutMs: 60_000 })
    t.equal(r.code, 0, `dd ${i} wrote ${f} through the mount`)
  }
  // Read through the store, not the mount: this process serves the mount, and a synchronous read
  // of it here would wait for itself.
  const now = async (f: string) => {
    const h = await store.open(f, 'r')
    const bytes = await h.read(0, (await store.stat(f)).size)
    await h.close()
    return bytes
  }
  for (const f of files) {
    const copy = saved.get(f) ?? (await now(f))
    t.ok(copy.equals(atMark.get(f)!), `${f}: the copy (${saved.has(f) ? 'saved before its first write' : 'never written: read now'}) is the file at the mark`)
  }
  t.same([...saved.keys()].sort(), ['/db/data', '/db/log'], 'one event for each written file, none for the untouched one')
  t.ok(!(await now('/db/data')).equals(atMark.get('/db/data')!), 'while the mounted file moved on')
})
