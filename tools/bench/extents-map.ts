// Case 6 (SPEC §5, §9): extents() over a 1 TiB sparse lower with 10⁶ scattered copied pages:
// the wall time of the full map in this process, and the peak RSS of a child that only maps it.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import { bytes, count, duration } from './format.js'
import { range } from './row.js'
import { median, msSince, now } from './timing.js'

const TARGET_MS = 1000
const TARGET_RSS_BYTES = 200e6
const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'extents-child.ts')
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

interface ChildReport {
  mode: string
  extents: number
  openMs: number
  mapMs: number
  maxRssBytes: number
}

export const extentsMap: BenchCase = {
  id: 'extents',
  group: 'extents',
  number: 6,
  title: 'extents() over a 1 TiB sparse lower with 10⁶ scattered copied pages: wall time and child peak RSS',
  async run(ctx) {
    const { mapPages, sparseLowerBytes } = ctx.config
    const reps = Math.min(ctx.config.reps, 3)
    const dir = await ctx.scatteredStore(mapPages)
    const what = `${bytes(sparseLowerBytes)} sparse lower, ${count(mapPages)} scattered DATA pages`

    const store = await ImageStore.open(dir, { readOnly: true })
    const times: number[] = []
    let extents = 0
    try {
      for (let i = 0; i <= reps; i++) {
        const start = now()
        let n = 0
        for (const _ of store.extents()) n++
        const ms = msSince(start)
        if (i === 0) ctx.log(`first (cold) map: ${count(n)} extents in ${duration(ms)}`)
        else times.push(ms)
        extents = n
      }
    } finally {
      await store.close()
    }
    if (extents < 2 * mapPages - 1) throw new Error(`extents: expected about ${2 * mapPages} extents, got ${extents}`)

    const idle = [child(dir, 'idle')]
    const mapped = [child(dir, 'map'), child(dir, 'map')]
    const peak = Math.max(...mapped.map((r) => r.maxRssBytes))
    const idlePeak = Math.max(...idle.map((r) => r.maxRssBytes))
    const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`
    const m = median(times)
    return [
      {
        case: 'extents',
        label: `full map wall time in-process, warm, median of ${times.length}: ${count(extents)} extents, ${what}`,
        pagecow: duration(m),
        baseline: '',
        ratio: null,
        ratioKind: null,
        ratioRange: null,
        target: `< ${duration(TARGET_MS)}`,
        met: m < TARGET_MS,
        details: { extents, timesMs: times, range: range(times) },
      },
      {
        case: 'extents',
        label: `peak RSS of a child that opens read-only and maps it all (cold map ${duration(median(mapped.map((r) => r.mapMs)))}, open ${duration(median(mapped.map((r) => r.openMs)))})`,
        pagecow: mb(peak),
        baseline: `${mb(idlePeak)} (child that only loads the library)`,
        ratio: null,
        ratioKind: null,
        ratioRange: null,
        target: `< ${mb(TARGET_RSS_BYTES)}`,
        met: peak < TARGET_RSS_BYTES,
        details: { mapped, idle },
      },
    ]
  },
}

/** Run the child under tsx and parse its one-line report. */
function child(dir: string, mode: 'map' | 'idle'): ChildReport {
  const out = execFileSync(process.execPath, ['--import', TSX, CHILD, dir, mode], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  return JSON.parse(out.trim().split('\n').pop()!) as ChildReport
}
