// The page-map part of fsck, the same for both kinds: every chunk row decodes, belongs to a
// known paged file, and marks no page past that file's end nor DATA past its upper file's end
// (the bitmap must never point at bytes the upper does not hold).
import type Database from 'better-sqlite3'
import { firstPageOfChunk, PAGES_PER_CHUNK, type Geometry } from '../geometry.js'
import { Chunk } from '../page/chunk.js'
import type { ReportProblem } from './fsck-runner.js'

/** What fsck knows of one paged file. */
export interface CheckedFile {
  /** How messages name it: "the image", "paged file 7". */
  name: string
  /** Logical size in bytes. */
  size: number
  /** Size of its upper data file in bytes. */
  upperSize: number
}

interface ChunkRow {
  file: number
  chunk: number
  data: Buffer
  zero: Buffer
  data_count: number
  zero_count: number
}

/** Check every page_chunks row against `files`; counts go into `checked`. */
export function checkChunks(
  db: Database.Database,
  geometry: Geometry,
  files: ReadonlyMap<number, CheckedFile>,
  checked: { chunks: number; dataPages: number; zeroPages: number },
  problem: ReportProblem,
): void {
  const rows = db.prepare('SELECT file, chunk, data, zero, data_count, zero_count FROM page_chunks ORDER BY file, chunk').iterate() as IterableIterator<ChunkRow>
  for (const row of rows) {
    checked.chunks++
    const file = files.get(row.file)
    if (!file) {
      problem('ECORRUPT', `chunk ${row.chunk} belongs to unknown paged file ${row.file}`)
      continue
    }
    if (!Number.isSafeInteger(row.chunk) || row.chunk < 0) {
      problem('ECORRUPT', `${file.name}: a page map row has a damaged chunk index ${JSON.stringify(row.chunk)}`)
      continue
    }
    let chunk: Chunk
    try {
      chunk = Chunk.decode({ data: row.data, zero: row.zero, dataCount: row.data_count, zeroCount: row.zero_count }, `${file.name}, chunk ${row.chunk}`)
    } catch (err) {
      problem('ECORRUPT', (err as Error).message)
      continue
    }
    checked.dataPages += chunk.dataCount
    checked.zeroPages += chunk.zeroCount
    const base = firstPageOfChunk(row.chunk)
    const pastEnd = localFrom(geometry.pagesFor(file.size), base)
    if (chunk.count(pastEnd, PAGES_PER_CHUNK, 'data') + chunk.count(pastEnd, PAGES_PER_CHUNK, 'zero') > 0) {
      problem('ECORRUPT', `${file.name}, chunk ${row.chunk}: pages marked past the end of the file (${file.size} bytes)`)
    }
    if (chunk.count(localFrom(geometry.pageOf(file.upperSize), base), PAGES_PER_CHUNK, 'data') > 0) {
      problem('ECORRUPT', `${file.name}, chunk ${row.chunk}: DATA pages past the end of its upper file (${file.upperSize} bytes)`)
    }
  }
}

/** Index within the chunk starting at `base` of global page `page`, clamped to the chunk. */
function localFrom(page: number, base: number): number {
  return Math.min(PAGES_PER_CHUNK, Math.max(0, page - base))
}
