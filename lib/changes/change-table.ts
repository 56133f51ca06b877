// The page_changes table: per paged file, epoch and chunk, the pages changed while that epoch was
// the newest (a roaring bitmap in its portable format). Writes union into what a row holds: a
// record only ever grows until its epoch is folded or dropped when a mark goes.
import type Database from 'better-sqlite3'
import roaring from 'roaring'
import { PagecowError } from '../errors.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { prepared } from '../store/database.js'

const { RoaringBitmap32 } = roaring
export type Bitmap = InstanceType<typeof RoaringBitmap32>

interface Row {
  file: number
  epoch: number
  chunk: number
  pages: unknown
  sum: unknown
}

export class ChangeTable {
  readonly #db: Database.Database
  readonly #where: string

  constructor(db: Database.Database, where: string) {
    this.#db = db
    this.#where = where
  }

  /** Add `pages` (chunk-local page indexes) to the record of (file, epoch, chunk). In a transaction. */
  merge(file: number, epoch: number, chunk: number, pages: Bitmap): void {
    const old = prepared<[number, number, number], Row>(this.#db, 'SELECT file, epoch, chunk, pages, sum FROM page_changes WHERE file = ? AND epoch = ? AND chunk = ?').get(file, epoch, chunk)
    const union = old ? RoaringBitmap32.or(this.#decode(old), pages) : pages
    this.#put(file, epoch, chunk, union)
  }

  /**
   * The chunks of `file` with pages changed in an epoch at or after `since`, in chunk order, each
   * the union of its epochs' records; only chunks in [firstChunk, lastChunk] (default: all). The
   * rows outside are passed over by the query, never decoded.
   */
  *since(file: number, since: number, firstChunk = 0, lastChunk = Number.MAX_SAFE_INTEGER): Generator<{ chunk: number; pages: Bitmap }> {
    const rows = prepared<[number, number, number, number], Row>(
      this.#db,
      'SELECT file, epoch, chunk, pages, sum FROM page_changes WHERE file = ? AND epoch >= ? AND chunk >= ? AND chunk <= ? ORDER BY chunk, epoch',
    ).iterate(file, since, firstChunk, lastChunk)
    let current: { chunk: number; pages: Bitmap } | undefined
    for (const row of rows) {
      const pages = this.#decode(row)
      if (current && current.chunk === row.chunk) current.pages.orInPlace(pages)
      else {
        if (current) yield current
        current = { chunk: row.chunk, pages }
      }
    }
    if (current) yield current
  }

  /** The files with records at or after `since`. */
  files(since: number): number[] {
    return prepared<[number], { file: number }>(this.#db, 'SELECT DISTINCT file FROM page_changes WHERE epoch >= ? ORDER BY file')
      .all(since)
      .map((r) => r.file)
  }

  /** Move every record of the epochs in [from, to) into epoch `into` (a mark between went away). */
  fold(from: number, to: number, into: number): void {
    const rows = prepared<[number, number], Row>(this.#db, 'SELECT file, epoch, chunk, pages, sum FROM page_changes WHERE epoch >= ? AND epoch < ?').all(from, to)
    for (const row of rows) this.merge(row.file, into, row.chunk, this.#decode(row))
    prepared(this.#db, 'DELETE FROM page_changes WHERE epoch >= ? AND epoch < ?').run(from, to)
  }

  /** Forget the records of the epochs before `epoch` (no mark needs them any more). */
  dropBefore(epoch: number): void {
    prepared(this.#db, 'DELETE FROM page_changes WHERE epoch < ?').run(epoch)
  }

  /** Forget the records of a file that is gone. */
  dropFile(file: number): void {
    prepared(this.#db, 'DELETE FROM page_changes WHERE file = ?').run(file)
  }

  #put(file: number, epoch: number, chunk: number, pages: Bitmap): void {
    pages.runOptimize()
    const bytes = pages.serialize('portable')
    prepared(
      this.#db,
      `INSERT INTO page_changes (file, epoch, chunk, pages, sum) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (file, epoch, chunk) DO UPDATE SET pages = excluded.pages, sum = excluded.sum`,
    ).run(file, epoch, chunk, bytes, rowSum.pageChanges(file, epoch, chunk, bytes))
  }

  #decode(row: Row): Bitmap {
    const { file, epoch, chunk, pages, sum } = row
    if (!Buffer.isBuffer(pages) || !sumMatches(sum, rowSum.pageChanges(file, epoch, chunk, pages))) {
      throw new PagecowError('ECORRUPT', `${this.#where}: the change record of file ${file}, chunk ${chunk} (epoch ${epoch}) does not match its checksum; run \`pagecow fsck\``)
    }
    try {
      return RoaringBitmap32.deserialize(pages, 'portable')
    } catch (err) {
      throw new PagecowError('ECORRUPT', `${this.#where}: the change record of file ${file}, chunk ${chunk} cannot be decoded; run \`pagecow fsck\``, { cause: err })
    }
  }
}
