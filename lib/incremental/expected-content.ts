// The content an incremental expects its target to hold already: pages not changed since the
// mark, whose bytes are therefore the same at the mark and now, so any target at or after the
// mark holds exactly them. Chosen to catch the mistakes of a backup chain cheaply:
// - the pages the previous increment carried (changed since the mark before, not since this
//   one), up to 16 MiB: a target that missed that increment differs there;
// - 32 pages spread over the whole image: another image, or one exported before the mark.
// Cost: in proportion to the changes, plus at most 16 MiB + 32 pages read (export and apply).
import { createHash } from 'node:crypto'
import type { ChangedExtent } from '../changes/changed-extents.js'
import type { IncrementalSource } from './incremental-source.js'

const PRIOR_BYTES = 16 * 1024 * 1024
const SPREAD_PAGES = 32
const READ_BLOCK = 1024 * 1024

export interface ExpectedContent {
  runs: Array<[number, number]>
  sha256: string
}

/** Page runs [first, end) covered by extents (in offset order). */
function pageRuns(extents: Iterable<ChangedExtent>, pageSize: number): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  for (const e of extents) {
    const first = Math.floor(e.start / pageSize)
    const end = Math.ceil((e.start + e.length) / pageSize)
    const last = runs.at(-1)
    if (last && last[1] >= first) last[1] = Math.max(last[1], end)
    else runs.push([first, end])
  }
  return runs
}

function inRuns(runs: Array<[number, number]>, page: number): boolean {
  let lo = 0
  let hi = runs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (runs[mid]![1] <= page) lo = mid + 1
    else hi = mid
  }
  return lo < runs.length && runs[lo]![0] <= page
}

/** Choose the expected pages of an incremental of `source` since `since` (changed: its extents). */
export function choosePages(source: IncrementalSource, since: string, changed: ChangedExtent[], size: number): number[] {
  const pageSize = source.pageSize
  const pages = Math.ceil(size / pageSize)
  const changedRuns = pageRuns(changed, pageSize)
  const chosen = new Set<number>()
  const marks = source.marks()
  const index = marks.findIndex((m) => m.name === since)
  const before = index > 0 ? marks[index - 1] : undefined
  if (before) {
    const limit = Math.max(16, Math.floor(PRIOR_BYTES / pageSize))
    const prior: number[] = []
    for (const [first, end] of pageRuns(source.changed(before.name), pageSize)) {
      for (let p = first; p < Math.min(end, pages); p++) if (!inRuns(changedRuns, p)) prior.push(p)
    }
    const stride = Math.max(1, prior.length / limit)
    for (let i = 0; i < prior.length && chosen.size < limit; i += stride) chosen.add(prior[Math.floor(i)]!)
  }
  for (let i = 0; i < SPREAD_PAGES && pages > 0; i++) {
    const p = Math.floor(((pages - 1) * i) / (SPREAD_PAGES - 1))
    if (!inRuns(changedRuns, p)) chosen.add(p)
  }
  return [...chosen].sort((a, b) => a - b)
}

/** Byte runs [start, length] of `pages`, the last cut at `size`. */
export function byteRuns(pages: number[], pageSize: number, size: number): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  for (const p of pages) {
    const start = p * pageSize
    const end = Math.min(size, start + pageSize)
    if (end <= start) continue
    const last = runs.at(-1)
    if (last && last[0] + last[1] === start) last[1] += end - start
    else runs.push([start, end - start])
  }
  return runs
}

/**
 * The SHA-256 of the bytes of `runs` read with `readInto`, bytes past the end of the file counted
 * as zeros: a target shorter than the image now is extended by the apply, and an image grown
 * since the mark reads zeros there (growth is not a change), so both hash alike.
 */
export async function hashRuns(runs: Array<[number, number]>, readInto: (target: Buffer, offset: number) => Promise<number> | number): Promise<string> {
  const hash = createHash('sha256')
  const block = Buffer.alloc(READ_BLOCK)
  for (const [start, length] of runs) {
    for (let done = 0; done < length; ) {
      const n = Math.min(READ_BLOCK, length - done)
      let got = 0
      while (got < n) {
        const more = await readInto(block.subarray(got, n), start + done + got)
        if (more === 0) break
        got += more
      }
      block.fill(0, got, n)
      hash.update(block.subarray(0, n))
      done += n
    }
  }
  return hash.digest('hex')
}
