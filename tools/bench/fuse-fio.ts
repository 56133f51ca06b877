// Case `fuse-fio` (issue 11): random 4 KiB writes through a tree mount with fio (psync engine,
// one write at a time), against fuse-overlayfs over the same lower directory. The issue's "psync +
// fsync" read two ways, both held to its target: an fsync after every write (`--fsync=1`) and
// writes followed by one fsync (`--end_fsync=1`). Each repetition writes a fresh 64 MiB lower file of real data in every view
// (the first write, untimed, makes fuse-overlayfs copy the file up); the views take turns.
// pagecow runs as mounted by default and, if the CLI has it, with --writeback-cache.
// PAGECOW_BENCH_MOUNT_ARGS (space-separated) adds options to every `pagecow mount`, for a diagnosis.
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import * as fmt from './format.js'
import { CLI, cpuSeconds, fuseOverlayPeer, have, loadText, pagecowPeer, removeMountPoints, run, staleDist, type Peer } from './fuse-peers.js'
import { pairRatios, range, type Row } from './row.js'
import { scratchDir } from './scratch.js'
import { median } from './timing.js'

const MiB = 1024 * 1024
const TARGET = 1.0

interface Workload {
  id: string
  what: string
  fioArgs: string[]
  ios: number
  target: number | null
}

interface FioResult {
  iops: number
  writeLatUs: number
  syncLatUs: number
}

export const fuseFio: BenchCase = {
  id: 'fuse-fio',
  group: 'fuse',
  number: 12,
  title: 'FUSE tree mount: fio random 4 KiB writes (psync), fsync after each and at the end, against fuse-overlayfs',
  async run(ctx: BenchContext): Promise<Row[]> {
    for (const tool of ['fio', 'fuse-overlayfs', 'fusermount3']) if (!have(tool)) throw new Error(`the fuse-fio case needs ${tool} (apt install fio fuse-overlayfs fuse3)`)
    const stale = staleDist()
    if (stale) ctx.log(`warning: ${stale} is newer than the build measured (${CLI}); run \`npm run build\``)
    const quick = ctx.config.quick
    const fileBytes = (quick ? 16 : 64) * MiB
    const reps = ctx.config.reps
    const workloads: Workload[] = [
      { id: 'fsync', what: 'an fsync after every write (--fsync=1)', fioArgs: ['--fsync=1'], ios: quick ? 500 : 2000, target: TARGET },
      { id: 'end', what: 'writes, then one fsync (--end_fsync=1)', fioArgs: ['--end_fsync=1'], ios: quick ? 2048 : 8192, target: TARGET },
    ]
    const scratch = scratchDir('fuse-fio')
    const lower = join(scratch, 'lower')
    fs.mkdirSync(lower)
    const block = Buffer.alloc(4 * MiB)
    for (const w of workloads) {
      for (let r = 0; r < reps; r++) {
        const fd = fs.openSync(join(lower, fileName(w, r)), 'w')
        for (let at = 0; at < fileBytes; at += block.length) fs.writeSync(fd, randomFillSync(block), 0, block.length, at)
        fs.closeSync(fd)
      }
    }
    const extra = process.env['PAGECOW_BENCH_MOUNT_ARGS']?.split(' ').filter(Boolean) ?? []
    const variants: Array<[string, string[]]> = [['pagecow', extra]]
    const { stdout: help } = await run(process.execPath, [CLI, 'mount', '--help'])
    if (help.includes('--writeback-cache')) variants.push(['pagecow-wb', [...extra, '--writeback-cache']])
    const peers: Peer[] = []
    for (const [name, args] of variants) {
      // A store each: every view writes its own copy of each lower file.
      const store = join(scratch, `store-${name}`)
      await run(process.execPath, [CLI, 'create', store, '--lower', lower])
      peers.push(pagecowPeer(name, store, args))
    }
    peers.push(fuseOverlayPeer('fuse-overlayfs', lower, scratch))
    const results = new Map<string, Map<string, FioResult[]>>(workloads.map((w) => [w.id, new Map(peers.map((p) => [p.name, []]))]))
    const cpu = new Map<string, number[]>(workloads.flatMap((w) => peers.map((p): [string, number[]] => [`${w.id} ${p.name}`, []])))
    const loads = [loadText()]
    try {
      for (let r = 0; r < reps; r++) {
        for (const w of workloads) {
          const order = peers.map((_, i) => peers[(i + r) % peers.length]!)
          for (const peer of order) {
            await peer.mount()
            const path = join(peer.root, fileName(w, r))
            firstWrite(path)
            await run('sync', [])
            const cpu0 = peer.pid === null ? NaN : cpuSeconds(peer.pid)
            const got = await fio(path, fileBytes, w, r)
            cpu.get(`${w.id} ${peer.name}`)!.push(((peer.pid === null ? NaN : cpuSeconds(peer.pid)) - cpu0) / w.ios)
            results.get(w.id)!.get(peer.name)!.push(got)
            await peer.unmount()
            await run('sync', [])
          }
          ctx.log(`fio ${w.id} ${r + 1}/${reps}: ${peers.map((p) => `${p.name} ${results.get(w.id)!.get(p.name)!.at(-1)!.iops.toFixed(0)} IOPS`).join(', ')}`)
        }
      }
    } finally {
      for (const p of peers) await p.unmount().catch(() => {})
      removeMountPoints((l) => ctx.log(l))
    }
    loads.push(loadText())
    const rows: Row[] = []
    const overlay = peers.at(-1)!.name
    for (const w of workloads) {
      const base = results.get(w.id)!.get(overlay)!
      for (const p of peers.slice(0, -1)) {
        const mine = results.get(w.id)!.get(p.name)!
        const ratios = pairRatios(
          mine.map((x) => x.iops),
          base.map((x) => x.iops),
        )
        const ratio = median(ratios)
        const lat = (xs: FioResult[]) => `write ${median(xs.map((x) => x.writeLatUs)).toFixed(0)} µs + fsync ${median(xs.map((x) => x.syncLatUs)).toFixed(0)} µs`
        const isMain = p === peers[0]
        rows.push({
          case: 'fuse-fio',
          label: `fio randwrite bs=4k psync, ${w.what}, ${fmt.count(w.ios)} writes into a ${fmt.bytes(fileBytes)} lower file, ${reps} reps, ${p.name}${p === peers[0] && extra.length ? ` (mount ${extra.join(' ')})` : ''}; mean latencies ${lat(mine)} vs ${lat(base)}; server CPU ${(median(cpu.get(`${w.id} ${p.name}`)!) * 1e6).toFixed(0)} µs/write; load ${loads.join(' → ')}`,
          pagecow: `${median(mine.map((x) => x.iops)).toFixed(0)} IOPS`,
          baseline: `${median(base.map((x) => x.iops)).toFixed(0)} IOPS (fuse-overlayfs)`,
          ratio,
          ratioKind: 'throughput',
          ratioRange: range(ratios),
          target: isMain && w.target !== null ? `≥ ${w.target}×` : null,
          met: isMain && w.target !== null ? ratio >= w.target : null,
          details: { workload: w.id, system: p.name, results: mine, baseline: base, cpuPerWrite: cpu.get(`${w.id} ${p.name}`), loads },
        })
      }
    }
    return rows
  },
}

function fileName(w: Workload, rep: number): string {
  return `${w.id}-${rep}.bin`
}

/** One byte at offset 0, untimed: fuse-overlayfs copies the whole file up here. */
function firstWrite(path: string): void {
  const fd = fs.openSync(path, fs.constants.O_WRONLY)
  try {
    fs.writeSync(fd, Buffer.of(1), 0, 1, 0)
  } finally {
    fs.closeSync(fd)
  }
}

async function fio(path: string, size: number, w: Workload, rep: number): Promise<FioResult> {
  const args = [
    '--name=pagecow-bench',
    `--filename=${path}`,
    '--ioengine=psync',
    '--rw=randwrite',
    '--bs=4k',
    `--size=${size}`,
    `--number_ios=${w.ios}`,
    `--randseed=${20261121 + rep}`,
    '--output-format=json',
    ...w.fioArgs,
  ]
  const { stdout } = await run('fio', args)
  const job = (JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<{ write: { iops: number; clat_ns: { mean: number } }; sync?: { lat_ns?: { mean: number } } }> }).jobs[0]!
  return { iops: job.write.iops, writeLatUs: job.write.clat_ns.mean / 1000, syncLatUs: (job.sync?.lat_ns?.mean ?? 0) / 1000 }
}
