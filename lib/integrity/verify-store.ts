// `pagecow verify`: recheck a store page by page without changing it. A bound lower's every page
// against its recorded sum (an unbound one by its fingerprint only), every DATA page of the upper
// against its checksum, and every copy-up base against the lower page it was taken from.
import { basename, resolve } from 'node:path'
import type Database from 'better-sqlite3'
import { z } from 'zod'
import { fromSystemError, parseWith, type ErrorCode } from '../errors.js'
import { Geometry } from '../geometry.js'
import { nameFromBytes } from '../name-bytes.js'
import { storeKind } from '../open-store.js'
import { ChunkTable } from '../page/chunk-table.js'
import { PageMap } from '../page/page-map.js'
import { UpperFile } from '../page/upper-file.js'
import { isStoreLower, lowerPlace, readFileRecord, readStoreMeta, type StoreMeta } from '../store/meta.js'
import { StoreCore } from '../store/store-core.js'
import type { LowerFile } from '../tree/lower-tree.js'
import type { LowerProgress } from './bind-lower.js'
import { CopyupBases } from './copyup-bases.js'
import { pageSum, pageSums } from './hash.js'
import { lowerObjects, type LowerObjectRef } from './lower-objects.js'
import { lowerPageSums } from './lower-page-sums.js'
import { IMAGE_LOWER_KEY, LowerSums } from './lower-sums.js'
import { PageSums } from './page-sums.js'
import { upperPathOf } from './upper-path.js'

/** Problems listed in a report; past this many only the count grows. */
const MAX_LISTED = 1000

/** `verifyStore(store, { onProgress })`. */
export const verifyOptionsSchema = z.strictObject({
  onProgress: z.custom<(progress: LowerProgress) => void>((v) => typeof v === 'function', 'onProgress must be a function').optional(),
})
export type VerifyOptions = z.input<typeof verifyOptionsSchema>

/** One changed page or object. */
export interface VerifyProblem {
  /** ESTALE: the lower changed (drift); ECORRUPT: the upper's copy is damaged. */
  code: Extract<ErrorCode, 'ESTALE' | 'ECORRUPT'>
  /**
   * lower: a lower page differs from its recorded sum (or a lower file appeared, went or changed
   * size); fingerprint: the lower's fingerprint (size, mtime, samples) differs; upper: a DATA page
   * differs from its checksum; base: the lower page a copied-up page was built on changed.
   */
  what: 'lower' | 'fingerprint' | 'upper' | 'base'
  /** The file: a lower path, "the image", or "paged file N" (with its lower path if it has one). */
  file: string
  /** The page, where one is meant. */
  page?: number
  message: string
}

export interface VerifyReport {
  path: string
  kind: 'image' | 'tree'
  /** Whether the lower is bound (every lower page checked); if not, only its fingerprint was. */
  bound: boolean
  clean: boolean
  checked: { lowerFiles: number; lowerPages: number; upperPages: number; bases: number }
  /** DATA pages being rewritten by a writer that is running (or was killed): not checkable now. */
  inFlux: number
  /** At most 1000; `problemCount` counts them all. */
  problems: VerifyProblem[]
  problemCount: number
}

interface PagedFileRef {
  id: number
  /** How problems name it. */
  name: string
  /** The lower file it was copied up from, if any. */
  lower?: { rel: string; ino: number } | undefined
}

/** Check the store in `dir` page by page (read-only: a writer may keep running). */
export async function verifyStore(dir: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const opts = parseWith(verifyOptionsSchema, options, 'verify')
  const path = resolve(dir)
  const kind = await storeKind(path)
  const closers: Array<() => void> = [] // the lower a tree walk opened
  const core = StoreCore.open(path, { readOnly: true, autoFlushMs: 0, files: kind === 'image' ? [basename(upperPathOf(path, 'image', 1))] : [] })
  try {
    const meta = readStoreMeta(core.db, path)
    const report: VerifyReport = {
      path,
      kind: meta.kind,
      bound: meta.lowerBinding !== undefined,
      clean: true,
      checked: { lowerFiles: 0, lowerPages: 0, upperPages: 0, bases: 0 },
      inFlux: 0,
      problems: [],
      problemCount: 0,
    }
    const problem = (p: VerifyProblem) => {
      report.clean = false
      report.problemCount++
      if (report.problems.length < MAX_LISTED) report.problems.push(p)
    }
    const g = new Geometry(meta.pageSize)
    const files = pagedFiles(core.db, meta)
    const dataPages = files.reduce((n, f) => n + readFileRecord(core.db, f.id, path).pages.data, 0)
    const bases = (core.db.prepare('SELECT count(*) AS n FROM copyup_base').get() as { n: number }).n
    const objects: LowerObjectRef[] = []
    try {
      for await (const o of lowerObjects(meta, closers, path)) objects.push(o)
    } catch (err) {
      const e = fromSystemError(err, `reading the lower ${lowerPlace(meta)}`)
      problem({ code: 'ESTALE', what: 'fingerprint', file: lowerPlace(meta), message: e.message })
    }
    const totalBytes = (report.bound ? objects.reduce((n, o) => n + o.size, 0) : 0) + (dataPages + bases) * g.pageSize
    let doneBytes = 0
    const progress = (n: number) => {
      doneBytes += n
      opts.onProgress?.({ doneBytes, totalBytes })
    }
    if (meta.kind === 'image') await checkFingerprint(meta, problem, path)
    if (report.bound) checkLower(core.db, meta, objects, g, report, problem, progress)
    checkUpper(core, meta, files, g, report, problem, progress)
    await checkBases(core.db, meta, files, objects, g, report, problem, progress)
    return report
  } finally {
    core.abandon()
    for (const close of closers) close()
  }
}

/** The paged files of the store: the image, or each tree file with upper data. */
function pagedFiles(db: Database.Database, meta: StoreMeta): PagedFileRef[] {
  if (meta.kind === 'image') return [{ id: 1, name: 'the image' }]
  const rows = db.prepare('SELECT f.id AS id, i.ino AS ino, i.origin AS origin FROM files f LEFT JOIN inodes i ON i.file = f.id ORDER BY f.id').all() as Array<{ id: number; ino: number | null; origin: Buffer | null }>
  const seen = new Set<number>()
  const out: PagedFileRef[] = []
  for (const r of rows) {
    if (seen.has(r.id)) continue
    seen.add(r.id)
    const rel = r.origin ? nameFromBytes(r.origin) : undefined
    out.push({ id: r.id, name: rel === undefined ? `paged file ${r.id}` : `paged file ${r.id} (${lowerPlace(meta)}/${rel})`, lower: rel === undefined || r.ino === null ? undefined : { rel, ino: r.ino } })
  }
  return out
}

async function checkFingerprint(meta: StoreMeta & { kind: 'image' }, problem: (p: VerifyProblem) => void, path: string): Promise<void> {
  if (isStoreLower(meta.lower)) {
    // A base store: the chain opens only if every base is the one recorded, unchanged.
    const { ImageStore } = await import('../image/image-store.js')
    try {
      await (await ImageStore.open(path, { readOnly: true })).close()
    } catch (err) {
      const e = fromSystemError(err, `opening the chain under ${path}`)
      problem({ code: 'ESTALE', what: 'fingerprint', file: meta.lower.path, message: e.message })
    }
    return
  }
  const lower = meta.lower
  const { LowerImage } = await import('../image/lower-image.js')
  const { locateRawLower } = await import('../image/locate-lower.js')
  const lowerPath = locateRawLower(path, lower)
  const { describeChange, fingerprint } = await import('../image/fingerprint.js')
  let image
  try {
    image = LowerImage.open(lowerPath)
  } catch {
    return // reported with the objects
  }
  try {
    const change = describeChange(lower.fingerprint, fingerprint(image))
    if (change) problem({ code: 'ESTALE', what: 'fingerprint', file: lowerPath, message: `the lower image ${lowerPath} changed since the store was created (${change})` })
  } finally {
    image.close()
  }
}

/** Every page of every lower object against lower_sums; objects recorded but gone are reported too. */
function checkLower(db: Database.Database, meta: StoreMeta, objects: LowerObjectRef[], g: Geometry, report: VerifyReport, problem: (p: VerifyProblem) => void, progress: (n: number) => void): void {
  const seen = new Set<number>()
  for (const o of objects) {
    seen.add(o.key)
    report.checked.lowerFiles++
    const sums = new LowerSums(db, o.key, o.where)
    if (!sums.recorded) {
      problem({ code: 'ESTALE', what: 'lower', file: o.path, message: `${o.where} has no recorded page sums: it was added to or replaced in the lower since they were recorded` })
      progress(o.size)
      continue
    }
    let lower: LowerFile
    try {
      lower = o.open()
    } catch (err) {
      problem({ code: 'ESTALE', what: 'lower', file: o.path, message: fromSystemError(err, `opening ${o.where}`).message })
      progress(o.size)
      continue
    }
    try {
      let pages = 0
      for (const [page, sum] of lowerPageSums(lower, g.pageSize, progress)) {
        pages++
        report.checked.lowerPages++
        if (sums.get(page) !== sum) {
          const end = Math.min(g.byteOf(page + 1), lower.size) - 1
          problem({ code: 'ESTALE', what: 'lower', file: o.path, page, message: `${o.where} changed at page ${page} (bytes ${g.byteOf(page)}–${end})` })
        }
      }
      if (!sums.hasPages(pages)) problem({ code: 'ESTALE', what: 'lower', file: o.path, message: `${o.where} changed size since its pages were recorded (now ${lower.size} bytes)` })
    } finally {
      lower.close()
    }
  }
  const keys = db.prepare('SELECT DISTINCT file FROM lower_sums').pluck().all() as number[]
  for (const key of keys) {
    if (seen.has(key)) continue
    const file = meta.kind === 'image' && key === IMAGE_LOWER_KEY ? meta.lower.path : `inode ${key}`
    problem({ code: 'ESTALE', what: 'lower', file, message: `the lower file with inode ${key} whose pages were recorded is gone from the lower (removed, or replaced by another inode)` })
  }
}

/** Every DATA page of every paged file against its checksum; pages noted as being rewritten are counted apart. */
function checkUpper(core: StoreCore, meta: StoreMeta, files: PagedFileRef[], g: Geometry, report: VerifyReport, problem: (p: VerifyProblem) => void, progress: (n: number) => void): void {
  const pagesRead = Buffer.allocUnsafe(Math.max(g.pageSize, 1024 * 1024))
  const got = new BigUint64Array(pagesRead.length / g.pageSize)
  for (const f of files) {
    const record = readFileRecord(core.db, f.id, core.path)
    const chunks = new ChunkTable(core.db, f.id)
    const map = new PageMap(chunks, chunks.checkTotals(record.pages), `${core.path}, file ${f.id}`)
    const sums = new PageSums(core.db, f.id, `${core.path}, ${f.name}`)
    let upper: UpperFile
    try {
      upper = UpperFile.open(upperPathOf(core.path, meta.kind, f.id), { readOnly: true })
    } catch (err) {
      problem({ code: 'ECORRUPT', what: 'upper', file: f.name, message: fromSystemError(err, `opening the upper of ${f.name}`).message })
      continue
    }
    try {
      for (const run of map.runs(0, g.pagesFor(record.state.size))) {
        if (run.state !== 'data') continue
        // A buffer of the run at a time, hashed in one call.
        for (let first = run.start; first < run.end; ) {
          const n = Math.min(run.end - first, got.length)
          upper.readInto(pagesRead, 0, g.byteOf(n), g.byteOf(first))
          pageSums(pagesRead.subarray(0, g.byteOf(n)), g.pageSize, got)
          for (let i = 0; i < n; i++) {
            const p = first + i
            report.checked.upperPages++
            progress(g.pageSize)
            if (got[i] === sums.get(p)) continue
            if (core.flux.isNoted(f.id, p)) {
              report.inFlux++
              continue
            }
            problem({ code: 'ECORRUPT', what: 'upper', file: f.name, page: p, message: `${f.name}, page ${p}: the upper's copy does not match its checksum` })
          }
          first += n
        }
      }
    } finally {
      upper.close()
    }
  }
}

/** Every copy-up base against the lower page it was taken from (drift under a copied page). */
async function checkBases(db: Database.Database, meta: StoreMeta, files: PagedFileRef[], objects: LowerObjectRef[], g: Geometry, report: VerifyReport, problem: (p: VerifyProblem) => void, progress: (n: number) => void): Promise<void> {
  // Over a base store the bases need no check: the base is sealed, and opening the chain refuses it if it changed.
  if (meta.kind === 'image' && isStoreLower(meta.lower)) return
  const byKey = new Map(objects.map((o) => [o.key, o]))
  const buffer = Buffer.allocUnsafe(g.pageSize)
  for (const f of files) {
    const key = meta.kind === 'image' ? IMAGE_LOWER_KEY : f.lower?.ino
    const object = key === undefined ? undefined : byKey.get(key)
    let lower: LowerFile | undefined
    for (const { page, base } of CopyupBases.list(db, f.id, f.name)) {
      report.checked.bases++
      progress(g.pageSize)
      const where = object?.where ?? `the lower of ${f.name}`
      try {
        lower ??= object?.open()
      } catch {
        lower = undefined
      }
      if (!lower) {
        problem({ code: 'ESTALE', what: 'base', file: f.name, page, message: `${f.name}, page ${page}: the lower file it was copied up from is gone` })
        continue
      }
      const start = g.byteOf(page)
      const length = Math.max(0, Math.min(g.pageSize, lower.size - start))
      const n = lower.readInto(buffer, 0, length, start)
      if (pageSum(buffer.subarray(0, n)) !== base) {
        problem({ code: 'ESTALE', what: 'base', file: f.name, page, message: `${f.name}, page ${page}: ${where} changed under this copied-up page since it was copied (its lower page is not the one it was built on)` })
      }
    }
    lower?.close()
  }
}
