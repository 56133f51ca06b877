// Chunk: the DATA/ZERO bitmaps of one chunk, checked against a plain array of page states.
import t from 'tap'
import roaring from 'roaring'
import { PAGES_PER_CHUNK } from '../lib/geometry.js'
import { Chunk, type ChunkRecord } from '../lib/page/chunk.js'
import type { PageState } from '../lib/page/page-state.js'
import { CODE, modelRuns, sameRuns, STATES } from './fixtures/page-model.js'
import { Random, testSeeds } from './fixtures/random.js'

const { RoaringBitmap32 } = roaring

function modelCount(model: Uint8Array, start: number, end: number, state: PageState): number {
  let n = 0
  for (let i = start; i < end; i++) if (model[i] === CODE[state]) n++
  return n
}

/** A random range inside the chunk: mostly short, sometimes long, sometimes at the edges. */
function randomRange(rng: Random): [number, number] {
  const kind = rng.int(0, 4)
  if (kind === 0) {
    const s = rng.int(0, PAGES_PER_CHUNK)
    return [s, Math.min(PAGES_PER_CHUNK, s + rng.int(1, 8))]
  }
  if (kind === 1) {
    const s = rng.int(0, PAGES_PER_CHUNK)
    return [s, rng.int(s, PAGES_PER_CHUNK + 1)]
  }
  if (kind === 2) return [0, rng.int(1, PAGES_PER_CHUNK + 1)]
  return [rng.int(0, PAGES_PER_CHUNK), PAGES_PER_CHUNK]
}

function record(data: number[], zero: number[], counts?: { data: number; zero: number }): ChunkRecord {
  return {
    data: new RoaringBitmap32(data).serialize('portable'),
    zero: new RoaringBitmap32(zero).serialize('portable'),
    dataCount: counts?.data ?? data.length,
    zeroCount: counts?.zero ?? zero.length,
  }
}

t.test('a new chunk is all LOWER and clean', async (t) => {
  const c = Chunk.empty()
  t.ok(c.isEmpty)
  t.notOk(c.isDirty)
  t.equal(c.stateOf(0), 'lower')
  t.equal(c.stateOf(PAGES_PER_CHUNK - 1), 'lower')
  t.equal(c.count(0, PAGES_PER_CHUNK, 'lower'), PAGES_PER_CHUNK)
  t.same([...c.runs(0, PAGES_PER_CHUNK)], [{ start: 0, end: PAGES_PER_CHUNK, state: 'lower' }])
  t.same([...c.runs(7, 7)], [], 'an empty range has no runs')
})

t.test('set reports the count changes and bumps the version only on a change', async (t) => {
  const c = Chunk.empty()
  t.same(c.set(10, 20, 'data'), { data: 10, zero: 0 })
  t.equal(c.version, 1)
  t.ok(c.isDirty)
  t.same(c.set(10, 20, 'data'), { data: 0, zero: 0 }, 'setting the same state again changes nothing')
  t.equal(c.version, 1, 'no change, no new version')
  t.same(c.set(15, 25, 'zero'), { data: -5, zero: 10 }, 'ZERO takes pages from DATA')
  t.same(c.set(0, 30, 'lower'), { data: -5, zero: -10 })
  t.ok(c.isEmpty)
  t.same(c.set(5, 5, 'data'), { data: 0, zero: 0 }, 'an empty range changes nothing')
  c.savedVersion = c.version
  t.notOk(c.isDirty)
})

// Both ways of answering runs(): roaring queries per run, and walking the members in JavaScript.
for (const [walk, limit] of [['roaring queries', 0], ['member walk', Infinity]] as const)
for (const seed of testSeeds([1, 2, 3])) {
  t.test(`random set/stateOf/count/runs against an array model (${walk}, seed ${seed})`, async (t) => {
    const saved = Chunk.arrayWalkLimit
    Chunk.arrayWalkLimit = limit
    t.teardown(() => {
      Chunk.arrayWalkLimit = saved
    })
    const rng = new Random(seed)
    const model = new Uint8Array(PAGES_PER_CHUNK)
    const c = Chunk.empty()
    const totals = { data: 0, zero: 0 }
    let failures = 0
    for (let step = 0; step < 300 && failures === 0; step++) {
      const [start, end] = randomRange(rng)
      const state = rng.pick(STATES)
      const before = { data: modelCount(model, start, end, 'data'), zero: modelCount(model, start, end, 'zero') }
      const changed = modelCount(model, start, end, state) < end - start
      const version = c.version
      const delta = c.set(start, end, state)
      model.fill(CODE[state], start, end)
      const after = { data: modelCount(model, start, end, 'data'), zero: modelCount(model, start, end, 'zero') }
      const expected = { data: after.data - before.data, zero: after.zero - before.zero }
      if (!t.same(delta, expected, `step ${step}: set(${start}, ${end}, ${state}) delta`)) failures++
      t.equal(c.version > version, changed, `step ${step}: version bumped iff something changed`)

      const [qs, qe] = randomRange(rng)
      if (!sameRuns(t, [...c.runs(qs, qe)], modelRuns(model, qs, qe), `step ${step}: runs(${qs}, ${qe})`)) failures++
      for (const s of STATES) {
        if (c.count(qs, qe, s) !== modelCount(model, qs, qe, s)) {
          failures++
          t.fail(`step ${step}: count(${qs}, ${qe}, ${s})`)
        }
      }
      for (let i = 0; i < 20; i++) {
        const p = rng.int(0, PAGES_PER_CHUNK)
        if (c.stateOf(p) !== STATES[model[p]!]) {
          failures++
          t.fail(`step ${step}: stateOf(${p})`)
        }
      }
      totals.data += expected.data
      totals.zero += expected.zero
      t.same({ data: c.dataCount, zero: c.zeroCount }, totals, `step ${step}: dataCount and zeroCount`)

      if (step % 25 === 0) {
        const copy = Chunk.decode(c.encode(), 'test')
        sameRuns(t, [...copy.runs(0, PAGES_PER_CHUNK)], modelRuns(model, 0, PAGES_PER_CHUNK), `step ${step}: encode/decode round trip`)
      }
    }
    sameRuns(t, [...c.runs(0, PAGES_PER_CHUNK)], modelRuns(model, 0, PAGES_PER_CHUNK), 'final full runs')
  })
}

for (const [walk, limit] of [['roaring queries', 0], ['member walk', Infinity]] as const)
t.test(`runs are maximal over patterns that stress the run search (${walk})`, async (t) => {
  const saved = Chunk.arrayWalkLimit
  Chunk.arrayWalkLimit = limit
  t.teardown(() => {
    Chunk.arrayWalkLimit = saved
  })
  const patterns: Array<[string, (i: number) => PageState]> = [
    ['alternating', (i) => (i % 2 ? 'data' : 'zero')],
    ['every third LOWER', (i) => (i % 3 === 0 ? 'lower' : 'data')],
    ['long DATA then long ZERO', (i) => (i < 40000 ? 'data' : 'zero')],
    ['full DATA', () => 'data'],
    ['power-of-two runs', (i) => (Math.floor(Math.log2(i + 1)) % 2 ? 'zero' : 'data')],
  ]
  for (const [name, f] of patterns) {
    const model = new Uint8Array(PAGES_PER_CHUNK)
    const c = Chunk.empty()
    for (const run of modelRuns(Uint8Array.from({ length: PAGES_PER_CHUNK }, (_, i) => CODE[f(i)]), 0, PAGES_PER_CHUNK)) {
      c.set(run.start, run.end, run.state)
      model.fill(CODE[run.state], run.start, run.end)
    }
    sameRuns(t, [...c.runs(0, PAGES_PER_CHUNK)], modelRuns(model, 0, PAGES_PER_CHUNK), name)
    sameRuns(t, [...c.runs(1, PAGES_PER_CHUNK - 1)], modelRuns(model, 1, PAGES_PER_CHUNK - 1), `${name}, inner range`)
  }
})

t.test('encode is roaring portable format with the counts', async (t) => {
  const c = Chunk.empty()
  c.set(0, 3, 'data')
  c.set(100, 200, 'zero')
  const r = c.encode()
  t.same([...RoaringBitmap32.deserialize(r.data, 'portable')], [0, 1, 2])
  t.equal(RoaringBitmap32.deserialize(r.zero, 'portable').size, 100)
  t.equal(r.dataCount, 3)
  t.equal(r.zeroCount, 100)
  const d = Chunk.decode(r, 'test')
  t.equal(d.version, 0, 'a decoded chunk starts clean')
  t.notOk(d.isDirty)
  t.equal(d.stateOf(150), 'zero')
})

t.test('decoding a damaged record fails with ECORRUPT', async (t) => {
  const good = record([1, 2, 3], [10, 11])
  /** A DATA blob as hex, its claimed count, and no ZERO pages. */
  const damaged = (hex: string, dataCount: number): ChunkRecord => ({ ...record([], []), data: Buffer.from(hex, 'hex'), dataCount })
  const rng = new Random(7)
  const cases: Array<[string, ChunkRecord]> = [
    ['empty data blob', { ...good, data: new Uint8Array(0) }],
    ['truncated data blob', { ...good, data: good.data.subarray(0, good.data.length - 3) }],
    ['truncated zero blob', { ...good, zero: good.zero.subarray(0, 2) }],
    ['random bytes', { ...good, data: rng.bytes(40) }],
    ['random bytes with a plausible cookie', { ...good, zero: Buffer.concat([Buffer.from(good.zero.subarray(0, 4)), Buffer.alloc(64, 0xff)]) }],
    ['DATA count mismatch', record([1, 2, 3], [], { data: 4, zero: 0 })],
    ['ZERO count mismatch', record([], [5], { data: 0, zero: 0 })],
    ['negative count', record([1], [], { data: -1, zero: 0 })],
    ['a page both DATA and ZERO', record([1, 2, 3], [3, 4])],
    ['a page outside the chunk (DATA)', record([PAGES_PER_CHUNK], [])],
    ['a page outside the chunk (ZERO)', record([0], [PAGES_PER_CHUNK + 5])],
    ['the largest 32-bit page', record([], [2 ** 32 - 1])],
    // Found by the bit-flip test in test/bad-input.ts: roaring's portable deserializer checks
    // bounds, not order; [0, 1, 2, 10] with one bit flipped reads as [0, 1, 18, 10], and a map
    // query over such a chunk never ends.
    ['an array container out of order', damaged('3A3000000100000000000300100000000000010012000A00', 4)],
    ['a run container with overlapping runs', damaged('3B3000000100001500020000000A0005000A00', 22)],
    ['a run container claiming more pages than a chunk', damaged('3B300000010000FFFF02000000FFFF0000FFFF', 131072)],
  ]
  for (const [name, r] of cases) {
    t.throws(() => Chunk.decode(r, 'test'), { name: 'PagecowError', code: 'ECORRUPT' }, name)
  }
  t.doesNotThrow(() => Chunk.decode(good, 'test'), 'the undamaged record decodes')
  t.doesNotThrow(() => Chunk.decode(record([PAGES_PER_CHUNK - 1], [0]), 'test'), 'the first and last page of the chunk are fine')
})
