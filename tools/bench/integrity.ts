// Issue 10, "Cost": what page checksums cost, in-process through the public API. Three sides run
// side by side in one run, interleaved in small batches (the order rotating every batch): the
// checked library (this checkout), the unchecked one (pagecow 0.1.0, see integrity-base.ts) and
// the raw path (pread/pwrite on a plain file in the page cache). The targets are judged against
// 0.1.0, or against the raw path when no 0.1.0 checkout is there.
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import * as current from '../../lib/index.js'
import type { TreeFileHandle } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import { count, duration, rate } from './format.js'
import { baseLibrary, BASE_COMMIT, type StoreLibrary } from './integrity-base.js'
import { integrityHash } from './integrity-hash.js'
import { randomPages, randomSubset, scatteredPages } from './random.js'
import { pairRatios, range, throughputRow, type Row } from './row.js'
import { scratchDir } from './scratch.js'
import { median, msSince, now, percentile, rotated, summarize } from './timing.js'

const RANDOM_READS_PER_BATCH = 250
const RANDOM_WRITES_PER_BATCH = 256
const RANDOM_TARGET = 0.9
const SEQ_TARGET = 0.85
const FLUSH_TARGET = 1.5
/** Bytes of page data a full fsck verifies per second, at least (10⁹: "1 GB/s"). */
const FSCK_TARGET = 1e9
const FLUSH_WARM_UP = 10
const FSCK_REPS = 3

const CURRENT = current as unknown as StoreLibrary

/** One store's file as the read and write cases use it: an image store, or one file of a tree store. */
interface PageFile {
  readInto(target: Uint8Array, offset: number): Promise<number>
  write(offset: number, data: Uint8Array): Promise<unknown>
  flush(): Promise<void>
  close(): Promise<void>
}

type Kind = 'image' | 'tree'

/** A store made once; `open` opens it again (a cold open: nothing verified yet). */
interface StoreSide {
  name: string
  open(): Promise<PageFile>
}

async function openSide(lib: StoreLibrary, kind: Kind, dir: string): Promise<PageFile> {
  if (kind === 'image') return lib.ImageStore.open(dir, { autoFlushMs: 0 })
  const store = await lib.TreeStore.open(dir, { autoFlushMs: 0 })
  const handle: TreeFileHandle = await store.open(`/${TREE_FILE}`, 'r+')
  return {
    readInto: (t, o) => handle.readInto(t, o),
    write: (o, d) => handle.write(o, d),
    flush: () => store.flush(),
    close: async () => {
      await handle.close()
      await store.close()
    },
  }
}

const TREE_FILE = 'big.img'

/** A tree lower holding one file: the data lower, hard-linked (same bytes, no copy). */
function treeLower(ctx: BenchContext): string {
  const dir = join(scratchDir('integrity-tree-lower'), 'lower')
  fs.mkdirSync(dir)
  fs.linkSync(ctx.dataLower(), join(dir, TREE_FILE))
  return dir
}

async function createSide(lib: StoreLibrary, kind: Kind, dir: string, lower: string): Promise<void> {
  const store = kind === 'image' ? await lib.ImageStore.create(dir, { lower, autoFlushMs: 0 }) : await lib.TreeStore.create(dir, { lower, autoFlushMs: 0 })
  await store.close()
}

/** The sides of a case: the checked store, the 0.1.0 store when there is one. */
async function storeSides(
  ctx: BenchContext,
  kind: Kind,
  lower: string,
  fill: (file: PageFile) => Promise<void>,
): Promise<{ sides: StoreSide[]; baseNote: string }> {
  const base = await baseLibrary()
  const libs: Array<[string, StoreLibrary]> = [['checked', CURRENT]]
  if ('lib' in base) libs.push([`0.1.0 (${BASE_COMMIT})`, base.lib])
  const sides: StoreSide[] = []
  for (const [name, lib] of libs) {
    const dir = join(scratchDir(`integrity-${kind}`), 'store')
    await createSide(lib, kind, dir, lower)
    const file = await openSide(lib, kind, dir)
    const start = now()
    await fill(file)
    await file.flush()
    await file.close()
    ctx.log(`${kind} store, ${name}: filled and flushed in ${(msSince(start) / 1000).toFixed(1)} s`)
    sides.push({ name, open: () => openSide(lib, kind, dir) })
  }
  return { sides, baseNote: 'lib' in base ? `0.1.0 from ${base.root}` : base.missing }
}

/**
 * The rows of one measurement: the checked store against 0.1.0 (the target) and against the raw
 * path, and 0.1.0 against the raw path (what the unchecked store cost already).
 */
function rowsOf(o: {
  case: string
  label: string
  work: number
  unit: 'bytes' | 'ops'
  names: string[]
  /** Per side (checked, [0.1.0], raw), per repetition. */
  ms: number[][]
  rawName: string
  target?: number
}): Row[] {
  const checked = o.ms[0]!
  const raw = o.ms[o.ms.length - 1]!
  const base = o.ms.length === 3 ? o.ms[1] : undefined
  const rows: Row[] = []
  if (base) {
    rows.push(throughputRow({ case: o.case, label: `${o.label}: checked vs ${o.names[1]}`, work: o.work, unit: o.unit, pagecowMs: checked, baselineMs: base, baselineName: o.names[1]!, atLeast: o.target }))
  }
  rows.push(throughputRow({ case: o.case, label: `${o.label}: checked vs raw`, work: o.work, unit: o.unit, pagecowMs: checked, baselineMs: raw, baselineName: o.rawName, atLeast: base ? undefined : o.target }))
  if (base) rows.push(throughputRow({ case: o.case, label: `${o.label}: ${o.names[1]} vs raw (for reference)`, work: o.work, unit: o.unit, pagecowMs: base, baselineMs: raw, baselineName: o.rawName }))
  return rows
}

/** Per-side milliseconds of `reps` repetitions: ms[side][rep]. */
async function repeat(reps: number, sides: number, one: (rep: number) => Promise<number[]>): Promise<number[][]> {
  const ms: number[][] = Array.from({ length: sides }, () => [])
  for (let r = 0; r < reps; r++) {
    const got = await one(r)
    got.forEach((t, i) => ms[i]!.push(t))
  }
  return ms
}

async function closeAll(files: PageFile[]): Promise<void> {
  for (const f of files) await f.close()
}

async function openAll(sides: StoreSide[]): Promise<PageFile[]> {
  const files: PageFile[] = []
  for (const s of sides) files.push(await s.open())
  return files
}

/** Random 4 KiB reads (cold and hot) and writes (without and with flushes) on a half-copied file. */
async function randomCase(ctx: BenchContext, kind: Kind): Promise<Row[]> {
  const { lowerBytes, pageSize, randomReads, randomWrites, flushedWrites, flushEvery, reps } = ctx.config
  const id = 'integrity-rand'
  const totalPages = lowerBytes / pageSize
  const half = randomSubset(totalPages, 0.5, 1)
  const pageData = Buffer.alloc(pageSize, 0x5a)
  const lower = kind === 'image' ? ctx.dataLower() : treeLower(ctx)
  const { sides, baseNote } = await storeSides(ctx, kind, lower, async (file) => {
    for (let i = 0; i < half.length; i++) await file.write(half[i]! * pageSize, pageData)
  })
  ctx.log(`${kind}: baseline ${baseNote}`)
  // The raw path: reads from the lower (a plain file of the same bytes, in the page cache), writes
  // to a plain file holding the same half of its pages as the uppers.
  const lowerFd = fs.openSync(ctx.dataLower(), 'r')
  const rawDir = scratchDir('integrity-raw')
  const rawFd = fs.openSync(join(rawDir, 'plain.img'), 'w+')
  fs.ftruncateSync(rawFd, lowerBytes)
  for (let i = 0; i < half.length; i++) fs.writeSync(rawFd, pageData, 0, pageSize, half[i]! * pageSize)
  fs.fdatasyncSync(rawFd)
  const names = [...sides.map((s) => s.name), 'raw']
  const what = `${kind === 'image' ? 'ImageStore' : 'TreeStore file'}, ${count(totalPages)} pages, half DATA`
  let files = await openAll(sides)
  const rows: Row[] = []
  try {
    const buf = Buffer.allocUnsafe(pageSize)
    const readPages = randomPages(randomReads, totalPages, 2)
    const readBatches = Math.ceil(randomReads / RANDOM_READS_PER_BATCH)
    const readSlice = (b: number) => readPages.subarray(b * RANDOM_READS_PER_BATCH, (b + 1) * RANDOM_READS_PER_BATCH)
    const readers = () => [
      ...files.map((f) => async (b: number) => {
        for (const p of readSlice(b)) await f.readInto(buf, p * pageSize)
      }),
      (b: number) => {
        for (const p of readSlice(b)) fs.readSync(lowerFd, buf, 0, pageSize, p * pageSize)
      },
    ]
    // Cold: every store opened again before each repetition, so no page is verified yet.
    await rotated(readBatches, readers()) // JIT warm-up
    const cold = await repeat(reps, names.length, async () => {
      await closeAll(files)
      files = await openAll(sides)
      return rotated(readBatches, readers())
    })
    rows.push(...rowsOf({ case: id, label: `${what}, ${count(randomReads)} random 4 KiB reads, cold (store reopened: nothing verified)`, work: randomReads, unit: 'ops', names, ms: cold, rawName: 'pread', target: RANDOM_TARGET }))
    await rotated(readBatches, readers())
    const hot = await repeat(reps, names.length, () => rotated(readBatches, readers()))
    rows.push(...rowsOf({ case: id, label: `${what}, ${count(randomReads)} random 4 KiB reads, hot (every page read verified before)`, work: randomReads, unit: 'ops', names, ms: hot, rawName: 'pread', target: RANDOM_TARGET }))

    const data = randomFillSync(Buffer.alloc(pageSize))
    const writeBatches = Math.ceil(randomWrites / RANDOM_WRITES_PER_BATCH)
    const writes = await repeat(reps, names.length, async (rep) => {
      const pages = randomPages(randomWrites, totalPages, 3 + rep)
      const slice = (b: number) => pages.subarray(b * RANDOM_WRITES_PER_BATCH, (b + 1) * RANDOM_WRITES_PER_BATCH)
      const ms = await rotated(writeBatches, [
        ...files.map((f) => async (b: number) => {
          for (const p of slice(b)) await f.write(p * pageSize, data)
        }),
        (b: number) => {
          for (const p of slice(b)) fs.writeSync(rawFd, data, 0, pageSize, p * pageSize)
        },
      ])
      // Untimed: the next repetition rewrites committed pages again.
      for (const f of files) await f.flush()
      fs.fdatasyncSync(rawFd)
      return ms
    })
    rows.push(...rowsOf({ case: id, label: `${what}, ${count(randomWrites)} random 4 KiB writes, no flush`, work: randomWrites, unit: 'ops', names, ms: writes, rawName: 'pwrite', target: RANDOM_TARGET }))

    const flushBatches = Math.ceil(flushedWrites / flushEvery)
    const flushed = await repeat(reps, names.length, async (rep) => {
      const pages = randomPages(flushedWrites, totalPages, 100 + rep)
      const slice = (b: number) => pages.subarray(b * flushEvery, (b + 1) * flushEvery)
      return rotated(flushBatches, [
        ...files.map((f) => async (b: number) => {
          for (const p of slice(b)) await f.write(p * pageSize, data)
          await f.flush()
        }),
        (b: number) => {
          for (const p of slice(b)) fs.writeSync(rawFd, data, 0, pageSize, p * pageSize)
          fs.fdatasyncSync(rawFd)
        },
      ])
    })
    rows.push(...rowsOf({ case: id, label: `${what}, ${count(flushedWrites)} random 4 KiB writes, flush every ${flushEvery}`, work: flushedWrites, unit: 'ops', names, ms: flushed, rawName: `pwrite + fdatasync every ${flushEvery}`, target: RANDOM_TARGET }))
  } finally {
    await closeAll(files)
    fs.closeSync(lowerFd)
    fs.closeSync(rawFd)
  }
  return rows
}

export const integrityRandom: BenchCase = {
  id: 'integrity-rand',
  group: 'integrity',
  number: 15,
  title: 'Random 4 KiB reads (cold, hot) and writes with page checksums vs pagecow 0.1.0 and pread/pwrite (ImageStore and a TreeStore file)',
  async run(ctx) {
    return [...(await randomCase(ctx, 'image')), ...(await randomCase(ctx, 'tree'))]
  },
}

export const integritySeq: BenchCase = {
  id: 'integrity-seq',
  group: 'integrity',
  number: 16,
  title: 'Sequential 1 MiB reads of an all-DATA image (cold, hot) with page checksums vs pagecow 0.1.0 and fs.readSync',
  async run(ctx) {
    const { lowerBytes, seqReadBytes, reps } = ctx.config
    const id = 'integrity-seq'
    const lower = ctx.dataLower()
    const block = randomFillSync(Buffer.alloc(seqReadBytes))
    // Every page DATA: every byte read is checked against a sum.
    const { sides, baseNote } = await storeSides(ctx, 'image', lower, async (file) => {
      for (let off = 0; off < lowerBytes; off += seqReadBytes) {
        block.writeDoubleLE(off, 0)
        await file.write(off, block)
      }
    })
    ctx.log(`seq: baseline ${baseNote}`)
    const lowerFd = fs.openSync(lower, 'r')
    const names = [...sides.map((s) => s.name), 'raw']
    let files = await openAll(sides)
    try {
      const buf = Buffer.allocUnsafe(seqReadBytes)
      const batches = lowerBytes / seqReadBytes
      const readers = () => [
        ...files.map((f) => async (b: number) => {
          await f.readInto(buf, b * seqReadBytes)
        }),
        (b: number) => {
          fs.readSync(lowerFd, buf, 0, seqReadBytes, b * seqReadBytes)
        },
      ]
      await rotated(batches, readers())
      const cold = await repeat(reps, names.length, async () => {
        await closeAll(files)
        files = await openAll(sides)
        return rotated(batches, readers())
      })
      const what = `${count(lowerBytes / seqReadBytes)} × readInto() of 1 MiB, whole image DATA`
      const rows = rowsOf({ case: id, label: `${what}, cold (store reopened: nothing verified)`, work: lowerBytes, unit: 'bytes', names, ms: cold, rawName: 'fs.readSync on the lower', target: SEQ_TARGET })
      await rotated(batches, readers())
      const hot = await repeat(reps, names.length, () => rotated(batches, readers()))
      rows.push(...rowsOf({ case: id, label: `${what}, hot (verified before)`, work: lowerBytes, unit: 'bytes', names, ms: hot, rawName: 'fs.readSync on the lower', target: SEQ_TARGET }))
      return rows
    } finally {
      await closeAll(files)
      fs.closeSync(lowerFd)
    }
  },
}

/** 0.1.0 stores with scattered DATA pages, built once per count like BenchContext.scatteredStore. */
const baseScattered = new Map<number, string>()

async function baseScatteredStore(ctx: BenchContext, lib: StoreLibrary, pages: number): Promise<string> {
  const cached = baseScattered.get(pages)
  if (cached) return cached
  const start = now()
  const dir = join(scratchDir(`base-store${pages}`), 'store')
  const store = await lib.ImageStore.create(dir, { lower: ctx.sparseLower(), autoFlushMs: 0 })
  const pageSize = store.pageSize
  const list = scatteredPages(pages, ctx.config.sparseLowerBytes / pageSize, 5)
  const data = Buffer.alloc(pageSize, 0xa5)
  for (let i = 0; i < list.length; i++) {
    data.writeUInt32LE(i, 0)
    await store.write(list[i]! * pageSize, data)
  }
  await store.flush()
  await store.close()
  ctx.log(`0.1.0 store with ${pages} scattered pages made in ${(msSince(start) / 1000).toFixed(1)} s`)
  baseScattered.set(pages, dir)
  return dir
}

export const integrityFlush: BenchCase = {
  id: 'integrity-flush',
  group: 'integrity',
  number: 17,
  title: 'write one page + flush with 10⁶ vs 10³ pages copied, with page checksums (and 0.1.0 beside it)',
  async run(ctx) {
    const { flushCostPages, flushCostSamples, sparseLowerBytes, pageSize } = ctx.config
    const [few, many] = flushCostPages
    const base = await baseLibrary()
    const stores: Array<{ name: string; store: current.ImageStore; ms: number[] }> = []
    const open = async (name: string, lib: StoreLibrary, dir: string) => stores.push({ name, store: await lib.ImageStore.open(dir, { autoFlushMs: 0 }), ms: [] })
    await open('checked few', CURRENT, await ctx.scatteredStore(few))
    await open('checked many', CURRENT, await ctx.scatteredStore(many))
    if ('lib' in base) {
      await open('0.1.0 few', base.lib, await baseScatteredStore(ctx, base.lib, few))
      await open('0.1.0 many', base.lib, await baseScatteredStore(ctx, base.lib, many))
    }
    try {
      const data = randomFillSync(Buffer.alloc(pageSize))
      const pages = randomPages(FLUSH_WARM_UP + flushCostSamples, sparseLowerBytes / pageSize, 8)
      for (let i = 0; i < pages.length; i++) {
        for (let k = 0; k < stores.length; k++) {
          const s = stores[(i + k) % stores.length]!
          const start = now()
          await s.store.write(pages[i]! * pageSize, data)
          await s.store.flush()
          s.ms.push(msSince(start))
        }
      }
      const samples = (i: number) => stores[i]!.ms.slice(FLUSH_WARM_UP)
      const row = (label: string, a: number[], b: number[], aName: string, bName: string, target?: number): Row => {
        const ratio = median(a) / median(b)
        return {
          case: 'integrity-flush',
          label: `${label}; median of ${a.length} × (write 4 KiB + flush), p90 ${duration(percentile(a, 90))} vs ${duration(percentile(b, 90))}`,
          pagecow: `${duration(median(a))} (${aName})`,
          baseline: `${duration(median(b))} (${bName})`,
          ratio,
          ratioKind: 'time',
          ratioRange: range(blockRatios(a, b, 4)),
          target: target === undefined ? null : `≤ ${target}×`,
          met: target === undefined ? null : ratio <= target,
          details: { a: summarize(a), b: summarize(b), aMs: a, bMs: b },
        }
      }
      const rows = [row('checked: 10⁶ vs 10³ pages copied', samples(1), samples(0), `${count(many)} pages`, `${count(few)} pages`, FLUSH_TARGET)]
      if (stores.length === 4) {
        rows.push(row('0.1.0: 10⁶ vs 10³ pages copied (for reference)', samples(3), samples(2), `${count(many)} pages`, `${count(few)} pages`))
        rows.push(row(`checked vs 0.1.0, ${count(many)} pages copied`, samples(1), samples(3), 'checked', '0.1.0'))
        rows.push(row(`checked vs 0.1.0, ${count(few)} pages copied`, samples(0), samples(2), 'checked', '0.1.0'))
      }
      return rows
    } finally {
      for (const s of stores) await s.store.close()
    }
  },
}

/** The ratio of medians in each of `blocks` consecutive slices of the samples: the drift. */
function blockRatios(a: number[], b: number[], blocks: number): number[] {
  const size = Math.ceil(a.length / blocks)
  const out: number[] = []
  for (let i = 0; i < a.length; i += size) out.push(median(a.slice(i, i + size)) / median(b.slice(i, i + size)))
  return out
}

/** checkStore as the lead is extending it (lib/image/fsck.ts): `{ quick?, onProgress? }`. */
type CheckWithOptions = (dir: string, options?: { quick?: boolean; onProgress?: (...args: unknown[]) => void }) => Promise<current.FsckReport>

export const integrityFsck: BenchCase = {
  id: 'integrity-fsck',
  group: 'integrity',
  number: 18,
  title: 'fsck of a store with 10⁶ DATA pages: page data verified per second (and --quick, and 0.1.0 fsck beside it)',
  async run(ctx) {
    const { flushCostPages, pageSize } = ctx.config
    const pages = flushCostPages[1]
    const dir = await ctx.scatteredStore(pages)
    const base = await baseLibrary()
    const baseDir = 'lib' in base ? await baseScatteredStore(ctx, base.lib, pages) : undefined
    const check = current.checkStore as unknown as CheckWithOptions
    let progressCalls = 0
    const full: number[] = []
    const quick: number[] = []
    const old: number[] = []
    let dataPages = 0
    for (let r = 0; r < FSCK_REPS; r++) {
      let start = now()
      const report = await check(dir, { onProgress: () => progressCalls++ })
      full.push(msSince(start))
      if (!report.clean) throw new Error(`integrity-fsck: the store is not clean: ${report.problems.map((p) => p.message).join('; ')}`)
      dataPages = report.checked.dataPages
      start = now()
      await check(dir, { quick: true })
      quick.push(msSince(start))
      if (baseDir && 'lib' in base) {
        start = now()
        await base.lib.checkStore(baseDir)
        old.push(msSince(start))
      }
    }
    // Until the data check lands, checkStore ignores the options and never reports progress.
    const pending = progressCalls === 0
    const work = dataPages * pageSize
    const fullMs = median(full)
    const gbs = work / (fullMs / 1000)
    const rows: Row[] = [
      {
        case: 'integrity-fsck',
        label: `checkStore(), ${count(dataPages)} DATA pages (${(work / 1e9).toFixed(2)} GB), median of ${FSCK_REPS}${pending ? ' — pending fsck data check: checkStore took no options and reported no progress, so no page was read' : ''}`,
        // Until then no page is read, so bytes over time would be no rate at all.
        pagecow: pending ? duration(fullMs) : `${duration(fullMs)} (${(gbs / 1e9).toFixed(2)} GB/s of page data)`,
        baseline: `${duration(median(quick))} ({ quick: true })`,
        ratio: fullMs / median(quick),
        ratioKind: 'time',
        ratioRange: range(pairRatios(full, quick)),
        target: pending ? null : `≥ ${FSCK_TARGET / 1e9} GB/s`,
        met: pending ? null : gbs >= FSCK_TARGET,
        details: { dataPages, fullMs: full, quickMs: quick, progressCalls, pending, rate: rate(work, fullMs) },
      },
    ]
    // The same check of a store whose DATA pages lie next to each other (an image written front
    // to back): its pages are read 1 MiB at a time instead of one pread each.
    const { lowerBytes, seqReadBytes } = ctx.config
    const denseDir = join(scratchDir('integrity-fsck-dense'), 'store')
    await createSide(CURRENT, 'image', denseDir, ctx.dataLower())
    const dense = await openSide(CURRENT, 'image', denseDir)
    const block = randomFillSync(Buffer.alloc(seqReadBytes))
    for (let off = 0; off < lowerBytes; off += seqReadBytes) {
      block.writeDoubleLE(off, 0)
      await dense.write(off, block)
    }
    await dense.flush()
    await dense.close()
    const denseMs: number[] = []
    let densePages = 0
    for (let r = 0; r < FSCK_REPS; r++) {
      const start = now()
      const report = await current.checkStore(denseDir)
      denseMs.push(msSince(start))
      if (!report.clean) throw new Error(`integrity-fsck: the dense store is not clean: ${report.problems.map((p) => p.message).join('; ')}`)
      densePages = report.checked.verifiedPages
    }
    const denseWork = densePages * pageSize
    const denseRate = denseWork / (median(denseMs) / 1000)
    rows.push({
      case: 'integrity-fsck',
      label: `checkStore(), ${count(densePages)} contiguous DATA pages (${(denseWork / 1e9).toFixed(2)} GB, an image written front to back), median of ${FSCK_REPS}`,
      pagecow: `${duration(median(denseMs))} (${(denseRate / 1e9).toFixed(2)} GB/s of page data)`,
      baseline: '—',
      ratio: null,
      ratioKind: 'time',
      ratioRange: null,
      target: `≥ ${FSCK_TARGET / 1e9} GB/s`,
      met: denseRate >= FSCK_TARGET,
      details: { densePages, denseMs },
    })
    if (old.length > 0) {
      rows.push({
        case: 'integrity-fsck',
        label: `checkStore() vs 0.1.0's checkStore() (no checksums) on the same layout, median of ${FSCK_REPS}`,
        pagecow: duration(fullMs),
        baseline: `${duration(median(old))} (0.1.0)`,
        ratio: fullMs / median(old),
        ratioKind: 'time',
        ratioRange: range(pairRatios(full, old)),
        target: null,
        met: null,
        details: { oldMs: old },
      })
    }
    return rows
  },
}

export const INTEGRITY_CASES = [integrityRandom, integritySeq, integrityFlush, integrityFsck, integrityHash]
