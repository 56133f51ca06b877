// The data part of fsck, the same for both kinds: every DATA page read back from its upper file
// and hashed against the checksum committed with it, and every DATA page backed by space the upper
// file really holds (a hole punched under a DATA page reads as zeros: not the page written).
// Pages the writer noted as being rewritten in place (STORE/flux) are not judged: their sums are
// taken again at the next writable open.
import * as fs from '../fs.js'
import { openStoreFile } from './store-file.js'
import { fromSystemError } from '../errors.js'
import { firstPageOfChunk, PAGES_PER_CHUNK, type Geometry } from '../geometry.js'
import { pageSum } from '../integrity/hash.js'
import { PageSums } from '../integrity/page-sums.js'
import type { Chunk } from '../page/chunk.js'
import type Database from 'better-sqlite3'
import type { ReportProblem } from './fsck-runner.js'

/** Bytes read from an upper file at a time (whole pages). */
const READ_BYTES = 1024 * 1024

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
  readonly #db: Database.Database
  readonly #geometry: Geometry
  readonly #problem: ReportProblem
  readonly #inFlux: (file: number, page: number) => boolean
  readonly #onProgress: ((bytes: number) => void) | undefined
  readonly #buffer: Buffer
  #open: { id: number; fd: number | undefined; sums: PageSums } | undefined

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
  }

  /** Check the DATA pages of chunk `index` of paged file `id`. */
  checkChunk(id: number, file: FileToCheck, index: number, chunk: Chunk): void {
    const g = this.#geometry
    const open = this.#openFile(id, file)
    if (!open) return
    const base = firstPageOfChunk(index)
    const lastPage = g.pagesFor(file.size)
    for (const run of chunk.runs(0, PAGES_PER_CHUNK, base)) {
      if (run.state !== 'data') continue
      const end = Math.min(run.end, lastPage) // pages past the end are fsck-chunks' report
      for (let page = run.start; page < end; ) {
        const count = Math.min(end - page, Math.floor(this.#buffer.length / g.pageSize))
        this.#checkPages(open, file, page, count)
        page += count
      }
    }
  }

  /** Done with the file last checked. */
  finish(): void {
    if (this.#open?.fd !== undefined) fs.closeSync(this.#open.fd)
    this.#open = undefined
  }

  #openFile(id: number, file: FileToCheck): { id: number; fd: number | undefined; sums: PageSums } | undefined {
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

  /** Pages [first, first + count) of the open file, all DATA. */
  #checkPages(open: { id: number; fd: number | undefined; sums: PageSums }, file: FileToCheck, first: number, count: number): void {
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
      const matches = expected !== 0n && pageSum(this.#buffer.subarray(i * g.pageSize, (i + 1) * g.pageSize)) === expected
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
    this.#onProgress?.(bytes)
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
