// `pagecow fsck`: check a store without changing it and report every problem found.
import { resolve } from 'node:path'
import type Database from 'better-sqlite3'
import { fromSystemError, PagecowError, type ErrorCode } from '../errors.js'
import { Geometry } from '../geometry.js'
import { hasDatabase } from '../store/database.js'
import { checkStoreFile, ownerOfDirectory } from '../store/store-file.js'
import { checkChunks } from '../store/fsck-chunks.js'
import { runFsck, type ReportProblem } from '../store/fsck-runner.js'
import { readFileState, readMeta } from '../store/meta.js'
import { describeChange, fingerprint } from './fingerprint.js'
import { IMAGE_FILE_ID, UPPER_FILE } from './image-store.js'
import { LowerImage } from './lower-image.js'
import { storeKind } from '../open-store.js'
import { checkTreeStore } from '../tree/fsck.js'

export interface FsckProblem {
  code: ErrorCode
  message: string
}

export interface FsckReport {
  path: string
  clean: boolean
  problems: FsckProblem[]
  checked: { chunks: number; dataPages: number; zeroPages: number }
}

/** Check the store in `dir` (either kind) read-only. Throws only when there is no store there at all. */
export async function checkStore(dir: string): Promise<FsckReport> {
  const path = resolve(dir)
  if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
  // A tree store has its own checks; a store whose kind cannot be read is checked (and reported) as an image.
  if ((await storeKind(path).catch(() => 'image')) === 'tree') return checkTreeStore(path)
  const report: FsckReport = { path, clean: true, problems: [], checked: { chunks: 0, dataPages: 0, zeroPages: 0 } }
  return runFsck(path, report, (db, problem) => checkDatabase(db, path, report, problem))
}

function checkDatabase(db: Database.Database, path: string, report: FsckReport, problem: ReportProblem): void {
  const meta = readMeta(db, path)
  const state = readFileState(db, IMAGE_FILE_ID, path)
  const geometry = new Geometry(meta.pageSize)

  try {
    const lower = LowerImage.open(meta.lower.path)
    try {
      const change = describeChange(meta.lower.fingerprint, fingerprint(lower))
      if (change) problem('ESTALE', `the lower image ${meta.lower.path} changed: ${change}`)
    } finally {
      lower.close()
    }
  } catch (err) {
    const e = fromSystemError(err, 'opening the lower')
    problem(e.code, e.message)
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

  checkChunks(db, geometry, new Map([[IMAGE_FILE_ID, { name: 'the image', size: state.size, upperSize }]]), report.checked, problem)
}
