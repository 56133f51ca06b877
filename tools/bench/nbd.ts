// NBD benchmark: pagecow's server against nbdkit's cow filter and a qcow2 overlay served by
// qemu-nbd, over the same lower image. Standalone:
//   npx tsx tools/bench/nbd.ts [--size 1024] [--writes 16384] [--depth 16] [--runs 3] [--dir DIR] [--json]
// (--size in MiB). Measures: sequential read of the unmodified image (`nbdcopy URI null:`; once
// with the lower dropped from the page cache, then the best of --runs),
// random 4 KiB writes (fio's nbd engine; `qemu-img bench` if fio is missing), and the space the
// upper takes after those writes. Prints each server's numbers and pagecow's ratios.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const MiB = 1024 * 1024
/** USER_HZ: /proc reports CPU time in these. */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface NbdBenchOptions {
  /** Lower image size in bytes. Default 1 GiB. */
  size?: number
  /** Random 4 KiB writes per server. Default 16384 (64 MiB). */
  writes?: number
  /** Requests in flight for the write test. Default 16. */
  depth?: number
  /** Sequential reads per server; the best counts. Default 3. */
  runs?: number
  /** Working directory (lower, stores, sockets). Default: a new one under the temp dir, removed after. */
  dir?: string
  /** Use this lower (real data, warm) instead of making one; `size` is then its size. */
  lower?: string
  log?: (line: string) => void
}

export interface ServerResult {
  name: string
  /** Sequential read of the whole unmodified image, bytes per second (best run). */
  readBytesPerSecond: number
  /** The same read once with the lower dropped from the page cache first (from the disk). */
  coldReadBytesPerSecond: number
  /** Random 4 KiB writes per second. */
  writeIops: number
  /** Bytes the upper takes on disk after the writes (and a flush). */
  upperBytes: number
  /** How the writes were driven. */
  writeTool: string
  /** CPU seconds the server used (user + system, all threads) for the reads and for the writes. */
  cpuSeconds: { read: number; write: number }
}

export interface NbdBenchResult {
  date: string
  node: string
  size: number
  writes: number
  depth: number
  servers: ServerResult[]
  /** pagecow ÷ nbdkit cow (reads, writes) and pagecow ÷ nbdkit (space; lower is better). */
  ratios: { read: number | null; coldRead: number | null; write: number | null; space: number | null }
}

interface Target {
  name: string
  uri: string
  /** The server process, for its CPU time. */
  pid: number
  /** Bytes the upper takes now (call after a flush). */
  space(): number
  stop(): Promise<void>
}

function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`))))
  })
}

/** Spawn a long-running server; resolves once its Unix socket accepts connections. */
async function startProcess(cmd: string, args: string[], socket: string, env?: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const deadline = Date.now() + 60_000
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited: ${stderr}`)
    if (Date.now() > deadline) throw new Error(`${cmd} did not listen on ${socket} in 60 s: ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return child
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  await exited
  clearTimeout(timer)
}

/** User + system CPU seconds of a process so far (Linux /proc), all threads together. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

function allocated(path: string): number {
  return statSync(path).blocks * 512
}

async function pagecowTarget(dir: string, lower: string): Promise<Target> {
  const store = join(dir, 'pagecow-store')
  const socket = join(dir, 'pagecow.sock')
  const child = await startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'tools/bench/nbd-serve.ts'), store, '--create', lower, '--socket', socket], socket)
  return {
    name: 'pagecow',
    pid: child.pid as number,
    uri: `nbd+unix:///?socket=${socket}`,
    space: () => readdirSync(store).reduce((n, f) => n + allocated(join(store, f)), 0),
    stop: () => stopProcess(child),
  }
}

async function nbdkitTarget(dir: string, lower: string): Promise<Target> {
  const socket = join(dir, 'nbdkit.sock')
  const overlayDir = join(dir, 'nbdkit-tmp')
  mkdirSync(overlayDir)
  // The cow filter keeps its overlay in an unlinked file under TMPDIR: found again via /proc.
  const child = await startProcess('nbdkit', ['-f', '-U', socket, '--filter=cow', 'file', lower], socket, { ...process.env, TMPDIR: overlayDir })
  return {
    name: 'nbdkit cow',
    pid: child.pid as number,
    uri: `nbd+unix:///?socket=${socket}`,
    space: () => {
      const fds = `/proc/${child.pid}/fd`
      let total = 0
      for (const fd of readdirSync(fds)) {
        try {
          if (readlinkSync(join(fds, fd)).startsWith(overlayDir)) total += statSync(join(fds, fd)).blocks * 512
        } catch {
          // An fd closed while we looked.
        }
      }
      return total
    },
    stop: () => stopProcess(child),
  }
}

async function qemuTarget(dir: string, lower: string): Promise<Target> {
  const socket = join(dir, 'qemu.sock')
  const overlay = join(dir, 'overlay.qcow2')
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', lower, '-F', 'raw', overlay])
  const child = await startProcess('qemu-nbd', ['-f', 'qcow2', '-k', socket, '-t', '-e', '8', '--cache=writeback', overlay], socket)
  return {
    name: 'qemu-nbd qcow2',
    pid: child.pid as number,
    uri: `nbd+unix:///?socket=${socket}`,
    space: () => allocated(overlay),
    stop: () => stopProcess(child),
  }
}

/**
 * Drop `path`'s pages from the page cache (GNU dd's nocache: posix_fadvise DONTNEED on the whole
 * file), so that the next read of it comes from the disk.
 */
async function dropFromCache(path: string): Promise<void> {
  // Only clean pages can be dropped: a lower just written is synced first.
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  await run('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'])
}

async function sequentialRead(uri: string, size: number, runs: number): Promise<number> {
  let best = 0
  for (let i = 0; i < runs; i++) {
    const start = performance.now()
    await run('nbdcopy', [uri, 'null:'])
    best = Math.max(best, size / ((performance.now() - start) / 1000))
  }
  return best
}

async function randomWrites(uri: string, writes: number, depth: number, size: number): Promise<{ iops: number; tool: string }> {
  if (have('fio')) {
    const { stdout } = await run('fio', [
      '--name=randwrite',
      '--ioengine=nbd',
      `--uri=${uri}`,
      '--rw=randwrite',
      '--bs=4k',
      `--iodepth=${depth}`,
      `--io_size=${writes * 4096}`,
      '--randrepeat=1',
      '--randseed=20261121', // the same offsets on every server
      '--output-format=json',
    ])
    const json = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<{ write: { iops: number } }> }
    return { iops: json.jobs[0]?.write.iops ?? 0, tool: `fio nbd randwrite bs=4k iodepth=${depth}` }
  }
  // Without fio: qemu-img bench, writes striding through the image with an odd step.
  const step = Math.max(4096, Math.floor(size / writes / 4096) * 4096 + 4096 * 7)
  const start = performance.now()
  await run('qemu-img', ['bench', '-w', '-f', 'raw', '-t', 'none', '-c', String(writes), '-d', String(depth), '-s', '4096', '-S', String(step), uri])
  return { iops: writes / ((performance.now() - start) / 1000), tool: `qemu-img bench -w stride ${step}` }
}

async function flush(uri: string): Promise<void> {
  await run('qemu-io', ['-f', 'raw', '-c', 'flush', uri])
}

function makeLower(path: string, size: number): void {
  const fd = openSync(path, 'wx')
  const block = Buffer.alloc(4 * MiB)
  try {
    for (let pos = 0; pos < size; pos += block.length) {
      randomFillSync(block)
      writeSync(fd, block, 0, Math.min(block.length, size - pos), pos)
    }
  } finally {
    closeSync(fd)
  }
}

export async function runNbdBench(options: NbdBenchOptions = {}): Promise<NbdBenchResult> {
  const size = options.lower ? statSync(options.lower).size : (options.size ?? 1024 * MiB)
  const writes = options.writes ?? 16384
  const depth = options.depth ?? 16
  const runs = options.runs ?? 3
  const log = options.log ?? ((line: string) => console.error(line))
  for (const tool of ['nbdcopy', 'qemu-io']) if (!have(tool)) throw new Error(`${tool} is needed (apt-get install libnbd-bin qemu-utils)`)
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'pagecow-nbd-bench-'))
  const lower = options.lower ?? join(dir, 'lower.img')
  const servers: ServerResult[] = []
  try {
    if (!options.lower) {
      log(`lower: ${size / MiB} MiB of random data in ${dir}`)
      makeLower(lower, size)
    }
    const kinds: Array<[string, boolean, (d: string, l: string) => Promise<Target>]> = [
      ['pagecow', true, pagecowTarget],
      ['nbdkit', have('nbdkit'), nbdkitTarget],
      ['qemu-nbd', have('qemu-nbd') && have('qemu-img'), qemuTarget],
    ]
    for (const [tool, available, start] of kinds) {
      if (!available) {
        log(`${tool}: not installed, skipped`)
        continue
      }
      const sub = join(dir, tool)
      mkdirSync(sub)
      const target = await start(sub, lower)
      try {
        log(`${target.name}: sequential read from the disk…`)
        await dropFromCache(lower)
        const cold = await sequentialRead(target.uri, size, 1)
        log(`${target.name}: sequential read…`)
        const cpu0 = cpuSeconds(target.pid)
        const read = await sequentialRead(target.uri, size, runs)
        const cpu1 = cpuSeconds(target.pid)
        log(`${target.name}: ${writes} random 4 KiB writes…`)
        const w = await randomWrites(target.uri, writes, depth, size)
        const cpu2 = cpuSeconds(target.pid)
        await flush(target.uri)
        let upper = target.space()
        await target.stop()
        if (target.name !== 'nbdkit cow') upper = target.space() // after a clean close (WAL checkpointed)
        servers.push({ name: target.name, readBytesPerSecond: read, coldReadBytesPerSecond: cold, writeIops: w.iops, upperBytes: upper, writeTool: w.tool, cpuSeconds: { read: (cpu1 - cpu0) / runs, write: cpu2 - cpu1 } })
      } finally {
        await target.stop()
      }
    }
  } finally {
    if (!options.dir) rmSync(dir, { recursive: true, force: true })
  }
  const pc = servers.find((s) => s.name === 'pagecow')
  const kit = servers.find((s) => s.name === 'nbdkit cow')
  const ratio = (a?: number, b?: number) => (a !== undefined && b ? a / b : null)
  return {
    date: new Date().toISOString(),
    node: process.version,
    size,
    writes,
    depth,
    servers,
    ratios: {
      read: ratio(pc?.readBytesPerSecond, kit?.readBytesPerSecond),
      coldRead: ratio(pc?.coldReadBytesPerSecond, kit?.coldReadBytesPerSecond),
      write: ratio(pc?.writeIops, kit?.writeIops),
      space: ratio(pc?.upperBytes, kit?.upperBytes),
    },
  }
}

export function formatNbdBench(r: NbdBenchResult): string {
  const lines = [
    `NBD benchmark, ${r.date}, Node ${r.node}: ${r.size / MiB} MiB lower, ${r.writes} random 4 KiB writes at depth ${r.depth}`,
    '',
    '| server | seq read (MiB/s) | cold seq read (MiB/s) | random 4K writes (IOPS) | upper after writes (MiB) | server CPU s: one read / the writes |',
    '|---|---:|---:|---:|---:|---:|',
    ...r.servers.map(
      (s) =>
        `| ${s.name} | ${(s.readBytesPerSecond / MiB).toFixed(0)} | ${(s.coldReadBytesPerSecond / MiB).toFixed(0)} | ${s.writeIops.toFixed(0)} | ${(s.upperBytes / MiB).toFixed(1)} | ${s.cpuSeconds.read.toFixed(2)} / ${s.cpuSeconds.write.toFixed(2)} |`,
    ),
    '',
    `pagecow ÷ nbdkit cow: read ${fmt(r.ratios.read)} (target ≥ 0.70), cold read ${fmt(r.ratios.coldRead)}, writes ${fmt(r.ratios.write)} (target ≥ 0.70), upper space ${fmt(r.ratios.space)} (target ≤ 1.00)`,
  ]
  const qemu = r.servers.find((s) => s.name === 'qemu-nbd qcow2')
  const pc = r.servers.find((s) => s.name === 'pagecow')
  if (qemu && pc) {
    lines.push(
      `pagecow ÷ qemu-nbd qcow2: read ${fmt(pc.readBytesPerSecond / qemu.readBytesPerSecond)}, cold read ${fmt(pc.coldReadBytesPerSecond / qemu.coldReadBytesPerSecond)}, writes ${fmt(pc.writeIops / qemu.writeIops)}, upper space ${fmt(pc.upperBytes / qemu.upperBytes)}`,
    )
  }
  if (r.servers[0]) lines.push(`writes driven by: ${r.servers[0].writeTool}`)
  return lines.join('\n')
}

function fmt(x: number | null): string {
  return x === null || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(2)}×`
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string' },
      writes: { type: 'string' },
      depth: { type: 'string' },
      runs: { type: 'string' },
      dir: { type: 'string' },
      json: { type: 'boolean' },
    },
  })
  const result = await runNbdBench({
    ...(values.size ? { size: Number(values.size) * MiB } : {}),
    ...(values.writes ? { writes: Number(values.writes) } : {}),
    ...(values.depth ? { depth: Number(values.depth) } : {}),
    ...(values.runs ? { runs: Number(values.runs) } : {}),
    ...(values.dir ? { dir: values.dir } : {}),
  })
  console.log(values.json ? JSON.stringify(result, null, 2) : formatNbdBench(result))
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
