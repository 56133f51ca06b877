// Case 5 (SPEC §9): the cost of write-one-page + flush must not grow with the pages already
// copied. Two stores over the same sparse lower, 10³ and 10⁶ scattered DATA pages, measured in turn.
import { randomFillSync } from 'node:crypto'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import { count, duration } from './format.js'
import { randomPages } from './random.js'
import { range } from './row.js'
import { median, msSince, now, percentile, summarize } from './timing.js'

const TARGET_RATIO = 1.5
const WARM_UP = 10

export const flushCost: BenchCase = {
  id: 'flush-cost',
  group: 'flush-cost',
  number: 5,
  title: 'write one page + flush with 10³ vs 10⁶ pages already copied',
  async run(ctx) {
    const { flushCostPages, flushCostSamples, sparseLowerBytes, pageSize } = ctx.config
    const [few, many] = flushCostPages
    const small = await ImageStore.open(await ctx.scatteredStore(few), { autoFlushMs: 0 })
    const big = await ImageStore.open(await ctx.scatteredStore(many), { autoFlushMs: 0 })
    try {
      const data = randomFillSync(Buffer.alloc(pageSize))
      // The same random pages for both stores; most are new pages in a chunk that holds others.
      const pages = randomPages(WARM_UP + flushCostSamples, sparseLowerBytes / pageSize, 8)
      const one = async (store: ImageStore, page: number) => {
        const start = now()
        await store.write(page * pageSize, data)
        await store.flush()
        return msSince(start)
      }
      const smallMs: number[] = []
      const bigMs: number[] = []
      for (let i = 0; i < pages.length; i++) {
        // Alternate which store goes first, so drift falls on both alike.
        if (i % 2 === 0) {
          smallMs.push(await one(small, pages[i]!))
          bigMs.push(await one(big, pages[i]!))
        } else {
          bigMs.push(await one(big, pages[i]!))
          smallMs.push(await one(small, pages[i]!))
        }
      }
      const sm = smallMs.slice(WARM_UP)
      const bg = bigMs.slice(WARM_UP)
      const ratio = median(bg) / median(sm)
      return [
        {
          case: 'flush-cost',
          label: `median of ${sm.length} × (write 4 KiB + flush); p90 ${duration(percentile(bg, 90))} vs ${duration(percentile(sm, 90))}`,
          pagecow: `${duration(median(bg))} (${count(many)} pages copied)`,
          baseline: `${duration(median(sm))} (${count(few)} pages copied)`,
          ratio,
          ratioKind: 'time',
          ratioRange: range(blockRatios(bg, sm, 4)),
          target: `≤ ${TARGET_RATIO}×`,
          met: ratio <= TARGET_RATIO,
          details: { pages: flushCostPages, manyMs: bg, fewMs: sm, many: summarize(bg), few: summarize(sm) },
        },
      ]
    } finally {
      await small.close()
      await big.close()
    }
  },
}

/** The ratio of medians in each of `blocks` consecutive slices of the samples: the drift. */
function blockRatios(a: number[], b: number[], blocks: number): number[] {
  const size = Math.ceil(a.length / blocks)
  const out: number[] = []
  for (let i = 0; i < a.length; i += size) out.push(median(a.slice(i, i + size)) / median(b.slice(i, i + size)))
  return out
}
