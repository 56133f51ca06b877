// ImageStore against an in-memory model: every operation, random sequences at several page
// sizes, and the specific rules of SPEC §2–§5 and §9.
import { closeSync, ftruncateSync, openSync, statfsSync, writeSync } from 'node:fs'
import t from 'tap'
import { ImageStore } from '../lib/image/image-store.js'
import type { Extent } from '../lib/page/extent.js'
import { pattern } from '../tools/crash/pattern.js'
import { ImageModel, extentText } from './fixtures/image-model.js'
import { blockSize } from './fixtures/lower.js'
import { actualFs, pagecowWithFs } from './fixtures/mock-fs.js'
import { Random, testSeeds } from './fixtures/random.js'
import { checkModel, lowerIdentity, storeFixture } from './fixtures/store.js'

const PAGE_SIZES = [512, 4096, 65536]

/** A random byte range in or near an image of `size` bytes, biased towards page edges. */
function randomRange(rng: Random, size: number, P: number): [number, number] {
  const kind = rng.weighted({ wholePages: 3, anywhere: 4, edge: 2, pastEnd: 1, toEnd: 1 })
  const pages = Math.ceil(size / P) + 2
  switch (kind) {
    case 'wholePages': {
      const first = rng.int(0, pages)
      return [first * P, rng.int(1, 4) * P]
    }
    case 'edge': {
      const boundary = rng.int(0, pages) * P
      return [Math.max(0, boundary - rng.int(0, 20)), rng.int(1, 40)]
    }
    case 'pastEnd':
      return [size + rng.int(0, 3 * P), rng.int(1, 2 * P)]
    case 'toEnd': {
      const offset = rng.int(0, size + 1)
      return [offset, Math.max(1, size - offset)]
    }
    default:
      return [rng.int(0, pages * P), rng.int(1, 3 * P)]
  }
}

for (const [i, P] of PAGE_SIZES.entries()) {
  for (const seed of testSeeds([100 + i])) {
    t.test(`random write/zero/discard/truncate/flush/reopen sequence, page size ${P} (seed ${seed})`, async (t) => {
      const rng = new Random(seed)
      const block = blockSize(t.testdir())
      // Holes in the lower are file-system blocks; make sure there are plenty of them.
      const lowerSize = Math.max(30 * P, 24 * block) + 1234
      let { storeDir, lower, model, store } = await storeFixture(t, { pageSize: P, lowerSize, rng })
      const lowerBefore = lowerIdentity(lower.path)
      t.ok(lower.data.length > 1 && lower.data.length * block < lowerSize, 'the lower has both data and holes')
      t.not(lowerSize % P, 0, 'the lower size is not page-aligned')
      t.ok(await checkModel(t, store, model, 'fresh store'))

      const counts: Record<string, number> = {}
      for (let step = 1; step <= 120; step++) {
        const op = rng.weighted({ write: 8, zero: 3, discard: 3, truncate: 1.5, flush: 1.5, reopen: 1 })
        counts[op] = (counts[op] ?? 0) + 1
        let what: string = op
        if (op === 'write') {
          const [offset, length] = randomRange(rng, model.size, P)
          const data = pattern(step, offset, length)
          what = `write(${offset}, ${length})`
          await store.write(offset, data)
          model.write(offset, data)
        } else if (op === 'zero' || op === 'discard') {
          const [offset, length] = randomRange(rng, model.size, P)
          what = `${op}(${offset}, ${length})`
          await store[op](offset, length)
          model[op](offset, length)
        } else if (op === 'truncate') {
          const size = rng.chance(0.3) ? rng.int(0, Math.ceil((lowerSize * 1.5) / P)) * P : rng.int(0, Math.ceil(lowerSize * 1.5))
          what = `truncate(${size})`
          await store.truncate(size)
          model.truncate(size)
        } else if (op === 'flush') {
          await store.flush()
          t.equal(store.info().dirty, false, `step ${step}: nothing dirty after a flush`)
        } else {
          await store.close()
          store = await ImageStore.open(storeDir, { autoFlushMs: 0 })
        }
        if (!(await checkModel(t, store, model, `step ${step} ${what}`))) break

        // Sub-range queries at random places, including past the end.
        for (let k = 0; k < 3; k++) {
          const [offset, length] = randomRange(rng, model.size, P)
          t.same(await store.read(offset, length), model.read(offset, length), `step ${step}: read(${offset}, ${length})`)
          const target = Buffer.alloc(length, 0xee)
          const n = await store.readInto(target, offset)
          const expected = model.read(offset, length)
          t.equal(n, expected.length, `step ${step}: readInto(${offset}) count`)
          t.ok(target.subarray(0, n).equals(expected), `step ${step}: readInto(${offset}) bytes`)
          t.ok(target.subarray(n).every((b) => b === 0xee), `step ${step}: readInto leaves the rest of the buffer alone`)
          const inline = Buffer.alloc(length, 0xee)
          t.equal(store.readIntoSync(inline, offset), n, `step ${step}: readIntoSync(${offset}) count`)
          t.ok(inline.equals(target), `step ${step}: readIntoSync gives readInto's bytes`)
          t.equal(extentText(store.extents(offset, length)), extentText(model.extents(offset, offset + length)), `step ${step}: extents(${offset}, ${length})`)
          const x = rng.int(0, model.size + P)
          t.equal(store.nextData(x), model.nextData(x), `step ${step}: nextData(${x})`)
          t.equal(store.nextHole(x), model.nextHole(x), `step ${step}: nextHole(${x})`)
        }
      }
      t.comment(`ops: ${JSON.stringify(counts)}`)
      await store.close()
      store = await ImageStore.open(storeDir, { readOnly: true })
      t.ok(await checkModel(t, store, model, 'read-only reopen at the end'))
      await store.close()
      t.same(lowerIdentity(lower.path), lowerBefore, 'the lower is byte for byte and mtime unchanged')
    })
  }
}

t.test('a partial write copies the page up: read-modify-write', async (t) => {
  const P = 4096
  const { storeDir, lower, model, store } = await storeFixture(t, { pageSize: P, lowerSize: 16 * P, rng: new Random(5), dataFraction: 1 })
  await store.write(P + 100, Buffer.from('hello'))
  model.write(P + 100, Buffer.from('hello'))
  t.ok(await checkModel(t, store, model, 'after the write'))
  const page = await store.read(P, P)
  t.same(page.subarray(0, 100), lower.bytes.subarray(P, P + 100), 'bytes before the write are the lower bytes')
  t.same(page.subarray(105), lower.bytes.subarray(P + 105, 2 * P), 'bytes after it too')
  t.same(store.info().pages.data, 1, 'one page copied up')
  t.same(store.info().written, { userBytes: 5, upperBytes: P, amplification: P / 5 }, 'a 5-byte write costs one page')

  // A write straddling two pages copies up both edge pages and nothing else.
  await store.write(4 * P - 3, Buffer.from('straddle'))
  model.write(4 * P - 3, Buffer.from('straddle'))
  t.ok(await checkModel(t, store, model, 'after the straddling write'))
  t.same(store.info().pages.data, 3)
  await store.close()
  const again = await ImageStore.open(storeDir, { autoFlushMs: 0 })
  t.ok(await checkModel(t, again, model, 'after reopening'))
  await again.close()
})

t.test('whole-page writes never read the lower', async (t) => {
  const P = 4096
  const dir = t.testdir()
  const rng = new Random(6)
  const { makeLower } = await import('./fixtures/lower.js')
  const lower = makeLower(`${dir}/lower.img`, 64 * P + 77, rng, 1)
  const lowerFds = new Set<number>()
  let lowerReads = 0
  const api = await pagecowWithFs(t, {
    openSync: ((path: string, ...rest: unknown[]) => {
      const fd = (actualFs.openSync as (...a: unknown[]) => number)(path, ...rest)
      if (path === lower.path) lowerFds.add(fd)
      return fd
    }) as typeof actualFs.openSync,
    closeSync: ((fd: number) => {
      lowerFds.delete(fd)
      actualFs.closeSync(fd)
    }) as typeof actualFs.closeSync,
    readSync: ((fd: number, ...rest: unknown[]) => {
      if (lowerFds.has(fd)) lowerReads++
      return (actualFs.readSync as (...a: unknown[]) => number)(fd, ...rest)
    }) as typeof actualFs.readSync,
  })
  const store = await api.ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  const model = new ImageModel(P, lower)
  t.ok(lowerReads > 0, 'the probe sees reads of the lower (the fingerprint at open)')
  lowerReads = 0
  const writes: Array<[number, number]> = [
    [0, P],
    [5 * P, 3 * P],
    [63 * P, P], // the last whole page before the partial tail
    [64 * P, P], // covers the partial last page whole, and grows the image
    [100 * P, 2 * P], // past the end
  ]
  for (const [offset, length] of writes) {
    const data = pattern(1, offset, length)
    await store.write(offset, data)
    model.write(offset, data)
  }
  await store.zero(10 * P, 4 * P)
  model.zero(10 * P, 4 * P)
  await store.discard(20 * P, 2 * P)
  model.discard(20 * P, 2 * P)
  await store.flush()
  t.equal(lowerReads, 0, 'no read of the lower for whole-page writes, zero and discard')

  await store.write(30 * P + 1, Buffer.from('x'))
  model.write(30 * P + 1, Buffer.from('x'))
  t.ok(lowerReads > 0, 'a partial write of a LOWER page does read it (the probe works)')
  lowerReads = 0
  await store.write(30 * P + 2, Buffer.from('y'))
  model.write(30 * P + 2, Buffer.from('y'))
  t.equal(lowerReads, 0, 'a partial write of a DATA page does not read the lower')
  t.ok(await checkModel(t, store as unknown as ImageStore, model, 'contents'))
  await store.close()
})

t.test('writes past the end grow the image and the gap reads zeros', async (t) => {
  for (const P of PAGE_SIZES) {
    const lowerSize = 3 * P + 123
    const { store, model, storeDir } = await storeFixture(t, { pageSize: P, lowerSize, rng: new Random(7), dataFraction: 1 })
    const far = 10 * P + 5
    await store.write(far, Buffer.from('end'))
    model.write(far, Buffer.from('end'))
    t.equal(store.size, far + 3, `P=${P}: the image grew to the end of the write`)
    const gap = await store.read(lowerSize, far - lowerSize)
    t.ok(gap.every((b) => b === 0), `P=${P}: the gap reads zeros`)
    t.ok(await checkModel(t, store, model, `P=${P}: after the far write`))
    // Zeroing past the end grows the image too.
    await store.zero(20 * P + 7, 10)
    model.zero(20 * P + 7, 10)
    t.equal(store.size, 20 * P + 17)
    t.ok(await checkModel(t, store, model, `P=${P}: after zeroing past the end`))
    // Discard past the end changes nothing.
    await store.discard(30 * P, P)
    model.discard(30 * P, P)
    t.equal(store.size, 20 * P + 17, 'discard never grows the image')
    await store.close()
    const again = await ImageStore.open(storeDir, { autoFlushMs: 0 })
    t.ok(await checkModel(t, again, model, `P=${P}: reopened`))
    await again.close()
  }
})

t.test('truncate down then up reads zeros, never the old lower bytes (SPEC §4)', async (t) => {
  for (const P of PAGE_SIZES) {
    const lowerSize = 8 * P + 99
    const { store, model, storeDir, lower } = await storeFixture(t, { pageSize: P, lowerSize, rng: new Random(8), dataFraction: 1 })
    const lowerBefore = lowerIdentity(lower.path)
    // Page 2 is DATA, the rest LOWER; cut in the middle of page 2, then inside LOWER page 5.
    await store.write(2 * P, pattern(1, 2 * P, P))
    model.write(2 * P, pattern(1, 2 * P, P))
    for (const [down, up] of [
      [6 * P + 17, lowerSize + 3 * P],
      [2 * P + 10, 7 * P],
      [0, 9 * P + 1],
    ] as const) {
      await store.truncate(down)
      model.truncate(down)
      t.ok(await checkModel(t, store, model, `P=${P}: truncate(${down})`))
      await store.truncate(up)
      model.truncate(up)
      t.ok(await checkModel(t, store, model, `P=${P}: truncate(${down}) then truncate(${up})`))
      const regrown = await store.read(down, up - down)
      t.ok(regrown.every((b) => b === 0), `P=${P}: the regrown part reads zeros`)
      // Past the page holding the cut (a DATA page there keeps its zeroed tail as DATA).
      const whole = Math.ceil(down / P) * P
      const regrownMap = [...store.extents(whole, up - whole)]
      t.ok(regrownMap.every((e) => e.state === 'hole'), `P=${P}: and maps as holes`, { regrownMap })
    }
    // Truncate is committed at once: a reopen sees it even without a flush.
    await store.close()
    const again = await ImageStore.open(storeDir, { autoFlushMs: 0 })
    t.ok(await checkModel(t, again, model, `P=${P}: reopened`))
    await again.close()
    t.same(lowerIdentity(lower.path), lowerBefore, 'the lower is unchanged')
  }
})

t.test('zero and discard give upper space back; discard only affects whole pages', async (t) => {
  const P = 4096
  const { store, model } = await storeFixture(t, { pageSize: P, lowerSize: 64 * P, rng: new Random(9), dataFraction: 1 })
  await store.write(0, pattern(1, 0, 32 * P))
  model.write(0, pattern(1, 0, 32 * P))
  await store.flush()
  const full = store.info().upper.allocatedBytes
  t.ok(full >= 32 * P, `32 pages written take at least 32 pages (${full})`)

  // A discard that covers no page whole changes nothing at all.
  await store.discard(P / 2, P)
  model.discard(P / 2, P)
  t.ok(await checkModel(t, store, model, 'discard of two half pages'))
  t.equal(store.info().pages.zero, 0, 'no page became ZERO')

  await store.discard(P / 2, 8 * P) // pages 1..7 whole, pages 0 and 8 partial
  model.discard(P / 2, 8 * P)
  t.ok(await checkModel(t, store, model, 'discard of pages 1–7 and two partial pages'))
  t.equal(store.info().pages.zero, 7)
  await store.zero(16 * P, 16 * P)
  model.zero(16 * P, 16 * P)
  t.ok(await checkModel(t, store, model, 'zero of pages 16–31'))
  await store.flush()
  const after = store.info().upper.allocatedBytes
  t.ok(after <= full - 23 * P, `23 pages freed: ${full} → ${after} bytes allocated`)
  t.equal(store.info().upper.apparentBytes, 32 * P, 'punching holes keeps the upper file size')

  // Zero of a partial page over DATA writes zeros and keeps the page DATA.
  await store.zero(9 * P + 5, 10)
  model.zero(9 * P + 5, 10)
  t.ok(await checkModel(t, store, model, 'partial zero'))
  await store.close()
})

t.test('extents: merged runs, zero vs hole, lower data and holes, the last one marked', async (t) => {
  const P = 4096
  const dir = t.testdir()
  const block = blockSize(dir)
  const lowerPath = `${dir}/lower.img`
  // Lower: data in blocks [0, 4) and [8, 10), holes elsewhere, size not block-aligned.
  const size = 16 * block + 100
  const fd = openSync(lowerPath, 'w')
  writeSync(fd, pattern(0xffffffff, 0, 4 * block), 0, 4 * block, 0)
  writeSync(fd, pattern(0xffffffff, 8 * block, 2 * block), 0, 2 * block, 8 * block)
  ftruncateSync(fd, size)
  closeSync(fd)
  const lowerBytes = Buffer.alloc(size)
  pattern(0xffffffff, 0, 4 * block).copy(lowerBytes, 0)
  pattern(0xffffffff, 8 * block, 2 * block).copy(lowerBytes, 8 * block)
  const lower = { path: lowerPath, size, data: [[0, 4 * block], [8 * block, 10 * block]] as Array<[number, number]>, bytes: lowerBytes }
  const store = await ImageStore.create(`${dir}/store`, { lower: lowerPath, pageSize: P, autoFlushMs: 0 })
  const model = new ImageModel(P, lower)
  const expectFresh = model.extents()
  t.same(expectFresh.map((e) => e.state), ['lower', 'hole', 'lower', 'hole'], 'the model sees the lower layout')
  t.equal(extentText(store.extents()), extentText(expectFresh), 'a fresh store maps the lower data and holes')

  const ops: Array<[string, number, number]> = [
    ['write', 0, P], // DATA at the start
    ['write', P, P], // adjacent DATA: must merge with the first
    ['zero', 5 * block, 2 * block], // ZERO inside a lower hole: zero, not hole
    ['discard', 9 * block, block], // ZERO inside lower data
    ['write', 12 * block + 10, 5], // DATA page inside a hole
    ['zero', 7 * block, block], // ZERO adjacent to ZERO: merge
  ]
  for (const [op, offset, length] of ops) {
    if (op === 'write') {
      await store.write(offset, pattern(2, offset, length))
      model.write(offset, pattern(2, offset, length))
    } else {
      await store[op as 'zero' | 'discard'](offset, length)
      model[op as 'zero' | 'discard'](offset, length)
    }
  }
  t.ok(await checkModel(t, store, model, 'after the ops'))
  const all = [...store.extents()]
  t.equal(all.filter((e) => e.last).length, 1, 'exactly one extent is marked last')
  t.ok(all.at(-1)!.last, 'and it is the final one')
  t.equal(all.reduce((s, e) => s + e.length, 0), store.size, 'extents cover the image exactly')
  for (let k = 1; k < all.length; k++) {
    t.ok(all[k - 1]!.state !== all[k]!.state, `extents ${k - 1} and ${k} differ in state (merged)`)
    t.equal(all[k - 1]!.start + all[k - 1]!.length, all[k]!.start, `extents ${k - 1} and ${k} are contiguous`)
  }
  t.ok(all.some((e) => e.state === 'zero') && all.some((e) => e.state === 'hole'), 'ZERO pages and lower holes are told apart')
  t.equal(all[0]!.state, 'data')
  t.equal(all[0]!.length, 2 * P, 'two adjacent DATA pages make one extent')

  // Every sub-range and every SEEK_DATA/SEEK_HOLE position, against the model.
  const step = 1024
  for (let offset = 0; offset <= store.size + step; offset += step) {
    t.equal(store.nextData(offset), model.nextData(offset), `nextData(${offset})`)
    t.equal(store.nextHole(offset), model.nextHole(offset), `nextHole(${offset})`)
    const length = (offset * 7) % (5 * block) + 1
    const sub: Extent[] = [...store.extents(offset, length)]
    t.equal(extentText(sub), extentText(model.extents(offset, offset + length)), `extents(${offset}, ${length})`)
  }
  t.same([...store.extents(store.size, 10)], [], 'no extents past the end')
  t.equal(store.nextHole(store.size), null, 'no hole at or past the end')
  t.equal(store.nextData(store.size - 1), model.nextData(store.size - 1))
  await store.close()
})

t.test('upper space is about N pages for N pages written, whatever the image size', async (t) => {
  const dir = t.testdir()
  const lowerPath = `${dir}/lower.img`
  const GiB = 2 ** 30
  const size = 64 * GiB
  const fd = openSync(lowerPath, 'w')
  writeSync(fd, pattern(0xffffffff, 0, 1 << 20), 0, 1 << 20, 0) // 1 MiB of data at the start
  writeSync(fd, pattern(0xffffffff, 40 * GiB, 4096), 0, 4096, 40 * GiB)
  ftruncateSync(fd, size)
  closeSync(fd)
  const before = lowerIdentity(lowerPath)
  const fsBlock = statfsSync(dir).bsize
  for (const P of [512, 4096, 65536]) {
    const store = await ImageStore.create(`${dir}/store-${P}`, { lower: lowerPath, pageSize: P, autoFlushMs: 0 })
    const rng = new Random(P)
    const written = new Set<number>()
    const N = 300
    while (written.size < N) {
      const page = rng.int(0, size / P)
      if (written.has(page)) continue
      written.add(page)
      await store.write(page * P + (rng.chance(0.5) ? 0 : 1), Buffer.from('xy')) // partial: a copy-up each
    }
    await store.flush()
    const info = store.info()
    t.equal(info.pages.data, N, `P=${P}: ${N} DATA pages`)
    const blocks = new Set([...written].flatMap((p) => {
      const first = Math.floor((p * P) / fsBlock)
      return Array.from({ length: Math.max(1, P / fsBlock) }, (_, k) => first + k)
    }))
    const expected = blocks.size * fsBlock
    const slack = 32 * fsBlock // extent-tree blocks of the file system
    t.ok(info.upper.allocatedBytes >= expected, `P=${P}: at least the ${expected} bytes the pages need (got ${info.upper.allocatedBytes})`)
    t.ok(info.upper.allocatedBytes <= expected + slack, `P=${P}: at most ${expected} + ${slack} bytes (got ${info.upper.allocatedBytes})`)
    t.ok(info.upper.databaseBytes < 8 << 20, `P=${P}: the database stays small (${info.upper.databaseBytes} bytes)`)
    t.equal(info.size, size)
    // Reads through the hole-y image are correct at a far written page and an untouched one.
    const [someWritten] = written
    const page = await store.read(someWritten! * P, P)
    t.ok(page.includes(Buffer.from('xy')), `P=${P}: a written page reads back`)
    t.same(await store.read(40 * GiB, 16), pattern(0xffffffff, 40 * GiB, 16), `P=${P}: the lower data far in is read through`)
    await store.close()
  }
  t.same(lowerIdentity(lowerPath), before, 'the 64 GiB lower is unchanged')
})

t.test('a read-only opener sees what a writer flushed', async (t) => {
  const P = 4096
  const { store, model, storeDir } = await storeFixture(t, { pageSize: P, lowerSize: 32 * P + 5, rng: new Random(10) })
  const reader = await ImageStore.open(storeDir, { readOnly: true })
  t.ok(await checkModel(t, reader, model, 'the reader before any write'))
  await store.write(3 * P, pattern(1, 3 * P, 2 * P))
  model.write(3 * P, pattern(1, 3 * P, 2 * P))
  await store.zero(10 * P, 3 * P)
  model.zero(10 * P, 3 * P)
  await store.write(40 * P, Buffer.from('grown'))
  model.write(40 * P, Buffer.from('grown'))
  await store.flush()
  t.ok(await checkModel(t, reader, model, 'a reader opened before the writes sees them after the flush'))
  await store.truncate(20 * P + 1)
  model.truncate(20 * P + 1)
  t.ok(await checkModel(t, reader, model, 'and sees a truncate'))
  const late = await ImageStore.open(storeDir, { readOnly: true })
  t.ok(await checkModel(t, late, model, 'a reader opened after the flush'))
  t.equal(late.info().readOnly, true)
  await t.rejects(late.write(0, Buffer.from('x')), { code: 'EROFS' }, 'a reader cannot write')
  await t.rejects(late.truncate(0), { code: 'EROFS' })
  await late.flush() // a no-op, not an error
  await late.close()
  await reader.close()
  await store.close()
})

t.test('a closed store refuses everything with ECLOSED', async (t) => {
  const { store } = await storeFixture(t, { pageSize: 4096, lowerSize: 8192, rng: new Random(11) })
  await store.write(0, Buffer.from('x'))
  await store.close()
  await store.close() // closing twice is harmless
  await t.rejects(store.write(0, Buffer.from('y')), { code: 'ECLOSED' })
  await t.rejects(store.zero(0, 1), { code: 'ECLOSED' })
  await t.rejects(store.discard(0, 4096), { code: 'ECLOSED' })
  await t.rejects(store.truncate(0), { code: 'ECLOSED' })
  await t.rejects(store.read(0, 1), { code: 'ECLOSED' })
  await t.rejects(store.readInto(Buffer.alloc(1), 0), { code: 'ECLOSED' })
  t.throws(() => store.readIntoSync(Buffer.alloc(1), 0), { code: 'ECLOSED' })
  await t.rejects(store.flush(), { code: 'ECLOSED' })
  t.throws(() => [...store.extents()], { code: 'ECLOSED' })
  t.throws(() => store.nextData(0), { code: 'ECLOSED' })
  t.throws(() => store.nextHole(0), { code: 'ECLOSED' })
  t.throws(() => store.info(), { code: 'ECLOSED' })
  t.throws(() => store.size, { code: 'ECLOSED' })
})

t.test('write amplification: whole pages cost what they write', async (t) => {
  const P = 4096
  const { store } = await storeFixture(t, { pageSize: P, lowerSize: 16 * P, rng: new Random(12), dataFraction: 1 })
  await store.write(0, Buffer.alloc(4 * P, 1))
  t.same(store.info().written, { userBytes: 4 * P, upperBytes: 4 * P, amplification: 1 })
  await store.write(P + 1, Buffer.alloc(10, 2)) // a DATA page: written in place, no copy-up
  t.same(store.info().written, { userBytes: 4 * P + 10, upperBytes: 4 * P + 10, amplification: 1 })
  await store.close()
})

t.test('large readInto, on the calling thread and through the thread pool, gives the model’s bytes in every page state', async (t) => {
  const P = 4096
  const rng = new Random(31)
  const { store, model } = await storeFixture(t, { pageSize: P, lowerSize: 300 * P + 123, rng, dataFraction: 0.6 })
  // DATA, ZERO (zero and discard), LOWER and lower-hole pages, some flushed and some not.
  for (let i = 0; i < 40; i++) {
    const at = rng.int(0, 300 * P)
    const length = rng.int(1, 9 * P)
    const kind = rng.int(0, 3)
    if (kind === 0) {
      const data = pattern(100 + i, at, length)
      await store.write(at, data)
      model.write(at, data)
    } else if (kind === 1) {
      await store.zero(at, length)
      model.zero(at, length)
    } else {
      await store.discard(at, length)
      model.discard(at, length)
    }
    if (i % 10 === 9) await store.flush()
  }
  const reads: Array<Promise<void>> = []
  for (let i = 0; i < 48; i++) {
    const at = rng.int(0, model.size)
    const target = Buffer.alloc(rng.int(64 * 1024, 512 * 1024), 0xee)
    const threadPool = i % 2 === 0
    reads.push(
      store.readInto(target, at, { threadPool }).then((n) => {
        const want = model.read(at, Math.min(target.length, model.size - at))
        const how = threadPool ? 'in the pool' : 'on the calling thread'
        t.equal(n, want.length, `read ${i} at ${at} ${how}: length`)
        t.ok(target.subarray(0, n).equals(want), `read ${i} at ${at} ${how}: the model's bytes`)
      }),
    )
  }
  await Promise.all(reads) // concurrent: the pool's overlap
  const inFlight = store.readInto(Buffer.alloc(1 << 20), 0, { threadPool: true })
  await store.close()
  t.equal(await inFlight, 1 << 20, 'a read in flight when close() is called finishes first')
})

t.test('every close() waits for the one close: the store can be opened again when any of them returns', async (t) => {
  const P = 4096
  const { store, storeDir } = await storeFixture(t, { pageSize: P, lowerSize: 512 * P, rng: new Random(5) })
  await store.write(0, pattern(1, 0, P))
  const reading = store.readInto(Buffer.alloc(1 << 20), 0, { threadPool: true }) // the first close waits for it
  const first = store.close()
  await new Promise((resolve) => setImmediate(resolve))
  await store.close()
  const again = await ImageStore.open(storeDir, { autoFlushMs: 0 })
  t.pass('opened for writing right after the second close() returned')
  t.ok((await again.read(0, P)).equals(pattern(1, 0, P)), 'with the write the close flushed')
  await again.close()
  await first
  t.equal(await reading, 1 << 20)
})
