// Case 4: the latency of the first 4 KiB write into a new store over the data lower, after
// create() and after close() + open(); the median over several fresh stores.
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import type { BenchContext } from './context.js'
import { duration } from './format.js'
import { makeSparseFile } from './files.js'
import { rng } from './random.js'
import type { Row } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { median, msSince, now, summarize } from './timing.js'

const TARGET_MS = 1

export const firstWrite: BenchCase = {
  id: 'first-write',
  group: 'first-write',
  number: 4,
  title: 'First 4 KiB write() into a new store over the lower (after create, after reopen)',
  async run(ctx) {
    const { freshStores } = ctx.config
    const next = rng(6)
    const afterCreate: number[] = []
    const afterOpen: number[] = []
    const raw: number[] = []
    for (let i = 0; i < freshStores; i++) {
      afterCreate.push(await firstPagecowWrite(ctx, next(), false))
      afterOpen.push(await firstPagecowWrite(ctx, next(), true))
      raw.push(firstRawWrite(ctx, next()))
    }
    const base = median(raw)
    const row = (label: string, samples: number[]): Row => {
      const m = median(samples)
      return {
        case: 'first-write',
        label: `${label}, median of ${samples.length} fresh stores (max ${duration(Math.max(...samples))})`,
        pagecow: duration(m),
        baseline: `${duration(base)} (first pwrite to a new sparse file)`,
        ratio: m / base,
        ratioKind: 'time',
        ratioRange: null,
        target: `< ${TARGET_MS} ms`,
        met: m < TARGET_MS,
        details: { samplesMs: samples, summary: summarize(samples), baselineMs: raw },
      }
    }
    return [row('after create()', afterCreate), row('after close() + open()', afterOpen)]
  },
}

async function firstPagecowWrite(ctx: BenchContext, where: number, reopen: boolean): Promise<number> {
  const { lowerBytes, pageSize } = ctx.config
  const scratch = scratchDir('first')
  const dir = join(scratch, 'store')
  const data = randomFillSync(Buffer.alloc(pageSize))
  const offset = Math.floor(where * (lowerBytes / pageSize)) * pageSize
  let store = await ImageStore.create(dir, { lower: ctx.dataLower(), autoFlushMs: 0 })
  try {
    if (reopen) {
      await store.close()
      store = await ImageStore.open(dir, { autoFlushMs: 0 })
    }
    const start = now()
    await store.write(offset, data)
    return msSince(start)
  } finally {
    await store.close()
    removeScratch(scratch, { now: true })
  }
}

function firstRawWrite(ctx: BenchContext, where: number): number {
  const { lowerBytes, pageSize } = ctx.config
  const scratch = scratchDir('first')
  const path = join(scratch, 'plain.img')
  makeSparseFile(path, lowerBytes)
  const data = randomFillSync(Buffer.alloc(pageSize))
  const offset = Math.floor(where * (lowerBytes / pageSize)) * pageSize
  const fd = fs.openSync(path, 'r+')
  try {
    const start = now()
    fs.writeSync(fd, data, 0, pageSize, offset)
    return msSince(start)
  } finally {
    fs.closeSync(fd)
    removeScratch(scratch, { now: true })
  }
}
