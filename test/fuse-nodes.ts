// The FUSE server's memory does not grow with the tree: past `maxNodes` inodes held by the
// kernel, it asks the kernel to drop the least recently used entries, and their FORGETs shrink its
// inode table. Served in this process through the library (the walks run in child processes, so
// this event loop stays free to answer them).
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkTreeStore, StoreMount, TreeStore } from '../lib/index.js'
import { fuseUsable, mountTestDir, run, waitFor } from './fixtures/fuse-mounted.js'
import type { TapTest } from './fixtures/tap-test.js'

const DIRS = 20
const FILES = 100
const MAX_NODES = 256

/** find's view of a tree: path, size and type of every entry, sorted. */
async function listing(t: TapTest, root: string): Promise<string[]> {
  const found = await run('find', [root, '-mindepth', '1', '-printf', '%P %s %y\\n'], { timeoutMs: 60_000 })
  t.equal(found.code, 0, `find ${root}: ${found.stderr}`)
  return found.stdout.split('\n').filter(Boolean).sort()
}

t.test('walking a tree larger than maxNodes keeps the inode table bounded, and answers stay right', async (t) => {
  if (!fuseUsable(t, ['find'])) return
  const dir = mountTestDir(t)
  const lower = join(dir, 'lower')
  for (let d = 0; d < DIRS; d++) {
    mkdirSync(join(lower, `d${d}`), { recursive: true })
    for (let f = 0; f < FILES; f++) writeFileSync(join(lower, `d${d}`, `f${f}`), 'x'.repeat(f))
  }
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const store = await TreeStore.create(join(dir, 'store'), { lower })
  const mount = await StoreMount.mount(store, mnt, { maxNodes: MAX_NODES })
  let mounted = true
  t.teardown(async () => {
    if (mounted) await mount.unmount()
    await store.close()
  })
  const expected = await listing(t, lower)
  t.equal(expected.length, DIRS * (FILES + 1))
  t.same(await listing(t, mnt), expected, 'the first walk sees the lower tree')
  t.ok(await waitFor(() => mount.nodes <= MAX_NODES, 10_000), `the kernel let go: ${mount.nodes} nodes held (cap ${MAX_NODES}) after a walk of ${expected.length} entries`)
  t.same(await listing(t, mnt), expected, 'a second walk looks the dropped entries up again and sees the same')
  t.ok(await waitFor(() => mount.nodes <= MAX_NODES, 10_000), `still bounded: ${mount.nodes} nodes`)
  await mount.unmount()
  mounted = false
  t.ok((await checkTreeStore(store.path)).clean, 'fsck: clean')
})

t.test('maxNodes is validated', async (t) => {
  const dir = t.testdir()
  mkdirSync(join(dir, 'lower'))
  const store = await TreeStore.create(join(dir, 'store'), { lower: join(dir, 'lower') })
  t.teardown(() => store.close())
  for (const bad of [0, 63, 1.5, -1, '100'] as unknown[]) {
    await t.rejects(StoreMount.mount(store, dir, { maxNodes: bad as number }), { code: 'EINVAL' }, `maxNodes ${String(bad)}`)
  }
  await t.rejects(StoreMount.mount(store, dir, { maxnodes: 100 } as never), { code: 'EINVAL' }, 'a misspelled option')
})
