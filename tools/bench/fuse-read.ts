// Case `fuse-read` (issue 11): the first pass of a sequential read through an image mount, the
// lower image hot in the page cache, with dd, against kernel overlayfs over the same image (the
// target), and fuse-overlayfs over it (what a C FUSE server gets: the same kernel path as ours).
// Each repetition reads the lower once (hot), then mounts each side afresh (nothing of the image in
// the mount's own page cache) and runs `dd if=MNT/IMAGE of=/dev/null bs=1M`; the sides take turns.
// Besides wall time: the CPU the server and dd's own system calls took.
// PAGECOW_BENCH_MOUNT_ARGS (space-separated) adds options to `pagecow mount`, for a diagnosis.
import { basename, dirname, join } from 'node:path'
import * as fs from 'node:fs'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import * as fmt from './format.js'
import { cpuSeconds, CLI, fuseOverlayPeer, have, loadText, overlayPeer, pagecowPeer, removeMountPoints, run, staleDist, type Peer } from './fuse-peers.js'
import { pairRatios, range, type Row } from './row.js'
import { scratchDir } from './scratch.js'
import { median } from './timing.js'

const TARGET = 0.5
const READ_BLOCK = 1024 * 1024
const GNU_TIME = '/usr/bin/time'

export const fuseRead: BenchCase = {
  id: 'fuse-read',
  group: 'fuse',
  number: 11,
  title: 'FUSE image mount: first-pass sequential read (dd bs=1M) of a hot lower image, against kernel overlayfs over the same image',
  async run(ctx: BenchContext): Promise<Row[]> {
    const stale = staleDist()
    if (stale) ctx.log(`warning: ${stale} is newer than the build measured (${CLI}); run \`npm run build\``)
    const lower = ctx.dataLower()
    const size = fs.statSync(lower).size
    const scratch = scratchDir('fuse-read')
    const store = join(scratch, 'store')
    await run(process.execPath, [CLI, 'create', store, '--lower', lower])
    const extra = process.env['PAGECOW_BENCH_MOUNT_ARGS']?.split(' ').filter(Boolean) ?? []
    const peers: Peer[] = [pagecowPeer('pagecow', store, extra), overlayPeer('overlayfs', dirname(lower), scratch)]
    if (have('fuse-overlayfs')) peers.push(fuseOverlayPeer('fuse-overlayfs', dirname(lower), scratch))
    const ms = new Map<string, number[]>(peers.map((p) => [p.name, []]))
    const ddCpu = new Map<string, number[]>(peers.map((p) => [p.name, []]))
    const serverCpu = new Map<string, number[]>(peers.map((p) => [p.name, []]))
    const loads: string[] = [loadText()]
    const reps = Math.max(3, ctx.config.reps)
    try {
      for (let i = 0; i < reps; i++) {
        readAll(lower) // hot: the lower is in the page cache before any side reads it
        for (const peer of peers.map((_, k) => peers[(k + i) % peers.length]!)) {
          await peer.mount()
          const cpu0 = peer.pid === null ? 0 : cpuSeconds(peer.pid)
          const took = await dd(join(peer.root, basename(lower)), size)
          if (peer.pid !== null) serverCpu.get(peer.name)!.push(cpuSeconds(peer.pid) - cpu0)
          await peer.unmount()
          ms.get(peer.name)!.push(took.ms)
          if (took.systemSeconds !== null) ddCpu.get(peer.name)!.push(took.systemSeconds)
        }
        ctx.log(`first-pass read ${i + 1}/${reps}: ${peers.map((p) => `${p.name} ${fmt.rate(size, ms.get(p.name)!.at(-1)!)}`).join(', ')}`)
      }
    } finally {
      for (const p of peers) await p.unmount().catch(() => {})
      removeMountPoints((l) => ctx.log(l))
    }
    loads.push(loadText())
    const perGiB = (xs: number[]) => (xs.length ? `${(median(xs) / (size / 2 ** 30)).toFixed(2)} s` : 'n/a')
    const cpu = peers.map((p) => `${p.name}: dd system ${perGiB(ddCpu.get(p.name)!)}${p.name === 'overlayfs' ? '' : `, server ${perGiB(serverCpu.get(p.name)!)}`}`).join('; ')
    const rows: Row[] = []
    for (const base of peers.slice(1)) {
      const ratios = pairRatios(ms.get(base.name)!, ms.get('pagecow')!)
      const ratio = median(ratios)
      const isTarget = base.name === 'overlayfs'
      rows.push({
        case: 'fuse-read',
        label: `first-pass read of a ${fmt.bytes(size)} image (lower hot, mount fresh), dd bs=1M, ${reps} reps, against ${base.name}${isTarget ? `; CPU per GiB: ${cpu}` : ''}${extra.length ? `; mount ${extra.join(' ')}` : ''}; load ${loads.join(' → ')}`,
        pagecow: fmt.rate(size, median(ms.get('pagecow')!)),
        baseline: `${fmt.rate(size, median(ms.get(base.name)!))} (${base.name === 'overlayfs' ? 'kernel overlayfs' : base.name})`,
        ratio,
        ratioKind: 'throughput',
        ratioRange: range(ratios),
        target: isTarget ? `≥ ${TARGET}×` : null,
        met: isTarget ? ratio >= TARGET : null,
        details: { bytes: size, ms: Object.fromEntries(ms), ddSystemSeconds: Object.fromEntries(ddCpu), serverCpuSeconds: Object.fromEntries(serverCpu), loads, mountArgs: extra },
      })
    }
    return rows
  },
}

/**
 * dd's own figure for copying `path` to /dev/null in 1 MiB blocks (ms), and the system CPU seconds
 * its calls took (GNU time, if installed); checks the size.
 */
async function dd(path: string, size: number): Promise<{ ms: number; systemSeconds: number | null }> {
  const args = [`if=${path}`, 'of=/dev/null', `bs=${READ_BLOCK}`]
  const timed = fs.existsSync(GNU_TIME)
  const { stderr } = timed ? await run(GNU_TIME, ['-f', 'system %S', 'dd', ...args]) : await run('dd', args)
  const m = /^(\d+) bytes .* copied, ([\d.]+) s/m.exec(stderr)
  if (!m) throw new Error(`dd printed no summary: ${stderr.trim()}`)
  if (Number(m[1]) !== size) throw new Error(`dd read ${m[1]} bytes of ${path}, expected ${size}`)
  const sys = /^system ([\d.]+)$/m.exec(stderr)
  return { ms: Number(m[2]) * 1000, systemSeconds: sys ? Number(sys[1]) : null }
}

function readAll(path: string): void {
  const buffer = Buffer.allocUnsafe(READ_BLOCK)
  const fd = fs.openSync(path, 'r')
  try {
    while (fs.readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    fs.closeSync(fd)
  }
}
