// Incremental backup end to end (issue 12), library level: a full export at a mark, a random
// workload, an incremental since the mark applied onto the full export equals a full export made
// now, byte for byte; chains applied in order; out-of-order and foreign targets refused with
// nothing changed; a cut-short apply finished by the same incremental only; a tree store's file.
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import t from 'tap'
import { applyIncremental, exportImage, exportIncremental, exportIncrementalToStream, ImageStore, POSITION_XATTR, TreeStore } from '../lib/index.js'
import * as fs from '../lib/fs.js'
import { makeLower } from './fixtures/lower.js'
import { Random, testSeeds } from './fixtures/random.js'
import type { TapTest } from './fixtures/tap-test.js'
import { rejectsWith } from './fixtures/rejects-with.js'

const P = 4096

/** A random mix of writes, zeroes, discards, truncations (down and up) and flushes. */
async function workload(store: ImageStore, rng: Random, steps: number): Promise<void> {
  for (let i = 0; i < steps; i++) {
    const size = store.size
    const offset = rng.int(0, Math.max(1, size + 2 * P))
    const length = rng.int(1, 6 * P)
    const op = rng.int(0, 100)
    if (op < 50) await store.write(offset, rng.bytes(Math.min(length, 3 * P)))
    else if (op < 62) await store.zero(offset, length)
    else if (op < 72) await store.discard(offset, length)
    else if (op < 78) await store.truncate(rng.int(Math.floor(size / 2), size + 8 * P))
    else if (op < 84) await store.write(size + rng.int(0, 3 * P), Buffer.alloc(rng.int(1, P), 7)) // growth by a write
    else if (op < 88) await store.write(offset, Buffer.alloc(length)) // zeros written as data
    else await store.flush()
  }
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

function sameImage(t: TapTest, got: string, want: string, message: string): void {
  const a = readFileSync(got)
  const b = readFileSync(want)
  t.equal(a.length, b.length, `${message}: same size`)
  t.ok(a.equals(b), `${message}: same bytes`)
}

for (const seed of testSeeds([1, 2, 3, 4])) {
  t.test(`image: full export at a mark + incremental since = full export now (seed ${seed})`, async (t) => {
    const rng = new Random(seed)
    const dir = t.testdir()
    const lower = makeLower(`${dir}/lower.img`, 64 * P + 321, rng, 0.6)
    const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
    await workload(store, rng, 30)
    await store.mark('A')
    await exportImage(store, `${dir}/restore.img`)
    await workload(store, rng, 80)
    const result = await exportIncremental(store, `${dir}/inc`, { since: 'A' })
    await exportImage(store, `${dir}/now.img`)
    const applied = await applyIncremental(`${dir}/inc`, `${dir}/restore.img`)
    sameImage(t, `${dir}/restore.img`, `${dir}/now.img`, 'applied onto the export at the mark')
    t.equal(applied.kind !== 'tree' && applied.size, store.size, 'the size is the image size now')
    t.equal(applied.id, result.id, 'the apply names the incremental')
    t.ok(applied.positionChecked && applied.positionRecorded, 'the chain position was checked and recorded')
    // Proportional: only changed bytes travel.
    let changed = 0
    for (const e of store.changedExtents('A')) if (e.change !== 'truncated') changed += Math.min(e.start + e.length, store.size) - e.start
    t.ok(result.dataBytes + result.zeroBytes <= changed, 'the incremental covers no more than the changed bytes')
    await store.close()
  })
}

t.test('image: a chain A -> B -> C applied in order; out of order refused', async (t) => {
  const rng = new Random(77)
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 96 * P, rng, 0.5)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  await exportImage(store, `${dir}/full.img`)
  // Pages only this first increment touches (the content check of the next one leans on them).
  await store.write(10 * P, Buffer.alloc(4 * P, 0xab))
  await workload(store, rng, 40)
  await store.mark('B')
  await exportIncremental(store, `${dir}/inc1`, { since: 'A' })
  await workload(store, rng, 40)
  await store.mark('C')
  await exportIncremental(store, `${dir}/inc2`, { since: 'B' })
  await workload(store, rng, 40)
  await exportIncremental(store, `${dir}/inc3`, { since: 'C' })
  await exportImage(store, `${dir}/now.img`)

  copyFileSync(`${dir}/full.img`, `${dir}/plain.img`) // copyFile drops the xattr: the content check alone
  const before = sha(`${dir}/full.img`)
  await rejectsWith(t, () => applyIncremental(`${dir}/inc2`, `${dir}/full.img`), 'ECHAIN', 'inc2 onto the full export (inc1 skipped)')
  await rejectsWith(t, () => applyIncremental(`${dir}/inc3`, `${dir}/full.img`), 'ECHAIN', 'inc3 onto the full export')
  t.equal(sha(`${dir}/full.img`), before, 'refused applies changed nothing')
  await rejectsWith(t, () => applyIncremental(`${dir}/inc2`, `${dir}/plain.img`), 'ECHAIN', 'inc2 onto a copy without the position (content check)')

  await applyIncremental(`${dir}/inc1`, `${dir}/full.img`)
  const again = await applyIncremental(`${dir}/inc1`, `${dir}/full.img`)
  t.equal(again.reached.name, 'B', 'applying the same incremental twice is allowed (it is idempotent)')
  await applyIncremental(`${dir}/inc2`, `${dir}/full.img`)
  const afterTwo = sha(`${dir}/full.img`)
  await rejectsWith(t, () => applyIncremental(`${dir}/inc1`, `${dir}/full.img`), 'ECHAIN', 'inc1 onto a target already at C')
  t.equal(sha(`${dir}/full.img`), afterTwo, 'the refused apply changed nothing')
  await applyIncremental(`${dir}/inc3`, `${dir}/full.img`)
  sameImage(t, `${dir}/full.img`, `${dir}/now.img`, 'the chain applied in order')

  // The same chain without positions (copies that dropped xattrs): the content check alone.
  const first = await applyIncremental(`${dir}/inc1`, `${dir}/plain.img`)
  t.equal(first.positionChecked, false, 'no position to check on a plain copy')
  t.equal(first.positionRecorded, true, 'the apply records one')
  await applyIncremental(`${dir}/inc2`, `${dir}/plain.img`)
  await applyIncremental(`${dir}/inc3`, `${dir}/plain.img`)
  sameImage(t, `${dir}/plain.img`, `${dir}/now.img`, 'the chain applied onto a plain copy')

  // Another store's image is refused.
  const other = await ImageStore.create(`${dir}/other`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await other.mark('A')
  await exportImage(other, `${dir}/other.img`)
  await rejectsWith(t, () => applyIncremental(`${dir}/inc1`, `${dir}/other.img`), 'ECHAIN', "inc1 onto another store's image")
  await other.close()
  await store.close()
})

t.test('image: a full export made before the mark is refused', async (t) => {
  const rng = new Random(5)
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 32 * P, rng, 0.5)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await exportImage(store, `${dir}/early.img`)
  await store.write(3 * P, Buffer.alloc(P, 1)) // between the export and the mark: in no incremental
  await store.mark('A')
  await store.write(9 * P, Buffer.alloc(P, 2))
  await exportIncremental(store, `${dir}/inc`, { since: 'A' })
  await rejectsWith(t, () => applyIncremental(`${dir}/inc`, `${dir}/early.img`), 'ECHAIN', 'a target exported before any mark')
  await store.close()
})

t.test('image: a cut-short apply is finished by the same incremental, and only by it', async (t) => {
  const rng = new Random(9)
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 40 * P, rng, 0.5)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  await exportImage(store, `${dir}/base.img`)
  await workload(store, rng, 30)
  await store.mark('B')
  const inc1 = await exportIncremental(store, `${dir}/inc1`, { since: 'A' })
  await workload(store, rng, 30)
  await exportIncremental(store, `${dir}/inc2`, { since: 'B' })
  await exportImage(store, `${dir}/now.img`)
  // What an apply leaves when killed after it said what it applies and wrote part of it.
  const fd = fs.openSync(`${dir}/base.img`, fs.constants.O_RDWR)
  const position = JSON.parse(fs.getXattr(fd, POSITION_XATTR)!.toString()) as { store: string; at: unknown }
  fs.setXattr(fd, POSITION_XATTR, Buffer.from(JSON.stringify({ ...position, applying: { id: inc1.id, since: inc1.since, reached: inc1.reached } })))
  fs.writeSync(fd, Buffer.alloc(P, 0x5a), 0, P, 0)
  fs.closeSync(fd)
  await rejectsWith(t, () => applyIncremental(`${dir}/inc2`, `${dir}/base.img`), 'ECHAIN', 'another incremental while one is part way')
  const r = await applyIncremental(`${dir}/inc1`, `${dir}/base.img`)
  t.ok(r.resumed, 'the same incremental finishes it')
  await applyIncremental(`${dir}/inc2`, `${dir}/base.img`)
  sameImage(t, `${dir}/base.img`, `${dir}/now.img`, 'then the chain goes on')
  await store.close()
})

t.test('image: an incremental costs in proportion to the changes, not the image', async (t) => {
  const dir = t.testdir()
  writeFileSync(`${dir}/lower.img`, '')
  fs.ftruncateSync(fs.openSync(`${dir}/lower.img`, 'r+'), 8 * 1024 ** 3) // 8 GiB, all hole
  const store = await ImageStore.create(`${dir}/store`, { lower: `${dir}/lower.img`, autoFlushMs: 0 })
  await store.write(5 * 1024 ** 3, Buffer.alloc(3 * P, 1))
  await store.mark('A')
  await store.write(1024 ** 3, Buffer.alloc(2 * P, 2))
  await store.zero(2 * 1024 ** 3, 1024 ** 2)
  const r = await exportIncremental(store, `${dir}/inc`, { since: 'A' })
  t.equal(r.dataBytes, 2 * P, 'only the written pages are carried')
  t.equal(r.zeroBytes, 1024 ** 2, 'the zeroed range is said, not carried')
  t.ok(statSync(`${dir}/inc`).size < 64 * 1024, `the incremental is small (${statSync(`${dir}/inc`).size} bytes)`)
  await store.close()
})

t.test('image: an incremental streamed applies the same', async (t) => {
  const rng = new Random(11)
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 48 * P, rng, 0.5)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  await exportImage(store, `${dir}/base.img`)
  await workload(store, rng, 60)
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(Buffer.from(chunk))
      cb()
    },
  })
  const r = await exportIncrementalToStream(store, sink, { since: 'A' })
  const bytes = Buffer.concat(chunks)
  t.equal(bytes.length, r.fileBytes, 'the stream carried fileBytes')
  writeFileSync(`${dir}/inc`, bytes)
  await exportImage(store, `${dir}/now.img`)
  await applyIncremental(`${dir}/inc`, `${dir}/base.img`)
  sameImage(t, `${dir}/base.img`, `${dir}/now.img`, 'streamed incremental applied')
  await store.close()
})

t.test('tree: the changes of one file since a mark, applied onto its copy at the mark', async (t) => {
  const rng = new Random(21)
  const dir = t.testdir({ lower: { 'disk.img': rng.bytes(20 * P + 100).toString('latin1'), etc: { hosts: 'h\n' } } })
  const store = await TreeStore.create(`${dir}/store`, { lower: `${dir}/lower`, pageSize: P, autoFlushMs: 0 })
  const h = await store.open('/disk.img', 'r+')
  await h.write(3 * P, Buffer.alloc(P, 1))
  await store.mark('A')
  writeFileSync(`${dir}/disk-at-A.img`, await h.read(0, (await h.stat()).size))
  await h.write(7 * P + 5, Buffer.alloc(2 * P, 2))
  await h.zero(12 * P, 3 * P)
  await h.truncate(30 * P + 17)
  await h.write(25 * P, Buffer.alloc(10, 3))
  await store.create('/etc/new', { mode: 0o644 })
  const r = await exportIncremental(store, `${dir}/inc`, { since: 'A', path: '/disk.img' })
  t.equal(r.kind, 'file')
  t.equal(r.kind !== 'tree' && r.path, '/disk.img')
  const now = await h.read(0, (await h.stat()).size)
  await applyIncremental(`${dir}/inc`, `${dir}/disk-at-A.img`)
  t.ok(readFileSync(`${dir}/disk-at-A.img`).equals(now), 'the file applied equals the file now')
  await h.close()
  await rejectsWith(t, () => exportIncremental(store, `${dir}/inc2`, { since: 'A', path: '/etc/new' }), 'EINVAL', 'a file created since the mark')
  t.equal((await exportIncremental(store, `${dir}/tree-inc`, { since: 'A' })).kind, 'tree', 'without a path: the whole tree')
  await rejectsWith(t, () => exportIncremental(store, `${dir}/inc2`, { since: 'A', path: '/etc' }), 'EISDIR', 'a directory')
  await store.close()
})

t.test('bad input to exportIncremental and applyIncremental', async (t) => {
  const rng = new Random(3)
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 16 * P, rng, 0.5)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  await exportImage(store, `${dir}/base.img`)
  await store.write(0, Buffer.alloc(P, 1))
  const bad: Array<[string, () => unknown, string]> = [
    ['no mark', () => exportIncremental(store, `${dir}/x`, { since: 'nope' }), 'ENOENT'],
    ['a bad mark name', () => exportIncremental(store, `${dir}/x`, { since: 'a b' }), 'EINVAL'],
    ['since missing', () => exportIncremental(store, `${dir}/x`, {} as never), 'EINVAL'],
    ['a misspelled option', () => exportIncremental(store, `${dir}/x`, { since: 'A', overwrit: true } as never), 'EINVAL'],
    ['an existing output', () => exportIncremental(store, `${dir}/base.img`, { since: 'A' }), 'EEXIST'],
    ['an output in the store', () => exportIncremental(store, `${dir}/store/inc`, { since: 'A' }), 'EINVAL'],
    ['the lower as output', () => exportIncremental(store, lower.path, { since: 'A', overwrite: true }), 'EINVAL'],
    ['a path for an image store', () => exportIncremental(store, `${dir}/x`, { since: 'A', path: '/a' }), 'EINVAL'],
    ['no such incremental', () => applyIncremental(`${dir}/none`, `${dir}/base.img`), 'ENOENT'],
    ['not an incremental', () => applyIncremental(`${dir}/base.img`, `${dir}/base.img`), 'EINVAL'],
    ['an unknown apply option', () => applyIncremental(`${dir}/base.img`, `${dir}/base.img`, { fast: true } as never), 'EINVAL'],
  ]
  for (const [what, fn, code] of bad) await rejectsWith(t, fn, code, what)
  await exportIncremental(store, `${dir}/inc`, { since: 'A' })
  await rejectsWith(t, () => applyIncremental(`${dir}/inc`, `${dir}/missing.img`), 'ENOENT', 'no such target')
  await rejectsWith(t, () => applyIncremental(`${dir}/inc`, dir), 'EINVAL', 'a directory as target')
  await rejectsWith(t, () => applyIncremental(`${dir}/inc`, `${dir}/inc`), 'EINVAL', 'the incremental as its own target')
  fs.symlinkSync(`${dir}/base.img`, `${dir}/link.img`)
  await rejectsWith(t, () => applyIncremental(`${dir}/inc`, `${dir}/link.img`), 'EINVAL', 'a symlink as target')
  t.notOk(fs.existsSync(`${dir}/x`), 'nothing was left at the output')
  await store.close()
})

t.test('image: growth since the mark (no change of its own) and a shorter target', async (t) => {
  const rng = new Random(13)
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 16 * P, rng, 0.8)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  await exportImage(store, `${dir}/base.img`)
  await store.truncate(200 * P + 7) // the new pages read zeros: nothing is listed for them
  await store.write(150 * P, Buffer.alloc(10, 4))
  const r = await exportIncremental(store, `${dir}/inc`, { since: 'A' })
  t.equal(r.kind !== 'tree' && r.size, 200 * P + 7)
  await exportImage(store, `${dir}/now.img`)
  await applyIncremental(`${dir}/inc`, `${dir}/base.img`)
  sameImage(t, `${dir}/base.img`, `${dir}/now.img`, 'grown image applied')
  await store.close()
})
