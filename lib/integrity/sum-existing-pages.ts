// The upgrade to schema 40 (migrations/0040-integrity.sql): the DATA pages of a store made before
// checksums get theirs, read from the upper as it is at the upgrade. The upgrade runs at the first
// writable open, in the migration's transaction: from then on every DATA page is verified.
import type Database from 'better-sqlite3'
import { dirname } from 'node:path'
import { PagecowError } from '../errors.js'
import { Geometry, firstPageOfChunk, PAGES_PER_CHUNK } from '../geometry.js'
import { Chunk } from '../page/chunk.js'
import { UpperFile } from '../page/upper-file.js'
import { readStoreMeta } from '../store/meta.js'
import { pageSums } from './hash.js'
import { upperPathOf } from './upper-path.js'
import { PageSums } from './page-sums.js'
import type { PageChunksRow } from '../page/chunk-table.js'

/** Bytes of an upper read at a time. */
const READ_BYTES = 1024 * 1024

/** Sum every DATA page of the store whose database is at `dbPath`. Returns the pages summed. */
export function sumExistingPages(db: Database.Database, dbPath: string): number {
  const storePath = dirname(dbPath)
  if (!db.prepare("SELECT 1 FROM meta WHERE key = 'store'").get()) return 0 // a store being created: no pages yet
  const meta = readStoreMeta(db, storePath)
  const g = new Geometry(meta.pageSize)
  const upperOf = (file: number) => upperPathOf(storePath, meta.kind, file)
  const rows = db.prepare('SELECT file, chunk, data, zero, data_count, zero_count FROM page_chunks ORDER BY file, chunk').all() as PageChunksRow[]
  const pagesPerRead = Math.max(1, Math.floor(READ_BYTES / g.pageSize))
  const buffer = Buffer.alloc(g.byteOf(pagesPerRead))
  const sums = new BigUint64Array(pagesPerRead)
  let summed = 0
  let current: { file: number; sums: PageSums; upper: UpperFile } | undefined
  const finish = () => {
    if (!current) return
    current.sums.save(current.sums.snapshot())
    current.upper.close()
  }
  try {
    for (const row of rows) {
      if (current?.file !== row.file) {
        finish()
        current = { file: row.file, sums: new PageSums(db, row.file, `file ${row.file}`), upper: UpperFile.open(upperOf(row.file), { readOnly: true }) }
      }
      let chunk: Chunk
      try {
        chunk = Chunk.decode({ data: row.data, zero: row.zero, dataCount: row.data_count, zeroCount: row.zero_count }, `file ${row.file}, chunk ${row.chunk}`)
      } catch (err) {
        throw new PagecowError('ECORRUPT', `upgrading to checksums: ${(err as Error).message}`, { cause: err })
      }
      for (const run of chunk.runs(0, PAGES_PER_CHUNK, firstPageOfChunk(row.chunk))) {
        if (run.state !== 'data') continue
        // A run read a buffer at a time, not a page at a time: an upgrade reads every DATA page.
        for (let p = run.start; p < run.end; ) {
          const n = Math.min(run.end - p, pagesPerRead)
          const bytes = buffer.subarray(0, g.byteOf(n))
          current.upper.readInto(bytes, 0, bytes.length, g.byteOf(p)) // past the upper's end: zeros
          pageSums(bytes, g.pageSize, sums) // the run's sums in one call
          for (let i = 0; i < n; i++) current.sums.set(p + i, sums[i]!)
          summed += n
          p += n
        }
      }
    }
    finish()
  } catch (err) {
    current?.upper.close()
    throw err
  }
  return summed
}
