// What fsck checks of the paged files of either kind, once the kind has said which files there
// are: the page-map rows (fsck-chunks), every DATA page against its checksum and its upper space
// (fsck-pages; skipped by --quick), the checksum rows themselves, and how much upper space no
// committed page owns (unowned-space: `fsck --repair` gives it back).
import { checkChangeRows } from '../changes/fsck-changes.js'
import type Database from 'better-sqlite3'
import { z } from 'zod'
import * as fs from '../fs.js'
import { openStoreFile } from './store-file.js'
import { fromSystemError, parseWith } from '../errors.js'
import type { Geometry } from '../geometry.js'
import { FluxLog } from '../integrity/flux-log.js'
import { SUMS_PER_BLOCK } from '../integrity/page-sums.js'
import { SumBlock } from '../integrity/sum-block.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { ChunkTable } from '../page/chunk-table.js'
import { checkChunks, type CheckedFile } from './fsck-chunks.js'
import { PageChecker } from './fsck-pages.js'
import type { ReportProblem } from './fsck-runner.js'
import { unownedRanges } from './unowned-space.js'

export interface FsckProgress {
  /** Bytes of DATA pages checked so far. */
  done: number
  /** Bytes of DATA pages to check. */
  total: number
}

export interface FsckOptions {
  /** Check the records only, not the bytes of every DATA page (much faster on a big store). */
  quick?: boolean
  /** Called as DATA pages are checked. */
  onProgress?: (progress: FsckProgress) => void
}

export const fsckOptionsSchema = z.strictObject({
  quick: z.boolean().optional(),
  onProgress: z.function().optional(),
})

export function parseFsckOptions(options: FsckOptions): FsckOptions {
  return parseWith(fsckOptionsSchema, options, 'fsck') as FsckOptions
}

/** The counts fsck reports of paged files, beyond the page map's. */
export interface DataCounts {
  chunks: number
  dataPages: number
  zeroPages: number
  /** DATA pages whose bytes were read back and match their checksums (0 with --quick). */
  verifiedPages: number
  /** DATA pages being rewritten when the writer stopped (noted in STORE/flux): judged at the next writable open. */
  inFluxPages: number
  /** Bytes of upper space that no committed page owns (`fsck --repair` reclaims it). */
  unownedBytes: number
}

export function emptyDataCounts(): DataCounts {
  return { chunks: 0, dataPages: 0, zeroPages: 0, verifiedPages: 0, inFluxPages: 0, unownedBytes: 0 }
}

/** A paged file for the data checks: what fsck-chunks knows, and its upper file's path. */
export interface DataFile extends CheckedFile {
  upperPath: string
  /** The DATA and ZERO pages its record counts (its page-map rows must add up to them). */
  pages: { data: number; zero: number }
}

/** Check the paged files `files` (by id) of the store at `storePath`. */
export async function checkPagedFiles(
  db: Database.Database,
  storePath: string,
  geometry: Geometry,
  files: ReadonlyMap<number, DataFile>,
  counts: DataCounts,
  problem: ReportProblem,
  options: FsckOptions,
): Promise<void> {
  const inFlux = fluxNotes(storePath, problem)
  const total = options.quick ? 0 : geometry.byteOf((db.prepare('SELECT coalesce(sum(data_count), 0) AS n FROM page_chunks').get() as { n: number }).n)
  let done = 0
  const checker = new PageChecker(db, geometry, problem, {
    inFlux,
    onProgress: (bytes) => {
      done += bytes
      options.onProgress?.({ done: Math.min(done, total), total })
    },
  })
  try {
    await checkChunks(db, geometry, files, counts, problem, options.quick ? undefined : (id, index, chunk) => checker.checkChunk(id, files.get(id)!, index, chunk))
  } finally {
    checker.finish()
  }
  counts.verifiedPages += checker.counts.verifiedPages
  counts.inFluxPages += checker.counts.inFluxPages
  checkSumRows(db, files, problem, checker.checkedRows)
  checkBindingRows(db, files, problem)
  checkChangeRows(db, new Set(files.keys()), problem)
  for (const [id, file] of files) {
    const rows = new ChunkTable(db, id).totals()
    if (rows.data !== file.pages.data || rows.zero !== file.pages.zero) {
      problem('ECORRUPT', `${file.name}: its page map rows hold ${rows.data} DATA and ${rows.zero} ZERO pages, its record ${file.pages.data} and ${file.pages.zero} (rows removed, added or swapped)`, { file: file.file })
    }
    counts.unownedBytes += unownedBytes(db, geometry, id, file, problem)
  }
}

/** Whether the flux log notes page `page` of file `file`. */
function fluxNotes(storePath: string, problem: ReportProblem): (file: number, page: number) => boolean {
  let notes: Array<{ file: number; start: number; end: number }> = []
  const log = new FluxLog(storePath, true)
  try {
    notes = log.notes()
  } catch (err) {
    const e = fromSystemError(err, 'reading the flux log')
    problem(e.code, e.message)
  } finally {
    log.close()
  }
  return (file, page) => notes.some((n) => n.file === file && n.start <= page && page < n.end)
}

/**
 * Every row of checksums matches its own sum and belongs to a paged file. Rows the page check
 * already read and found sound (`checked`) are not read again: on a store of scattered pages,
 * every row is read by the page check.
 */
function checkSumRows(db: Database.Database, files: ReadonlyMap<number, DataFile>, problem: ReportProblem, checked: ReadonlyMap<number, ReadonlySet<number>>): void {
  const rows = db.prepare('SELECT file, block FROM page_sums ORDER BY file, block').iterate() as IterableIterator<{ file: number; block: number }>
  const one = db.prepare<[number, number], { sums: unknown; sum: unknown }>('SELECT sums, sum FROM page_sums WHERE file = ? AND block = ?')
  for (const { file: id, block } of rows) {
    const file = files.get(id)
    const first = Number(block) * SUMS_PER_BLOCK
    if (!file) {
      problem('ECORRUPT', `checksums of pages ${first}–${first + SUMS_PER_BLOCK - 1} belong to unknown paged file ${id}`)
      continue
    }
    if (checked.get(id)?.has(Number(block))) continue
    const row = one.get(id, block)
    if (!row || !Buffer.isBuffer(row.sums) || !sumMatches(row.sum, rowSum.pageSums(id, block, row.sums)) || !SumBlock.decode(row.sums)) {
      problem('ECORRUPT', `${file.name}: the checksums of pages ${first}–${first + SUMS_PER_BLOCK - 1} are damaged`, { file: file.file, page: first, pages: SUMS_PER_BLOCK })
    }
  }
}

/** The rows of the lower binding and of copy-up bases match their own sums; bases belong to a file. */
function checkBindingRows(db: Database.Database, files: ReadonlyMap<number, DataFile>, problem: ReportProblem): void {
  const lower = db.prepare('SELECT file, block, sums, sum FROM lower_sums ORDER BY file, block').iterate() as IterableIterator<{ file: number; block: number; sums: unknown; sum: unknown }>
  for (const row of lower) {
    if (!Buffer.isBuffer(row.sums) || !sumMatches(row.sum, rowSum.lowerSums(row.file, row.block, row.sums))) {
      const first = Number(row.block) * SUMS_PER_BLOCK
      problem('ECORRUPT', `the recorded sums of lower pages ${first}–${first + SUMS_PER_BLOCK - 1} of lower file ${row.file} are damaged (\`pagecow verify --record\` records them again)`)
    }
  }
  const bases = db.prepare('SELECT file, page, base, sum FROM copyup_base ORDER BY file, page').iterate() as IterableIterator<{ file: number; page: number; base: unknown; sum: unknown }>
  for (const row of bases) {
    const file = files.get(row.file)
    if (!file) problem('ECORRUPT', `a copy-up base of page ${row.page} belongs to unknown paged file ${row.file}`)
    else if (!Buffer.isBuffer(row.base) || !sumMatches(row.sum, rowSum.copyupBase(row.file, row.page, row.base))) {
      problem('ECORRUPT', `${file.name}, page ${row.page}: its copy-up base record is damaged`, { file: file.file, page: row.page })
    }
  }
}

function unownedBytes(db: Database.Database, geometry: Geometry, id: number, file: DataFile, problem: ReportProblem): number {
  let fd: number
  try {
    fd = openStoreFile(file.upperPath, 'r') // never a FIFO, a symlink or someone else's file
  } catch {
    return 0 // a missing or unsafe upper is the kind's to report
  }
  try {
    // Allocated space within 1% (and 1 MiB) of what the DATA pages need is the file system's own
    // (extent tree blocks): not worth walking every extent of a scattered upper, which costs a
    // SEEK_DATA/SEEK_HOLE pair each. `--repair` always walks.
    const allocated = fs.fstatSync(fd).blocks * 512
    const needed = geometry.byteOf(file.pages.data)
    if (allocated <= needed + Math.max(1024 * 1024, needed / 100)) return 0
    let pages = 0
    for (const r of unownedRanges(db, geometry, id, fd, file.pages)) pages += r.end - r.start
    return geometry.byteOf(pages)
  } catch (err) {
    // A damaged page map is reported by the chunk check; nothing to say of its space.
    if ((err as { code?: string }).code !== 'ECORRUPT') {
      const e = fromSystemError(err, `scanning ${file.upperPath}`)
      problem(e.code, e.message, { file: file.file })
    }
    return 0
  } finally {
    fs.closeSync(fd)
  }
}
