// A tree store over a squashfs image, mounted with `pagecow mount` (the dist/ build, a daemon as
// the CLI starts it), against the kernel's squashfs mount of the same image (issue 14), side by
// side in one run with the page cache dropped before every cold measurement:
//   1. a cold sequential read of a 1 GiB file (1 MiB reads), target ≥ 0.5× the kernel's;
//   2. a `find -printf '%i %s %m'` walk (readdir + lstat of everything) of a 100 000-file tree,
//      each side freshly mounted, target ≥ 0.5× the kernel's speed;
//   3. the mount server's peak RSS (VmHWM) while every file of a 2 GiB image is read through it,
//      each repetition a fresh server, target < 150 MB (judged on the highest).
// `npm run bench -- squashfs-lower`, or on its own: `npx tsx tools/bench/squashfs-lower.ts [--quick]`.
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { BenchCase } from './bench-case.js'
import { DEFAULT_CONFIG, QUICK_CONFIG } from './config.js'
import { BenchContext } from './context.js'
import * as fmt from './format.js'
import { describeMachine, formatMachine } from './machine.js'
import { throughputRow, type Row } from './row.js'
import { removeAllScratch, removeScratch, scratchDir } from './scratch.js'
import { writeMixed } from './squashfs.js'
import { formatTable } from './table.js'
import { median, msSince, now } from './timing.js'

const MiB = 2 ** 20
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** The CLI measured: the build in dist/ (made here with `tsc -p tsconfig.json` when missing). */
const CLI = join(ROOT, 'dist/cli/bin.js')
const DROP_CACHES = '/proc/sys/vm/drop_caches'
const RSS_LIMIT = 150e6
const READ_BLOCK = MiB

interface Plan {
  bigFile: number
  otherBytes: number
  /** The walked tree: top × mid directories of `leaf` files each. */
  top: number
  mid: number
  leaf: number
  reps: number
}

function plan(quick: boolean): Plan {
  return quick
    ? { bigFile: 128 * MiB, otherBytes: 128 * MiB, top: 10, mid: 10, leaf: 100, reps: 1 }
    : { bigFile: 1024 * MiB, otherBytes: 1024 * MiB, top: 100, mid: 10, leaf: 100, reps: 3 }
}

function canRun(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (loop mounts, dropping the page cache)'
  if (!fs.existsSync('/dev/fuse')) return 'needs /dev/fuse'
  for (const tool of ['mksquashfs', 'find']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      return `needs ${tool}`
    }
  }
  return null
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function dropCaches(): void {
  execFileSync('sync')
  fs.writeFileSync(DROP_CACHES, '3')
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

/** Every regular file under `dir`, read whole; [files, bytes]. */
function readEveryFile(dir: string, buffer: Buffer): [number, number] {
  let files = 0
  let bytes = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      const [f, b] = readEveryFile(path, buffer)
      files += f
      bytes += b
    } else if (entry.isFile()) {
      files++
      bytes += readAll(path, buffer)
    }
  }
  return [files, bytes]
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
    child.once('close', (code) => (code === 0 ? resolve(lines) : reject(new Error(`${cmd} exited ${code}: ${stderr.trim()}`))))
  })
}

/** One side: a mount of an image, by the kernel or by pagecow (a daemon, whose pid is known). */
interface Side {
  name: 'pagecow' | 'kernel'
  mnt: string
  pid: number | null
  mount(): void
  unmount(): void
}

function kernelSide(image: string, mnt: string): Side {
  const s: Side = {
    name: 'kernel',
    mnt,
    pid: null,
    mount: () => sh('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, mnt]),
    unmount: () => sh('umount', [mnt]),
  }
  return s
}

function pagecowSide(store: string, mnt: string): Side {
  const s: Side = {
    name: 'pagecow',
    mnt,
    pid: null,
    mount() {
      const out = sh(process.execPath, [CLI, 'mount', store, mnt, '--read-only', '--json'])
      s.pid = (JSON.parse(out.trim().split('\n').pop()!) as { pid: number }).pid
    },
    unmount() {
      sh(process.execPath, [CLI, 'umount', mnt])
      s.pid = null
    },
  }
  return s
}

/** Sides in a different order each repetition, so drift falls on both alike. */
function rotated<T>(items: T[], i: number): T[] {
  return i % 2 === 0 ? items : [...items].reverse()
}

/** Files of ~100 bytes in top × mid directories of `leaf` each: what `find` walks. */
function makeTree(root: string, p: Plan): number {
  let n = 0
  for (let a = 0; a < p.top; a++) {
    for (let b = 0; b < p.mid; b++) {
      const d = join(root, `d${a}`, `s${b}`)
      fs.mkdirSync(d, { recursive: true })
      for (let c = 0; c < p.leaf; c++) fs.writeFileSync(join(d, `file-${c}.conf`), `# ${a}/${b}/${c}\n`.padEnd(100, 'x'))
      n += p.leaf
    }
  }
  return n + p.top * p.mid + p.top + 1
}

export async function runSquashfsLowerBench(quick: boolean, log: (line: string) => void): Promise<Row[]> {
  const why = canRun()
  if (why !== null) {
    log(`skipped: ${why}`)
    return []
  }
  const p = plan(quick)
  if (!fs.existsSync(CLI)) {
    log('building dist/ (tsc -p tsconfig.json)')
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' })
  }
  const scratch = scratchDir('squashfs-lower')
  const mountBase = fs.mkdtempSync(join(tmpdir(), 'pagecow-bench-sqlower-mnt-'))
  const sides: Side[] = []
  try {
    // The 2 GiB image of the squashfs reader's bench (a 1 GiB file and 1 GiB of smaller files)
    // with a 100 000-file tree beside them.
    const src = join(scratch, 'src')
    fs.mkdirSync(join(src, 'usr', 'lib'), { recursive: true })
    writeMixed(join(src, 'big.img'), p.bigFile, 0)
    let made = 0
    for (let i = 0; made < p.otherBytes; i++) {
      const size = Math.min(p.otherBytes - made, 4096 * 2 ** (i % 11) + ((i * 4099) % 4096))
      writeMixed(join(src, 'usr', 'lib', `f${i}`), size, i)
      made += size
    }
    const entries = makeTree(join(src, 'tree'), p)
    const image = join(scratch, 'image.sqfs')
    const t0 = now()
    execFileSync('mksquashfs', [src, image, '-noappend', '-quiet', '-no-progress'], { stdio: ['ignore', 'ignore', 'inherit'] })
    log(`made a ${fmt.bytes(p.bigFile + p.otherBytes)} + ${fmt.count(entries)}-entry tree and its gzip image (${fmt.bytes(fs.statSync(image).size)}) in ${(msSince(t0) / 1000).toFixed(0)} s`)
    fs.rmSync(src, { recursive: true, force: true })
    const store = join(scratch, 'store')
    sh(process.execPath, [CLI, 'create', store, '--lower', image])
    const kernel = kernelSide(image, join(mountBase, 'kernel'))
    const ours = pagecowSide(store, join(mountBase, 'pagecow'))
    for (const s of [kernel, ours]) fs.mkdirSync(s.mnt)
    const both = [ours, kernel]
    for (const s of both) {
      s.mount()
      sides.push(s)
    }
    const buffer = Buffer.allocUnsafe(READ_BLOCK)

    // 1. Cold sequential read of the 1 GiB file.
    const seq: Record<string, number[]> = { pagecow: [], kernel: [] }
    for (let r = 0; r < p.reps; r++) {
      for (const s of rotated(both, r)) {
        dropCaches()
        const start = now()
        const n = readAll(join(s.mnt, 'big.img'), buffer)
        seq[s.name]!.push(msSince(start))
        if (n !== p.bigFile) throw new Error(`${s.name}: read ${n} bytes of big.img, expected ${p.bigFile}`)
      }
      log(`cold sequential read ${r + 1}/${p.reps}: pagecow ${fmt.rate(p.bigFile, seq.pagecow!.at(-1)!)}, kernel ${fmt.rate(p.bigFile, seq.kernel!.at(-1)!)}`)
    }

    // 2. find over the tree, each side freshly mounted, caches dropped.
    const walk: Record<string, number[]> = { pagecow: [], kernel: [] }
    const walkRss: number[] = []
    for (let r = 0; r < p.reps; r++) {
      for (const s of rotated(both, r)) {
        s.unmount()
        s.mount()
        dropCaches()
        const start = now()
        const lines = await countLines('find', [join(s.mnt, 'tree'), '-printf', '%i %s %m\\n'])
        walk[s.name]!.push(msSince(start))
        if (lines !== entries) throw new Error(`${s.name}: find listed ${lines} entries, expected ${entries}`)
        if (s.pid !== null) walkRss.push(vmHwm(s.pid))
      }
      log(`walk ${r + 1}/${p.reps} (${fmt.count(entries)} entries): pagecow ${fmt.duration(walk.pagecow!.at(-1)!)}, kernel ${fmt.duration(walk.kernel!.at(-1)!)}`)
    }

    // 3. Every file of the image through a fresh server: its peak RSS.
    const rss: number[] = []
    const every: Record<string, number[]> = { pagecow: [], kernel: [] }
    let files = 0
    let bytes = 0
    for (let r = 0; r < p.reps; r++) {
      for (const s of rotated(both, r)) {
        s.unmount()
        s.mount()
        dropCaches()
        const start = now()
        ;[files, bytes] = readEveryFile(s.mnt, buffer)
        every[s.name]!.push(msSince(start))
        if (s.pid !== null) rss.push(vmHwm(s.pid))
      }
      log(`every file (${fmt.count(files)}, ${fmt.bytes(bytes)}) ${r + 1}/${p.reps}: pagecow ${fmt.duration(every.pagecow!.at(-1)!)}, peak RSS ${fmt.bytes(rss.at(-1)!)}; kernel ${fmt.duration(every.kernel!.at(-1)!)}`)
    }
    const highest = Math.max(...rss)
    return [
      throughputRow({
        case: 'squashfs-lower',
        label: `cold sequential read of a ${fmt.bytes(p.bigFile)} file of a gzip image through the FUSE mount, 1 MiB reads (page cache dropped before each side)`,
        work: p.bigFile,
        unit: 'bytes',
        pagecowMs: seq.pagecow!,
        baselineMs: seq.kernel!,
        baselineName: 'kernel squashfs mount',
        atLeast: 0.5,
      }),
      throughputRow({
        case: 'squashfs-lower',
        label: `find -printf '%i %s %m' over ${fmt.count(entries)} entries of the image, fresh mounts, cold cache (entries/s)`,
        work: entries,
        unit: 'ops',
        pagecowMs: walk.pagecow!,
        baselineMs: walk.kernel!,
        baselineName: 'kernel squashfs mount',
        atLeast: 0.5,
        details: { serverPeakRss: walkRss },
      }),
      {
        case: 'squashfs-lower',
        label: `mount server's peak RSS (VmHWM, highest of ${rss.length} fresh servers) reading every file (${fmt.count(files)}, ${fmt.bytes(bytes)}) of the image; median times`,
        pagecow: `${fmt.bytes(highest)}, ${fmt.duration(median(every.pagecow!))}`,
        baseline: `${fmt.duration(median(every.kernel!))} (kernel mount)`,
        ratio: null,
        ratioKind: null,
        ratioRange: null,
        target: '< 150 MB',
        met: highest < RSS_LIMIT,
        details: { rss, every },
      },
    ]
  } finally {
    for (const s of sides) {
      try {
        s.unmount()
      } catch {
        // not mounted
      }
    }
    fs.rmSync(mountBase, { recursive: true, force: true })
    removeScratch(scratch, { now: true })
  }
}

export const squashfsLowerCase: BenchCase = {
  id: 'squashfs-lower',
  group: 'squashfs',
  number: 14,
  title: 'tree store over a squashfs image, FUSE-mounted, against the kernel squashfs mount: cold sequential read of 1 GiB, find over 100 000 entries, server peak RSS reading every file of 2 GiB',
  run: (ctx: BenchContext) => runSquashfsLowerBench(ctx.config.quick, (line) => ctx.log(line)),
}

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--quick')
  if (unknown.length > 0) {
    process.stderr.write(`squashfs-lower bench: unknown argument ${unknown[0]}\nusage: npx tsx tools/bench/squashfs-lower.ts [--quick]\n`)
    return 1
  }
  const quick = argv.includes('--quick')
  const ctx = new BenchContext(quick ? QUICK_CONFIG : DEFAULT_CONFIG)
  process.stdout.write(`pagecow squashfs-lower benchmark, ${new Date().toISOString()}${quick ? ' (--quick sizes)' : ''}\n${formatMachine(describeMachine())}\n\n`)
  const t0 = now()
  const rows = await runSquashfsLowerBench(quick, (line) => ctx.log(line))
  removeAllScratch()
  process.stdout.write(`${formatTable(rows)}\n\nTotal ${(msSince(t0) / 1000).toFixed(1)} s.\n`)
  const out = join(ROOT, 'tools/bench/results', quick ? 'latest-squashfs-lower-quick.json' : 'latest-squashfs-lower.json')
  fs.writeFileSync(out, `${JSON.stringify({ startedAt: new Date().toISOString(), argv, machine: describeMachine(), rows }, null, 2)}\n`)
  process.stdout.write(`Results written to ${out}\n`)
  return 0
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2))
}
