// NBD benchmark: pagecow's server against nbdkit's cow filter (4 KiB blocks) over the same
// lower, both running throughout, measured alternately (which goes first swaps every repetition)
// so that the machine's load falls on both alike. Standalone:
//   npx tsx tools/bench/nbd.ts [--size MiB] [--writes N] [--reps N] [--cases a,b] [--dir DIR] [--floor] [--env K=V …] [--json]
// (--floor: also a Node NBD server with no store, the floor of any server on one event loop;
// --env: extra environment for pagecow's server, for experiments).
// Cases: sequential reads of the unmodified image with nbdcopy (from the disk, then from the page
// cache, over 4 connections and over 1), then random 4 KiB writes with fio's nbd engine (N writes
// and a flush) at queue depth 1 and 16 over 1 and 4 connections. Ratios are pagecow ÷ nbdkit per
// repetition; the median is reported with the range.
import { randomFillSync } from 'node:crypto'
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { dropFromCache, randomWrites, sequentialRead, type ReadResult, type WriteResult } from './nbd-clients.js'
import { have, startFloor, startNbdkit, startPagecow, type Peer } from './nbd-peers.js'

const MiB = 1024 * 1024

interface ReadCase {
  id: string
  kind: 'read'
  label: string
  cold: boolean
  connections: number
}

interface WriteCase {
  id: string
  kind: 'write'
  label: string
  depth: number
  connections: number
}

type Case = ReadCase | WriteCase

export const NBD_CASES: Case[] = [
  { id: 'read-cold', kind: 'read', label: 'sequential read from the disk, nbdcopy, 4 connections', cold: true, connections: 4 },
  { id: 'read-hot', kind: 'read', label: 'sequential read from the page cache, nbdcopy, 4 connections', cold: false, connections: 4 },
  { id: 'read-hot-1c', kind: 'read', label: 'sequential read from the page cache, nbdcopy, 1 connection', cold: false, connections: 1 },
  { id: 'write-qd1', kind: 'write', label: 'random 4 KiB writes + flush, fio, QD1, 1 connection', depth: 1, connections: 1 },
  { id: 'write-qd16', kind: 'write', label: 'random 4 KiB writes + flush, fio, QD16, 1 connection', depth: 16, connections: 1 },
  { id: 'write-qd1-4c', kind: 'write', label: 'random 4 KiB writes + flush, fio, QD1 on each of 4 connections', depth: 1, connections: 4 },
  { id: 'write-qd16-4c', kind: 'write', label: 'random 4 KiB writes + flush, fio, QD16 on each of 4 connections', depth: 16, connections: 4 },
]

export interface NbdBenchOptions {
  /** Lower image size in bytes. Default 1 GiB. */
  size?: number
  /** Random 4 KiB writes per write measurement. Default 10 000. */
  writes?: number
  /** Repetitions of every case on each peer. Default 3. */
  reps?: number
  /** Case ids to run (default all). */
  cases?: string[]
  /** Working directory (lower, stores, sockets). Default: a new one under the temp dir, removed after. */
  dir?: string
  /** Use this lower (real data) instead of making one; `size` is then its size. */
  lower?: string
  /** Extra environment for pagecow's server (experiments). */
  pagecowEnv?: NodeJS.ProcessEnv
  /**
   * Also measure the floor of a Node NBD server (nbd-floor-serve.ts: no store, every request
   * answered at once): how much of the gap to nbdkit a Node server pays before doing any work.
   */
  floor?: boolean
  log?: (line: string) => void
}

/** One measurement of one case on one peer. */
export type Sample = ({ kind: 'read' } & ReadResult) | ({ kind: 'write' } & WriteResult)

export interface CaseResult {
  id: string
  label: string
  kind: 'read' | 'write'
  pagecow: Sample[]
  nbdkit: Sample[]
  /** With the floor option: the Node server that does no work. */
  floor?: Sample[]
  /** pagecow ÷ nbdkit throughput, per repetition (writes: counting the flush after them). */
  ratios: number[]
  /** Writes only: pagecow ÷ nbdkit for the writes alone, without the flush. */
  writeRatios: number[]
}

export interface NbdBenchResult {
  date: string
  node: string
  size: number
  writes: number
  reps: number
  cases: CaseResult[]
  /** Bytes of the overlays after every write case; pagecow's after a clean close. */
  space: { pagecow: number; nbdkit: number } | null
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** A sample's throughput: bytes per second or writes per second. */
export function throughput(s: Sample): number {
  return s.kind === 'read' ? s.bytesPerSecond : s.iops
}

function makeLower(path: string, size: number): void {
  const fd = openSync(path, 'wx')
  const block = Buffer.alloc(4 * MiB)
  try {
    for (let pos = 0; pos < size; pos += block.length) writeSync(fd, randomFillSync(block), 0, Math.min(block.length, size - pos), pos)
  } finally {
    closeSync(fd)
  }
}

export async function runNbdBench(options: NbdBenchOptions = {}): Promise<NbdBenchResult> {
  const size = options.lower ? statSync(options.lower).size : (options.size ?? 1024 * MiB)
  const writes = options.writes ?? 10_000
  const reps = options.reps ?? 3
  const log = options.log ?? ((line: string) => console.error(line))
  const cases = NBD_CASES.filter((c) => !options.cases || options.cases.includes(c.id))
  for (const tool of ['nbdcopy', 'fio', 'nbdkit']) {
    if (!have(tool)) throw new Error(`${tool} is needed (apt-get install libnbd-bin fio nbdkit)`)
  }
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'pagecow-nbd-bench-'))
  const lower = options.lower ?? join(dir, 'lower.img')
  const results: CaseResult[] = cases.map((c) => ({ id: c.id, label: c.label, kind: c.kind, pagecow: [], nbdkit: [], ratios: [], writeRatios: [] }))
  let space: NbdBenchResult['space'] = null
  const peers: Peer[] = []
  try {
    if (!options.lower) {
      log(`lower: ${size / MiB} MiB of random data in ${dir}`)
      makeLower(lower, size)
    }
    for (const name of ['pagecow', 'nbdkit']) mkdirSync(join(dir, name))
    const pagecow = await startPagecow(join(dir, 'pagecow'), lower, options.pagecowEnv)
    peers.push(pagecow)
    const nbdkit = await startNbdkit(join(dir, 'nbdkit'), lower)
    peers.push(nbdkit)
    let floor: Peer | undefined
    if (options.floor) {
      mkdirSync(join(dir, 'floor'))
      floor = await startFloor(join(dir, 'floor'), size)
      peers.push(floor)
      for (const r of results) r.floor = []
    }
    // Reads first, of the image nobody has written yet; then the writes. Each phase starts with an
    // untimed run on each peer: pagecow's JavaScript is compiled as it runs, and a server that
    // runs for days has long since paid for that.
    for (const kind of ['read', 'write'] as const) {
      if (!cases.some((c) => c.kind === kind)) continue
      for (const peer of peers) {
        if (kind === 'read') await sequentialRead(peer, size, 4)
        else await randomWrites(peer, { size, writes: Math.min(writes, 5000), depth: 16, connections: 1, seed: 1 })
      }
      log(`${kind}s: warmed up`)
      for (let rep = 0; rep < reps; rep++) {
        const order = rep % 2 === 0 ? peers : [...peers].reverse()
        for (const [i, c] of cases.entries()) {
          if (c.kind !== kind) continue
          const result = results[i] as CaseResult
          const got = new Map<Peer, Sample>()
          for (const peer of order) {
            if (c.kind === 'read') {
              if (c.cold) await dropFromCache(lower)
              got.set(peer, { kind: 'read', ...(await sequentialRead(peer, size, c.connections)) })
            } else {
              const seed = 1000 * (rep + 1) + i // the same offsets on both peers
              got.set(peer, { kind: 'write', ...(await randomWrites(peer, { size, writes, depth: c.depth, connections: c.connections, seed })) })
            }
          }
          const pc = got.get(pagecow) as Sample
          const kit = got.get(nbdkit) as Sample
          result.pagecow.push(pc)
          result.nbdkit.push(kit)
          result.ratios.push(throughput(pc) / throughput(kit))
          if (pc.kind === 'write' && kit.kind === 'write') result.writeRatios.push(pc.iopsWrites / kit.iopsWrites)
          if (floor) result.floor?.push(got.get(floor) as Sample)
          log(`rep ${rep + 1}/${reps} ${c.id}: ${describe(pc)} vs ${describe(kit)}, ratio ${(throughput(pc) / throughput(kit)).toFixed(2)}${floor ? `; node floor ${describe(got.get(floor) as Sample)}` : ''}`)
        }
      }
    }
    if (cases.some((c) => c.kind === 'write')) {
      const kitSpace = nbdkit.space()
      await pagecow.stop() // a clean close checkpoints the WAL
      space = { pagecow: pagecow.space(), nbdkit: kitSpace }
    }
  } finally {
    for (const peer of peers) await peer.stop()
    if (!options.dir) rmSync(dir, { recursive: true, force: true })
  }
  return { date: new Date().toISOString(), node: process.version, size, writes, reps, cases: results, space }
}

function describe(s: Sample): string {
  if (s.kind === 'read') return `${(s.bytesPerSecond / MiB).toFixed(0)} MiB/s (${s.cpuPerGiB.toFixed(2)} CPU s/GiB)`
  return `${s.iops.toFixed(0)} IOPS with the flush (${s.iopsWrites.toFixed(0)} without; flush ${s.flushMs.toFixed(0)} ms) p50 ${s.p50.toFixed(0)} µs p99 ${s.p99.toFixed(0)} µs (${s.cpuPerOp.toFixed(0)} CPU µs/op)`
}

/** Whether a case meets its issue-11 target (throughput ≥ 1.0× nbdkit; p99 ≤ 10× p50). */
export function targetsOf(c: CaseResult): { ratio: boolean; tail: boolean | null } {
  const ratio = median(c.ratios) >= 1
  if (c.kind === 'read') return { ratio, tail: null }
  const tails = c.pagecow.map((s) => (s.kind === 'write' ? s.p99 / s.p50 : Number.NaN))
  return { ratio, tail: median(tails) <= 10 }
}

export function formatNbdBench(r: NbdBenchResult): string {
  const range = (xs: number[]) => `[${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]`
  const lines = [
    `NBD benchmark, ${r.date}, Node ${r.node}: ${r.size / MiB} MiB lower of random data, ${r.writes} writes per write case, ${r.reps} repetitions (medians; ratio range in brackets)`,
    '',
    '| case | pagecow | nbdkit cow (4 KiB blocks) | pagecow ÷ nbdkit | target ≥ 1.0× | server CPU pagecow / nbdkit |',
    '|---|---:|---:|---:|---|---:|',
  ]
  const writes: CaseResult[] = []
  for (const c of r.cases) {
    const targets = targetsOf(c)
    if (c.kind === 'read') {
      const rate = (s: Sample[]) => `${(median(s.map(throughput)) / MiB).toFixed(0)} MiB/s`
      const cpu = (s: Sample[]) => median(s.map((x) => (x.kind === 'read' ? x.cpuPerGiB : 0))).toFixed(2)
      lines.push(`| ${c.label} | ${rate(c.pagecow)} | ${rate(c.nbdkit)} | ${median(c.ratios).toFixed(2)}× ${range(c.ratios)} | ${targets.ratio ? 'met' : 'missed'} | ${cpu(c.pagecow)} / ${cpu(c.nbdkit)} s per GiB |`)
    } else {
      writes.push(c)
      const show = (s: Sample[]) => `${median(writeSamples(s).map((x) => x.iops)).toFixed(0)} IOPS`
      const cpu = (s: Sample[]) => median(writeSamples(s).map((x) => x.cpuPerOp)).toFixed(0)
      lines.push(`| ${c.label} | ${show(c.pagecow)} | ${show(c.nbdkit)} | ${median(c.ratios).toFixed(2)}× ${range(c.ratios)} | ${targets.ratio ? 'met' : 'missed'} | ${cpu(c.pagecow)} / ${cpu(c.nbdkit)} µs per write |`)
    }
  }
  if (writes.length > 0) {
    lines.push(
      '',
      'The writes apart from the flush, and the latency of each write (fio clat, µs; target: p99 ≤ 10× p50):',
      '',
      '| case | pagecow writes alone | nbdkit writes alone | ratio | pagecow flush | nbdkit flush | pagecow p50 / p99 / p99.9 | nbdkit p50 / p99 / p99.9 | pagecow p99 ÷ p50 |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    )
    for (const c of writes) {
      const pc = writeSamples(c.pagecow)
      const kit = writeSamples(c.nbdkit)
      const lat = (s: WriteSample[]) => `${median(s.map((x) => x.p50)).toFixed(0)} / ${median(s.map((x) => x.p99)).toFixed(0)} / ${median(s.map((x) => x.p999)).toFixed(0)}`
      const tail = median(pc.map((x) => x.p99 / x.p50))
      lines.push(
        `| ${c.label} | ${median(pc.map((x) => x.iopsWrites)).toFixed(0)} IOPS | ${median(kit.map((x) => x.iopsWrites)).toFixed(0)} IOPS | ${median(c.writeRatios).toFixed(2)}× ${range(c.writeRatios)} | ${median(pc.map((x) => x.flushMs)).toFixed(0)} ms | ${median(kit.map((x) => x.flushMs)).toFixed(1)} ms | ${lat(pc)} | ${lat(kit)} | ${tail.toFixed(1)} ${tail <= 10 ? 'met' : 'missed'} |`,
      )
    }
  }
  if (r.cases.some((c) => c.floor)) {
    lines.push('', '| case | node floor (no store) | floor ÷ nbdkit | server CPU of the floor |', '|---|---:|---:|---:|')
    for (const c of r.cases) {
      const floor = c.floor ?? []
      if (floor.length === 0) continue
      const ratio = median(floor.map((s, i) => (s.kind === 'write' ? s.iopsWrites / (c.nbdkit[i] as WriteSample).iopsWrites : throughput(s) / throughput(c.nbdkit[i] as Sample))))
      const value = median(floor.map((s) => (s.kind === 'write' ? s.iopsWrites : throughput(s))))
      const cpu = median(floor.map((s) => (s.kind === 'read' ? s.cpuPerGiB : s.cpuPerOp)))
      const shown = c.kind === 'read' ? `${(value / MiB).toFixed(0)} MiB/s` : `${value.toFixed(0)} IOPS (writes alone)`
      lines.push(`| ${c.label} | ${shown} | ${ratio.toFixed(2)}× | ${c.kind === 'read' ? `${cpu.toFixed(2)} s per GiB` : `${cpu.toFixed(0)} µs per write`} |`)
    }
  }
  if (r.space) {
    lines.push('', `Upper after all the writes: pagecow ${(r.space.pagecow / MiB).toFixed(1)} MiB, nbdkit ${(r.space.nbdkit / MiB).toFixed(1)} MiB (${(r.space.pagecow / r.space.nbdkit).toFixed(2)}×).`)
  }
  return lines.join('\n')
}

type WriteSample = Extract<Sample, { kind: 'write' }>

function writeSamples(s: Sample[]): WriteSample[] {
  return s.filter((x): x is WriteSample => x.kind === 'write')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string' },
      writes: { type: 'string' },
      reps: { type: 'string' },
      cases: { type: 'string' },
      dir: { type: 'string' },
      env: { type: 'string', multiple: true },
      floor: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  })
  const env = Object.fromEntries((values.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
  const result = await runNbdBench({
    ...(values.size ? { size: Number(values.size) * MiB } : {}),
    ...(values.writes ? { writes: Number(values.writes) } : {}),
    ...(values.reps ? { reps: Number(values.reps) } : {}),
    ...(values.cases ? { cases: values.cases.split(',') } : {}),
    ...(values.dir ? { dir: values.dir } : {}),
    pagecowEnv: env,
    floor: values.floor ?? false,
  })
  console.log(values.json ? JSON.stringify(result, null, 2) : formatNbdBench(result))
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
