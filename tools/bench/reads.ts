// Cases 1 and 2: reads through pagecow against raw preads of the lower file, interleaved in
// small batches so that both sides see the same machine. Case 1 also reads through libuv's
// thread pool (`{ threadPool: true }`, what the servers use) to show what it costs a lone caller.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import { bytes, count } from './format.js'
import { randomPages, randomSubset } from './random.js'
import { throughputRow } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { interleaved, interleavedReps } from './timing.js'

/** Reads per interleaved batch: case 1 alternates every 1 MiB read, case 2 every 250 page reads. */
const SEQ_READS_PER_BATCH = 1
const RANDOM_READS_PER_BATCH = 250

export const seqRead: BenchCase = {
  id: 'seq-read',
  group: 'reads',
  number: 1,
  title: 'Sequential 1 MiB reads through an unmodified lower vs fs.readSync on the lower',
  async run(ctx) {
    const { lowerBytes, seqReadBytes, reps } = ctx.config
    const lower = ctx.dataLower()
    const scratch = scratchDir('seq')
    const store = await ImageStore.create(join(scratch, 'store'), { lower, autoFlushMs: 0 })
    const fd = fs.openSync(lower, 'r')
    try {
      const buf = Buffer.allocUnsafe(seqReadBytes)
      const check = Buffer.allocUnsafe(seqReadBytes)
      const middle = Math.floor(lowerBytes / 2 / seqReadBytes) * seqReadBytes
      await store.readInto(buf, middle)
      fs.readSync(fd, check, 0, seqReadBytes, middle)
      if (!buf.equals(check)) throw new Error('seq-read: pagecow and the lower disagree')

      const span = SEQ_READS_PER_BATCH * seqReadBytes
      const batches = Math.ceil(lowerBytes / span)
      const each = async (batch: number, read: (off: number) => Promise<unknown> | void) => {
        const end = Math.min(lowerBytes, (batch + 1) * span)
        for (let off = batch * span; off < end; off += seqReadBytes) await read(off)
      }
      const readInto = (b: number) => each(b, (off) => store.readInto(buf, off))
      const readIntoPool = (b: number) => each(b, (off) => store.readInto(buf, off, { threadPool: true }))
      const read = (b: number) => each(b, (off) => store.read(off, seqReadBytes))
      const raw = (b: number) => {
        const end = Math.min(lowerBytes, (b + 1) * span)
        for (let off = b * span; off < end; off += seqReadBytes) fs.readSync(fd, buf, 0, seqReadBytes, off)
      }
      const rawAlloc = (b: number) => {
        const end = Math.min(lowerBytes, (b + 1) * span)
        for (let off = b * span; off < end; off += seqReadBytes) fs.readSync(fd, Buffer.alloc(seqReadBytes), 0, seqReadBytes, off)
      }
      // Warm-up: JIT, and the whole lower in the page cache for both.
      await interleaved(batches, readInto, raw)
      await interleaved(batches, read, rawAlloc)
      await interleaved(batches, readIntoPool, raw)
      const a = await interleavedReps(reps, () => interleaved(batches, readInto, raw))
      const b = await interleavedReps(reps, () => interleaved(batches, read, rawAlloc))
      const c = await interleavedReps(reps, () => interleaved(batches, readIntoPool, raw))
      const what = `${bytes(seqReadBytes)} reads over ${bytes(lowerBytes)}, warm`
      return [
        throughputRow({
          case: 'seq-read', label: `readInto(), ${what}`, work: lowerBytes, unit: 'bytes',
          pagecowMs: a.a, baselineMs: a.b, baselineName: 'fs.readSync', atLeast: 0.8,
        }),
        throughputRow({
          case: 'seq-read', label: `read() (allocates), ${what}`, work: lowerBytes, unit: 'bytes',
          pagecowMs: b.a, baselineMs: b.b, baselineName: 'Buffer.alloc + fs.readSync',
        }),
        // What the pool costs one caller (why it is not the default): one hop per read.
        throughputRow({
          case: 'seq-read', label: `readInto({ threadPool: true }), ${what}`, work: lowerBytes, unit: 'bytes',
          pagecowMs: c.a, baselineMs: c.b, baselineName: 'fs.readSync',
        }),
      ]
    } finally {
      fs.closeSync(fd)
      await store.close()
      removeScratch(scratch, { now: true })
    }
  },
}

export const randRead: BenchCase = {
  id: 'rand-read',
  group: 'reads',
  number: 2,
  title: 'Random 4 KiB reads on a half-copied image vs pread on the lower',
  async run(ctx) {
    const { lowerBytes, pageSize, randomReads, reps } = ctx.config
    const lower = ctx.dataLower()
    const scratch = scratchDir('rand-read')
    const store = await ImageStore.create(join(scratch, 'store'), { lower, autoFlushMs: 0 })
    const fd = fs.openSync(lower, 'r')
    try {
      await halfCopy(ctx, store)
      const pages = randomPages(randomReads, lowerBytes / pageSize, 2)
      const buf = Buffer.allocUnsafe(pageSize)
      const batches = Math.ceil(randomReads / RANDOM_READS_PER_BATCH)
      const slice = (b: number) => pages.subarray(b * RANDOM_READS_PER_BATCH, (b + 1) * RANDOM_READS_PER_BATCH)
      const readInto = async (b: number) => {
        for (const p of slice(b)) await store.readInto(buf, p * pageSize)
      }
      const read = async (b: number) => {
        for (const p of slice(b)) await store.read(p * pageSize, pageSize)
      }
      const raw = (b: number) => {
        for (const p of slice(b)) fs.readSync(fd, buf, 0, pageSize, p * pageSize)
      }
      const rawAlloc = (b: number) => {
        for (const p of slice(b)) fs.readSync(fd, Buffer.alloc(pageSize), 0, pageSize, p * pageSize)
      }
      await interleaved(batches, readInto, raw)
      await interleaved(batches, read, rawAlloc)
      const a = await interleavedReps(reps, () => interleaved(batches, readInto, raw))
      const b = await interleavedReps(reps, () => interleaved(batches, read, rawAlloc))
      const what = `${count(randomReads)} reads, half the pages DATA`
      return [
        throughputRow({
          case: 'rand-read', label: `readInto(), ${what}`, work: randomReads, unit: 'ops',
          pagecowMs: a.a, baselineMs: a.b, baselineName: 'pread on the lower', atLeast: 0.6,
        }),
        throughputRow({
          case: 'rand-read', label: `read() (allocates), ${what}`, work: randomReads, unit: 'ops',
          pagecowMs: b.a, baselineMs: b.b, baselineName: 'Buffer.alloc + pread',
        }),
      ]
    } finally {
      fs.closeSync(fd)
      await store.close()
      removeScratch(scratch)
    }
  },
}

/** Copy a random half of the pages (scattered), flush, and check the page counts. */
async function halfCopy(ctx: BenchContext, store: ImageStore): Promise<void> {
  const { lowerBytes, pageSize } = ctx.config
  const total = lowerBytes / pageSize
  const half = randomSubset(total, 0.5, 1)
  const data = Buffer.alloc(pageSize, 0x5a)
  for (let i = 0; i < half.length; i++) await store.write(half[i]! * pageSize, data)
  await store.flush()
  const info = store.info()
  if (info.pages.data !== half.length) throw new Error(`rand-read: expected ${half.length} DATA pages, found ${info.pages.data}`)
  ctx.log(`half-copied image: ${count(info.pages.data)} of ${count(info.pages.total)} pages DATA, flushed`)
}
