// Case 3: random page-aligned 4 KiB writes through pagecow against pwrite to a plain sparse file
// of the same size, without flushes and with a flush every `flushEvery` writes. Each repetition
// uses a fresh store and a fresh file, written in interleaved batches.
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import { count } from './format.js'
import { makeSparseFile } from './files.js'
import { randomPages } from './random.js'
import { throughputRow } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { interleaved, interleavedReps } from './timing.js'

const WRITES_PER_BATCH = 256

export const randWrite: BenchCase = {
  id: 'rand-write',
  group: 'writes',
  number: 3,
  title: 'Random 4 KiB page-aligned writes vs fs.writeSync to a sparse file of the same size',
  async run(ctx) {
    const { lowerBytes, pageSize, randomWrites, flushedWrites, flushEvery, reps } = ctx.config
    const pages = lowerBytes / pageSize
    // Warm-up: one short round of each, so the first timed repetition is not the JIT's.
    await writeRound(ctx, randomPages(4096, pages, 9), 0)
    await writeRound(ctx, randomPages(4 * flushEvery, pages, 10), flushEvery)
    const a = await interleavedReps(reps, () => writeRound(ctx, randomPages(randomWrites, pages, 3), 0))
    const b = await interleavedReps(reps, () => writeRound(ctx, randomPages(flushedWrites, pages, 4), flushEvery))
    return [
      throughputRow({
        case: 'rand-write', label: `${count(randomWrites)} writes, no flush`, work: randomWrites, unit: 'ops',
        pagecowMs: a.a, baselineMs: a.b, baselineName: 'fs.writeSync', atLeast: 0.5,
      }),
      throughputRow({
        case: 'rand-write', label: `${count(flushedWrites)} writes, flush every ${flushEvery}`, work: flushedWrites, unit: 'ops',
        pagecowMs: b.a, baselineMs: b.b, baselineName: `pwrite + fdatasync every ${flushEvery}`,
      }),
    ]
  },
}

/**
 * The same writes into a fresh store over the data lower (a) and a fresh sparse file as big
 * as the lower (b), in interleaved batches (a batch is `flushEvery` writes and a flush when
 * flushing). Creating, closing and deleting are not timed.
 */
async function writeRound(ctx: BenchContext, pages: Float64Array, flushEvery: number): Promise<{ a: number; b: number }> {
  const { pageSize, lowerBytes } = ctx.config
  const data = randomFillSync(Buffer.alloc(pageSize))
  const scratch = scratchDir('write')
  const plain = join(scratchDir('write-plain'), 'plain.img')
  makeSparseFile(plain, lowerBytes)
  const store = await ImageStore.create(join(scratch, 'store'), { lower: ctx.dataLower(), autoFlushMs: 0 })
  const fd = fs.openSync(plain, 'r+')
  try {
    const per = flushEvery > 0 ? flushEvery : WRITES_PER_BATCH
    const slice = (b: number) => pages.subarray(b * per, (b + 1) * per)
    return await interleaved(
      Math.ceil(pages.length / per),
      async (b) => {
        for (const p of slice(b)) await store.write(p * pageSize, data)
        if (flushEvery > 0) await store.flush()
      },
      (b) => {
        for (const p of slice(b)) fs.writeSync(fd, data, 0, pageSize, p * pageSize)
        if (flushEvery > 0) fs.fdatasyncSync(fd)
      },
    )
  } finally {
    fs.closeSync(fd)
    await store.close()
    removeScratch(scratch)
    // Never synced (without flushes): delayed allocation has placed no blocks, so deleting is cheap.
    removeScratch(join(plain, '..'), { now: flushEvery === 0 })
  }
}
