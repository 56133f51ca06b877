// Issue 12, "Cost": what change tracking costs, in-process through the public API, side by side
// in one run. Four cases (group `marks`):
// - marks-write: random 4 KiB writes (without flushes, and with a flush every 64) into stores with
//   0, 1 and 4 marks, interleaved in batches whose order rotates; an image and a tree store file;
// - marks-changes: changedExtents() after N scattered changed pages on a 1 GiB and a 64 GiB sparse
//   image: the time must follow N, not the image size;
// - marks-mark: mark() and unmark() with 10⁵ pages changed (unmark folds or drops the records);
// - marks-tree: a tree store's changedSince() after 1 000 renamed or created files.
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { ImageStore, TreeStore, type TreeFileHandle } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import { count, duration } from './format.js'
import { makeSparseFile } from './files.js'
import { randomPages, rng, scatteredPages } from './random.js'
import { pairRatios, range, throughputRow, type Row } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { median, msSince, now, rotated } from './timing.js'
import { treeFixture } from './tree-lower.js'

const GiB = 2 ** 30
const ISSUE = 12
/** Issue 12: with 4 marks active, writes and flushes stay ≥ 0.9× of no marks. */
const WRITE_TARGET = 0.9
/** The time of a changes query on a 64× larger image, at most (it must not follow the size). */
const SIZE_TARGET = 1.5
const MARK_COUNTS = [0, 1, 4] as const
const WRITES_PER_BATCH = 256
/** Pages written before each mark is taken, so that every epoch has records of its own. */
const WRITES_BEFORE_MARK = 64
const TREE_FILE = 'big.img'

/** Sizes of the marks cases: the issue's, or scaled down by --quick. */
interface MarkSizes {
  /** Changed pages for the changes query (scattered, never adjacent). */
  changed: number[]
  /** The two sparse image sizes the query runs on. */
  images: [number, number]
  /** Changed pages when mark() and unmark() are timed. */
  markPages: number
  /** Tree: files renamed and files created after the mark (and created before it). */
  treeRenames: number
  treeCreates: number
  treeDirs: number
}

function sizes(ctx: BenchContext): MarkSizes {
  return ctx.config.quick
    ? { changed: [10, 1_000, 10_000], images: [GiB, 64 * GiB], markPages: 10_000, treeRenames: 500, treeCreates: 500, treeDirs: 2 }
    : { changed: [10, 1_000, 100_000], images: [GiB, 64 * GiB], markPages: 100_000, treeRenames: 500, treeCreates: 500, treeDirs: 10 }
}

function size(bytes: number): string {
  return `${bytes / GiB} GiB`
}

// ---------------------------------------------------------------------------------------------
// marks-write

/** One store's file as the write case drives it: an image store or one file of a tree store. */
interface WriteSide {
  marks: number
  write(offset: number, data: Uint8Array): Promise<unknown>
  flush(): Promise<void>
  close(): Promise<void>
}

type Kind = 'image' | 'tree'

/** A tree lower holding one file: the data lower, hard-linked (same bytes, no copy). */
function treeLower(ctx: BenchContext): string {
  const dir = join(scratchDir('marks-tree-lower'), 'lower')
  fs.mkdirSync(dir)
  fs.linkSync(ctx.dataLower(), join(dir, TREE_FILE))
  return dir
}

/**
 * A fresh store over `lower` with `marks` marks. Every store gets the same writes before the
 * timed ones (WRITES_BEFORE_MARK per mark of the side with most marks); the marked ones take a
 * mark after each group, so the older epochs hold records too.
 */
async function writeSide(ctx: BenchContext, kind: Kind, lower: string, marks: number): Promise<WriteSide> {
  const { pageSize, lowerBytes } = ctx.config
  const dir = join(scratchDir(`marks-${kind}-${marks}`), 'store')
  let side: WriteSide & { mark(name: string): Promise<unknown> }
  if (kind === 'image') {
    const store = await ImageStore.create(dir, { lower, autoFlushMs: 0 })
    side = { marks, write: (o, d) => store.write(o, d), flush: () => store.flush(), close: () => store.close(), mark: (n) => store.mark(n) }
  } else {
    const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
    const handle: TreeFileHandle = await store.open(`/${TREE_FILE}`, 'r+')
    side = {
      marks,
      write: (o, d) => handle.write(o, d),
      flush: () => store.flush(),
      close: async () => {
        await handle.close()
        await store.close()
      },
      mark: (n) => store.mark(n),
    }
  }
  const data = Buffer.alloc(pageSize, 0x6d)
  const most = Math.max(...MARK_COUNTS)
  for (let m = 0; m < most; m++) {
    for (const p of randomPages(WRITES_BEFORE_MARK, lowerBytes / pageSize, 200 + m)) await side.write(p * pageSize, data)
    if (m < marks) await side.mark(`m${m}`)
    else await side.flush()
  }
  return side
}

async function writeCase(ctx: BenchContext, kind: Kind): Promise<Row[]> {
  const { lowerBytes, pageSize, randomWrites, flushedWrites, flushEvery, reps } = ctx.config
  const totalPages = lowerBytes / pageSize
  const lower = kind === 'image' ? ctx.dataLower() : treeLower(ctx)
  // The same three stores for every repetition (as in integrity-rand): later repetitions also
  // rewrite pages copied before, on every side alike, and the change records keep growing.
  const sides: WriteSide[] = []
  for (const marks of MARK_COUNTS) sides.push(await writeSide(ctx, kind, lower, marks))
  const data = randomFillSync(Buffer.alloc(pageSize))
  const what = kind === 'image' ? 'ImageStore over the 1 GiB lower of data' : 'TreeStore file (the 1 GiB lower of data)'
  try {
    const noFlush = async (writes: number, seed: number) => {
      const pages = randomPages(writes, totalPages, seed)
      const slice = (b: number) => pages.subarray(b * WRITES_PER_BATCH, (b + 1) * WRITES_PER_BATCH)
      const ms = await rotated(Math.ceil(writes / WRITES_PER_BATCH), sides.map((s) => async (b: number) => {
        for (const p of slice(b)) await s.write(p * pageSize, data)
      }))
      // Untimed: the next repetition starts with nothing pending.
      for (const s of sides) await s.flush()
      return ms
    }
    const withFlush = async (writes: number, seed: number) => {
      const pages = randomPages(writes, totalPages, seed)
      const slice = (b: number) => pages.subarray(b * flushEvery, (b + 1) * flushEvery)
      return rotated(Math.ceil(writes / flushEvery), sides.map((s) => async (b: number) => {
        for (const p of slice(b)) await s.write(p * pageSize, data)
        await s.flush()
      }))
    }
    // Warm-up: one short round of each, so the first timed repetition is not the JIT's.
    await noFlush(2048, 300)
    await withFlush(4 * flushEvery, 301)
    const a = await repeatSides(reps, sides.length, (r) => noFlush(randomWrites, 310 + r))
    const b = await repeatSides(reps, sides.length, (r) => withFlush(flushedWrites, 320 + r))
    const rows: Row[] = []
    for (const [label, writes, ms] of [
      [`${count(randomWrites)} random 4 KiB writes, no flush`, randomWrites, a],
      [`${count(flushedWrites)} random 4 KiB writes, flush every ${flushEvery}`, flushedWrites, b],
    ] as const) {
      for (const i of [1, 2]) {
        rows.push(throughputRow({
          case: 'marks-write',
          label: `${what}, ${label}: ${sides[i]!.marks} mark${sides[i]!.marks === 1 ? '' : 's'} vs none`,
          work: writes,
          unit: 'ops',
          pagecowMs: ms[i]!,
          baselineMs: ms[0]!,
          baselineName: 'no mark',
          atLeast: sides[i]!.marks === 4 ? WRITE_TARGET : undefined,
          details: { kind, marks: sides[i]!.marks },
        }))
      }
    }
    return rows
  } finally {
    for (const s of sides) await s.close()
  }
}

/** Per-side milliseconds of `reps` repetitions: ms[side][rep]. */
async function repeatSides(reps: number, sides: number, one: (rep: number) => Promise<number[]>): Promise<number[][]> {
  const ms: number[][] = Array.from({ length: sides }, () => [])
  for (let r = 0; r < reps; r++) (await one(r)).forEach((t, i) => ms[i]!.push(t))
  return ms
}

export const marksWrite: BenchCase = {
  id: 'marks-write',
  group: 'marks',
  number: ISSUE,
  title: 'Random 4 KiB writes (no flush; flush every 64) with 0, 1 and 4 marks, interleaved (ImageStore and a TreeStore file)',
  async run(ctx) {
    return [...(await writeCase(ctx, 'image')), ...(await writeCase(ctx, 'tree'))]
  },
}

// ---------------------------------------------------------------------------------------------
// marks-changes

/** The page numbers of `pages` in a seeded random order (Fisher–Yates). */
function shuffled(pages: Float64Array, seed: number): Float64Array {
  const out = Float64Array.from(pages)
  const next = rng(seed)
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return out
}

const sinceName = (n: number) => `since-${n}`

/**
 * A store over a sparse lower of `imageBytes` where exactly N scattered pages (never adjacent, so
 * N extents) changed since mark `since-N`, for each N in `changed`: the max(changed) pages are
 * written in a random order and each mark is taken when N of them remain.
 */
async function changedStore(ctx: BenchContext, imageBytes: number, changed: number[]): Promise<{ store: ImageStore; scratch: string }> {
  const { pageSize } = ctx.config
  const start = now()
  const scratch = scratchDir(`marks-changes-${imageBytes / GiB}g`)
  const lower = join(scratch, 'lower.img')
  makeSparseFile(lower, imageBytes)
  const store = await ImageStore.create(join(scratch, 'store'), { lower, autoFlushMs: 0 })
  const most = Math.max(...changed)
  const order = shuffled(scatteredPages(most, imageBytes / pageSize, 12), 13)
  const data = Buffer.alloc(pageSize, 0xc5)
  for (let i = 0; i < order.length; i++) {
    if (changed.includes(most - i)) await store.mark(sinceName(most - i))
    data.writeUInt32LE(i, 0)
    await store.write(order[i]! * pageSize, data)
  }
  await store.flush()
  ctx.log(`${size(imageBytes)} store with ${count(most)} scattered changed pages and marks since ${changed.join(', ')}: ${(msSince(start) / 1000).toFixed(1)} s`)
  return { store, scratch }
}

/** Walk a changes query to its end; the number of extents and bytes it gave. */
function drain(store: ImageStore, since: string): { extents: number; bytes: number } {
  let extents = 0
  let bytes = 0
  for (const e of store.changedExtents(since)) {
    extents++
    bytes += e.length
  }
  return { extents, bytes }
}

export const marksChanges: BenchCase = {
  id: 'marks-changes',
  group: 'marks',
  number: ISSUE,
  title: 'changedExtents() after N scattered changed pages (N = 10, 10³, 10⁵) on a 1 GiB and a 64 GiB sparse image',
  async run(ctx) {
    const z = sizes(ctx)
    const { pageSize } = ctx.config
    const stores: Array<{ store: ImageStore; scratch: string; bytes: number }> = []
    try {
      for (const bytes of z.images) stores.push({ ...(await changedStore(ctx, bytes, z.changed)), bytes })
      const rows: Row[] = []
      for (const n of z.changed) {
        // Each answer checked: N one-page extents, all written.
        for (const s of stores) {
          const got = drain(s.store, sinceName(n))
          if (got.extents !== n || got.bytes !== n * pageSize) throw new Error(`marks-changes: ${got.extents} extents (${got.bytes} bytes) since ${sinceName(n)} on ${size(s.bytes)}, expected ${n}`)
        }
        const times = stores.map(() => [] as number[])
        const samples = n <= 1_000 ? 51 : 7
        for (let i = 0; i < samples; i++) {
          for (let k = 0; k < stores.length; k++) {
            const j = (i + k) % stores.length
            const start = now()
            drain(stores[j]!.store, sinceName(n))
            times[j]!.push(msSince(start))
          }
        }
        const [small, big] = times as [number[], number[]]
        const ratios = pairRatios(big, small)
        const ratio = median(big) / median(small)
        rows.push({
          case: 'marks-changes',
          label: `changedExtents() after ${count(n)} scattered changed pages (${count(n)} extents), median of ${samples}: ${size(z.images[1])} vs ${size(z.images[0])} (${duration(median(big) / n)} vs ${duration(median(small) / n)} per extent)`,
          pagecow: `${duration(median(big))} (${size(z.images[1])})`,
          baseline: `${duration(median(small))} (${size(z.images[0])})`,
          ratio,
          ratioKind: 'time',
          ratioRange: range(ratios),
          target: `≤ ${SIZE_TARGET}×`,
          met: ratio <= SIZE_TARGET,
          details: { changed: n, images: z.images, bigMs: big, smallMs: small },
        })
      }
      // For scale: what walking the whole map costs (what a scan for changes would at least cost).
      for (const s of stores) {
        const times: number[] = []
        let extents = 0
        for (let i = 0; i < 3; i++) {
          const start = now()
          extents = 0
          for (const _ of s.store.extents()) extents++
          times.push(msSince(start))
        }
        const most = Math.max(...z.changed)
        const full = times
        const query: number[] = []
        for (let i = 0; i < 3; i++) {
          const start = now()
          drain(s.store, sinceName(most))
          query.push(msSince(start))
        }
        rows.push({
          case: 'marks-changes',
          label: `${size(s.bytes)}: changedExtents() since ${count(most)} changes vs extents() of the whole image (${count(extents)} extents), median of 3`,
          pagecow: duration(median(query)),
          baseline: `${duration(median(full))} (extents())`,
          ratio: median(query) / median(full),
          ratioKind: 'time',
          ratioRange: range(pairRatios(query, full)),
          target: null,
          met: null,
          details: { imageBytes: s.bytes, queryMs: query, extentsMs: full, extents },
        })
      }
      return rows
    } finally {
      for (const s of stores) {
        await s.store.close()
        removeScratch(s.scratch)
      }
    }
  },
}

// ---------------------------------------------------------------------------------------------
// marks-mark

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const start = now()
  await fn()
  return msSince(start)
}

/**
 * mark() and unmark() on one image with `n` scattered pages changed in each epoch:
 * 1. mark A, write the pages, flush;  2. mark(B) with nothing pending (a commit);
 * 3. write them again, flush() (the peer of 4);  4. write them again, mark(C) (which flushes);
 * 5. write them again, flush (C's records);  6. unmark(B): a middle mark, its records fold into A's;
 * 7. unmark(C): the newest, folds into A's;  8. unmark(A): the only mark, every record dropped.
 * Before all that, a mark taken and removed with nothing recorded, for scale.
 */
async function markRound(ctx: BenchContext, imageBytes: number, n: number): Promise<Row[]> {
  const { pageSize } = ctx.config
  const scratch = scratchDir(`marks-mark-${imageBytes / GiB}g`)
  const lower = join(scratch, 'lower.img')
  makeSparseFile(lower, imageBytes)
  const store = await ImageStore.create(join(scratch, 'store'), { lower, autoFlushMs: 0 })
  const pages = scatteredPages(n, imageBytes / pageSize, 21)
  const data = Buffer.alloc(pageSize, 0x4d)
  const writeAll = async () => {
    for (const p of pages) await store.write(p * pageSize, data)
  }
  try {
    const start = now()
    // For scale: a mark taken and removed on the same store with nothing recorded (median of 5).
    const idleMarks: number[] = []
    const idleUnmarks: number[] = []
    for (let i = 0; i < 5; i++) {
      idleMarks.push(await timed(() => store.mark('idle')))
      idleUnmarks.push(await timed(() => store.unmark('idle')))
    }
    const idle = median(idleMarks)
    const idleUnmark = median(idleUnmarks)
    await store.mark('A')
    await writeAll()
    await store.flush()
    const markClean = await timed(() => store.mark('B'))
    await writeAll()
    const flush = await timed(() => store.flush())
    await writeAll()
    const markDirty = await timed(() => store.mark('C'))
    await writeAll()
    await store.flush()
    const unmarkMiddle = await timed(() => store.unmark('B'))
    const got = drain(store, 'A')
    if (got.extents !== n) throw new Error(`marks-mark: ${got.extents} extents since A after unmark(B), expected ${n}`)
    const unmarkNewest = await timed(() => store.unmark('C'))
    const unmarkOnly = await timed(() => store.unmark('A'))
    if (store.marks().length !== 0) throw new Error('marks-mark: marks left after unmarking them all')
    ctx.log(`${size(imageBytes)}, ${count(n)} pages a round: ${(msSince(start) / 1000).toFixed(1)} s`)
    const chunks = Math.ceil(imageBytes / pageSize / 65536)
    const what = `${size(imageBytes)} sparse image, ${count(n)} scattered pages changed (${count(Math.min(chunks, n))} change records of 65 536-page chunks per epoch)`
    const row = (label: string, ms: number, baseMs: number | null, baseName: string): Row => ({
      case: 'marks-mark',
      label: `${what}: ${label}`,
      pagecow: duration(ms),
      baseline: baseMs === null ? '' : `${duration(baseMs)} (${baseName})`,
      ratio: baseMs === null ? null : ms / baseMs,
      ratioKind: baseMs === null ? null : 'time',
      ratioRange: null,
      target: null,
      met: null,
      details: { imageBytes, pages: n, ms, baseMs, idleMarkMs: idleMarks, idleUnmarkMs: idleUnmarks },
    })
    return [
      row('mark() after they were flushed (nothing pending)', markClean, idle, 'mark() on the store before anything was written'),
      row(`mark() with all ${count(n)} written and not flushed (it flushes them)`, markDirty, flush, 'flush() of the same writes'),
      row('unmark() of a middle mark: its records fold into the mark before', unmarkMiddle, idleUnmark, 'unmark() before anything was written'),
      row('unmark() of the newest mark: its records fold into the mark before', unmarkNewest, idleUnmark, 'unmark() before anything was written'),
      row('unmark() of the only mark: every record dropped', unmarkOnly, idleUnmark, 'unmark() before anything was written'),
    ]
  } finally {
    await store.close()
    removeScratch(scratch)
  }
}

export const marksMark: BenchCase = {
  id: 'marks-mark',
  group: 'marks',
  number: ISSUE,
  title: 'mark() and unmark() latency with 10⁵ scattered pages changed (fold into the mark before, drop)',
  async run(ctx) {
    const z = sizes(ctx)
    const rows: Row[] = []
    for (const bytes of z.images) rows.push(...(await markRound(ctx, bytes, z.markPages)))
    return rows
  },
}

// ---------------------------------------------------------------------------------------------
// marks-tree

export const marksTree: BenchCase = {
  id: 'marks-tree',
  group: 'marks',
  number: ISSUE,
  title: 'Tree store: changedSince() after 1 000 renamed or created files, against changes() (the whole upper, like git status)',
  async run(ctx) {
    const z = sizes(ctx)
    const fixture = treeFixture(z.treeDirs, 1000, (l) => ctx.log(l))
    const scratch = scratchDir('marks-tree')
    const store = await TreeStore.create(join(scratch, 'store'), { lower: fixture.lower, autoFlushMs: 0 })
    const small = Buffer.alloc(100, 0x74)
    const createFiles = async (dir: string, n: number) => {
      await store.mkdir(dir)
      for (let i = 0; i < n; i++) {
        const h = await store.open(`${dir}/c${String(i).padStart(5, '0')}`, 'wx')
        await h.write(0, small)
        await h.close()
      }
    }
    try {
      // Changes before the mark: in changes(), not in changedSince(). Flushed before mark():
      // the flush inside mark() would commit their deferred times under the new mark's epoch,
      // and list every one of them as `metadata` since the mark (found by this case; see
      // BENCHMARKS.md), which is not what this case measures.
      await createFiles('/before', z.treeCreates + z.treeRenames)
      await store.flush()
      await store.mark('M')
      for (let i = 0; i < z.treeRenames; i++) {
        const d = `/d${String(i % z.treeDirs).padStart(4, '0')}`
        const f = String(Math.floor(i / z.treeDirs)).padStart(5, '0')
        await store.rename(`${d}/f${f}`, `${d}/r${f}`)
      }
      await createFiles('/after', z.treeCreates)
      await store.flush()
      const got = store.changedSince('M')
      const renamed = got.filter((c) => c.status === 'renamed').length
      const created = got.filter((c) => c.status === 'created' && c.path.startsWith('/after/')).length
      if (renamed !== z.treeRenames || created !== z.treeCreates) throw new Error(`marks-tree: changedSince listed ${renamed} renamed and ${created} created, expected ${z.treeRenames} and ${z.treeCreates}`)
      const all = [...store.changes()].length
      const since: number[] = []
      const status: number[] = []
      for (let i = 0; i < 11; i++) {
        const first = i % 2 === 0
        if (first) since.push(await timed(async () => void store.changedSince('M')))
        status.push(await timed(async () => void [...store.changes()].length))
        if (!first) since.push(await timed(async () => void store.changedSince('M')))
      }
      return [
        {
          case: 'marks-tree',
          label: `lower of ${count(fixture.files)} files; since the mark ${count(z.treeRenames)} lower files renamed and ${count(z.treeCreates)} created (${count(got.length)} records), before it ${count(z.treeCreates + z.treeRenames)} created; median of 11`,
          pagecow: `${duration(median(since))} (changedSince())`,
          baseline: `${duration(median(status))} (changes(): ${count(all)} records)`,
          ratio: median(since) / median(status),
          ratioKind: 'time',
          ratioRange: range(pairRatios(since, status)),
          target: null,
          met: null,
          details: { sinceMs: since, changesMs: status, records: got.length, changesRecords: all },
        },
      ]
    } finally {
      await store.close()
      removeScratch(scratch)
    }
  },
}

export const MARKS_CASES: BenchCase[] = [marksWrite, marksChanges, marksMark, marksTree]
