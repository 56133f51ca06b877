// Lower binding (issue 10): sequential 1 MiB reads through a store whose lower is bound (every
// lower page checked against its recorded sum) against the same reads through an unbound store,
// interleaved. Two rows: the first reads after open (each page hashed once), and reads of pages
// verified since open (the per-file verified set: no hashing).
import { join } from 'node:path'
import { bindLower, ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import { bytes } from './format.js'
import { throughputRow } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { interleaved, interleavedReps } from './timing.js'

export const boundRead: BenchCase = {
  id: 'bound-read',
  group: 'lower-binding',
  number: 10,
  title: 'Sequential 1 MiB reads of a bound lower vs an unbound one',
  async run(ctx) {
    const { lowerBytes, seqReadBytes, reps } = ctx.config
    const lower = ctx.dataLower()
    const scratch = scratchDir('bound')
    const boundPath = join(scratch, 'bound')
    const plainPath = join(scratch, 'plain')
    await (await ImageStore.create(boundPath, { lower, autoFlushMs: 0 })).close()
    await (await ImageStore.create(plainPath, { lower, autoFlushMs: 0 })).close()
    const started = performance.now()
    await bindLower(boundPath)
    ctx.log(`bound a ${bytes(lowerBytes)} lower in ${(performance.now() - started).toFixed(0)} ms`)
    const buf = Buffer.allocUnsafe(seqReadBytes)
    const stores: { bound?: ImageStore; plain?: ImageStore } = {}
    const open = async () => {
      await stores.bound?.close()
      await stores.plain?.close()
      stores.bound = await ImageStore.open(boundPath, { readOnly: true })
      stores.plain = await ImageStore.open(plainPath, { readOnly: true })
    }
    try {
      await open()
      const batches = Math.ceil(lowerBytes / seqReadBytes)
      const readFrom = (s: () => ImageStore | undefined) => async (b: number) => {
        await s()!.readInto(buf, b * seqReadBytes)
      }
      const bound = readFrom(() => stores.bound)
      const plain = readFrom(() => stores.plain)
      await interleaved(batches, bound, plain) // warm-up: the lower in the page cache, the JIT
      // First reads: each repetition on stores opened afresh, so every bound page is hashed once.
      const first = await interleavedReps(reps, async () => {
        await open()
        return interleaved(batches, bound, plain)
      })
      await interleaved(batches, bound, plain)
      const hot = await interleavedReps(reps, () => interleaved(batches, bound, plain))
      const what = `${bytes(seqReadBytes)} reads over ${bytes(lowerBytes)}, page cache warm`
      return [
        throughputRow({
          case: 'bound-read', label: `bound lower, first reads after open (every page hashed), ${what}`, work: lowerBytes, unit: 'bytes',
          pagecowMs: first.a, baselineMs: first.b, baselineName: 'unbound store', atLeast: 0.85,
        }),
        throughputRow({
          case: 'bound-read', label: `bound lower, pages verified since open, ${what}`, work: lowerBytes, unit: 'bytes',
          pagecowMs: hot.a, baselineMs: hot.b, baselineName: 'unbound store', atLeast: 0.85,
        }),
      ]
    } finally {
      await stores.bound?.close()
      await stores.plain?.close()
      removeScratch(scratch)
    }
  },
}
