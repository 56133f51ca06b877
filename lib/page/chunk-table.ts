// The page_chunks table of one file: where a PageMap's chunks persist.
import type Database from 'better-sqlite3'
import type { ChunkRecord } from './chunk.js'
import type { ChunkSnapshot, ChunkSource, PageCounts } from './page-map.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { prepared } from '../store/database.js'

/** A page_chunks row as SQLite returns it (cells unchecked: whoever reads it checks them). */
export interface PageChunksRow {
  file: number
  chunk: number
  data: Buffer
  zero: Buffer
  data_count: number
  zero_count: number
  sum: unknown
}

type ChunkRow = Omit<PageChunksRow, 'file' | 'chunk'>

export class ChunkTable implements ChunkSource {
  readonly #file: number
  readonly #load: Database.Statement<[number, number], ChunkRow>
  readonly #next: Database.Statement<[number, number], { chunk: number }>
  readonly #totals: Database.Statement<[number], { data: number; zero: number; damaged: number }>
  readonly #upsert: Database.Statement<[number, number, Uint8Array, Uint8Array, number, number, Buffer]> | undefined
  readonly #delete: Database.Statement<[number, number]> | undefined

  constructor(db: Database.Database, file: number) {
    this.#file = file
    this.#load = prepared(db, 'SELECT data, zero, data_count, zero_count, sum FROM page_chunks WHERE file = ? AND chunk = ?')
    this.#next = prepared(db, 'SELECT chunk FROM page_chunks WHERE file = ? AND chunk >= ? ORDER BY chunk LIMIT 1')
    // The totals visit every row of the file anyway: check the column types on the way.
    this.#totals = prepared(db, 
      `SELECT coalesce(sum(data_count), 0) AS data, coalesce(sum(zero_count), 0) AS zero,
         coalesce(sum(typeof(chunk) != 'integer' OR chunk < 0 OR typeof(data) != 'blob' OR typeof(zero) != 'blob'
           OR typeof(data_count) != 'integer' OR typeof(zero_count) != 'integer'), 0) AS damaged
       FROM page_chunks WHERE file = ?`,
    )
    if (!db.readonly) {
      this.#upsert = prepared(db, 
        `INSERT INTO page_chunks (file, chunk, data, zero, data_count, zero_count, sum) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (file, chunk) DO UPDATE SET data = excluded.data, zero = excluded.zero,
           data_count = excluded.data_count, zero_count = excluded.zero_count, sum = excluded.sum`,
      )
      this.#delete = prepared(db, 'DELETE FROM page_chunks WHERE file = ? AND chunk = ?')
    }
  }

  load(chunk: number): ChunkRecord | undefined {
    let row: ChunkRow | undefined
    try {
      row = this.#load.get(this.#file, chunk)
    } catch (err) {
      throw fromSystemError(err, `page map of file ${this.#file}, chunk ${chunk}`)
    }
    if (!row) return undefined
    const { data, zero, data_count, zero_count, sum } = row
    if (!Buffer.isBuffer(data) || !Buffer.isBuffer(zero) || !isCount(data_count) || !isCount(zero_count) || !sumMatches(sum, rowSum.pageChunks(this.#file, chunk, data, zero, data_count, zero_count))) {
      throw new PagecowError('ECORRUPT', `page map of file ${this.#file}, chunk ${chunk}: the row does not match its checksum; run \`pagecow fsck\``)
    }
    return { data, zero, dataCount: data_count, zeroCount: zero_count }
  }

  /**
   * Check that the rows add up to the page totals the file's record holds: a row removed, added or
   * changed together with its checksum is caught here, at open.
   */
  checkTotals(expected: PageCounts): PageCounts {
    const totals = this.totals()
    if (totals.data !== expected.data || totals.zero !== expected.zero) {
      throw new PagecowError(
        'ECORRUPT',
        `page map of file ${this.#file}: its rows hold ${totals.data} DATA and ${totals.zero} ZERO pages, its record ${expected.data} and ${expected.zero} (rows removed, added or changed); run \`pagecow fsck\``,
      )
    }
    return totals
  }

  nextPersisted(chunk: number): number | undefined {
    const next = this.#next.get(this.#file, chunk)?.chunk
    // A damaged row (say a chunk index turned into text) would send map queries round in circles.
    if (next !== undefined && !(Number.isSafeInteger(next) && next >= chunk)) {
      throw new PagecowError('ECORRUPT', `page map of file ${this.#file}: chunk index ${JSON.stringify(next)} is damaged; run \`pagecow fsck\``)
    }
    return next
  }

  totals(): PageCounts {
    const { data, zero, damaged } = this.#totals.get(this.#file)!
    if (damaged !== 0 || !isCount(data) || !isCount(zero)) {
      throw new PagecowError('ECORRUPT', `page map of file ${this.#file}: ${damaged || 'some'} rows are damaged; run \`pagecow fsck\``)
    }
    return { data, zero }
  }

  /** Write a snapshot's chunks; call inside the flush transaction. */
  save(snapshot: ChunkSnapshot[]): void {
    for (const s of snapshot) {
      if (s.dataCount === 0 && s.zeroCount === 0) this.#delete!.run(this.#file, s.chunk)
      else this.#upsert!.run(this.#file, s.chunk, s.data, s.zero, s.dataCount, s.zeroCount, rowSum.pageChunks(this.#file, s.chunk, s.data, s.zero, s.dataCount, s.zeroCount))
    }
  }
}

function isCount(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0
}
