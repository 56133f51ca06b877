// Case 7: random 4 KiB writes into a qcow2 overlay of the same lower with qemu-io, against
// pagecow doing the same writes. qemu-io reads a generated command script on stdin (one process
// for all the writes); its start-up, measured with an empty script, is subtracted.
// `qemu-img bench` is not used: it only does sequential or fixed-step patterns, not random ones.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import { duration } from './format.js'
import { randomPages } from './random.js'
import { throughputRow, type Row } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { median, msSince, now, paired } from './timing.js'

/** qemu-io's default write pattern; pagecow writes the same bytes. */
const PATTERN = 0xcd
const EMPTY_RUNS = 5

interface Variant {
  key: string
  label: string
  /** qemu-io -t (cache mode); qemu's default is writeback. */
  cache?: string
  /** qcow2 cluster size; qemu's default is 64 KiB. */
  clusterSize?: number
  /** All writes queued with aio_write, then aio_flush; otherwise one `write` at a time. */
  aio: boolean
}

const VARIANTS: Variant[] = [
  { key: 'write', label: 'qemu-io `write` one at a time, qcow2 defaults (64 KiB clusters, cache=writeback)', aio: false },
  { key: 'aio', label: 'qemu-io `aio_write` all queued, then `aio_flush`', aio: true },
  { key: 'unsafe', label: 'qemu-io `write`, -t unsafe (qemu skips its flushes)', cache: 'unsafe', aio: false },
  { key: 'cluster4k', label: 'qemu-io `write`, cluster_size=4 KiB', clusterSize: 4096, aio: false },
]

export const qemuWrites: BenchCase = {
  id: 'qemu',
  group: 'qemu',
  number: 7,
  title: 'Random 4 KiB writes: qemu-io on a qcow2 overlay vs pagecow (writes + one final flush each)',
  async run(ctx) {
    const { lowerBytes, pageSize, qemuWrites: n, qemuReps } = ctx.config
    if (!haveQemu()) {
      return [{
        case: 'qemu', label: 'skipped: qemu-io / qemu-img not installed (Debian: qemu-utils)', pagecow: '', baseline: '',
        ratio: null, ratioKind: null, ratioRange: null, target: null, met: null, details: {},
      }]
    }
    const offsets = Array.from(randomPages(n, lowerBytes / pageSize, 7), (p) => p * pageSize)
    const data = Buffer.alloc(pageSize, PATTERN)
    const rows: Row[] = []
    // pagecow: a fresh store, the writes, then one flush (qemu-io flushes when it closes the image).
    const viaPagecow = async () => {
      const scratch = scratchDir('qemu-pc')
      const store = await ImageStore.create(join(scratch, 'store'), { lower: ctx.dataLower(), autoFlushMs: 0 })
      try {
        const start = now()
        for (const off of offsets) await store.write(off, data)
        await store.flush()
        return msSince(start)
      } finally {
        await store.close()
        removeScratch(scratch)
      }
    }
    await viaPagecow() // warm-up
    for (const v of VARIANTS) {
      const script = offsets.map((off) => `${v.aio ? 'aio_write' : 'write'} -q ${off} ${pageSize}\n`).join('') + (v.aio ? 'aio_flush\n' : '')
      const startup = median(Array.from({ length: EMPTY_RUNS }, () => runQemu(ctx, v, '', undefined).ms))
      const totals: number[] = []
      let verified = false
      const viaQemu = async () => {
        const run = runQemu(ctx, v, script, verified ? undefined : offsets[0])
        verified = true
        totals.push(run.ms)
        return run.ms - startup
      }
      const got = await paired(qemuReps, viaPagecow, viaQemu)
      rows.push(
        throughputRow({
          case: 'qemu',
          label: `${n} writes + final flush; ${v.label} (qemu-io total ${duration(median(totals))}, start-up ${duration(startup)} subtracted)`,
          work: n,
          unit: 'ops',
          pagecowMs: got.a,
          baselineMs: got.b,
          baselineName: `qemu-io, ${v.key}`,
          details: { variant: v, startupMs: startup, qemuTotalMs: totals },
        }),
      )
    }
    return rows
  },
}

/** One qemu-io process on a fresh overlay; with `check`, read one written page back afterwards. */
function runQemu(ctx: BenchContext, v: Variant, script: string, check: number | undefined): { ms: number } {
  const scratch = scratchDir('qemu')
  const top = join(scratch, 'top.qcow2')
  try {
    const options = v.clusterSize ? ['-o', `cluster_size=${v.clusterSize}`] : []
    run('qemu-img', ['create', '-q', '-f', 'qcow2', ...options, '-b', ctx.dataLower(), '-F', 'raw', top])
    const args = [...(v.cache ? ['-t', v.cache] : []), '-f', 'qcow2', top]
    const start = now()
    run('qemu-io', args, script)
    const ms = msSince(start)
    if (check !== undefined) {
      const out = run('qemu-io', ['-r', '-f', 'qcow2', top, '-c', `read -q -P ${PATTERN} ${check} ${ctx.config.pageSize}`])
      if (/fail|error/i.test(out)) throw new Error(`qemu: the written page at ${check} did not read back: ${out}`)
    }
    return { ms }
  } finally {
    // A qcow2 file grows by appending clusters: few extents, cheap to delete.
    removeScratch(scratch, { now: true })
  }
}

/** Run a qemu tool (qemu-io's script on `input`); its output, or an error if it said it failed. */
export function run(cmd: string, args: string[], input = ''): string {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`
  if (r.error || r.status !== 0 || /failed|error/i.test(out.replace(/qemu-io> /g, ''))) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `status ${r.status}`}): ${out.slice(0, 500)}`)
  }
  return out
}

export function haveQemu(): boolean {
  return ['qemu-io', 'qemu-img'].every((cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0)
}
