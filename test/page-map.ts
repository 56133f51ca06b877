// PageMap: chunks loaded on demand from a ChunkSource, dirty chunks kept until a flush commits them.
import t from 'tap'
import { PAGES_PER_CHUNK } from '../lib/geometry.js'
import type { ChunkRecord } from '../lib/page/chunk.js'
import { PageMap, type ChunkSnapshot, type ChunkSource } from '../lib/page/page-map.js'
import { CODE, modelRuns, sameRuns, STATES } from './fixtures/page-model.js'
import { Random, testSeeds } from './fixtures/random.js'

/** An in-memory ChunkSource that counts what it is asked, standing in for the database. */
class FakeSource implements ChunkSource {
  readonly records = new Map<number, ChunkRecord>()
  loads = 0
  nextCalls = 0

  load(chunk: number): ChunkRecord | undefined {
    this.loads++
    return this.records.get(chunk)
  }

  nextPersisted(chunk: number): number | undefined {
    this.nextCalls++
    let best: number | undefined
    for (const c of this.records.keys()) if (c >= chunk && (best === undefined || c < best)) best = c
    return best
  }

  /** What ChunkTable.save does inside the flush transaction. */
  save(snapshot: ChunkSnapshot[]): void {
    for (const s of snapshot) {
      if (s.dataCount === 0 && s.zeroCount === 0) this.records.delete(s.chunk)
      else this.records.set(s.chunk, { data: s.data, zero: s.zero, dataCount: s.dataCount, zeroCount: s.zeroCount })
    }
  }

  totals(): { data: number; zero: number } {
    let data = 0
    let zero = 0
    for (const r of this.records.values()) {
      data += r.dataCount
      zero += r.zeroCount
    }
    return { data, zero }
  }
}

function modelCounts(model: Uint8Array): { data: number; zero: number } {
  let data = 0
  let zero = 0
  for (const v of model) {
    if (v === 1) data++
    else if (v === 2) zero++
  }
  return { data, zero }
}

function flush(map: PageMap, source: FakeSource): ChunkSnapshot[] {
  const snapshot = map.snapshot()
  source.save(snapshot)
  map.committed(snapshot)
  return snapshot
}

const CHUNKS = 4
const PAGES = CHUNKS * PAGES_PER_CHUNK

/** A random page range over CHUNKS chunks, often crossing or touching a chunk boundary. */
function randomRange(rng: Random): [number, number] {
  const kind = rng.int(0, 4)
  if (kind === 0) {
    const boundary = rng.int(1, CHUNKS) * PAGES_PER_CHUNK
    return [boundary - rng.int(0, 5), boundary + rng.int(0, 5)]
  }
  if (kind === 1) {
    const s = rng.int(0, PAGES)
    return [s, Math.min(PAGES, s + rng.int(1, 10))]
  }
  const s = rng.int(0, PAGES)
  return [s, rng.int(s, PAGES + 1)]
}

for (const [i, seed] of testSeeds([11, 12, 13]).entries()) {
  // A cache of one or two chunks forces loads, evictions and reloads all the time.
  const cacheLimit = [1, 2, 1024][i % 3]!
  t.test(`random set/stateOf/runs across chunks against an array model (seed ${seed}, cache ${cacheLimit})`, async (t) => {
    const rng = new Random(seed)
    const source = new FakeSource()
    let map = new PageMap(source, { data: 0, zero: 0 }, 'test', cacheLimit)
    const model = new Uint8Array(PAGES)
    const flushed = new Uint8Array(PAGES)
    for (let step = 0; step < 200; step++) {
      const op = rng.weighted({ set: 6, flush: 1, reopen: 1 })
      if (op === 'set') {
        const [start, end] = randomRange(rng)
        const state = rng.pick(STATES)
        map.set(start, end, state)
        model.fill(CODE[state], start, end)
      } else if (op === 'flush') {
        flush(map, source)
        flushed.set(model)
        t.notOk(map.isDirty, `step ${step}: clean after a flush`)
      } else {
        // Whatever was not flushed is gone; a new map reads the persisted chunks.
        map = new PageMap(source, source.totals(), 'test', cacheLimit)
        // The model goes back to the last flush.
        model.set(flushed)
      }
      t.same(map.counts, modelCounts(model), `step ${step} (${op}): counts`)
      const [qs, qe] = randomRange(rng)
      if (!sameRuns(t, [...map.runs(qs, qe)], modelRuns(model, qs, qe), `step ${step} (${op}): runs(${qs}, ${qe})`)) break
      for (let i = 0; i < 10; i++) {
        const p = rng.int(0, PAGES)
        if (map.stateOf(p) !== STATES[model[p]!]) t.fail(`step ${step}: stateOf(${p})`)
      }
    }
    flush(map, source)
    const reread = new PageMap(source, source.totals(), 'test')
    sameRuns(t, [...reread.runs(0, PAGES)], modelRuns(model, 0, PAGES), 'a new map over the flushed chunks reads the model')
    t.same(reread.counts, modelCounts(model), 'and the persisted totals match')
  })
}

t.test('runs merge across chunk boundaries', async (t) => {
  const source = new FakeSource()
  const map = new PageMap(source, { data: 0, zero: 0 }, 'test')
  const b = PAGES_PER_CHUNK
  map.set(b - 10, 3 * b + 10, 'data')
  t.same([...map.runs(0, 4 * b)], [
    { start: 0, end: b - 10, state: 'lower' },
    { start: b - 10, end: 3 * b + 10, state: 'data' },
    { start: 3 * b + 10, end: 4 * b, state: 'lower' },
  ])
  flush(map, source)
  const reread = new PageMap(source, source.totals(), 'test')
  t.same([...reread.runs(b - 11, b + 1)], [
    { start: b - 11, end: b - 10, state: 'lower' },
    { start: b - 10, end: b + 1, state: 'data' },
  ], 'a run ending exactly in the next chunk, read from persisted chunks')
  t.same([...reread.runs(2 * b, 2 * b)], [], 'an empty range has no runs')
})

t.test('runs skip absent chunks in one step; clearing touches only present chunks', async (t) => {
  const source = new FakeSource()
  const map = new PageMap(source, { data: 0, zero: 0 }, 'test')
  const far = 1_000_000 // a chunk index 64 Gi pages in
  map.set(far * PAGES_PER_CHUNK + 5, far * PAGES_PER_CHUNK + 6, 'zero')
  map.set(3 * PAGES_PER_CHUNK, 3 * PAGES_PER_CHUNK + 1, 'data')
  flush(map, source)
  const reread = new PageMap(source, source.totals(), 'test')
  source.loads = 0
  const runs = [...reread.runs(0, (far + 1) * PAGES_PER_CHUNK)]
  t.same(runs, [
    { start: 0, end: 3 * PAGES_PER_CHUNK, state: 'lower' },
    { start: 3 * PAGES_PER_CHUNK, end: 3 * PAGES_PER_CHUNK + 1, state: 'data' },
    { start: 3 * PAGES_PER_CHUNK + 1, end: far * PAGES_PER_CHUNK + 5, state: 'lower' },
    { start: far * PAGES_PER_CHUNK + 5, end: far * PAGES_PER_CHUNK + 6, state: 'zero' },
    { start: far * PAGES_PER_CHUNK + 6, end: (far + 1) * PAGES_PER_CHUNK, state: 'lower' },
  ])
  t.ok(source.loads <= 6, `a map over 1 000 001 chunks loaded ${source.loads} chunks`)

  source.loads = 0
  reread.set(0, (far + 1) * PAGES_PER_CHUNK, 'lower')
  t.ok(source.loads <= 4, `clearing 1 000 001 chunks loaded ${source.loads}`)
  t.same(reread.counts, { data: 0, zero: 0 })
  t.same([...reread.runs(0, (far + 1) * PAGES_PER_CHUNK)], [{ start: 0, end: (far + 1) * PAGES_PER_CHUNK, state: 'lower' }])
  flush(reread, source)
  t.equal(source.records.size, 0, 'chunks that became empty are deleted')
})

t.test('a chunk changed while a flush is in flight stays dirty', async (t) => {
  const source = new FakeSource()
  const map = new PageMap(source, { data: 0, zero: 0 }, 'test')
  map.set(0, 10, 'data')
  map.set(PAGES_PER_CHUNK, PAGES_PER_CHUNK + 10, 'zero')
  const first = map.snapshot()
  t.same(first.map((s) => s.chunk).sort(), [0, 1], 'both dirty chunks are captured')
  // The flush is waiting for fdatasync; writes go on.
  map.set(5, 20, 'zero')
  map.set(2 * PAGES_PER_CHUNK, 2 * PAGES_PER_CHUNK + 1, 'data')
  source.save(first)
  map.committed(first)
  t.ok(map.isDirty, 'changes made after the snapshot are still dirty')
  const second = map.snapshot()
  t.same(second.map((s) => s.chunk).sort(), [0, 2], 'chunk 0 (changed again) and chunk 2 (new); chunk 1 is clean')
  source.save(second)
  map.committed(second)
  t.notOk(map.isDirty)
  const reread = new PageMap(source, source.totals(), 'test')
  t.same([...reread.runs(0, 20)], [
    { start: 0, end: 5, state: 'data' },
    { start: 5, end: 20, state: 'zero' },
  ])
  t.same(reread.counts, { data: 5 + 1, zero: 15 + 10 })
})

t.test('committing a stale snapshot never marks newer changes clean', async (t) => {
  const source = new FakeSource()
  const map = new PageMap(source, { data: 0, zero: 0 }, 'test')
  map.set(0, 1, 'data')
  const snap = map.snapshot()
  map.set(0, 1, 'zero')
  map.set(0, 1, 'data') // back to the snapshot's content, but a newer version
  map.committed(snap)
  t.ok(map.isDirty, 'version, not content, decides')
})

t.test('eviction never drops a dirty chunk', async (t) => {
  const source = new FakeSource()
  const cacheLimit = 2
  const map = new PageMap(source, { data: 0, zero: 0 }, 'test', cacheLimit)
  const model = new Uint8Array(8 * PAGES_PER_CHUNK)
  // More dirty chunks than the cache holds, none flushed.
  for (let c = 0; c < 8; c++) {
    map.set(c * PAGES_PER_CHUNK + c, c * PAGES_PER_CHUNK + c + 3, c % 2 ? 'zero' : 'data')
    model.fill(c % 2 ? 2 : 1, c * PAGES_PER_CHUNK + c, c * PAGES_PER_CHUNK + c + 3)
  }
  for (let c = 0; c < 8; c++) {
    t.equal(map.stateOf(c * PAGES_PER_CHUNK + c), c % 2 ? 'zero' : 'data', `chunk ${c} kept its change`)
  }
  sameRuns(t, [...map.runs(0, model.length)], modelRuns(model, 0, model.length), 'runs see every dirty chunk')
  t.same(map.counts, modelCounts(model))
  const snap = flush(map, source)
  t.equal(snap.length, 8, 'the flush writes all eight chunks')
  sameRuns(t, [...new PageMap(source, source.totals(), 'test').runs(0, model.length)], modelRuns(model, 0, model.length), 'all eight persisted')

  // Once clean, chunks are evicted: reading them all again loads most of them.
  source.loads = 0
  for (let c = 0; c < 8; c++) map.stateOf(c * PAGES_PER_CHUNK)
  t.ok(source.loads >= 8 - cacheLimit, `clean chunks were evicted (${source.loads} loads)`)
})

t.test('reload forgets clean chunks and keeps dirty ones', async (t) => {
  const source = new FakeSource()
  const writer = new PageMap(source, { data: 0, zero: 0 }, 'test')
  const reader = new PageMap(source, { data: 0, zero: 0 }, 'test')
  t.equal(reader.stateOf(0), 'lower', 'the reader looks at chunk 0 before the writer commits')
  writer.set(0, 4, 'data')
  flush(writer, source)
  reader.reload(source.totals())
  t.equal(reader.stateOf(0), 'data', 'after reload the reader sees the committed chunk')
  t.same(reader.counts, { data: 4, zero: 0 })

  const local = new PageMap(source, source.totals(), 'test')
  local.set(PAGES_PER_CHUNK, PAGES_PER_CHUNK + 1, 'zero') // dirty, not flushed
  writer.set(0, 4, 'zero')
  flush(writer, source)
  local.reload(source.totals())
  t.equal(local.stateOf(0), 'zero', 'clean chunk re-read')
  t.equal(local.stateOf(PAGES_PER_CHUNK), 'zero', 'dirty chunk kept')
  t.ok(local.isDirty)
})
