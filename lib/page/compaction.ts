// Compaction (issue 13, "beyond the anchors"): DATA pages that read the same as the lower under
// them become LOWER again, and all-zero DATA pages become ZERO, so that a user who edits a file and
// reverts it, or writes zeros, keeps no copy. What the file reads never changes: nothing is
// recorded as changed, and the pages are read (and verified) before anything is decided.
import { z } from 'zod'
import { PagecowError } from '../errors.js'
import { isZero } from '../zero-bytes.js'
import type { PagedFile } from './paged-file.js'

/** A run of DATA pages [start, end) that reads the same in `state`. */
export interface SettleRun {
  start: number
  end: number
  state: 'lower' | 'zero'
}

/** Pages read and compared at a time: bounded memory whatever the file. */
export const COMPARE_PAGES = 256

/**
 * The DATA pages of [first, end) that can settle (and how many DATA pages there are): LOWER where the page reads what the lower would
 * serve, else ZERO where it is all zeros. Reads through the file (DATA pages are verified against
 * their sums: a damaged page is ECORRUPT, never settled). Synchronous, so the answer holds until
 * the caller's next await.
 */
export function settleRuns(file: PagedFile, first: number, end: number): { runs: SettleRun[]; dataPages: number } {
  const g = file.geometry
  const out: SettleRun[] = []
  const push = (page: number, state: 'lower' | 'zero') => {
    const last = out.at(-1)
    if (last && last.end === page && last.state === state) last.end++
    else out.push({ start: page, end: page + 1, state })
  }
  const size = file.size
  const upper = Buffer.allocUnsafe(COMPARE_PAGES * g.pageSize)
  const lower = Buffer.allocUnsafe(COMPARE_PAGES * g.pageSize)
  let dataPages = 0
  for (const run of file.map.runs(first, end)) {
    if (run.state !== 'data') continue
    dataPages += run.end - run.start
    for (let at = run.start; at < run.end; at += COMPARE_PAGES) {
      const to = Math.min(run.end, at + COMPARE_PAGES)
      // Past the end of the file both read as nothing: compare what a read can see.
      const bytes = Math.min(g.byteOf(to), size) - g.byteOf(at)
      if (bytes <= 0) break
      const u = upper.subarray(0, bytes)
      const l = lower.subarray(0, bytes)
      file.readInto(u, g.byteOf(at))
      file.readAsLower(l, g.byteOf(at))
      for (let page = at; page < to; page++) {
        const a = g.byteOf(page - at)
        const b = Math.min(bytes, a + g.pageSize)
        if (a >= b) break
        if (u.compare(l, a, b, a, b) === 0) push(page, 'lower')
        else if (isZero(u.subarray(a, b))) push(page, 'zero')
      }
    }
  }
  return { runs: out, dataPages }
}


/** How far a compaction is: pages of an image, files of a tree store. */
export interface CompactProgress {
  done: number
  total: number
}

export interface CompactResult {
  /** DATA pages examined. */
  dataPages: number
  /** DATA pages that became LOWER (they read what the lower under them serves). */
  toLower: number
  /** DATA pages that became ZERO (all zeros). */
  toZero: number
  /** Bytes of the upper given back. */
  bytesFreed: number
}

export const compactOptionsSchema = z.strictObject({
  /** Called as the compaction advances. */
  onProgress: z.custom<(progress: CompactProgress) => void>((v) => typeof v === 'function').optional(),
  /** Stop between batches (EINTR); what was compacted stays compacted. */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'signal must be an AbortSignal').optional(),
})

export type CompactOptions = z.input<typeof compactOptionsSchema>

/** Pages settled per commit: a few MiB of reads between commits, and writers get in between. */
const BATCH_PAGES = 8 * COMPARE_PAGES

/**
 * Compact one paged file, batch by batch: find what can settle (synchronously, so no write slips
 * between the comparison and the change), settle it, `commit()` it synchronously, wait for the
 * reads in flight that planned from the old map, then give the blocks back. A crash before a
 * batch's commit loses nothing (the pages stay DATA); after it, before the blocks are given back,
 * it leaves only space that `pagecow fsck --repair` reclaims.
 */
export async function compactFile(file: PagedFile, commit: () => void, options: { signal?: AbortSignal | undefined; progress: (pages: number) => void; checkWritable: () => void }): Promise<CompactResult> {
  const result: CompactResult = { dataPages: 0, toLower: 0, toZero: 0, bytesFreed: 0 }
  const g = file.geometry
  for (let at = 0; at < g.pagesFor(file.size); at += BATCH_PAGES) {
    if (options.signal?.aborted) throw new PagecowError('EINTR', 'compact: interrupted; what was compacted so far stays compacted')
    options.checkWritable()
    const end = Math.min(g.pagesFor(file.size), at + BATCH_PAGES)
    const { runs, dataPages } = settleRuns(file, at, end)
    result.dataPages += dataPages
    for (const run of runs) {
      file.settle(run.start, run.end, run.state)
      result[run.state === 'lower' ? 'toLower' : 'toZero'] += run.end - run.start
    }
    if (runs.length > 0) {
      commit()
      await file.readsDone()
      for (const run of runs) file.releasePages(run.start, run.end)
      result.bytesFreed += runs.reduce((sum, r) => sum + g.byteOf(r.end - r.start), 0)
    }
    options.progress(end - at)
    await new Promise((resolve) => setImmediate(resolve))
  }
  return result
}
