// The frame every kind's fsck shares: open the database read-only, run the checks, never throw
// for what it finds (problems are reported), and mark the report clean only when nothing was.
import type Database from 'better-sqlite3'
import { fromSystemError, type ErrorCode } from '../errors.js'
import { FLUX_FILE } from '../integrity/flux-log.js'
import { Generation, GENERATION_FILE } from '../integrity/generation.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { DATABASE_FILE, openDatabase } from './database.js'
import { checkStoreFiles, CONTROL_SOCKET_FILE, MOUNT_LOG_FILE } from './store-file.js'
import { LOCK_FILE } from './writer-lock.js'

/** Where a problem is: the file (its path in a tree, "image" for an image) and its pages. */
export interface ProblemPlace {
  file?: string
  /** The first page concerned. */
  page?: number
  /** How many pages from `page` (when more than one). */
  pages?: number
}

export type ReportProblem = (code: ErrorCode, message: string, place?: ProblemPlace) => void

interface Report {
  clean: boolean
  problems: Array<{ code: ErrorCode; message: string } & ProblemPlace>
}

/** Run `check` over the store at `path` (which exists); every failure becomes a problem. */
export async function runFsck<R extends Report>(path: string, report: R, check: (db: Database.Database, problem: ReportProblem) => void | Promise<void>): Promise<R> {
  const problem: ReportProblem = (code, message, place) => {
    const p: Report['problems'][number] = { code, message }
    if (place?.file !== undefined) p.file = place.file
    if (place?.page !== undefined) p.page = place.page
    if (place?.pages !== undefined && place.pages > 1) p.pages = place.pages
    report.problems.push(p)
  }
  for (const name of [LOCK_FILE, MOUNT_LOG_FILE, CONTROL_SOCKET_FILE, GENERATION_FILE, FLUX_FILE]) {
    try {
      checkStoreFiles(path, [name])
    } catch (err) {
      const e = fromSystemError(err, `checking ${name}`)
      problem(e.code, e.message)
    }
  }
  let db: Database.Database | undefined
  try {
    db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: true })
  } catch (err) {
    const e = fromSystemError(err, 'opening the database')
    problem(e.code, e.message)
  }
  if (db) {
    try {
      for (const row of db.pragma('integrity_check') as Array<{ integrity_check: string }>) {
        if (row.integrity_check !== 'ok') problem('ECORRUPT', `database: ${row.integrity_check}`)
      }
      checkGeneration(db, path, problem)
      checkMetaRows(db, problem)
      await check(db, problem)
    } catch (err) {
      const e = fromSystemError(err, 'checking the store')
      problem(e.code === 'EIO' ? 'ECORRUPT' : e.code, e.message)
    } finally {
      db.close()
    }
  }
  report.clean = report.problems.length === 0
  return report
}

/** The database has every commit the store made (see Generation). */
function checkGeneration(db: Database.Database, path: string, problem: ReportProblem): void {
  try {
    Generation.open(db, path, false).close()
  } catch (err) {
    const e = fromSystemError(err, 'checking the generation')
    problem(e.code, e.message)
  }
}

/** Every row of the meta table matches its checksum (the store record's content is the kind's to check). */
function checkMetaRows(db: Database.Database, problem: ReportProblem): void {
  for (const row of db.prepare('SELECT key, value, sum FROM meta ORDER BY key').all() as Array<{ key: unknown; value: unknown; sum: unknown }>) {
    if (typeof row.key !== 'string' || typeof row.value !== 'string' || !sumMatches(row.sum, rowSum.meta(row.key, row.value))) {
      problem('ECORRUPT', `the meta record ${JSON.stringify(String(row.key))} does not match its checksum`)
    }
  }
}
