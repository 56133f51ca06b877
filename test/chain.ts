// Chains (SPEC §11, issue 13): an image store as the lower of another, to any depth. Each layer is
// checked against a model of its own (its merged bytes) after random writes, zeroes, discards and
// truncations at several page sizes, and the layer of each extent against the layers' page states.
import { readFileSync, renameSync } from 'node:fs'
import t from 'tap'
import { applyIncremental, checkStore, createStore, exportImage, exportIncremental, ImageStore, type LayerExtent } from '../lib/index.js'
import { openDatabase, DATABASE_FILE } from '../lib/store/database.js'
import { readMeta, writeMeta } from '../lib/store/meta.js'
import { firstDifference, ImageModel } from './fixtures/image-model.js'
import { makeLower } from './fixtures/lower.js'
import { Random } from './fixtures/random.js'
import type { TapTest as Test } from './fixtures/tap-test.js'

/** One random change to a store and its model alike. */
async function randomOp(rng: Random, store: ImageStore, model: ImageModel, truncate: boolean): Promise<string> {
  const P = model.pageSize
  const size = model.size
  const offset = rng.chance(0.5) ? rng.int(0, Math.ceil(size / P)) * P : rng.int(0, size)
  const length = rng.chance(0.5) ? rng.int(1, 4) * P : rng.int(1, 3 * P)
  const op = rng.weighted({ write: 6, zero: 2, discard: 1, truncate: truncate ? 1 : 0 })
  if (op === 'write') {
    const data = Buffer.alloc(length, rng.int(1, 256))
    await store.write(offset, data)
    model.write(offset, data)
  } else if (op === 'zero') {
    await store.zero(offset, length)
    model.zero(offset, length)
  } else if (op === 'discard') {
    await store.discard(offset, length)
    model.discard(offset, length)
  } else {
    const to = rng.int(Math.floor(size / 2), size + 2 * P)
    await store.truncate(to)
    model.truncate(to)
    return `truncate ${to}`
  }
  return `${op} ${offset}+${length}`
}

/** The store reads as the model, byte for byte (its size too). */
async function checkBytes(t: Test, store: ImageStore, model: ImageModel, what: string): Promise<void> {
  t.equal(store.size, model.size, `${what}: size`)
  const got = await store.read(0, store.size)
  const want = model.read(0, model.size)
  const at = firstDifference(got, want)
  t.equal(at, -1, `${what}: every byte as the model has it${at < 0 ? '' : ` (first difference at ${at})`}`)
}


/** A model of a new layer over `below`: the merged bytes of the layer below are its lower. */
function layerModel(below: ImageModel): ImageModel {
  const bytes = below.read(0, below.size)
  return new ImageModel(below.pageSize, { size: below.size, data: [], bytes })
}

for (const pageSize of [512, 4096, 65536]) {
  t.test(`a chain of three stores over a raw image, page size ${pageSize}: each layer reads as its model`, async (t) => {
    const rng = new Random(0xc4a1 + pageSize)
    const dir = t.testdir()
    const lower = makeLower(`${dir}/lower.img`, 24 * pageSize + 100, rng)
    const names = ['a', 'b', 'c']
    const models: ImageModel[] = []
    let below: string = lower.path
    for (const [i, name] of names.entries()) {
      const path = `${dir}/${name}`
      // The first layer names its page size; the ones above take their base's.
      const store = await ImageStore.create(path, i === 0 ? { lower: below, pageSize, autoFlushMs: 0 } : { lower: below, autoFlushMs: 0 })
      t.equal(store.pageSize, pageSize, `${name}: page size ${pageSize}`)
      const model = i === 0 ? new ImageModel(pageSize, lower) : layerModel(models[i - 1]!)
      await checkBytes(t, store, model, `${name}, new`)
      const ops: string[] = []
      for (let k = 0; k < 40; k++) ops.push(await randomOp(rng, store, model, i < names.length - 1 || k % 2 === 0))
      await checkBytes(t, store, model, `${name}, after ${ops.length} changes`)
      await store.close()
      models.push(model)
      below = path
    }

    // Every layer, reopened read-only (the lower ones are sealed), still reads as it did.
    for (const [i, name] of names.entries()) {
      const store = await ImageStore.open(`${dir}/${name}`, { readOnly: true })
      await checkBytes(t, store, models[i]!, `${name}, reopened`)
      t.equal(store.backingChain().length, i + 2, `${name}: ${i + 1} store(s) and the raw image in its chain`)
      await store.close()
      const report = await checkStore(`${dir}/${name}`)
      t.ok(report.clean, `${name}: fsck clean`, { problems: report.problems })
    }

    // The top writes on: only it changes.
    const top = await ImageStore.open(`${dir}/c`, { autoFlushMs: 0 })
    for (let k = 0; k < 10; k++) await randomOp(rng, top, models[2]!, false)
    await checkBytes(t, top, models[2]!, 'c, written again')
    await top.close()
    for (const [i, name] of names.slice(0, 2).entries()) {
      const store = await ImageStore.open(`${dir}/${name}`, { readOnly: true })
      await checkBytes(t, store, models[i]!, `${name}, unchanged by writes above it`)
      await store.close()
    }
  })
}

t.test('map by layer: each page comes from the first layer from the top that holds it', async (t) => {
  const P = 4096
  const rng = new Random(77)
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 64 * P, rng, 0.6)
  const depths = 4
  // Page states of each store layer (top last), without truncations: what the map must report.
  const states: Array<Map<number, 'data' | 'zero'>> = []
  let below = lower.path
  let store: ImageStore | undefined
  for (let i = 0; i < depths; i++) {
    store = await ImageStore.create(`${dir}/s${i}`, { lower: below, autoFlushMs: 0 })
    const own = new Map<number, 'data' | 'zero'>()
    for (let k = 0; k < 12; k++) {
      const page = rng.int(0, 64)
      if (rng.chance(0.7)) {
        await store.write(page * P, Buffer.alloc(P, i + 1))
        own.set(page, 'data')
      } else {
        await store.zero(page * P, P)
        own.set(page, 'zero')
      }
    }
    states.push(own)
    if (i < depths - 1) await store.close()
    below = `${dir}/s${i}`
  }
  const top = store!
  const byPage: Array<{ state: LayerExtent['state']; depth: number }> = []
  for (const e of top.extentsByLayer()) {
    for (let p = e.start / P; p < (e.start + e.length) / P; p++) byPage[p] = { state: e.state, depth: e.depth }
  }
  let checked = 0
  for (let page = 0; page < 64; page++) {
    const holder = [...states].reverse().findIndex((s) => s.has(page))
    if (holder < 0) {
      t.equal(byPage[page]!.depth, depths, `page ${page}: from the raw image (depth ${depths})`)
      continue
    }
    const layer = states[depths - 1 - holder]!
    t.same(byPage[page], { state: layer.get(page), depth: holder }, `page ${page}: ${layer.get(page)} of the layer at depth ${holder}`)
    checked++
  }
  t.ok(checked > 20, `pages held by store layers checked (${checked})`)
  const chain = top.backingChain()
  t.same(
    chain.map((l) => [l.depth, l.format, l.sealed]),
    [[0, 'pagecow', false], [1, 'pagecow', true], [2, 'pagecow', true], [3, 'pagecow', true], [4, 'raw', false]],
    'info: the chain, the top first, every base sealed',
  )
  t.equal(chain[0]!.backing, `${dir}/s2`, "the top's backing is the store below it")
  await top.close()
})

t.test('a base is sealed, durably, before the store on it exists; it opens read-only only', async (t) => {
  const dir = t.testdir()
  const rng = new Random(5)
  const lower = makeLower(`${dir}/lower.img`, 16 * 4096, rng)
  const base = await ImageStore.create(`${dir}/base`, { lower: lower.path, autoFlushMs: 0 })
  await base.write(0, Buffer.from('base bytes'))
  await base.close()
  const top = await createStore(`${dir}/top`, { lower: `${dir}/base` })
  t.equal(top.kind, 'image', 'createStore tells a store lower and makes an image store on it')
  t.match(top.info(), { lower: { path: `${dir}/base`, format: 'store', size: lower.size } })
  t.equal((await (top as ImageStore).read(0, 10)).toString(), 'base bytes', "the top reads the base's merged image")
  await top.close()

  await t.rejects(ImageStore.open(`${dir}/base`), { code: 'EROFS', message: /sealed.*base of another store.*pagecow create NEW --lower/ }, 'a writable open of a sealed base is refused')
  const ro = await ImageStore.open(`${dir}/base`, { readOnly: true })
  t.equal((await ro.read(0, 10)).toString(), 'base bytes', 'a read-only open reads it')
  await ro.close()
  // A second store on the same base: allowed (the base is sealed already, and stays so).
  const second = await ImageStore.create(`${dir}/second`, { lower: `${dir}/base` })
  await second.write(0, Buffer.from('SECOND'))
  t.equal((await second.read(0, 10)).toString(), 'SECONDytes')
  await second.close()
  const first = await ImageStore.open(`${dir}/top`, { readOnly: true })
  t.equal((await first.read(0, 10)).toString(), 'base bytes', 'stores on one base keep their own uppers')
  await first.close()
})

t.test('a base that changed behind its stores is refused (ESTALE); so is another store in its place', async (t) => {
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 16 * 4096, new Random(9))
  await (await ImageStore.create(`${dir}/base`, { lower: lower.path })).close()
  await (await ImageStore.create(`${dir}/top`, { lower: `${dir}/base` })).close()

  // Something other than pagecow unseals the base and writes: its generation moves on.
  const db = openDatabase(`${dir}/base/${DATABASE_FILE}`, { readOnly: false })
  const { sealed: _sealed, ...unsealed } = readMeta(db, `${dir}/base`)
  writeMeta(db, unsealed)
  db.close()
  const base = await ImageStore.open(`${dir}/base`, { autoFlushMs: 0 })
  await base.write(0, Buffer.from('changed behind'))
  await base.close()
  await t.rejects(ImageStore.open(`${dir}/top`, { readOnly: true }), { code: 'ESTALE', message: /changed since.*generation/ }, 'the top refuses the changed base')
  const report = await checkStore(`${dir}/top`)
  t.notOk(report.clean, 'fsck of the top says so')
  t.match(report.problems, [{ code: 'ESTALE' }])

  // Another store where the base was: not the one recorded.
  renameSync(`${dir}/base`, `${dir}/old-base`)
  await (await ImageStore.create(`${dir}/base`, { lower: lower.path })).close()
  await t.rejects(ImageStore.open(`${dir}/top`, { readOnly: true }), { code: 'ESTALE', message: /not the base.*rebase.*--unsafe/ })
})

t.test('relocation: a store and its base moved together keep working; a base moved alone is re-pointed with rebase --unsafe', async (t) => {
  const dir = t.testdir({ images: {} })
  const lower = makeLower(`${dir}/images/lower.img`, 16 * 4096, new Random(11))
  const a = await ImageStore.create(`${dir}/images/a`, { lower: lower.path })
  await a.write(4096, Buffer.from('in a'))
  await a.close()
  const b = await ImageStore.create(`${dir}/images/b`, { lower: `${dir}/images/a` })
  await b.write(8192, Buffer.from('in b'))
  await b.close()
  const check = async (path: string) => {
    const s = await ImageStore.open(path, { readOnly: true })
    t.same([(await s.read(4096, 4)).toString(), (await s.read(8192, 4)).toString()], ['in a', 'in b'], `${path} reads both layers`)
    await s.close()
  }

  // The raw image stays; the two stores move together: the relative path finds the base.
  renameSync(`${dir}/images`, `${dir}/moved`)
  renameSync(`${dir}/moved/lower.img`, `${dir}/lower.img`)
  await t.rejects(ImageStore.open(`${dir}/moved/b`, { readOnly: true }), { code: 'ENOENT' }, "a's raw image moved away: a is the one refused")
  await ImageStore.rebaseUnsafe(`${dir}/moved/a`, `${dir}/lower.img`).then(
    () => t.fail('a is sealed: re-pointing its lower would change what b reads'),
    (err: unknown) => t.match(err, { code: 'EROFS' }, 'a sealed store is not re-pointed'),
  )
  renameSync(`${dir}/lower.img`, `${dir}/moved/lower.img`)
  await check(`${dir}/moved/b`)

  // The base moves alone: missing, then re-pointed.
  renameSync(`${dir}/moved/a`, `${dir}/moved/a-renamed`)
  await t.rejects(ImageStore.open(`${dir}/moved/b`, { readOnly: true }), { code: 'ENOENT', message: /base store.*missing.*rebase .* --onto NEWPATH --unsafe/ })
  const result = await ImageStore.rebaseUnsafe(`${dir}/moved/b`, `${dir}/moved/a-renamed`)
  t.match(result, { onto: `${dir}/moved/a-renamed`, format: 'store', forced: false })
  await check(`${dir}/moved/b`)
  t.equal((await checkStore(`${dir}/moved/b`)).clean, true, 'fsck clean after the rebase')

  // Another store is no base of b's unless forced.
  const other = await ImageStore.create(`${dir}/other`, { lower: `${dir}/moved/lower.img` })
  await other.close()
  await t.rejects(ImageStore.rebaseUnsafe(`${dir}/moved/b`, `${dir}/other`), { code: 'ESTALE', message: /--force/ })
  const forced = await ImageStore.rebaseUnsafe(`${dir}/moved/b`, `${dir}/other`, { force: true })
  t.equal(forced.forced, true, 'forced')
  await t.rejects(ImageStore.open(`${dir}/other`), { code: 'EROFS' }, 'the store it now stands on is sealed')
  const s = await ImageStore.open(`${dir}/moved/b`, { readOnly: true })
  t.equal((await s.read(8192, 4)).toString(), 'in b', "b's own pages stay")
  t.not((await s.read(4096, 4)).toString(), 'in a', "a's pages are gone: b now stands on the other store")
  await s.close()
})

t.test('marks, changes and an incremental backup of a store on stores', async (t) => {
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 32 * 4096, new Random(21))
  const base = await ImageStore.create(`${dir}/base`, { lower: lower.path, autoFlushMs: 0 })
  await base.write(4096, Buffer.alloc(4096, 0xb1))
  await base.close()
  const top = await ImageStore.create(`${dir}/top`, { lower: `${dir}/base`, autoFlushMs: 0 })
  await top.mark('m')
  await exportImage(top, `${dir}/full.img`)
  await top.write(8192 + 10, Buffer.from('after the mark'))
  await top.zero(4096, 4096)
  t.same(
    [...top.changedExtents('m')].map((e) => [e.start, e.length, e.state]),
    [
      [4096, 4096, 'zero'],
      [8192, 4096, 'data'],
    ],
    "changes since the mark: the top's own pages, not its base's",
  )
  await exportIncremental(top, `${dir}/inc.pcinc`, { since: 'm' })
  await applyIncremental(`${dir}/inc.pcinc`, `${dir}/full.img`)
  t.ok(readFileSync(`${dir}/full.img`).equals(await top.read(0, top.size)), 'the full export, updated by the incremental, is the chain as it reads now')
  await top.close()
})

t.test('a store moved with its image keeps its identity: an incremental after the move applies to an export before it', async (t) => {
  const dir = t.testdir({ here: {} })
  const lower = makeLower(`${dir}/here/lower.img`, 16 * 4096, new Random(31))
  const store = await ImageStore.create(`${dir}/here/store`, { lower: lower.path, autoFlushMs: 0 })
  const identity = store.info().identity
  t.match(identity, /^[0-9a-f]{32}$/)
  await store.mark('m')
  await exportImage(store, `${dir}/full.img`)
  await store.write(100, Buffer.from('written after the mark'))
  await store.close()
  renameSync(`${dir}/here`, `${dir}/there`)
  const moved = await ImageStore.open(`${dir}/there/store`, { autoFlushMs: 0 })
  t.equal(moved.info().lower.path, `${dir}/there/lower.img`, 'the image is found where it moved, by its relative path')
  t.equal(moved.info().identity, identity, 'the same identity')
  await exportIncremental(moved, `${dir}/inc.pcinc`, { since: 'm' })
  await applyIncremental(`${dir}/inc.pcinc`, `${dir}/full.img`)
  t.ok(readFileSync(`${dir}/full.img`).equals(await moved.read(0, moved.size)), 'the incremental applied')
  await moved.close()
})
