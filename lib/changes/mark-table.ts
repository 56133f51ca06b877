// The marks table: the named moments of a store (SPEC §7), each with its epoch. Rows carry their
// own sum like every row, and are counted (row_counts), so a mark edited or lost is caught.
import type Database from 'better-sqlite3'
import { PagecowError } from '../errors.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { prepared } from '../store/database.js'

/** A mark as the library hands it out. */
export interface Mark {
  name: string
  /** Orders the marks: a later mark has a larger epoch. */
  epoch: number
  /** When it was taken (ISO 8601, UTC). */
  created: string
}

/** The meta record of the newest epoch a mark was given: epochs are never given twice. */
const LAST_EPOCH = 'last-mark-epoch'

export class MarkTable {
  readonly #db: Database.Database
  readonly #where: string

  constructor(db: Database.Database, where: string) {
    this.#db = db
    this.#where = where
  }

  /** Every mark, oldest first; a damaged row is ECORRUPT. */
  list(): Mark[] {
    const rows = prepared<[], { name: unknown; epoch: unknown; created: unknown; sum: unknown }>(this.#db, 'SELECT name, epoch, created, sum FROM marks ORDER BY epoch').all()
    return rows.map((r) => {
      if (typeof r.name !== 'string' || !Number.isSafeInteger(r.epoch) || (r.epoch as number) <= 0 || typeof r.created !== 'string' || !sumMatches(r.sum, rowSum.marks(r.name, r.epoch as number, r.created))) {
        throw new PagecowError('ECORRUPT', `${this.#where}: a mark record (${JSON.stringify(String(r.name))}) does not match its checksum; run \`pagecow fsck\``)
      }
      return { name: r.name, epoch: r.epoch as number, created: r.created }
    })
  }

  add(mark: Mark): void {
    prepared(this.#db, 'INSERT INTO marks (name, epoch, created, sum) VALUES (?, ?, ?, ?)').run(mark.name, mark.epoch, mark.created, rowSum.marks(mark.name, mark.epoch, mark.created))
    const text = String(mark.epoch)
    prepared(this.#db, 'INSERT OR REPLACE INTO meta (key, value, sum) VALUES (?, ?, ?)').run(LAST_EPOCH, text, rowSum.meta(LAST_EPOCH, text))
  }

  remove(name: string): void {
    prepared(this.#db, 'DELETE FROM marks WHERE name = ?').run(name)
  }

  /**
   * An epoch larger than any a mark ever had (a mark removed and taken again is another mark, and
   * a reader holding the old one must be able to tell) and than any change record holds (records
   * of a mark whose commit was lost count).
   */
  nextEpoch(): number {
    const row = prepared<[], { top: number }>(this.#db, `SELECT max(coalesce((SELECT max(epoch) FROM marks), 0), coalesce((SELECT max(epoch) FROM page_changes), 0),
        coalesce((SELECT max(epoch) FROM name_changes), 0), coalesce((SELECT max(epoch) FROM inode_changes), 0)) AS top`).get()!
    return Math.max(row.top, this.#lastEpoch()) + 1
  }

  /** The epoch of the last mark taken, as the meta record says (0: none since 0.3.0, which kept none). */
  #lastEpoch(): number {
    const row = prepared<[string], { value: unknown; sum: unknown }>(this.#db, 'SELECT value, sum FROM meta WHERE key = ?').get(LAST_EPOCH)
    if (!row) return 0
    if (typeof row.value !== 'string' || !/^\d{1,15}$/.test(row.value) || !sumMatches(row.sum, rowSum.meta(LAST_EPOCH, row.value))) {
      throw new PagecowError('ECORRUPT', `${this.#where}: the record of the last mark's epoch is damaged; run \`pagecow fsck\``)
    }
    return Number(row.value)
  }
}
