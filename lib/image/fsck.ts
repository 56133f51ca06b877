// `pagecow fsck`: check a store without changing it and report every problem found.
import { resolve } from 'node:path'
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError, type ErrorCode } from '../errors.js'
import { Geometry, PAGES_PER_CHUNK, firstPageOfChunk } from '../geometry.js'
import { Chunk } from '../page/chunk.js'
import { DATABASE_FILE } from '../store/database.js'
import { runFsck, type ReportProblem } from '../store/fsck-runner.js'
import { readFileState, readMeta } from '../store/meta.js'
import { describeChange, fingerprint } from './fingerprint.js'
import { UPPER_FILE } from './image-store.js'
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

interface ChunkRow {
  file: number
  chunk: number
  data: Buffer
  zero: Buffer
  data_count: number
  zero_count: number
}

/** Check the store in `dir` (either kind) read-only. Throws only when there is no store there at all. */
export async function checkStore(dir: string): Promise<FsckReport> {
  const path = resolve(dir)
  if (!fs.existsSync(`${path}/${DATABASE_FILE}`)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
  // A tree store has its own checks; a store whose kind cannot be read is checked (and reported) as an image.
  if ((await storeKind(path).catch(() => 'image')) === 'tree') return checkTreeStore(path)
  const report: FsckReport = { path, clean: true, problems: [], checked: { chunks: 0, dataPages: 0, zeroPages: 0 } }
  return runFsck(path, report, (db, problem) => checkDatabase(db, path, report, problem))
}

function checkDatabase(db: Database.Database, path: string, report: FsckReport, problem: ReportProblem): void {
  const meta = readMeta(db, path)
  const state = readFileState(db, 1, path)
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
    upperSize = fs.statSync(`${path}/${UPPER_FILE}`).size
  } catch (err) {
    problem('ECORRUPT', `the upper data file is missing: ${fromSystemError(err, 'upper').message}`)
  }

  const endPage = geometry.pagesFor(state.size)
  const upperPages = geometry.pageOf(upperSize)
  const rows = db.prepare('SELECT file, chunk, data, zero, data_count, zero_count FROM page_chunks ORDER BY file, chunk').iterate() as IterableIterator<ChunkRow>
  for (const row of rows) {
    report.checked.chunks++
    if (row.file !== 1) {
      problem('ECORRUPT', `chunk ${row.chunk} belongs to unknown file ${row.file}`)
      continue
    }
    if (!Number.isSafeInteger(row.chunk) || row.chunk < 0) {
      problem('ECORRUPT', `a page map row has a damaged chunk index ${JSON.stringify(row.chunk)}`)
      continue
    }
    let chunk: Chunk
    try {
      chunk = Chunk.decode({ data: row.data, zero: row.zero, dataCount: row.data_count, zeroCount: row.zero_count }, `chunk ${row.chunk}`)
    } catch (err) {
      problem('ECORRUPT', (err as Error).message)
      continue
    }
    report.checked.dataPages += chunk.dataCount
    report.checked.zeroPages += chunk.zeroCount
    const base = firstPageOfChunk(row.chunk)
    const pastEnd = localFrom(endPage, base)
    if (chunk.count(pastEnd, PAGES_PER_CHUNK, 'data') + chunk.count(pastEnd, PAGES_PER_CHUNK, 'zero') > 0) {
      problem('ECORRUPT', `chunk ${row.chunk} marks pages past the end of the image (${state.size} bytes)`)
    }
    const pastUpper = localFrom(upperPages, base)
    if (chunk.count(pastUpper, PAGES_PER_CHUNK, 'data') > 0) {
      problem('ECORRUPT', `chunk ${row.chunk} marks DATA pages past the end of the upper file (${upperSize} bytes)`)
    }
  }
}

/** Index within the chunk starting at `base` of global page `page`, clamped to the chunk. */
function localFrom(page: number, base: number): number {
  return Math.min(PAGES_PER_CHUNK, Math.max(0, page - base))
}
