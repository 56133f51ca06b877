// Whole-tree incremental backup (issue 12), library level: a full export at a mark, a random tree
// workload (data, truncations, zeroes, creates, unlinks, renames of files and directories, swaps,
// hard links, chmod/chown/utimens, xattrs, mknod, symlinks), an incremental since the mark
// applied onto the full export equals a full export made now, on everything an export keeps;
// chains in order, the wrong order and damaged files refused with nothing changed.
import { execFileSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { applyIncremental, exportIncremental, exportIncrementalToStream, exportTree, POSITION_XATTR, TreeStore } from '../lib/index.js'
import { Random, testSeeds } from './fixtures/random.js'
import { buildStillLower, treeWorkload } from './fixtures/tree-workload.js'
import { describeTree, treeDifferences } from './fixtures/tree-compare.js'
import type { TapTest } from './fixtures/tap-test.js'
import { Writable } from 'node:stream'
import { createRequire } from 'node:module'
import { rejectsWith } from './fixtures/rejects-with.js'

const require = createRequire(import.meta.url)
const fsExt = require('fs-ext') as { flockSync(fd: number, flags: string): void }
const nativeXattr = require('fs-native-extensions') as { getAttrSync(fd: number, name: string): Buffer | null }

async function newStore(dir: string): Promise<TreeStore> {
  const lower = join(dir, 'lower')
  buildStillLower(lower)
  return TreeStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
}

function same(t: TapTest, got: string, want: string, message: string, options: { dirAtime?: boolean } = {}): void {
  let diffs = treeDifferences(got, want, 0)
  // Reading a directory (a comparison does) sets its atime: after one, only the rest is compared.
  if (options.dirAtime === false) diffs = diffs.filter((d) => !/: atimeNs /.test(d) || describeTree(want)[d.slice(0, d.indexOf(': '))]?.type !== 'directory')
  t.same(diffs, [], message)
}

for (const seed of testSeeds([1, 2, 3])) {
  t.test(`tree: full export at a mark + incremental since = full export now (seed ${seed})`, async (t) => {
    const rng = new Random(seed)
    const dir = t.testdir()
    const store = await newStore(dir)
    await treeWorkload(store, rng, 20)
    await store.mark('A')
    await exportTree(store, join(dir, 'restore'))
    await treeWorkload(store, rng, 70)
    const result = await exportIncremental(store, join(dir, 'inc'), { since: 'A' })
    await exportTree(store, join(dir, 'now'))
    t.match(result, { kind: 'tree', since: { name: 'A' }, reached: { name: 'A' } })
    const applied = await applyIncremental(join(dir, 'inc'), join(dir, 'restore'))
    t.match(applied, { kind: 'tree', id: result.id, positionChecked: true, positionRecorded: true, resumed: false })
    same(t, join(dir, 'restore'), join(dir, 'now'), 'the applied tree equals a full export now')
    t.notOk(nodeFs.readdirSync(join(dir, 'restore')).some((n) => n.startsWith('.pagecow-apply')), 'no staging directory is left')
    await store.close()
  })
}

t.test('tree: renames that chain and swap, a directory with its subtree, a file replaced by a directory; a chain A -> B -> C', async (t) => {
  const rng = new Random(42)
  const dir = t.testdir()
  const store = await newStore(dir)
  await store.mark('A')
  await exportTree(store, join(dir, 'restore'))
  await store.rename('/etc/hosts', '/etc/passwd', { exchange: true }) // a swap
  await store.rename('/etc/shadow', '/t1') // a -> t, b -> a, t -> b
  await store.rename('/etc/ssl/cert.pem', '/etc/shadow')
  await store.rename('/t1', '/etc/ssl/cert.pem')
  await store.rename('/usr/share', '/srv-share') // a directory with its subtree
  await store.mkdir('/usr/share')
  await store.rename('/srv-share/doc', '/usr/share/doc') // out of a moved directory into a new one
  await store.unlink('/home/user/notes.txt') // a file replaced by a directory
  await store.mkdir('/home/user/notes.txt')
  await store.link('/usr/bin/tool', '/home/user/notes.txt/tool') // a third name of a lower hard link
  await store.rename('/var', '/home/user/notes.txt/var') // a directory into a new directory
  await store.rmdir('/home/user/notes.txt/var/empty')
  await store.mark('B')
  const inc1 = join(dir, 'inc1')
  await exportIncremental(store, inc1, { since: 'A' })
  await treeWorkload(store, rng, 40)
  await store.mark('C')
  const inc2 = join(dir, 'inc2')
  await exportIncremental(store, inc2, { since: 'B' })
  await treeWorkload(store, rng, 40)
  const inc3 = join(dir, 'inc3')
  await exportIncrementalToStream(store, collect(inc3), { since: 'C' })
  await new Promise((r) => setTimeout(r, 10))
  await exportTree(store, join(dir, 'now'))

  const restore = join(dir, 'restore')
  const before = describeTree(restore)
  await rejectsWith(t, () => applyIncremental(inc2, restore), 'ECHAIN', 'inc2 onto the export at A (inc1 skipped)')
  await rejectsWith(t, () => applyIncremental(inc3, restore), 'ECHAIN', 'inc3 onto the export at A')
  same(t, restore, restore, 'sanity')
  t.same(treeDiff(describeTree(restore), before), [], 'the refused applies changed nothing')
  await applyIncremental(inc1, restore)
  const again = await applyIncremental(inc1, restore)
  t.match(again, { reached: { name: 'B' }, operations: 0, records: 0 }, 'applying the same incremental again does nothing')
  await applyIncremental(inc2, restore)
  await rejectsWith(t, () => applyIncremental(inc1, restore), 'ECHAIN', 'inc1 onto a tree already at C')
  const applied = await applyIncremental(inc3, restore)
  t.equal(applied.kind, 'tree')
  same(t, restore, join(dir, 'now'), 'the chain applied in order equals a full export now', { dirAtime: false })
  await store.close()
})

/** A Writable into a file (the stream form of an export). */
function collect(path: string): Writable {
  const fd = nodeFs.openSync(path, 'w')
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      nodeFs.writeSync(fd, chunk)
      cb()
    },
    final(cb) {
      nodeFs.closeSync(fd)
      cb()
    },
  })
}

function treeDiff(a: ReturnType<typeof describeTree>, b: ReturnType<typeof describeTree>): string[] {
  const x = stripAtimes(a)
  const y = stripAtimes(b)
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k])).map((k) => `${k}: ${JSON.stringify(x[k])} != ${JSON.stringify(y[k])}`)
}

function stripAtimes(tree: ReturnType<typeof describeTree>) {
  // A comparison reads directories (their atimes change) and, on a copy whose files are not the
  // caller's, may not read files with O_NOATIME: atimes say nothing about what an apply changed.
  return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, { ...v, atimeNs: '' }]))
}

t.test('tree: a damaged or cut-short incremental, another store, an export before the mark: refused, nothing changed', async (t) => {
  const rng = new Random(7)
  const dir = t.testdir()
  const store = await newStore(dir)
  await exportTree(store, join(dir, 'early')) // before any mark
  await store.mark('A')
  await exportTree(store, join(dir, 'restore'))
  await treeWorkload(store, rng, 30)
  const inc = join(dir, 'inc')
  await exportIncremental(store, inc, { since: 'A' })
  const bytes = nodeFs.readFileSync(inc)
  const restore = join(dir, 'restore')
  const before = describeTree(restore)
  for (const [name, damaged] of [
    ['a byte flipped in the middle', Buffer.from(bytes).fill(bytes[bytes.length >> 1]! ^ 0x55, bytes.length >> 1, (bytes.length >> 1) + 1)],
    ['a byte flipped near the end', Buffer.from(bytes).fill(bytes[bytes.length - 20]! ^ 1, bytes.length - 20, bytes.length - 19)],
    ['cut short', bytes.subarray(0, bytes.length - 9)],
    ['cut in half', bytes.subarray(0, bytes.length >> 1)],
  ] as const) {
    nodeFs.writeFileSync(join(dir, 'bad'), damaged)
    await rejectsWith(t, () => applyIncremental(join(dir, 'bad'), restore), 'ECORRUPT', name)
  }
  await rejectsWith(t, () => applyIncremental(inc, join(dir, 'early')), 'ECHAIN', 'an export made before the mark')
  await rejectsWith(t, () => applyIncremental(inc, join(restore, 'etc/hosts')), 'EINVAL', 'a file as the target of a tree incremental')
  const other = await TreeStore.create(join(dir, 'other'), { lower: join(dir, 'lower'), autoFlushMs: 0 })
  await other.mark('A')
  await exportTree(other, join(dir, 'other-export'))
  await rejectsWith(t, () => applyIncremental(inc, join(dir, 'other-export')), 'ECHAIN', "another store's export")
  await other.close()
  // Without its position (a copy that dropped xattrs): refused, nothing says where it stands.
  execFileSync('cp', ['-r', join(dir, 'restore'), join(dir, 'plain')])
  const plainBefore = describeTree(join(dir, 'plain'))
  await rejectsWith(t, () => applyIncremental(inc, join(dir, 'plain')), 'ECHAIN', 'a copy without the position')
  t.same(treeDiff(describeTree(join(dir, 'plain')), plainBefore), [], 'refused: nothing changed')
  t.same(treeDiff(describeTree(restore), before), [], 'the target never changed')

  // Two applies at once: the second is refused while the first holds the target.
  const fd = nodeFs.openSync(restore, 'r')
  fsExt.flockSync(fd, 'exnb')
  await rejectsWith(t, () => applyIncremental(inc, restore), 'EBUSY', 'a target another apply holds')
  nodeFs.closeSync(fd)
  await applyIncremental(inc, restore)
  const rfd = nodeFs.openSync(restore, 'r')
  t.match(JSON.parse(nativeXattr.getAttrSync(rfd, POSITION_XATTR)!.toString()), { at: { name: 'A' }, beyond: true }, 'the position is recorded: at A, with changes made after it')
  nodeFs.closeSync(rfd)
  await rejectsWith(t, () => applyIncremental(inc, restore + '/../early'), 'ECHAIN', 'still refused')
  await store.close()
})

t.test('tree: the incremental is in proportion to the changes', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'lower')
  buildStillLower(lower, (d) => nodeFs.writeFileSync(join(d, 'large.img'), Buffer.alloc(8 * 1024 * 1024, 1)))
  const store = await TreeStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  await store.mark('A')
  await exportTree(store, join(dir, 'restore'))
  const h = await store.open('/large.img', 'r+')
  await h.write(3 * 1024 * 1024, Buffer.alloc(4096, 2))
  await h.close()
  await store.rename('/large.img', '/moved.img')
  const result = await exportIncremental(store, join(dir, 'inc'), { since: 'A' })
  t.ok(result.dataBytes <= 8192, `a renamed 8 MiB file with one page written carries ${result.dataBytes} bytes`)
  t.ok(result.fileBytes < 64 * 1024, `the incremental is ${result.fileBytes} bytes`)
  await exportTree(store, join(dir, 'now'))
  await applyIncremental(join(dir, 'inc'), join(dir, 'restore'))
  same(t, join(dir, 'restore'), join(dir, 'now'), 'applied')
  await store.close()
})
