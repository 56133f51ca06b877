// Case `fuse-read` (issue 11): the first pass of a sequential read through an image mount, the
// lower image hot in the page cache, with dd, against kernel overlayfs over the same image. Each
// repetition reads the lower once (hot), then mounts each side afresh (nothing of the image in the
// mount's own page cache) and runs `dd if=MNT/IMAGE of=/dev/null bs=1M`; the sides take turns.
// PAGECOW_BENCH_MOUNT_ARGS (space-separated) adds options to `pagecow mount`, for a diagnosis.
import { basename, dirname, join } from 'node:path'
import * as fs from 'node:fs'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import * as fmt from './format.js'
import { cpuSeconds, CLI, loadText, overlayPeer, pagecowPeer, removeMountPoints, run, staleDist } from './fuse-peers.js'
import { pairRatios, range, type Row } from './row.js'
import { scratchDir } from './scratch.js'
import { median } from './timing.js'

const TARGET = 0.5
const READ_BLOCK = 1024 * 1024

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
    const peers = [pagecowPeer('pagecow-image', store, extra), overlayPeer('overlayfs-image', dirname(lower), scratch)]
    const ms: Record<string, number[]> = { pagecow: [], overlayfs: [] }
    const serverCpu: number[] = []
    const loads: string[] = [loadText()]
    const reps = Math.max(3, ctx.config.reps)
    try {
      for (let i = 0; i < reps; i++) {
        readAll(lower) // hot: the lower is in the page cache before either side reads it
        for (const peer of i % 2 === 0 ? peers : [...peers].reverse()) {
          await peer.mount()
          const cpu0 = peer.pid === null ? 0 : cpuSeconds(peer.pid)
          const took = await dd(join(peer.root, basename(lower)), size)
          if (peer.pid !== null) serverCpu.push(cpuSeconds(peer.pid) - cpu0)
          await peer.unmount()
          ms[peer === peers[0] ? 'pagecow' : 'overlayfs']!.push(took)
        }
        ctx.log(`first-pass read ${i + 1}/${reps}: pagecow ${fmt.rate(size, ms.pagecow!.at(-1)!)}, overlayfs ${fmt.rate(size, ms.overlayfs!.at(-1)!)}`)
      }
    } finally {
      for (const p of peers) await p.unmount().catch(() => {})
      removeMountPoints((l) => ctx.log(l))
    }
    loads.push(loadText())
    const ratios = pairRatios(ms.overlayfs!, ms.pagecow!)
    const ratio = median(ratios)
    const cpuPerGiB = median(serverCpu) / (size / 2 ** 30)
    return [
      {
        case: 'fuse-read',
        label: `first-pass read of a ${fmt.bytes(size)} image (lower hot, mount fresh), dd bs=1M, ${reps} reps; pagecow server ${cpuPerGiB.toFixed(2)} CPU s/GiB${extra.length ? `; mount ${extra.join(' ')}` : ''}; load ${loads.join(' → ')}`,
        pagecow: fmt.rate(size, median(ms.pagecow!)),
        baseline: `${fmt.rate(size, median(ms.overlayfs!))} (kernel overlayfs)`,
        ratio,
        ratioKind: 'throughput',
        ratioRange: range(ratios),
        target: `≥ ${TARGET}×`,
        met: ratio >= TARGET,
        details: { bytes: size, ms, serverCpu, loads, mountArgs: extra },
      },
    ]
  },
}

/** dd's own figure for copying `path` to /dev/null in 1 MiB blocks, in ms; checks the size. */
async function dd(path: string, size: number): Promise<number> {
  const { stderr } = await run('dd', [`if=${path}`, 'of=/dev/null', `bs=${READ_BLOCK}`])
  const m = /^(\d+) bytes .* copied, ([\d.]+) s/m.exec(stderr)
  if (!m) throw new Error(`dd printed no summary: ${stderr.trim()}`)
  if (Number(m[1]) !== size) throw new Error(`dd read ${m[1]} bytes of ${path}, expected ${size}`)
  return Number(m[2]) * 1000
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
