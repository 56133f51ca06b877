// The FUSE benchmark (issue 4), case `fuse` of `npm run bench`, or on its own:
//   npx tsx tools/bench/fuse.ts [--quick]
// One lower directory, three views of it side by side: `pagecow mount` of a tree store over it,
// fuse-overlayfs over it, and a plain copy of it. The client I/O runs here (node fs, or spawned
// tar and find); the two mounts are served by their own processes, measured as servers.
// Set PAGECOW_BENCH_FUSE_CPU_PROF=DIR to run the pagecow server in the foreground under
// `node --cpu-prof` (profiles land in DIR) instead of as the CLI's daemon, and
// PAGECOW_BENCH_FUSE_OPS=2,5 to run only some operations.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { BenchCase } from './bench-case.js'
import { DEFAULT_CONFIG, QUICK_CONFIG } from './config.js'
import { BenchContext } from './context.js'
import * as fmt from './format.js'
import { firstWriteOffset, fuseFixture, type FuseFixture, type FuseSizes } from './fuse-lower.js'
import { describeMachine, formatMachine } from './machine.js'
import { randomPages } from './random.js'
import { pairRatios, range, type Row } from './row.js'
import { removeAllScratch, scratchDir } from './scratch.js'
import { formatTable } from './table.js'
import { median, msSince, now } from './timing.js'

const MiB = 2 ** 20
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** The CLI measured: the build in dist/ (`npx tsc -p tsconfig.json`). */
const CLI = join(ROOT, 'dist/cli/bin.js')
const READ_BLOCK = MiB
const PAGE = 4096
const DROP_CACHES = '/proc/sys/vm/drop_caches'
const CLOCK_TICKS = 100
/** SPEC §9: well under 200 MB. */
const RSS_LIMIT = 200 * MiB

/** PAGECOW_BENCH_FUSE_OPS=2,5 runs only those operations (for a diagnosis, not a report). */
const ONLY = process.env['PAGECOW_BENCH_FUSE_OPS']?.split(',').map((s) => s.trim())

type SystemName = 'pagecow' | 'fuse-overlayfs' | 'plain'

/** Per-run sizes: the issue's, or --quick. */
interface Plan {
  sizes: FuseSizes
  readReps: number
  randomWrites: number
  writeBatches: number
  untarReps: number
  walkReps: number
}

function plan(quick: boolean): Plan {
  return quick
    ? {
        sizes: { bigBytes: 64 * MiB, firstWriteFiles: 3, rwBytes: 16 * MiB, top: 5, mid: 10, leaf: 100, tarDirs: 50, tarFilesPerDir: 20 },
        readReps: 1,
        randomWrites: 2048,
        writeBatches: 4,
        untarReps: 1,
        walkReps: 1,
      }
    : {
        sizes: { bigBytes: 1024 * MiB, firstWriteFiles: 5, rwBytes: 64 * MiB, top: 100, mid: 10, leaf: 100, tarDirs: 150, tarFilesPerDir: 20 },
        readReps: 3,
        randomWrites: 16384,
        writeBatches: 8,
        untarReps: 3,
        walkReps: 2,
      }
}

// ---------------------------------------------------------------------------------------------
// The three systems

/** One view of the lower: a mount (with its server process) or the plain copy. */
interface System {
  name: SystemName
  /** Where the lower's tree appears. */
  root: string
  /** The serving process, while mounted. */
  pid: number | null
  mounted: boolean
  mount(): Promise<void>
  unmount(): Promise<void>
  /** Bytes allocated by what this system wrote for the lower (its upper, or the copy's file). */
  upperBytes(rel: string): number
  /** Peak RSS of each server process so far (VmHWM, read before each unmount). */
  peakRss: number[]
}

/** Mount points live outside the scratch directories, so no `rm -r` of scratch ever enters a mount. */
let mountBase: string | undefined
const live = new Set<System>()
let exitHooked = false

function mountPoint(name: string): string {
  mountBase ??= fs.mkdtempSync(join(tmpdir(), 'pagecow-bench-fuse-mnt-'))
  const dir = join(mountBase, name)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

/** Remove the (unmounted) mount points; one still mounted is left alone and named. */
function removeMountPoints(systems: System[], log: (l: string) => void): void {
  if (!mountBase) return
  for (const s of systems) {
    if (s.name === 'plain') continue
    if (s.mounted) log(`${s.root} is still mounted by ${s.name}; left in place`)
    else fs.rmdirSync(s.root)
  }
  try {
    fs.rmdirSync(mountBase)
    mountBase = undefined
  } catch {
    // Not empty: a mount is left (named above).
  }
}

/** On any exit, detach what is still mounted (lazily: nothing waits). */
function hookExit(): void {
  if (exitHooked) return
  exitHooked = true
  process.on('exit', () => {
    for (const s of live) {
      const cmd = s.name === 'pagecow' ? ['umount', ['-l', s.root]] : ['fusermount3', ['-u', '-z', s.root]]
      try {
        execFileSync(cmd[0] as string, cmd[1] as string[], { stdio: 'ignore' })
      } catch {
        // Already gone.
      }
    }
  })
}

async function pagecowSystem(fixture: FuseFixture, log: (l: string) => void): Promise<System> {
  const scratch = scratchDir('fuse-pagecow')
  const store = join(scratch, 'store')
  await run(process.execPath, [CLI, 'create', store, '--lower', fixture.lower])
  const mnt = mountPoint('pagecow')
  const profileDir = process.env['PAGECOW_BENCH_FUSE_CPU_PROF']
  let child: ChildProcess | undefined
  const s: System = {
    name: 'pagecow',
    root: mnt,
    pid: null,
    mounted: false,
    peakRss: [],
    async mount() {
      if (profileDir) {
        child = await startForeground(store, mnt, profileDir)
        s.pid = child.pid ?? null
        log(`pagecow server in the foreground under --cpu-prof (pid ${s.pid}), profiles in ${profileDir}`)
      } else {
        const { stdout } = await run(process.execPath, [CLI, 'mount', store, mnt, '--json'])
        s.pid = (JSON.parse(stdout.trim().split('\n').pop()!) as { pid: number }).pid
      }
      s.mounted = true
      live.add(s)
    },
    async unmount() {
      if (!s.mounted) return
      if (s.pid !== null) s.peakRss.push(vmHwm(s.pid))
      try {
        await run(process.execPath, [CLI, 'umount', mnt])
      } catch (err) {
        log(`pagecow umount failed (${err instanceof Error ? err.message : String(err)}); detaching lazily`)
        await run('umount', ['-l', mnt]).catch(() => {})
      }
      if (child) await exited(child, 60_000)
      s.mounted = false
      s.pid = null
      live.delete(s)
    },
    upperBytes: () => allocatedUnder(join(store, 'upper')),
  }
  return s
}

/** `pagecow mount --foreground` under `node --cpu-prof`; resolves once it says it is serving. */
async function startForeground(store: string, mnt: string, profileDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, CLI, 'mount', store, mnt, '--foreground', '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, UV_THREADPOOL_SIZE: '8' },
  })
  await new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('\n')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`pagecow mount --foreground exited ${code} before serving`)))
  })
  return child
}

async function overlaySystem(fixture: FuseFixture, log: (l: string) => void): Promise<System> {
  const scratch = scratchDir('fuse-overlayfs')
  const upper = join(scratch, 'upper')
  const work = join(scratch, 'work')
  fs.mkdirSync(upper)
  fs.mkdirSync(work)
  const mnt = mountPoint('fuse-overlayfs')
  let child: ChildProcess | undefined
  const s: System = {
    name: 'fuse-overlayfs',
    root: mnt,
    pid: null,
    mounted: false,
    peakRss: [],
    async mount() {
      // -f: stay a child of ours, so its pid (CPU, RSS) is known.
      child = spawn('fuse-overlayfs', ['-f', '-o', `lowerdir=${fixture.lower},upperdir=${upper},workdir=${work}`, mnt], { stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
      const deadline = Date.now() + 30_000
      while (!isMounted(mnt, 'fuse.fuse-overlayfs')) {
        if (child.exitCode !== null) throw new Error(`fuse-overlayfs exited ${child.exitCode}: ${stderr.trim()}`)
        if (Date.now() > deadline) throw new Error(`fuse-overlayfs did not mount ${mnt} in 30 s: ${stderr.trim()}`)
        await sleep(20)
      }
      s.pid = child.pid ?? null
      s.mounted = true
      live.add(s)
    },
    async unmount() {
      if (!s.mounted) return
      if (s.pid !== null) s.peakRss.push(vmHwm(s.pid))
      try {
        await run('fusermount3', ['-u', mnt])
      } catch (err) {
        log(`fusermount3 -u failed (${err instanceof Error ? err.message : String(err)}); detaching lazily`)
        await run('fusermount3', ['-u', '-z', mnt]).catch(() => {})
      }
      if (child) await exited(child, 30_000)
      s.mounted = false
      s.pid = null
      live.delete(s)
    },
    upperBytes: () => allocatedUnder(upper),
  }
  return s
}

function plainSystem(fixture: FuseFixture): System {
  return {
    name: 'plain',
    root: fixture.copy,
    pid: null,
    mounted: false,
    peakRss: [],
    async mount() {},
    async unmount() {},
    upperBytes: (rel) => fs.statSync(join(fixture.copy, rel)).blocks * 512,
  }
}

// ---------------------------------------------------------------------------------------------
// The operations

interface Ctx {
  fixture: FuseFixture
  plan: Plan
  systems: System[]
  canDrop: boolean
  log(line: string): void
}

/** Per system, one figure per repetition (ms, or ops/s), plus extra numbers for the JSON. */
type Samples = Record<SystemName, number[]>

function emptySamples(): Samples {
  return { pagecow: [], 'fuse-overlayfs': [], plain: [] }
}

/** The systems in a different order each repetition, so drift falls on all alike. */
function rotated(systems: System[], i: number): System[] {
  const k = i % systems.length
  return [...systems.slice(k), ...systems.slice(0, k)]
}

/** 1. open O_WRONLY + 1-byte pwrite in the middle + close of a big lower file never written. */
async function firstWrite(c: Ctx): Promise<{ ms: Samples; upper: Samples }> {
  const ms = emptySamples()
  const upper = emptySamples()
  const offset = firstWriteOffset(c.plan.sizes.bigBytes)
  const byte = randomFillSync(Buffer.alloc(1))
  const files = [c.fixture.warmup, ...c.fixture.firstWrite]
  for (let i = 0; i < files.length; i++) {
    const rel = files[i]!
    warm(join(c.fixture.lower, rel)) // fuse-overlayfs copies from the page cache, at its best
    warm(join(c.fixture.copy, rel))
    for (const s of rotated(c.systems, i)) {
      const path = join(s.root, rel)
      const before = s.upperBytes(rel)
      const start = now()
      const fd = fs.openSync(path, fs.constants.O_WRONLY)
      fs.writeSync(fd, byte, 0, 1, offset)
      fs.closeSync(fd)
      const took = msSince(start)
      const grew = s.upperBytes(rel) - before
      syncAll() // the copy-up's writeback must not land on the next measurement
      if (i === 0) continue // the warm-up file: first request of each server, not counted
      ms[s.name].push(took)
      upper[s.name].push(grew)
    }
    if (i > 0) c.log(`first write ${i}/${files.length - 1}: ${c.systems.map((s) => `${s.name} ${fmt.duration(ms[s.name][i - 1]!)} (+${fmt.bytes(upper[s.name][i - 1]!)})`).join(', ')}`)
  }
  return { ms, upper }
}

/** 2. Sequential read of the unmodified data file with 1 MiB reads; `warmLower` reads the lower first. */
async function seqRead(c: Ctx, warmLower: boolean): Promise<Samples> {
  const ms = emptySamples()
  const buffer = Buffer.allocUnsafe(READ_BLOCK)
  const rel = c.fixture.seqRead
  for (let i = 0; i < c.plan.readReps; i++) {
    for (const s of rotated(c.systems, i)) {
      dropCaches(c)
      if (warmLower) warm(join(s.name === 'plain' ? c.fixture.copy : c.fixture.lower, rel))
      const start = now()
      const n = readAll(join(s.root, rel), buffer)
      ms[s.name].push(msSince(start))
      if (n !== c.plan.sizes.bigBytes) throw new Error(`${s.name}: read ${n} bytes of ${rel}, expected ${c.plan.sizes.bigBytes}`)
    }
    c.log(`sequential read ${warmLower ? '(warm lower) ' : '(cold) '}${i + 1}/${c.plan.readReps}: ${c.systems.map((s) => `${s.name} ${fmt.rate(c.plan.sizes.bigBytes, ms[s.name][i]!)}`).join(', ')}`)
  }
  return ms
}

/** 3. Random 4 KiB writes into a file already copied up; per-batch times, systems rotated per batch. */
async function randomWrites(c: Ctx): Promise<Samples> {
  const ms = emptySamples()
  const rel = c.fixture.randomWrite
  const pages = randomPages(c.plan.randomWrites, c.plan.sizes.rwBytes / PAGE, 20261121)
  const data = randomFillSync(Buffer.alloc(PAGE))
  const fds = new Map<SystemName, number>()
  try {
    for (const s of c.systems) {
      const fd = fs.openSync(join(s.root, rel), fs.constants.O_WRONLY)
      fds.set(s.name, fd)
      fs.writeSync(fd, data, 0, 1, 0) // the first write: fuse-overlayfs copies the file up (untimed)
    }
    syncAll()
    const perBatch = c.plan.randomWrites / c.plan.writeBatches
    for (let b = 0; b < c.plan.writeBatches; b++) {
      for (const s of rotated(c.systems, b)) {
        const fd = fds.get(s.name)!
        const start = now()
        for (let k = b * perBatch; k < (b + 1) * perBatch; k++) {
          data.writeUInt32LE(k, 0)
          fs.writeSync(fd, data, 0, PAGE, pages[k]! * PAGE)
        }
        ms[s.name].push(msSince(start))
      }
    }
  } finally {
    for (const fd of fds.values()) fs.closeSync(fd)
  }
  syncAll()
  const total = (name: SystemName) => ms[name].reduce((a, b) => a + b, 0)
  c.log(`random writes: ${c.systems.map((s) => `${s.name} ${fmt.opsRate(c.plan.randomWrites, total(s.name))}`).join(', ')}`)
  return ms
}

/** 4. `tar -xf` of the source tarball into a new directory on each view. */
async function untar(c: Ctx): Promise<Samples> {
  const ms = emptySamples()
  for (let i = 0; i < c.plan.untarReps; i++) {
    for (const s of rotated(c.systems, i)) {
      const dir = join(s.root, `untar-${process.pid}-${i}`)
      fs.mkdirSync(dir)
      const start = now()
      await run('tar', ['-xf', c.fixture.tarball, '-C', dir])
      ms[s.name].push(msSince(start))
      syncAll()
      if (s.name === 'plain') fs.rmSync(dir, { recursive: true }) // the copy stays as made
    }
    c.log(`untar ${i + 1}/${c.plan.untarReps}: ${c.systems.map((s) => `${s.name} ${fmt.duration(ms[s.name][i]!)}`).join(', ')}`)
  }
  return ms
}

/** 5. `find -printf '%i %s %m'` (readdir + lstat of everything) over the tree, on a fresh mount with caches dropped. */
async function walk(c: Ctx): Promise<{ ms: Samples; rss: number[] }> {
  const ms = emptySamples()
  const rss: number[] = []
  const expected = c.fixture.treeFiles + c.fixture.treeDirs
  for (let i = 0; i < c.plan.walkReps; i++) {
    for (const s of rotated(c.systems, i)) {
      await s.unmount()
      await s.mount()
      dropCaches(c)
      const start = now()
      const lines = await countLines('find', [join(s.root, c.fixture.tree), '-printf', '%i %s %m\\n'])
      ms[s.name].push(msSince(start))
      if (lines !== expected) throw new Error(`${s.name}: find listed ${lines} entries, expected ${expected}`)
      if (s.name === 'pagecow' && s.pid !== null) rss.push(vmHwm(s.pid))
    }
    c.log(`walk ${i + 1}/${c.plan.walkReps} (${fmt.count(expected)} entries): ${c.systems.map((s) => `${s.name} ${fmt.duration(ms[s.name][i]!)}`).join(', ')}`)
  }
  return { ms, rss }
}

// ---------------------------------------------------------------------------------------------
// The run

export interface FuseResult {
  rows: Row[]
  /** The three-system table (Markdown). */
  summary: string
}

export async function runFuseBench(quick: boolean, log: (line: string) => void): Promise<FuseResult> {
  for (const tool of ['fuse-overlayfs', 'fusermount3', 'tar', 'find']) {
    if (!have(tool)) throw new Error(`fuse bench: ${tool} is needed (Debian: fuse-overlayfs fuse3 tar findutils)`)
  }
  if (!fs.existsSync(CLI)) throw new Error(`fuse bench: ${CLI} is missing; build it with \`npx tsc -p tsconfig.json\``)
  const stale = staleDist()
  if (stale) log(`warning: ${stale} is newer than dist/; the mount measured is the last build (npx tsc -p tsconfig.json)`)
  const p = plan(quick)
  const fixture = fuseFixture(p.sizes, log)
  const canDrop = tryDropCaches()
  if (!canDrop) log(`warning: cannot write ${DROP_CACHES}; reads and walks run with whatever the page cache holds`)
  hookExit()
  const systems = [await pagecowSystem(fixture, log), await overlaySystem(fixture, log), plainSystem(fixture)]
  const c: Ctx = { fixture, plan: p, systems, canDrop, log }
  const out = new Summary(fixture, p, canDrop)
  const cpu = new CpuMeter(systems, log)
  const loadBefore = loadavg()
  try {
    for (const s of systems) await s.mount()
    await out.attempt('1', async () => out.firstWrite(await cpu.around('first write', () => firstWrite(c))))
    await out.attempt('2', async () => out.seqRead(await cpu.around('seq read cold', () => seqRead(c, false)), false))
    await out.attempt('2', async () => out.seqRead(await cpu.around('seq read warm', () => seqRead(c, true)), true))
    await out.attempt('3', async () => out.randomWrites(await cpu.around('random writes', () => randomWrites(c))))
    await out.attempt('4', async () => out.untar(await cpu.around('untar', () => untar(c))))
    await out.attempt('5', async () => out.walk(await walk(c)))
  } finally {
    for (const s of systems) {
      try {
        await s.unmount()
      } catch (err) {
        log(`unmounting ${s.name} failed: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    removeMountPoints(systems, log)
  }
  out.rss(systems)
  out.cpu = cpu.seconds
  const load = `1-minute load average ${loadBefore[0]!.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (${availableParallelism()} cores): other work on the machine shares the CPUs`
  log(load)
  return { rows: out.rows, summary: `${out.table()}\n\n${load}.\nServer CPU seconds per operation: ${JSON.stringify(cpu.seconds, (_, v: unknown) => (typeof v === 'number' ? Number(v.toFixed(2)) : v))}` }
}

/** Server CPU seconds (user + system) per operation, for the JSON and the profile notes. */
class CpuMeter {
  readonly seconds: Record<string, Partial<Record<SystemName, number>>> = {}
  readonly #systems: System[]
  readonly #log: (line: string) => void
  constructor(systems: System[], log: (line: string) => void) {
    this.#systems = systems
    this.#log = log
  }
  async around<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const servers = this.#systems.filter((s) => s.pid !== null)
    const before = servers.map((s) => cpuSeconds(s.pid!))
    const result = await fn()
    this.seconds[what] = Object.fromEntries(servers.map((s, i) => [s.name, s.pid === null ? NaN : cpuSeconds(s.pid) - before[i]!]))
    this.#log(`server CPU for ${what}: ${Object.entries(this.seconds[what]!).map(([n, v]) => `${n} ${v!.toFixed(2)} s`).join(', ')}`)
    return result
  }
}

interface SummaryLine {
  op: string
  pagecow: string
  overlay: string
  plain: string
  vsOverlay: number | null
  vsPlain: number | null
  kind: 'time' | 'throughput' | null
  target: string
  met: boolean | null
}

/** Collects rows (the shared table) and the three-system summary. */
class Summary {
  readonly rows: Row[] = []
  readonly lines: SummaryLine[] = []
  cpu: Record<string, unknown> = {}
  readonly #f: FuseFixture
  readonly #p: Plan
  readonly #canDrop: boolean

  constructor(fixture: FuseFixture, p: Plan, canDrop: boolean) {
    this.#f = fixture
    this.#p = p
    this.#canDrop = canDrop
  }

  async attempt(op: string, fn: () => Promise<void>): Promise<void> {
    if (ONLY && !ONLY.includes(op)) return
    try {
      await fn()
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      process.stderr.write(`  … operation ${op} failed: ${message}\n`)
      this.rows.push({ case: 'fuse', label: `${op}. FAILED: ${message}`, pagecow: '', baseline: '', ratio: null, ratioKind: null, ratioRange: null, target: null, met: false, details: { error: message } })
      this.lines.push({ op: `${op}. FAILED: ${message}`, pagecow: '', overlay: '', plain: '', vsOverlay: null, vsPlain: null, kind: null, target: '', met: false })
    }
  }

  firstWrite(r: { ms: Samples; upper: Samples }): void {
    const size = fmt.bytes(this.#p.sizes.bigBytes)
    const n = r.ms.pagecow.length
    const grew = (name: SystemName) => fmt.bytes(median(r.upper[name]))
    const label = `1. first write into a ${size} lower file (${fmt.bytes(this.#p.sizes.bigBytes / 4)} of it real data, rest holes): open O_WRONLY + 1-byte pwrite in the middle + close, median of ${n} files`
    const pageOk = r.upper.pagecow.every((b) => b === PAGE)
    const faster = median(r.ms['fuse-overlayfs']) / median(r.ms.pagecow)
    // The issue's 100× is for a 1 GiB file: copy-up cost scales with the size, pagecow's does not.
    const full = this.#p.sizes.bigBytes >= 2 ** 30
    this.#time(label, r.ms, { target: full ? '≤ 0.01× (≥ 100× faster)' : null, limit: full ? 0.01 : null, extra: `pagecow ${faster.toFixed(0)}× faster than fuse-overlayfs; upper grew +${grew('pagecow')} / +${grew('fuse-overlayfs')} / +${grew('plain')}`, also: pageOk ? null : `pagecow's upper grew ${r.upper.pagecow.map((b) => fmt.bytes(b)).join(', ')}, not one page` }, r)
  }

  seqRead(ms: Samples, warmLower: boolean): void {
    const how = warmLower ? 'lower in the page cache, mount cold' : this.#canDrop ? 'caches dropped before each' : 'page cache not dropped'
    this.#throughput(`2. sequential read of an unmodified ${fmt.bytes(this.#p.sizes.bigBytes)} lower file of real data, 1 MiB reads (${how}), ${ms.pagecow.length} reps`, ms, this.#p.sizes.bigBytes, 'bytes', { target: '≥ 0.7×', limit: 0.7 })
  }

  randomWrites(ms: Samples): void {
    const n = this.#p.randomWrites
    const sum = (xs: number[]) => [xs.reduce((a, b) => a + b, 0)]
    const totals: Samples = { pagecow: sum(ms.pagecow), 'fuse-overlayfs': sum(ms['fuse-overlayfs']), plain: sum(ms.plain) }
    const label = `3. random 4 KiB writes (pwrite, one at a time) into a ${fmt.bytes(this.#p.sizes.rwBytes)} file already copied up, ${fmt.count(n)} writes in ${this.#p.writeBatches} batches`
    this.#throughput(label, totals, n, 'ops', { target: null, limit: null, batches: ms, perBatch: n / this.#p.writeBatches })
  }

  untar(ms: Samples): void {
    const f = this.#f
    this.#time(`4. tar -xf of a ${fmt.bytes(f.tarBytes)} tarball (${fmt.count(f.tarFiles)} files in ${this.#p.sizes.tarDirs} dirs) into a new directory, ${ms.pagecow.length} reps`, ms, { target: null, limit: null })
  }

  walk(r: { ms: Samples; rss: number[] }): void {
    const f = this.#f
    const entries = f.treeFiles + f.treeDirs
    const caches = this.#canDrop ? 'fresh mount, caches dropped' : 'fresh mount'
    this.#time(`5. find TREE -printf '%i %s %m' over ${fmt.count(f.treeFiles)} files in ${fmt.count(f.treeDirs)} nested dirs (${caches}), ${r.ms.pagecow.length} reps; pagecow ${fmt.duration(median(r.ms.pagecow) / entries)} per entry`, r.ms, { target: '≤ 2×', limit: 2, extra: r.rss.length > 0 ? `pagecow server VmHWM after the walk ${fmt.bytes(Math.max(...r.rss))}` : undefined }, r)
  }

  rss(systems: System[]): void {
    const pc = Math.max(0, ...(systems.find((s) => s.name === 'pagecow')?.peakRss ?? []))
    const ov = Math.max(0, ...(systems.find((s) => s.name === 'fuse-overlayfs')?.peakRss ?? []))
    if (pc === 0) return
    const label = '6. server peak RSS (VmHWM of the serving process, highest over the mounts of this run)'
    this.rows.push({ case: 'fuse', label, pagecow: fmt.bytes(pc), baseline: `${fmt.bytes(ov)} (fuse-overlayfs)`, ratio: ov > 0 ? pc / ov : null, ratioKind: null, ratioRange: null, target: '< 200 MiB', met: pc < RSS_LIMIT, details: { pagecowVmHwm: pc, overlayVmHwm: ov } })
    this.lines.push({ op: label, pagecow: fmt.bytes(pc), overlay: fmt.bytes(ov), plain: '', vsOverlay: ov > 0 ? pc / ov : null, vsPlain: null, kind: null, target: '< 200 MiB', met: pc < RSS_LIMIT })
  }

  #time(label: string, ms: Samples, o: { target: string | null; limit: number | null; extra?: string | undefined; also?: string | null }, details: object = { ms }): void {
    const vsO = pairRatios(ms.pagecow, ms['fuse-overlayfs'])
    const vsP = pairRatios(ms.pagecow, ms.plain)
    const rO = median(vsO)
    const met = o.limit === null ? null : rO <= o.limit && !o.also
    const full = `${label}${o.extra ? `; ${o.extra}` : ''}${o.also ? `; ${o.also}` : ''}`
    const show = (name: SystemName) => fmt.duration(median(ms[name]))
    this.rows.push(
      { case: 'fuse', label: full, pagecow: show('pagecow'), baseline: `${show('fuse-overlayfs')} (fuse-overlayfs)`, ratio: rO, ratioKind: 'time', ratioRange: vsO.length > 1 ? range(vsO) : null, target: o.target, met, details: { ...details } },
      { case: 'fuse', label: `${label.split(' ')[0]} same, against the plain copy`, pagecow: show('pagecow'), baseline: `${show('plain')} (plain dir)`, ratio: median(vsP), ratioKind: 'time', ratioRange: vsP.length > 1 ? range(vsP) : null, target: null, met: null, details: {} },
    )
    this.lines.push({ op: full, pagecow: show('pagecow'), overlay: show('fuse-overlayfs'), plain: show('plain'), vsOverlay: rO, vsPlain: median(vsP), kind: 'time', target: o.target ?? '', met })
  }

  #throughput(label: string, ms: Samples, work: number, unit: 'bytes' | 'ops', o: { target: string | null; limit: number | null; batches?: Samples; perBatch?: number }): void {
    const ratios = (base: SystemName) => (o.batches ? pairRatios(o.batches[base], o.batches.pagecow) : pairRatios(ms[base], ms.pagecow))
    const vsO = ratios('fuse-overlayfs')
    const vsP = ratios('plain')
    const rO = o.batches ? median(ms['fuse-overlayfs']) / median(ms.pagecow) : median(vsO)
    const rP = o.batches ? median(ms.plain) / median(ms.pagecow) : median(vsP)
    const met = o.limit === null ? null : rO >= o.limit
    const show = (name: SystemName) => (unit === 'bytes' ? fmt.rate(work, median(ms[name])) : fmt.opsRate(work, median(ms[name])))
    this.rows.push(
      { case: 'fuse', label, pagecow: show('pagecow'), baseline: `${show('fuse-overlayfs')} (fuse-overlayfs)`, ratio: rO, ratioKind: 'throughput', ratioRange: vsO.length > 1 ? range(vsO) : null, target: o.target, met, details: { work, unit, ms, batches: o.batches ?? null } },
      { case: 'fuse', label: `${label.split(' ')[0]} same, against the plain copy`, pagecow: show('pagecow'), baseline: `${show('plain')} (plain dir)`, ratio: rP, ratioKind: 'throughput', ratioRange: vsP.length > 1 ? range(vsP) : null, target: null, met: null, details: {} },
    )
    this.lines.push({ op: label, pagecow: show('pagecow'), overlay: show('fuse-overlayfs'), plain: show('plain'), vsOverlay: rO, vsPlain: rP, kind: 'throughput', target: o.target ?? '', met })
  }

  /** The three systems side by side, ratios as pagecow/other (time: ≤ 1 better; throughput: ≥ 1 better). */
  table(): string {
    const head = ['operation', 'pagecow', 'fuse-overlayfs', 'plain dir', 'pagecow/fuse-overlayfs', 'pagecow/plain', 'ratio of', 'target (vs fuse-overlayfs)', 'met']
    const cells = this.lines.map((l) => [l.op, l.pagecow, l.overlay, l.plain, preciseRatio(l.vsOverlay), preciseRatio(l.vsPlain), l.kind ?? '', l.target, l.met === null ? '' : l.met ? 'yes' : '**no**'])
    const line = (c: string[]) => `| ${c.join(' | ')} |`
    return [line(head), `|${head.map((_, i) => (i >= 1 && i <= 5 ? '---:' : '---')).join('|')}|`, ...cells.map(line)].join('\n')
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** A ratio with three significant digits (the shared table's two decimals show 0.004 as 0.00). */
function preciseRatio(r: number | null): string {
  if (r === null || !Number.isFinite(r)) return ''
  return `${r < 10 ? r.toPrecision(3) : r.toFixed(1)}×`
}

function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`))))
  })
}

/** Run a tool and count the lines it prints (find's output: one line per entry). */
function countLines(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let lines = 0
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++
    })
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve(lines) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`))))
  })
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve()
    }, timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function isMounted(mnt: string, fsType: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => {
      const [head, tail] = line.split(' - ')
      return head?.split(' ')[4] === mnt && tail?.split(' ')[0] === fsType
    })
}

/** Read `path` to the end in `buffer`-sized reads; returns the bytes read. */
function readAll(path: string, buffer: Buffer): number {
  const fd = fs.openSync(path, 'r')
  let total = 0
  try {
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, total)
      if (n === 0) return total
      total += n
    }
  } finally {
    fs.closeSync(fd)
  }
}

function warm(path: string): void {
  readAll(path, Buffer.allocUnsafe(READ_BLOCK))
}

function syncAll(): void {
  execFileSync('sync')
}

function tryDropCaches(): boolean {
  try {
    syncAll()
    fs.writeFileSync(DROP_CACHES, '3')
    return true
  } catch {
    return false
  }
}

function dropCaches(c: Ctx): void {
  if (!c.canDrop) return
  syncAll()
  fs.writeFileSync(DROP_CACHES, '3')
}

/** Blocks allocated under `dir` (every file, recursively), in bytes. */
function allocatedUnder(dir: string): number {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    total += fs.lstatSync(join(entry.parentPath, entry.name)).blocks * 512
  }
  return total
}

/** Peak resident set of a process (VmHWM), in bytes; 0 if it is gone. */
function vmHwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** User + system CPU seconds of a process so far, all threads. */
function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

/** A lib/ source newer than the build in dist/, if any. */
function staleDist(): string | undefined {
  const built = fs.statSync(CLI).mtimeMs
  for (const entry of fs.readdirSync(join(ROOT, 'lib'), { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name)
    if (entry.isFile() && path.endsWith('.ts') && fs.statSync(path).mtimeMs > built) return path
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// As a case of `npm run bench`, and on its own

export const fuseCase: BenchCase = {
  id: 'fuse',
  group: 'fuse',
  number: 10,
  title: 'FUSE mount: first write into a 1 GiB lower file, sequential read, random writes, untar, find walk; against fuse-overlayfs and a plain copy',
  async run(ctx: BenchContext) {
    const result = await runFuseBench(ctx.config.quick, (line) => ctx.log(line))
    process.stderr.write(`\nFUSE, the three systems side by side:\n${result.summary}\n\n`)
    return result.rows
  },
}

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--quick')
  if (unknown.length > 0) {
    process.stderr.write(`fuse bench: unknown argument ${unknown[0]}\nusage: npx tsx tools/bench/fuse.ts [--quick]\n`)
    return 1
  }
  const quick = argv.includes('--quick')
  const ctx = new BenchContext(quick ? QUICK_CONFIG : DEFAULT_CONFIG)
  process.stdout.write(`pagecow FUSE benchmark, ${new Date().toISOString()}${quick ? ' (--quick sizes)' : ''}\n${formatMachine(describeMachine())}\n`)
  process.stdout.write(`fuse-overlayfs: ${firstLineOf('fuse-overlayfs', ['--version'])}\n\n`)
  const t0 = now()
  const result = await runFuseBench(quick, (line) => ctx.log(line))
  removeAllScratch()
  process.stdout.write(`${result.summary}\n\n${formatTable(result.rows)}\n\nTotal ${(msSince(t0) / 1000).toFixed(1)} s.\n`)
  return 0
}

function firstLineOf(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    return out.split('\n').find((l) => l.startsWith(cmd))?.trim() ?? out.split('\n')[0]!.trim()
  } catch {
    return 'unknown'
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2))
}
