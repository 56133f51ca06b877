// The NBD clients the benchmark drives: nbdcopy (sequential read of the whole export) and fio's
// nbd engine (random 4 KiB writes, then a flush), each against one peer, with the server's CPU time.
import { spawn } from 'node:child_process'
import { closeSync, fsyncSync, openSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { timeFlush } from './nbd-flush-client.js'
import { cpuSeconds, type Peer } from './nbd-peers.js'

export interface ReadResult {
  bytesPerSecond: number
  /** Server CPU seconds (all threads) per GiB read. */
  cpuPerGiB: number
}

export interface WriteResult {
  /** Writes per second, counting the flush after them (the "10k writes + flush"). */
  iops: number
  /** Writes per second, the writes alone. */
  iopsWrites: number
  /** How long the flush after the writes took, milliseconds. */
  flushMs: number
  /** Completion latency percentiles (fio's clat), microseconds. */
  p50: number
  p99: number
  p999: number
  /** Server CPU microseconds per write, the writes alone (the flush's is in flushCpuMs). */
  cpuPerOp: number
  flushCpuMs: number
}

export function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`))))
  })
}

/** `nbdcopy URI null:` over `connections` connections (nbdcopy's defaults otherwise: 64 requests of 256 KiB each). */
export async function sequentialRead(peer: Peer, size: number, connections: number): Promise<ReadResult> {
  const cpu0 = cpuSeconds(peer.pid)
  const start = performance.now()
  await run('nbdcopy', [`--connections=${connections}`, peer.uri, 'null:'])
  const seconds = (performance.now() - start) / 1000
  return { bytesPerSecond: size / seconds, cpuPerGiB: ((cpuSeconds(peer.pid) - cpu0) / size) * 2 ** 30 }
}

/**
 * fio's nbd engine: `writes` random 4 KiB writes at `depth` in flight on each of `connections`
 * connections (fio jobs, each over its own slice of the export), then one FLUSH, timed apart (on
 * a multi-conn export one flush covers every connection's writes). The same seed writes the same
 * offsets on every peer.
 */
export async function randomWrites(peer: Peer, o: { size: number; writes: number; depth: number; connections: number; seed: number }): Promise<WriteResult> {
  const slice = Math.floor(o.size / o.connections / 4096) * 4096
  const cpu0 = cpuSeconds(peer.pid)
  const { stdout } = await run('fio', [
    '--name=randwrite',
    '--ioengine=nbd',
    `--uri=${peer.uri}`,
    '--rw=randwrite',
    '--bs=4k',
    `--iodepth=${o.depth}`,
    `--numjobs=${o.connections}`,
    '--group_reporting',
    `--size=${slice}`,
    `--offset_increment=${slice}`,
    `--number_ios=${Math.ceil(o.writes / o.connections)}`,
    '--randrepeat=1',
    `--randseed=${o.seed}`,
    '--output-format=json',
  ])
  const cpu1 = cpuSeconds(peer.pid)
  const flushMs = await timeFlush(peer.socket)
  const flushCpu = cpuSeconds(peer.pid) - cpu1
  const cpu = cpu1 - cpu0
  const json = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<{ write: { iops: number; total_ios: number; clat_ns: { percentile: Record<string, number> } } }> }
  const w = json.jobs[0]?.write
  if (!w) throw new Error('fio printed no write results')
  const pct = (p: string) => (w.clat_ns.percentile[p] ?? Number.NaN) / 1000
  const seconds = w.total_ios / w.iops
  return {
    iops: w.total_ios / (seconds + flushMs / 1000),
    iopsWrites: w.iops,
    flushMs,
    p50: pct('50.000000'),
    p99: pct('99.000000'),
    p999: pct('99.900000'),
    cpuPerOp: (cpu / w.total_ios) * 1e6,
    flushCpuMs: flushCpu * 1000,
  }
}

/**
 * Drop `path`'s pages from the page cache (GNU dd's nocache: posix_fadvise DONTNEED on the whole
 * file), so that the next read of it comes from the disk. Only clean pages can be dropped: it is
 * synced first.
 */
export async function dropFromCache(path: string): Promise<void> {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  await run('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'])
}
