// `pagecow fsck`: check a store without changing it and report every problem found.
import { resolve } from 'node:path'
import type Database from 'better-sqlite3'
import { fromSystemError, PagecowError, type ErrorCode } from '../errors.js'
import { Geometry } from '../geometry.js'
import { hasDatabase } from '../store/database.js'
import { checkStoreFile, ownerOfDirectory } from '../store/store-file.js'
import { checkPagedFiles, emptyDataCounts, parseFsckOptions, type DataCounts, type DataFile, type FsckOptions } from '../store/fsck-data.js'
import { runFsck, type ProblemPlace, type ReportProblem } from '../store/fsck-runner.js'
import { isStoreLower, readFileRecord, readMeta } from '../store/meta.js'
import { describeChange, fingerprint } from './fingerprint.js'
import { IMAGE_FILE_ID, ImageStore, UPPER_FILE } from './image-store.js'
import { LowerImage } from './lower-image.js'
import { locateRawLower } from './locate-lower.js'
import { storeKind } from '../open-store.js'
import { checkTreeStore } from '../tree/fsck.js'

/** One problem fsck found: a stable code, a message, and where (file and pages) when it is about data. */
export interface FsckProblem extends ProblemPlace {
  code: ErrorCode
  message: string
}

export interface FsckReport {
  path: string
  clean: boolean
  /** Whether the bytes of DATA pages were checked (false with `quick`). */
  dataChecked: boolean
  problems: FsckProblem[]
  checked: DataCounts
}

/**
 * Check the store in `dir` (either kind) read-only: records and their checksums, the generation,
 * and (unless `quick`) every DATA page against its checksum. Throws only when there is no store
 * there at all, or for bad options.
 */
export async function checkStore(dir: string, options: FsckOptions = {}): Promise<FsckReport> {
  const opts = parseFsckOptions(options)
  const path = resolve(dir)
  if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
  // A tree store has its own checks; a store whose kind cannot be read is checked (and reported) as an image.
  if ((await storeKind(path).catch(() => 'image')) === 'tree') return checkTreeStore(path, opts)
  const report: FsckReport = { path, clean: true, dataChecked: !opts.quick, problems: [], checked: emptyDataCounts() }
  return runFsck(path, report, (db, problem) => checkDatabase(db, path, report, problem, opts))
}

async function checkDatabase(db: Database.Database, path: string, report: FsckReport, problem: ReportProblem, options: FsckOptions): Promise<void> {
  const meta = readMeta(db, path)
  const record = readFileRecord(db, IMAGE_FILE_ID, path)
  const state = record.state
  const geometry = new Geometry(meta.pageSize)

  const rawLower = meta.lower
  if (isStoreLower(rawLower)) {
    // A base store: the chain opens only if every base is there, the one recorded, unchanged.
    // Each layer's own records and pages are checked by fsck of that layer.
    try {
      await (await ImageStore.open(path, { readOnly: true })).close()
    } catch (err) {
      const e = fromSystemError(err, 'opening the chain of base stores')
      problem(e.code, e.message)
    }
  } else {
    try {
      const lowerPath = locateRawLower(path, rawLower)
      const lower = LowerImage.open(lowerPath)
      try {
        const change = describeChange(rawLower.fingerprint, fingerprint(lower))
        if (change) problem('ESTALE', `the lower image ${lowerPath} changed: ${change}`)
      } finally {
        lower.close()
      }
    } catch (err) {
      const e = fromSystemError(err, 'opening the lower')
      problem(e.code, e.message)
    }
  }

  let upperSize = 0
  try {
    const st = checkStoreFile(`${path}/${UPPER_FILE}`, ownerOfDirectory(path))
    if (st) upperSize = st.size
    else problem('ECORRUPT', `the upper data file ${path}/${UPPER_FILE} is missing`)
  } catch (err) {
    const e = fromSystemError(err, 'checking the upper')
    problem(e.code, e.message)
  }

  const image: DataFile = { name: 'the image', file: 'image', size: state.size, upperSize, upperPath: `${path}/${UPPER_FILE}`, pages: record.pages }
  await checkPagedFiles(db, path, geometry, new Map([[IMAGE_FILE_ID, image]]), report.checked, problem, options)
}
