// The page-map part of fsck, the same for both kinds: every chunk row decodes, belongs to a
// known paged file, and marks no page past that file's end nor DATA past its upper file's end
// (the bitmap must never point at bytes the upper does not hold).
import type Database from 'better-sqlite3'
import { firstPageOfChunk, PAGES_PER_CHUNK, type Geometry } from '../geometry.js'
import { Chunk } from '../page/chunk.js'
import type { PageChunksRow } from '../page/chunk-table.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import type { ReportProblem } from './fsck-runner.js'

/** What fsck knows of one paged file. */
export interface CheckedFile {
  /** How messages name it: "the image", "paged file 7". */
  name: string
  /** How --json names it: "image", or the file's path in the tree. */
  file: string
  /** Logical size in bytes. */
  size: number
  /** Size of its upper data file in bytes. */
  upperSize: number
}


/** Rows read at a time: the page check between batches may query the database (one statement at a time). */
const BATCH_ROWS = 64

/**
 * Check every page_chunks row against `files` and its checksum; counts go into `checked`. Each
 * chunk that decodes is handed to `onChunk` (the page check), and the event loop gets a turn
 * between batches (a progress bar draws).
 */
export async function checkChunks(
  db: Database.Database,
  geometry: Geometry,
  files: ReadonlyMap<number, CheckedFile>,
  checked: { chunks: number; dataPages: number; zeroPages: number },
  problem: ReportProblem,
  onChunk?: (file: number, index: number, chunk: Chunk) => void,
): Promise<void> {
  const batch = db.prepare(
    `SELECT file, chunk, data, zero, data_count, zero_count, sum FROM page_chunks
     WHERE (file, chunk) > (?, ?) ORDER BY file, chunk LIMIT ${BATCH_ROWS}`,
  )
  let after: [number, number] = [-Infinity, -Infinity]
  for (;;) {
    const rows = batch.all(...after) as PageChunksRow[]
    if (rows.length === 0) return
    for (const row of rows) checkRow(row, geometry, files, checked, problem, onChunk)
    const last = rows.at(-1)!
    after = [last.file, last.chunk]
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function checkRow(
  row: PageChunksRow,
  geometry: Geometry,
  files: ReadonlyMap<number, CheckedFile>,
  checked: { chunks: number; dataPages: number; zeroPages: number },
  problem: ReportProblem,
  onChunk: ((file: number, index: number, chunk: Chunk) => void) | undefined,
): void {
  checked.chunks++
  const file = files.get(row.file)
  if (!file) {
    problem('ECORRUPT', `chunk ${row.chunk} belongs to unknown paged file ${row.file}`)
    return
  }
  const place = { file: file.file }
  if (!Number.isSafeInteger(row.chunk) || row.chunk < 0) {
    problem('ECORRUPT', `${file.name}: a page map row has a damaged chunk index ${JSON.stringify(row.chunk)}`, place)
    return
  }
  const base = firstPageOfChunk(row.chunk)
  const pages = { file: file.file, page: base, pages: PAGES_PER_CHUNK }
  if (!Buffer.isBuffer(row.data) || !Buffer.isBuffer(row.zero) || !sumMatches(row.sum, rowSum.pageChunks(row.file, row.chunk, row.data, row.zero, row.data_count, row.zero_count))) {
    problem('ECORRUPT', `${file.name}, chunk ${row.chunk}: the page map row does not match its checksum (pages ${base}–${base + PAGES_PER_CHUNK - 1} cannot be trusted)`, pages)
    return
  }
  let chunk: Chunk
  try {
    chunk = Chunk.decode({ data: row.data, zero: row.zero, dataCount: row.data_count, zeroCount: row.zero_count }, `${file.name}, chunk ${row.chunk}`)
  } catch (err) {
    problem('ECORRUPT', (err as Error).message, pages)
    return
  }
  checked.dataPages += chunk.dataCount
  checked.zeroPages += chunk.zeroCount
  const pastEnd = localFrom(geometry.pagesFor(file.size), base)
  if (chunk.count(pastEnd, PAGES_PER_CHUNK, 'data') + chunk.count(pastEnd, PAGES_PER_CHUNK, 'zero') > 0) {
    problem('ECORRUPT', `${file.name}, chunk ${row.chunk}: pages marked past the end of the file (${file.size} bytes)`, pages)
  }
  if (chunk.count(localFrom(geometry.pageOf(file.upperSize), base), PAGES_PER_CHUNK, 'data') > 0) {
    problem('ECORRUPT', `${file.name}, chunk ${row.chunk}: DATA pages past the end of its upper file (${file.upperSize} bytes)`, pages)
  }
  onChunk?.(row.file, row.chunk, chunk)
}

/** Index within the chunk starting at `base` of global page `page`, clamped to the chunk. */
function localFrom(page: number, base: number): number {
  return Math.min(PAGES_PER_CHUNK, Math.max(0, page - base))
}
