// The frame every kind's fsck shares: open the database read-only, run the checks, never throw
// for what it finds (problems are reported), and mark the report clean only when nothing was.
import type Database from 'better-sqlite3'
import { fromSystemError, type ErrorCode } from '../errors.js'
import { DATABASE_FILE, openDatabase } from './database.js'
import { checkStoreFiles, MOUNT_LOG_FILE } from './store-file.js'
import { LOCK_FILE } from './writer-lock.js'

export type ReportProblem = (code: ErrorCode, message: string) => void

interface Report {
  clean: boolean
  problems: Array<{ code: ErrorCode; message: string }>
}

/** Run `check` over the store at `path` (which exists); every failure becomes a problem. */
export function runFsck<R extends Report>(path: string, report: R, check: (db: Database.Database, problem: ReportProblem) => void): R {
  const problem: ReportProblem = (code, message) => report.problems.push({ code, message })
  for (const name of [LOCK_FILE, MOUNT_LOG_FILE]) {
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
      check(db, problem)
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
