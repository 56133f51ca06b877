// The data part of fsck, the same for both kinds: every DATA page read back from its upper file
// and hashed against the checksum committed with it, and every DATA page backed by space the upper
// file really holds (a hole punched under a DATA page reads as zeros: not the page written).
// Pages the writer noted as being rewritten in place (STORE/flux) are not judged: their sums are
// taken again at the next writable open.
import * as fs from '../fs.js'
import { openStoreFile } from './store-file.js'
import { fromSystemError } from '../errors.js'
import { firstPageOfChunk, PAGES_PER_CHUNK, type Geometry } from '../geometry.js'
import { pageSums } from '../integrity/hash.js'
import { PageSums } from '../integrity/page-sums.js'
import type { Chunk } from '../page/chunk.js'
import type Database from 'better-sqlite3'
import type { ReportProblem } from './fsck-runner.js'

/** Bytes read from an upper file at a time (whole pages). */
const READ_BYTES = 1024 * 1024

type OpenFile = { id: number; fd: number | undefined; sums: PageSums }

export interface PageCheckCounts {
  /** DATA pages read back and found as their sums say. */
  verifiedPages: number
  /** DATA pages not judged: noted in the flux log (being rewritten when the writer stopped). */
  inFluxPages: number
}

/** One paged file as the page check sees it. */
export interface FileToCheck {
  /** How messages name it: "the image", "paged file 7 (/etc/passwd)". */
  name: string
  /** How --json names it: "image", or the file's path in the tree. */
  file: string
  size: number
  upperPath: string
}

/**
 * Checks the DATA pages of paged files, one page-map chunk at a time (memory stays bounded by a
 * chunk and a read buffer, whatever the store). `onProgress` gets bytes of page data checked.
 */
export class PageChecker {
  readonly counts: PageCheckCounts = { verifiedPages: 0, inFluxPages: 0 }
  /** The page_sums rows (by file, the blocks) read and found sound on the way: not checked again. */
  readonly checkedRows = new Map<number, Set<number>>()
  readonly #db: Database.Database
  readonly #geometry: Geometry
  readonly #problem: ReportProblem
  readonly #inFlux: (file: number, page: number) => boolean
  readonly #onProgress: ((bytes: number) => void) | undefined
  readonly #buffer: Buffer
  /** The sums of the pages in #buffer, taken in one native call. */
  readonly #sums: BigUint64Array
  /** The pages of a batch: byte positions, one per page, for one preadPages call. */
  readonly #positions: Float64Array
  /** The batch: runs of DATA pages as (first, count) pairs, #batched pages in all. */
  readonly #runs: number[] = []
  #batched = 0
  #open: OpenFile | undefined

  constructor(
    db: Database.Database,
    geometry: Geometry,
    problem: ReportProblem,
    options: { inFlux: (file: number, page: number) => boolean; onProgress?: ((bytes: number) => void) | undefined },
  ) {
    this.#db = db
    this.#geometry = geometry
    this.#problem = problem
    this.#inFlux = options.inFlux
    this.#onProgress = options.onProgress
    this.#buffer = Buffer.alloc(Math.max(READ_BYTES, geometry.pageSize))
    const capacity = this.#buffer.length / geometry.pageSize
    this.#sums = new BigUint64Array(capacity)
    this.#positions = new Float64Array(capacity)
  }

  /**
   * Check the DATA pages of chunk `index` of paged file `id`. Pages are read in batches of a
   * buffer's worth, scattered ones too (one native call of many preads: a store of scattered
   * pages cost a pread call from JavaScript per page), and hashed in one call per batch.
   */
  checkChunk(id: number, file: FileToCheck, index: number, chunk: Chunk): void {
    const g = this.#geometry
    const open = this.#openFile(id, file)
    if (!open) return
    const base = firstPageOfChunk(index)
    const lastPage = g.pagesFor(file.size)
    const capacity = this.#positions.length
    open.sums.preload(base, base + PAGES_PER_CHUNK, (block) => this.#checkedRows(id).add(block))
    for (const run of chunk.runs(0, PAGES_PER_CHUNK, base)) {
      if (run.state !== 'data') continue
      const end = Math.min(run.end, lastPage) // pages past the end are fsck-chunks' report
      for (let page = run.start; page < end; ) {
        const count = Math.min(end - page, capacity - this.#batched)
        this.#runs.push(page, count)
        this.#batched += count
        page += count
        if (this.#batched === capacity) this.#checkBatch(open, file)
      }
    }
    this.#checkBatch(open, file) // a chunk's problems before the next chunk's
  }

  #checkedRows(file: number): Set<number> {
    let blocks = this.checkedRows.get(file)
    if (!blocks) this.checkedRows.set(file, (blocks = new Set()))
    return blocks
  }

  /** Done with the file last checked. */
  finish(): void {
    if (this.#open?.fd !== undefined) fs.closeSync(this.#open.fd)
    this.#open = undefined
  }

  #openFile(id: number, file: FileToCheck): OpenFile | undefined {
    if (this.#open?.id === id) return this.#open
    this.finish()
    let fd: number | undefined
    try {
      fd = openStoreFile(file.upperPath, 'r') // never a FIFO, a symlink or someone else's file
    } catch (err) {
      // A missing or unsafe upper is reported by the kind's checks; its pages cannot be read.
      if (!['ENOENT', 'EUNSAFE'].includes(String((err as { code?: string }).code))) {
        const e = fromSystemError(err, `opening ${file.upperPath}`)
        this.#problem(e.code, e.message, { file: file.file })
      }
    }
    this.#open = { id, fd, sums: new PageSums(this.#db, id, file.name) }
    return this.#open
  }

  /** The batch's pages: read in one call, hashed in one, judged. */
  #checkBatch(open: OpenFile, file: FileToCheck): void {
    const runs = this.#runs.splice(0)
    const batched = this.#batched
    this.#batched = 0
    if (batched === 0) return
    const g = this.#geometry
    let k = 0
    for (let r = 0; r < runs.length; r += 2) for (let j = 0; j < runs[r + 1]!; j++) this.#positions[k++] = g.byteOf(runs[r]! + j)
    try {
      if (open.fd === undefined) throw new Error('no upper file')
      fs.preadPages(open.fd, this.#buffer, g.pageSize, this.#positions, batched)
    } catch {
      // Run by run, as one read each: what failed is reported for the run it is in.
      for (let r = 0; r < runs.length; r += 2) this.#checkPages(open, file, runs[r]!, runs[r + 1]!)
      return
    }
    pageSums(this.#buffer.subarray(0, g.byteOf(batched)), g.pageSize, this.#sums)
    k = 0
    for (let r = 0; r < runs.length; r += 2) {
      this.#judge(open, file, runs[r]!, runs[r + 1]!, k)
      k += runs[r + 1]!
    }
    this.#onProgress?.(g.byteOf(batched))
  }

  /** Pages [first, first + count) of the open file, all DATA, read as one run. */
  #checkPages(open: OpenFile, file: FileToCheck, first: number, count: number): void {
    const g = this.#geometry
    const bytes = count * g.pageSize
    let got = 0
    if (open.fd !== undefined) {
      try {
        while (got < bytes) {
          const n = fs.readSync(open.fd, this.#buffer, got, bytes - got, g.byteOf(first) + got)
          if (n === 0) break
          got += n
        }
      } catch (err) {
        const e = fromSystemError(err, `reading pages ${first}–${first + count - 1} of ${file.name}`)
        this.#problem(e.code === 'EIO' ? 'ECORRUPT' : e.code, e.message, { file: file.file, page: first, pages: count })
        this.#onProgress?.(bytes)
        return
      }
    }
    this.#buffer.fill(0, got, bytes) // past the upper's end: what a read would serve
    pageSums(this.#buffer.subarray(0, bytes), g.pageSize, this.#sums)
    this.#judge(open, file, first, count, 0)
    this.#onProgress?.(bytes)
  }

  /** Judge pages [first, first + count), whose sums are in #sums from `at` on. */
  #judge(open: OpenFile, file: FileToCheck, first: number, count: number, at: number): void {
    // The pages that match, up to the first that needs a closer look (most runs: all of them).
    let good = 0
    for (; good < count; good++) {
      const page = first + good
      if (this.#inFlux(open.id, page)) break
      let expected: bigint
      try {
        expected = open.sums.get(page)
      } catch {
        break
      }
      if (expected === 0n || this.#sums[at + good] !== expected) break
    }
    this.counts.verifiedPages += good
    if (good < count) this.#judgeSlowly(open, file, first + good, count - good, at + good)
  }

  /** #judge from a page that does not simply match: in flux, in a hole, without a sum, damaged. */
  #judgeSlowly(open: OpenFile, file: FileToCheck, first: number, count: number, at: number): void {
    let holeRun: { start: number; end: number } | undefined
    const endHoleRun = () => {
      if (!holeRun) return
      const { start, end } = holeRun
      const what = end - start === 1 ? `page ${start}` : `pages ${start}–${end - 1}`
      this.#problem('ECORRUPT', `${file.name}, ${what}: DATA with no space in the upper file (a hole: reads as zeros, not the bytes written)`, { file: file.file, page: start, pages: end - start })
      holeRun = undefined
    }
    for (let i = 0; i < count; i++) {
      const page = first + i
      if (this.#inFlux(open.id, page)) {
        this.counts.inFluxPages++
        continue
      }
      let expected: bigint
      try {
        expected = open.sums.get(page)
      } catch (err) {
        // A damaged row of sums: one problem for the rest of the run, not one per page.
        endHoleRun()
        this.#problem('ECORRUPT', (err as Error).message, { file: file.file, page, pages: count - i })
        break
      }
      const matches = expected !== 0n && this.#sums[at + i] === expected
      // Only a page that does not match is asked whether it lies in a hole (SEEK_DATA: one call;
      // asking for every page cost most of fsck's time on a store of scattered pages).
      if (!matches && open.fd !== undefined && this.#inHole(open.fd, page)) {
        // Bytes lost to a hole: said as such, pages of one hole in one problem.
        if (holeRun && holeRun.end === page) holeRun.end++
        else {
          endHoleRun()
          holeRun = { start: page, end: page + 1 }
        }
        continue
      }
      endHoleRun()
      // A hole whose sum is of zeros is consistent: a zeroed page whose punch a killed writer's
      // flux note recovered (its sum taken again, of the zeros the hole reads as).
      if (expected === 0n) {
        this.#problem('ECORRUPT', `${file.name}, page ${page}: a DATA page without a checksum`, { file: file.file, page })
      } else if (!matches) {
        this.#problem('ECORRUPT', `${file.name}, page ${page}: its bytes do not match its checksum (damaged in the upper)`, { file: file.file, page })
      } else this.counts.verifiedPages++
    }
    endHoleRun()
  }

  /** Whether page `page` of the upper has no space (its first byte lies in a hole). */
  #inHole(fd: number, page: number): boolean {
    const at = this.#geometry.byteOf(page)
    try {
      return fs.seekData(fd, at) !== at
    } catch {
      return false // the mismatch is reported as such
    }
  }
}
