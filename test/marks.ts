// Marks and "changed since" (SPEC §7, issue 12), library level: against a model of the image, every
// page whose bytes differ from their bytes at a mark is reported, and nothing is reported that no
// operation since the mark touched. Also: many marks at once, unmark folding, reopen, read-only
// followers, and a table of bad input.
import * as nodeFs from 'node:fs'
import Database from 'better-sqlite3'
import t from 'tap'
import { checkStore, ImageStore, TreeStore, type ChangedExtent } from '../lib/index.js'
import { ImageModel } from './fixtures/image-model.js'
import { makeLower } from './fixtures/lower.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import { Random, testSeeds } from './fixtures/random.js'
import { rejectsWith } from './fixtures/rejects-with.js'

const P = 4096

/** The pages a changes query lists: start page → true, and the end of the image's bytes it reaches. */
function changedPages(extents: Iterable<ChangedExtent>): Set<number> {
  const pages = new Set<number>()
  for (const e of extents) {
    t.equal(e.start % P, 0, 'extents start on a page')
    for (let p = e.start / P; p < Math.ceil((e.start + e.length) / P); p++) pages.add(p)
  }
  return pages
}

/** Extents cut to the bytes [from, to), as a range query should list them. */
function clip(extents: Iterable<ChangedExtent>, from: number, to: number): ChangedExtent[] {
  const out: ChangedExtent[] = []
  for (const e of extents) {
    const start = Math.max(e.start, from)
    const end = Math.min(e.start + e.length, to)
    if (end > start) out.push({ ...e, start, length: end - start })
  }
  return out
}

/** Pages whose bytes differ between two states of the image (past a size: absent). */
function differingPages(then: ImageModel, now: ImageModel): number[] {
  const out: number[] = []
  const pages = Math.ceil(Math.max(then.size, now.size) / P)
  for (let p = 0; p < pages; p++) {
    const a = p * P < then.size ? then.read(p * P, Math.min(P, then.size - p * P)) : Buffer.alloc(0)
    const b = p * P < now.size ? now.read(p * P, Math.min(P, now.size - p * P)) : Buffer.alloc(0)
    // A page that only grew (zeros after the old end) is not a change of content: a restore cuts
    // or extends the file to its new size, and extension reads zeros.
    const common = Math.min(a.length, b.length)
    if (!a.subarray(0, common).equals(b.subarray(0, common))) out.push(p)
    else if (b.length > a.length && b.subarray(common).some((x) => x !== 0)) out.push(p)
  }
  return out
}

for (const seed of testSeeds([1, 2, 3, 4])) {
  t.test(`image: changed since each mark, against a model (seed ${seed})`, async (t) => {
    const rng = new Random(seed)
    const dir = t.testdir()
    const lower = makeLower(`${dir}/lower.img`, 48 * P + 123, rng, 0.6)
    let store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
    const model = new ImageModel(P, lower)
    /** Per live mark: the image at the mark, and the pages any operation touched since. */
    const marks = new Map<string, { at: ImageModel; touched: Set<number> }>()
    let n = 0
    let checked = 0
    const touch = (from: number, to: number) => {
      for (const m of marks.values()) for (let p = from; p < to; p++) m.touched.add(p)
    }
    for (let step = 0; step < 160; step++) {
      const op = rng.int(0, 100)
      const size = model.size
      const offset = rng.int(0, Math.max(1, size + 2 * P))
      const length = rng.int(1, 5 * P)
      if (op < 40) {
        const data = Buffer.alloc(length, rng.int(1, 256))
        await store.write(offset, data)
        model.write(offset, data)
        touch(Math.floor(offset / P), Math.ceil((offset + length) / P))
      } else if (op < 50) {
        await store.zero(offset, length)
        model.zero(offset, length)
        touch(Math.floor(offset / P), Math.ceil((offset + length) / P))
      } else if (op < 58) {
        await store.discard(offset, length)
        model.discard(offset, length)
        touch(Math.floor(offset / P), Math.ceil((offset + length) / P))
      } else if (op < 63) {
        const to = rng.int(0, size + 4 * P)
        await store.truncate(to)
        model.truncate(to)
        touch(Math.floor(Math.min(to, size) / P), Math.ceil(Math.max(to, size) / P))
      } else if (op < 70) {
        await store.flush()
      } else if (op < 80) {
        const name = `m${n++}`
        await store.mark(name)
        marks.set(name, { at: model.clone(), touched: new Set() })
      } else if (op < 85 && marks.size > 0) {
        const names = [...marks.keys()]
        const name = names[rng.int(0, names.length)]!
        await store.unmark(name)
        marks.delete(name)
      } else if (op < 88) {
        await store.close()
        store = await ImageStore.open(`${dir}/store`, { autoFlushMs: 0 })
      } else {
        for (const [name, m] of marks) {
          const reported = changedPages(store.changedExtents(name))
          const missed = differingPages(m.at, model).filter((p) => !reported.has(p))
          const extra = [...reported].filter((p) => !m.touched.has(p))
          if (missed.length > 0 || extra.length > 0) {
            t.fail(`step ${step}, mark ${name}`, { missed, extra })
            return
          }
          checked++
          const from = rng.int(0, model.size + 2 * P)
          const length = rng.int(0, 12 * P)
          const within = [...store.changedExtents(name, from, length)]
          if (!t.same(within, clip(store.changedExtents(name), from, from + length), `step ${step}, mark ${name}: the changes in ${from}+${length} are those of the whole cut to it`)) return
        }
      }
    }
    t.ok(checked > 10, `${checked} checks of a mark's changes against the model`)
    t.same(store.marks().map((m) => m.name), [...marks.keys()], 'the marks, oldest first')
    // A read-only store sees what its writer committed.
    await store.flush()
    const reader = await ImageStore.open(`${dir}/store`, { readOnly: true })
    for (const name of marks.keys()) t.same([...reader.changedExtents(name)], [...store.changedExtents(name)], `a read-only open reads the same changes since ${name}`)
    await reader.close()
    await store.close()
  })
}

t.test('image: the kinds of change, and what reads them', async (t) => {
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 64 * P, new Random(9), 1)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.write(0, Buffer.alloc(P, 1))
  await store.mark('A')
  t.same([...store.changedExtents('A')], [], 'nothing changed yet')
  await store.write(2 * P + 10, Buffer.from('x'))
  await store.zero(4 * P, 2 * P)
  await store.discard(8 * P, P)
  await store.truncate(40 * P)
  t.same(
    [...store.changedExtents('A')],
    [
      { start: 2 * P, length: P, change: 'written', state: 'data' },
      { start: 4 * P, length: 2 * P, change: 'zeroed', state: 'zero' },
      { start: 8 * P, length: P, change: 'zeroed', state: 'zero' },
      { start: 40 * P, length: 24 * P, change: 'truncated' },
    ],
    'written, zeroed, discarded and truncated pages, each said as what it reads now',
  )
  await store.mark('B')
  await store.write(P, Buffer.alloc(10, 2))
  t.same([...store.changedExtents('B')], [{ start: P, length: P, change: 'written', state: 'data' }], 'a later mark sees only what came after it')
  t.same([...store.changedExtents('A')].map((e) => [e.start / P, e.length / P]), [[1, 2], [4, 2], [8, 1], [40, 24]], 'the earlier mark sees both (adjacent pages of one kind are one extent)')
  await store.unmark('B')
  t.same(
    [...store.changedExtents('A')].map((e) => [e.start / P, e.length / P]),
    [[1, 2], [4, 2], [8, 1], [40, 24]],
    'removing the later mark keeps its changes for the earlier one',
  )
  await store.unmark('A')
  t.same(store.marks(), [], 'no marks left')
  await store.write(P, Buffer.alloc(10, 3))
  await store.mark('C')
  t.same([...store.changedExtents('C')], [], 'a new mark starts clean')
  await store.close()
})

t.test('image: changes in a range, across chunks of a 1 TiB image, committed or not', async (t) => {
  const dir = t.testdir()
  const CHUNK = 65536 * P // the pages of one change record
  makeSparseLower(`${dir}/lower.img`, 2 ** 40, [[CHUNK - P, 2 * P]])
  const store = await ImageStore.create(`${dir}/store`, { lower: `${dir}/lower.img`, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  // Pages on both sides of the first chunk boundary (one committed run, one not), one far away.
  await store.write(CHUNK - 2 * P, Buffer.alloc(4 * P, 7))
  await store.flush()
  await store.zero(CHUNK + 2 * P, P)
  await store.write(2 ** 40 - P, Buffer.alloc(P, 9))
  const all = [...store.changedExtents('A')]
  t.same(
    all.map((e) => [e.start, e.length, e.change]),
    [
      [CHUNK - 2 * P, 4 * P, 'written'],
      [CHUNK + 2 * P, P, 'zeroed'],
      [2 ** 40 - P, P, 'written'],
    ],
    'the changes of the whole image, one extent across the chunk boundary',
  )
  for (const [from, length] of [
    [0, CHUNK],
    [CHUNK - P - 100, 2 * P],
    [CHUNK, 3 * P],
    [CHUNK + 3 * P, 2 ** 39],
    [CHUNK - 2 * P + 1, 1],
    [2 ** 40 - 10, 10],
    [2 ** 40, P],
  ]) {
    t.same([...store.changedExtents('A', from!, length)], clip(all, from!, from! + length!), `the changes in ${from}+${length}`)
  }
  t.same([...store.changedExtents('A', CHUNK, 0)], [], 'an empty range has none')

  // A mark as marks() handed it out: the same changes while it stands, ESTALE once it is another.
  const seen = store.marks()[0]!
  t.same([...store.changedExtents(seen)], all, 'a mark object reads the same changes as its name')
  await store.unmark('A')
  t.throws(() => store.changedExtents(seen), { code: 'ESTALE' }, 'a removed mark, given as an object: ESTALE')
  await store.mark('A')
  t.throws(() => store.changedExtents(seen), { code: 'ESTALE' }, 'a mark taken again under its name is another mark: ESTALE')
  t.same([...store.changedExtents('A')], [], 'while its name reads the new mark')
  await store.close()
})

t.test('tree: names, data and metadata changed since a mark', async (t) => {
  const dir = t.testdir({ lower: { etc: { hosts: 'hosts\n', passwd: 'root\n', group: 'g\n' }, big: 'x'.repeat(5 * P), keep: 'same\n' } })
  const store = await TreeStore.create(`${dir}/store`, { lower: `${dir}/lower`, autoFlushMs: 0 })
  await store.mkdir('/made-before')
  const before = await store.open('/keep', 'r+')
  await before.write(0, Buffer.from('S')) // written before the mark, flushed by it: not a change since
  await before.close()
  await store.mark('A')
  await store.truncate('/etc/group', 3 * P) // only its size changes
  const h = await store.open('/big', 'r+')
  await h.write(3 * P + 1, Buffer.from('y'))
  await h.close()
  await store.rename('/etc/hosts', '/etc/hosts.old')
  await store.unlink('/etc/passwd')
  await store.chmod('/etc/group', 0o600)
  await store.mkdir('/new')
  const f = await store.open('/new/file', 'w')
  await f.write(0, Buffer.alloc(P + 1, 7))
  await f.close()
  await store.rename('/made-before', '/made-before-2')
  const created = await store.open('/temp', 'w')
  await created.close()
  await store.unlink('/temp')
  const expected = [
    { path: '/big', status: 'modified', type: 'file', changedBytes: P },
    { path: '/etc/group', status: 'modified', type: 'file', changedBytes: 3 * P },
    { path: '/etc/hosts.old', status: 'renamed', type: 'file', from: '/etc/hosts' },
    { path: '/etc/passwd', status: 'removed', type: 'file' },
    { path: '/made-before-2', status: 'renamed', type: 'directory', from: '/made-before' },
    { path: '/new', status: 'created', type: 'directory' },
    { path: '/new/file', status: 'created', type: 'file', changedBytes: 2 * P },
  ]
  // Directories whose entries changed have new times: listed as metadata, as the kernel would.
  const dirs = new Set(['/', '/etc', '/new'])
  const listed = (s: TreeStore) => s.changedSince('A').filter((c) => !(dirs.has(c.path) && c.status === 'metadata'))
  t.same(listed(store), expected, 'renamed, removed, created, modified and metadata-only; a file made and removed since is not listed')
  t.same([...store.changedExtents('/big', 'A')], [{ start: 3 * P, length: P, change: 'written', state: 'data' }], 'the changed page of a lower file')
  t.same([...store.changedExtents('/keep', 'A')], [], 'a file written only before the mark has no changes')
  await store.close()
  const again = await TreeStore.open(`${dir}/store`, { readOnly: true })
  t.same(listed(again), expected, 'the same after a reopen')
  await again.close()
})

t.test('bad input to marks', async (t) => {
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 8 * P, new Random(3), 1)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('ok')
  const bad: Array<[unknown, string]> = [
    ['', 'an empty name'],
    ['a b', 'a space'],
    ['-x', 'a leading dash'],
    ['a/b', 'a slash'],
    ['x'.repeat(129), 'too long'],
    [42, 'a number'],
    ['é', 'not ASCII'],
  ]
  for (const [name, what] of bad) await rejectsWith(t, () => store.mark(name as string), 'EINVAL', `mark: ${what}`)
  await rejectsWith(t, () => store.mark('ok'), 'EEXIST', 'mark: a name taken')
  await rejectsWith(t, () => store.unmark('nope'), 'ENOENT', 'unmark: no such mark')
  await rejectsWith(t, () => store.changedExtents('nope'), 'ENOENT', 'changes since no such mark')
  await rejectsWith(t, () => store.changedExtents(''), 'EINVAL', 'changes since an empty name')
  for (const [offset, length, code, what] of [
    [-1, 1, 'EINVAL', 'a negative offset'],
    [0.5, 1, 'EINVAL', 'a fractional offset'],
    [0, -1, 'EINVAL', 'a negative length'],
    [Number.NaN, 1, 'EINVAL', 'NaN'],
    [2 ** 52, 1, 'EFBIG', 'past the largest size'],
  ] as const) {
    await rejectsWith(t, () => store.changedExtents('ok', offset, length), code, `changes in a range: ${what}`)
  }
  t.same(store.marks().map((m) => m.name), ['ok'], 'nothing changed by bad input')
  await store.close()
  const reader = await ImageStore.open(`${dir}/store`, { readOnly: true })
  await rejectsWith(t, () => reader.mark('x'), 'EROFS', 'mark on a read-only store')
  await rejectsWith(t, () => reader.unmark('ok'), 'EROFS', 'unmark on a read-only store')
  await reader.close()
  await rejectsWith(t, () => reader.marks(), 'ECLOSED', 'marks of a closed store')
})

t.test('damaged change records are refused, never read as fewer changes', async (t) => {
  const dir = t.testdir({ lower: { a: 'x'.repeat(3 * P), b: 'b\n' } })
  const made = await TreeStore.create(`${dir}/store`, { lower: `${dir}/lower`, autoFlushMs: 0 })
  await made.mark('A')
  const h = await made.open('/a', 'r+')
  await h.write(P, Buffer.from('changed'))
  await h.close()
  await made.rename('/b', '/c')
  await made.mark('B')
  await made.chmod('/c', 0o600)
  await made.close()
  const cases: Array<[string, string]> = [
    ['a page change row deleted, its trigger dropped first', 'DROP TRIGGER page_changes_removed; DELETE FROM page_changes'],
    ['a name change row deleted, its trigger dropped first', 'DROP TRIGGER name_changes_removed; DELETE FROM name_changes'],
    ['a metadata change row deleted, its trigger dropped first', 'DROP TRIGGER inode_changes_removed; DELETE FROM inode_changes'],
    ['a mark deleted, its trigger dropped first', "DROP TRIGGER marks_removed; DELETE FROM marks WHERE name = 'B'"],
    ['a page change bitmap edited', 'UPDATE page_changes SET pages = zeroblob(length(pages))'],
    ['a page change moved to a later epoch', 'UPDATE page_changes SET epoch = epoch + 1'],
    ['a name change record edited', 'UPDATE name_changes SET had = 1 - had'],
    ['a mark moved to a later epoch', "UPDATE marks SET epoch = epoch + 10 WHERE name = 'A'"],
    ["the last mark's epoch edited", "UPDATE meta SET value = '1' WHERE key = 'last-mark-epoch'"],
  ]
  for (const [what, sql] of cases) {
    const copy = `${dir}/copy-${cases.findIndex((c) => c[0] === what)}`
    nodeFs.cpSync(`${dir}/store`, copy, { recursive: true })
    const db = new Database(`${copy}/pagecow.db`)
    db.exec(sql)
    db.close()
    let refused = false
    try {
      const store = await TreeStore.open(copy, { readOnly: true })
      try {
        for (const m of store.marks()) store.changedSince(m.name)
      } finally {
        await store.close()
      }
    } catch (err) {
      refused = (err as { code?: string }).code === 'ECORRUPT'
      t.ok(refused, `${what}: ECORRUPT`, { got: err })
      continue
    }
    const report = await checkStore(copy)
    t.ok(report.problems.some((p) => p.code === 'ECORRUPT'), `${what}: fsck reports it`, { problems: report.problems })
  }
  const copy = `${dir}/copy-other`
  nodeFs.cpSync(`${dir}/store`, copy, { recursive: true })
  const db = new Database(`${copy}/pagecow.db`)
  t.throws(() => db.exec('DELETE FROM page_changes'), /no such function: pagecow_counted/, 'another program cannot delete change records')
  t.throws(() => db.exec('DELETE FROM marks'), /no such function: pagecow_counted/, 'nor marks')
  db.close()
})
