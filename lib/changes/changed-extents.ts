// "What changed since a mark" as extents of one file: the changed pages, each piece said as what
// it reads now (written data, zeros, the lower again, or cut off by a truncation). An incremental
// backup copies what each piece reads now and cuts the file to its size.
import type { ExtentState } from '../page/extent.js'
import type { PagedFile } from '../page/paged-file.js'

/**
 * What a changed piece reads now: `written` (DATA of the upper), `zeroed` (ZERO pages, discarded
 * or zeroed ranges, a hole), `lower` (the lower's bytes again), `truncated` (past the end of the
 * file: a truncation cut it off). Pages are recorded whole, so a changed page may hold bytes that
 * did not change: the record is a superset of the bytes that differ, never less.
 */
export type ChangeKind = 'written' | 'zeroed' | 'lower' | 'truncated'

export interface ChangedExtent {
  start: number
  length: number
  change: ChangeKind
  /** The merged view's state of the piece (as `extents()` says); absent past the end of the file. */
  state?: ExtentState
}

/** Totals of a changes query. */
export interface ChangeTotals {
  extents: number
  /** Bytes of each kind. */
  written: number
  zeroed: number
  lower: number
  truncated: number
}

const KIND: Record<ExtentState, ChangeKind> = { data: 'written', zero: 'zeroed', hole: 'zeroed', lower: 'lower' }

/**
 * The changed extents of `file`, from its change runs (page runs in page order); each piece is
 * classified by the file's own extent query, so the cost grows with the changes, not the file.
 * With `within` ([start, end) in bytes), pieces are cut to it (the runs should be too).
 */
export function* changedExtents(file: PagedFile, runs: Iterable<[number, number]>, within?: [number, number]): Generator<ChangedExtent> {
  const g = file.geometry
  const size = file.size
  let pending: ChangedExtent | undefined
  const push = function* (start: number, end: number, change: ChangeKind, state?: ExtentState): Generator<ChangedExtent> {
    if (end <= start) return
    if (pending && pending.change === change && pending.state === state && pending.start + pending.length === start) {
      pending.length = end - pending.start
      return
    }
    if (pending) yield pending
    pending = state === undefined ? { start, length: end - start, change } : { start, length: end - start, change, state }
  }
  const [low, high] = within ?? [0, Number.MAX_SAFE_INTEGER]
  for (const [first, end] of runs) {
    const from = Math.max(g.byteOf(first), low)
    const to = Math.min(g.byteOf(end), high)
    if (to <= from) continue
    if (from < size) for (const e of file.extents(from, Math.min(to, size))) yield* push(e.start, e.start + e.length, KIND[e.state], e.state)
    // Past the end: whole pages only (the tail of the last page was never content).
    yield* push(Math.max(from, g.byteOf(g.pagesFor(size))), to, 'truncated')
  }
  if (pending) yield pending
}

/** Add up a changes query (for `--json` and the CLI's summary). */
export function totalsOf(extents: Iterable<ChangedExtent>): ChangeTotals {
  const totals: ChangeTotals = { extents: 0, written: 0, zeroed: 0, lower: 0, truncated: 0 }
  for (const e of extents) {
    totals.extents++
    totals[e.change] += e.length
  }
  return totals
}
