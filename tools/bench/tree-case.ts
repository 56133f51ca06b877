// The tree-mode benchmark (issue 3) as a case of `npm run bench` (id and group `tree`): a
// TreeStore against node's synchronous `fs` calls on a plain copy of the same lower tree, all
// in-process. Every ratio is time pagecow/baseline (≤ 1 is better); RSS is measured in children.
import { execFileSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { TreeStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import * as fmt from './format.js'
import { pairRatios, range, type Row } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { median, msSince, now } from './timing.js'
import { BIG_FILE, treeFixture, WRITE_OFFSET, type TreeFixture } from './tree-lower.js'
import { walkPlain, walkStore } from './tree-walk.js'

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'tree-rss-child.ts')
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const SMALL_FILE = 4096
/** SPEC §9: well under 200 MB, whatever the size of the lower. */
const RSS_LIMIT = 200 * 2 ** 20
/** Peak RSS over the big tree may exceed the small tree's by this factor (noise), no more. */
const RSS_GROWTH_LIMIT = 1.25
/** With the heap capped, the walk of 10× the entries may cost at most this much more: nothing per entry. */
const CAPPED_GROWTH_LIMIT = 1.05

/** Sizes of the tree case: the default run, or --quick. */
interface TreeSizes {
  dirs: number
  smallDirs: number
  filesPerDir: number
  writeReps: number
  walkReps: number
  creates: number
  createReps: number
}

/**
 * Files made by case 4 in the default run: 10 000, as issue 3 asks, or PAGECOW_BENCH_TREE_CREATES
 * (--quick makes 500). Each create and each first write is a durable SQLite commit, so this case
 * alone takes 20–50 s (2–5 ms a file on the reference machine); the cost is linear in the count.
 */
function creates(): number {
  const n = Number(process.env['PAGECOW_BENCH_TREE_CREATES'] ?? 10_000)
  if (!Number.isInteger(n) || n < 1) throw new Error('PAGECOW_BENCH_TREE_CREATES must be a positive integer')
  return n
}

function sizes(ctx: BenchContext): TreeSizes {
  return ctx.config.quick
    ? { dirs: 20, smallDirs: 2, filesPerDir: 1000, writeReps: 3, walkReps: 1, creates: 500, createReps: 1 }
    : { dirs: 100, smallDirs: 10, filesPerDir: 1000, writeReps: 5, walkReps: 2, creates: creates(), createReps: 1 }
}

export const treeCase: BenchCase = {
  id: 'tree',
  group: 'tree',
  number: 9,
  title: 'Tree mode: first write into a 1 GiB lower file, chmod, stat+readdir walk, small-file creates, peak RSS, against fs on a plain copy',
  async run(ctx) {
    const z = sizes(ctx)
    const big = treeFixture(z.dirs, z.filesPerDir, (l) => ctx.log(l))
    const small = treeFixture(z.smallDirs, z.filesPerDir, (l) => ctx.log(l))
    return [
      ...(await firstWriteAndChmod(ctx, big, z.writeReps)),
      await walk(ctx, big, z.walkReps),
      await createFiles(ctx, big, z.creates, z.createReps),
      ...(await rss(ctx, big, small)),
    ]
  },
}

/** A new store over `fixture.lower` in a scratch directory; `done` closes and removes it. */
async function freshStore(fixture: TreeFixture): Promise<{ store: TreeStore; dir: string; done(): Promise<void> }> {
  const scratch = scratchDir('tree')
  const dir = join(scratch, 'store')
  const store = await TreeStore.create(dir, { lower: fixture.lower, autoFlushMs: 0 })
  return {
    store,
    dir,
    async done() {
      await store.close()
      removeScratch(scratch, { now: true })
    },
  }
}

/** Blocks allocated by every file in `dir` (upper files, database, WAL), in bytes. */
function allocatedUnder(dir: string): number {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const st = fs.lstatSync(join(entry.parentPath, entry.name))
    total += st.blocks * 512
  }
  return total
}

/** Cases 1 and 2: first 1-byte write into big.img, and chmod of big.img, each on a fresh store. */
async function firstWriteAndChmod(ctx: BenchContext, fixture: TreeFixture, reps: number): Promise<Row[]> {
  const byte = randomFillSync(Buffer.alloc(1))
  const path = `/${BIG_FILE}`
  const copyPath = join(fixture.copy, BIG_FILE)
  const write = { pc: [] as number[], base: [] as number[], upper: [] as number[], dirGrowth: [] as number[], flushMs: [] as number[] }
  const chmod = { pc: [] as number[], base: [] as number[], upper: [] as number[], dirGrowth: [] as number[] }
  for (let i = 0; i < reps; i++) {
    // 1: the first write, then a flush (so the store directory shows what is durable).
    {
      const s = await freshStore(fixture)
      try {
        const handle = await s.store.open(path, 'r+')
        const before = s.store.info().upper.allocatedBytes
        const dirBefore = allocatedUnder(s.dir)
        const start = now()
        await handle.write(WRITE_OFFSET, byte)
        write.pc.push(msSince(start))
        await handle.close()
        const f0 = now()
        await s.store.flush()
        write.flushMs.push(msSince(f0))
        write.upper.push(s.store.info().upper.allocatedBytes - before)
        write.dirGrowth.push(allocatedUnder(s.dir) - dirBefore)
        const back = await (await s.store.open(path, 'r')).read(WRITE_OFFSET, 1)
        if (!back.equals(byte)) throw new Error('tree bench: the byte written did not read back')
      } finally {
        await s.done()
      }
      const fd = fs.openSync(copyPath, 'r+')
      try {
        const start = now()
        fs.writeSync(fd, byte, 0, 1, WRITE_OFFSET)
        write.base.push(msSince(start))
      } finally {
        fs.closeSync(fd)
      }
    }
    // 2: chmod of the untouched lower file: metadata only.
    {
      const s = await freshStore(fixture)
      try {
        const before = s.store.info().upper.allocatedBytes
        const dirBefore = allocatedUnder(s.dir)
        const mode = i % 2 === 0 ? 0o600 : 0o640
        const start = now()
        await s.store.chmod(path, mode)
        chmod.pc.push(msSince(start))
        chmod.upper.push(s.store.info().upper.allocatedBytes - before)
        chmod.dirGrowth.push(allocatedUnder(s.dir) - dirBefore)
        if (((await s.store.stat(path)).mode & 0o7777) !== mode) throw new Error('tree bench: chmod did not take')
      } finally {
        await s.done()
      }
      const start = now()
      fs.chmodSync(copyPath, i % 2 === 0 ? 0o600 : 0o640)
      chmod.base.push(msSince(start))
    }
  }
  const pageSize = 4096
  const maxUpper = Math.max(...write.upper)
  return [
    timeRow({
      label: `1. first 1-byte write into the 1 GiB lower file, median of ${reps} fresh stores; upper data grew ${fmt.bytes(maxUpper)} (info().upper.allocatedBytes; store dir incl. database: +${fmt.bytes(median(write.dirGrowth))} after flush(), flush ${fmt.duration(median(write.flushMs))})`,
      pc: write.pc,
      base: write.base,
      baselineName: 'in-place pwrite on the copy; overlayfs would copy 1 GiB',
      target: 'upper grows by one page (4 KiB)',
      met: write.upper.every((b) => b === pageSize),
      details: write,
    }),
    timeRow({
      label: `2. chmod of the 1 GiB lower file, median of ${reps} fresh stores; upper data grew ${fmt.bytes(Math.max(...chmod.upper))} (store dir incl. database: +${fmt.bytes(median(chmod.dirGrowth))})`,
      pc: chmod.pc,
      base: chmod.base,
      baselineName: 'chmodSync on the copy',
      target: 'no data copied (upper +0 B)',
      met: chmod.upper.every((b) => b === 0),
      details: chmod,
    }),
  ]
}

/** Case 3: readdir of every directory and stat of every entry, on a store freshly opened each time. */
async function walk(ctx: BenchContext, fixture: TreeFixture, reps: number): Promise<Row> {
  const s = await freshStore(fixture)
  const pc: number[] = []
  const base: number[] = []
  let entries = 0
  try {
    await s.store.close()
    walkPlain(fixture.copy) // warm the page cache of both trees, unmeasured
    walkPlain(fixture.lower)
    for (let i = 0; i < reps; i++) {
      const timePc = async () => {
        const store = await TreeStore.open(s.dir, { readOnly: true })
        const start = now()
        entries = await walkStore(store)
        pc.push(msSince(start))
        await store.close()
      }
      const timeBase = () => {
        const start = now()
        const n = walkPlain(fixture.copy)
        base.push(msSince(start))
        if (n !== entries && entries !== 0) throw new Error(`tree bench: the walks disagree (${entries} vs ${n} entries)`)
      }
      if (i % 2 === 0) {
        await timePc()
        timeBase()
      } else {
        timeBase()
        await timePc()
      }
      ctx.log(`walk ${i + 1}/${reps}: pagecow ${fmt.duration(pc[i]!)}, fs ${fmt.duration(base[i]!)}`)
    }
  } finally {
    removeScratch(dirname(s.dir), { now: true })
  }
  return timeRow({
    label: `3. stat of every entry + readdir of every directory, ${fmt.count(entries)} entries (${fixture.dirs} dirs × ${fmt.count(fixture.filesPerDir)} files + big.img), ${reps} reps; pagecow ${fmt.duration(median(pc) / entries)} per entry`,
    pc,
    base,
    baselineName: 'readdirSync + lstatSync on the copy',
    target: null,
    met: null,
    details: { entries, pagecowMs: pc, baselineMs: base },
  })
}

/** Case 4: create + write 4 KiB + close of `count` new files in a new directory. */
async function createFiles(ctx: BenchContext, fixture: TreeFixture, count: number, reps: number): Promise<Row> {
  const data = randomFillSync(Buffer.alloc(SMALL_FILE))
  const pc: number[] = []
  const base: number[] = []
  const flushMs: number[] = []
  for (let i = 0; i < reps; i++) {
    const s = await freshStore(fixture)
    try {
      await s.store.mkdir('/new')
      const start = now()
      for (let f = 0; f < count; f++) {
        const h = await s.store.open(`/new/n${f}`, 'wx')
        await h.write(0, data)
        await h.close()
      }
      pc.push(msSince(start))
      const f0 = now()
      await s.store.flush()
      flushMs.push(msSince(f0))
    } finally {
      await s.done()
    }
    const dir = join(fixture.copy, `new-${process.pid}`)
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir)
    try {
      const start = now()
      for (let f = 0; f < count; f++) {
        const fd = fs.openSync(`${dir}/n${f}`, 'wx')
        fs.writeSync(fd, data, 0, SMALL_FILE, 0)
        fs.closeSync(fd)
      }
      base.push(msSince(start))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
    ctx.log(`creates ${i + 1}/${reps}: pagecow ${fmt.duration(pc[i]!)} (+ flush ${fmt.duration(flushMs[i]!)}), fs ${fmt.duration(base[i]!)}`)
  }
  return timeRow({
    label: `4. create + write 4 KiB + close of ${fmt.count(count)} new files, ${reps} reps; pagecow ${fmt.duration(median(pc) / count)} per file, then flush() ${fmt.duration(median(flushMs))} (not in the ratio; fs side not fsynced)`,
    pc,
    base,
    baselineName: 'openSync wx + writeSync + closeSync on the copy',
    target: null,
    met: null,
    details: { count, pagecowMs: pc, baselineMs: base, flushMs },
  })
}

interface ChildReport {
  mode: string
  entries: number
  walkMs: number
  maxRssBytes: number
}

/**
 * V8 flags for a walk whose heap cannot grow with garbage: 1 MiB young generation, 24 MiB old.
 * With them the peak RSS shows what the walk keeps, not how lazily V8 collects (which grows with
 * the length of the run, not the size of the tree); a walk that kept something per entry would
 * run out of heap.
 */
const CAPPED_HEAP = ['--max-semi-space-size=1', '--max-old-space-size=24']

function child(dir: string, mode: 'store' | 'plain', v8Flags: string[] = []): ChildReport {
  const out = execFileSync(process.execPath, [...v8Flags, '--import', TSX, CHILD, dir, mode], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  return JSON.parse(out.trim().split('\n').pop()!) as ChildReport
}

/** Case 5: peak RSS of the walk over the big and the small tree, each in its own child process. */
async function rss(ctx: BenchContext, big: TreeFixture, small: TreeFixture): Promise<Row[]> {
  const reports: Array<{ fixture: TreeFixture; store: ChildReport; plain: ChildReport; capped: ChildReport }> = []
  for (const fixture of [small, big]) {
    const scratch = scratchDir('tree-rss')
    const dir = join(scratch, 'store')
    try {
      await (await TreeStore.create(dir, { lower: fixture.lower, autoFlushMs: 0 })).close()
      const store = child(dir, 'store')
      const plain = child(fixture.copy, 'plain')
      const capped = child(dir, 'store', CAPPED_HEAP)
      ctx.log(`RSS walk of ${store.entries} entries: pagecow ${fmt.bytes(store.maxRssBytes)} in ${fmt.duration(store.walkMs)} (${fmt.bytes(capped.maxRssBytes)} with the heap capped), fs ${fmt.bytes(plain.maxRssBytes)}`)
      reports.push({ fixture, store, plain, capped })
    } finally {
      removeScratch(scratch, { now: true })
    }
  }
  const [s, b] = reports as [(typeof reports)[0], (typeof reports)[0]]
  const growth = b.store.maxRssBytes / s.store.maxRssBytes
  const row = (r: (typeof reports)[0]): Row => ({
    case: 'tree',
    label: `5. peak RSS (child process, VmHWM) of the walk over ${fmt.count(r.store.entries)} entries; pagecow/fs ${(r.store.maxRssBytes / r.plain.maxRssBytes).toFixed(2)}×`,
    pagecow: fmt.bytes(r.store.maxRssBytes),
    baseline: `${fmt.bytes(r.plain.maxRssBytes)} (fs walk in a child)`,
    ratio: null,
    ratioKind: null,
    ratioRange: null,
    target: '< 200 MiB',
    met: r.store.maxRssBytes < RSS_LIMIT,
    details: { ...r },
  })
  return [
    row(s),
    row(b),
    {
      case: 'tree',
      label: `5. RSS growth from ${fmt.count(s.store.entries)} to ${fmt.count(b.store.entries)} entries (pagecow big/small; fs: ${(b.plain.maxRssBytes / s.plain.maxRssBytes).toFixed(2)}×)`,
      pagecow: `${fmt.bytes(s.store.maxRssBytes)} → ${fmt.bytes(b.store.maxRssBytes)}`,
      baseline: `${fmt.bytes(s.plain.maxRssBytes)} → ${fmt.bytes(b.plain.maxRssBytes)} (fs)`,
      ratio: null,
      ratioKind: null,
      ratioRange: null,
      target: `flat: ≤ ${RSS_GROWTH_LIMIT}×`,
      met: growth <= RSS_GROWTH_LIMIT,
      details: { growth },
    },
    {
      case: 'tree',
      label: `5. the same walks with V8's heap capped (${CAPPED_HEAP.join(' ')}): what the walk keeps, without garbage V8 has not collected yet`,
      pagecow: `${fmt.bytes(s.capped.maxRssBytes)} → ${fmt.bytes(b.capped.maxRssBytes)}`,
      baseline: 'the fs walk: see above',
      ratio: null,
      ratioKind: null,
      ratioRange: null,
      target: `flat: ≤ ${CAPPED_GROWTH_LIMIT}×`,
      met: b.capped.maxRssBytes / s.capped.maxRssBytes <= CAPPED_GROWTH_LIMIT,
      details: { growth: b.capped.maxRssBytes / s.capped.maxRssBytes },
    },
  ]
}

/** A paired time measurement as a row: the ratio is the median of per-repetition pagecow/baseline. */
function timeRow(o: { label: string; pc: number[]; base: number[]; baselineName: string; target: string | null; met: boolean | null; details: object }): Row {
  const ratios = pairRatios(o.pc, o.base)
  return {
    case: 'tree',
    label: o.label,
    pagecow: fmt.duration(median(o.pc)),
    baseline: `${fmt.duration(median(o.base))} (${o.baselineName})`,
    ratio: median(ratios),
    ratioKind: 'time',
    ratioRange: ratios.length > 1 ? range(ratios) : null,
    target: o.target,
    met: o.met,
    details: { ...o.details },
  }
}
