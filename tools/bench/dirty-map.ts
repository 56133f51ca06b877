// Case 11 (issue 11): the dirty-page query, in-process: the whole map (extents()) of an image after
// 10 000 random 4 KiB writes over the 1 GiB lower of data, before and after the flush that commits
// them; checked exact against the pages written.
import { join } from 'node:path'
import { ImageStore, type Extent } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import { count, duration } from './format.js'
import { randomPages } from './random.js'
import { range, type Row } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { median, msSince, now } from './timing.js'

const WRITES = 10_000
const TARGET_MS = 10
/** Maps timed per state (after one untimed). */
const MAPS = 15

export const dirtyMap: BenchCase = {
  id: 'dirty-map',
  group: 'extents',
  number: 11,
  title: 'Whole map (extents()) after 10 000 random 4 KiB writes over the lower of data, dirty and flushed, in-process',
  async run(ctx) {
    const { lowerBytes, pageSize } = ctx.config
    const scratch = scratchDir('dirty-map')
    const store = await ImageStore.create(join(scratch, 'store'), { lower: ctx.dataLower(), autoFlushMs: 0 })
    const rows: Row[] = []
    try {
      const pages = randomPages(WRITES, lowerBytes / pageSize, 11)
      const data = Buffer.alloc(pageSize, 0x3c)
      for (const p of pages) await store.write(p * pageSize, data)
      const expected = expectedMap([...new Set(pages)].sort((a, b) => a - b), pageSize, lowerBytes)
      for (const state of ['dirty', 'flushed'] as const) {
        if (state === 'flushed') await store.flush()
        const got = [...store.extents()]
        if (!sameExtents(got, expected)) throw new Error(`dirty-map: the ${state} map is not the pages written`)
        const times: number[] = []
        for (let i = 0; i < MAPS; i++) {
          const start = now()
          let n = 0
          for (const _ of store.extents()) n++
          times.push(msSince(start))
          if (n !== expected.length) throw new Error(`dirty-map: ${n} extents, expected ${expected.length}`)
        }
        const m = median(times)
        rows.push({
          case: 'dirty-map',
          label: `${state === 'dirty' ? 'before the flush (the map in memory)' : 'after the flush'}: ${count(expected.length)} extents, exact; median of ${MAPS}`,
          pagecow: duration(m),
          baseline: '',
          ratio: null,
          ratioKind: null,
          ratioRange: null,
          target: `< ${TARGET_MS} ms`,
          met: m < TARGET_MS,
          details: { timesMs: times, range: range(times), extents: expected.length, writes: WRITES },
        })
      }
    } finally {
      await store.close()
      removeScratch(scratch)
    }
    return rows
  },
}

/** DATA runs of the written pages, LOWER between them (the lower has no holes). */
function expectedMap(written: number[], pageSize: number, size: number): Array<Pick<Extent, 'start' | 'length' | 'state'>> {
  const out: Array<Pick<Extent, 'start' | 'length' | 'state'>> = []
  let pos = 0
  for (let i = 0; i < written.length; ) {
    let j = i + 1
    while (j < written.length && written[j] === written[j - 1]! + 1) j++
    const start = written[i]! * pageSize
    if (start > pos) out.push({ start: pos, length: start - pos, state: 'lower' })
    out.push({ start, length: (j - i) * pageSize, state: 'data' })
    pos = written[j - 1]! * pageSize + pageSize
    i = j
  }
  if (pos < size) out.push({ start: pos, length: size - pos, state: 'lower' })
  return out
}

function sameExtents(got: Extent[], want: Array<Pick<Extent, 'start' | 'length' | 'state'>>): boolean {
  return got.length === want.length && got.every((e, i) => e.start === want[i]!.start && e.length === want[i]!.length && e.state === want[i]!.state)
}
