// What each DATA page of one paged file was built on (every store): a write that copies up part
// of a lower page records the sum of that lower page (its bytes as the lower stores them), so a
// later drift check (`pagecow verify`) or a rebase knows which copied pages sit on lower bytes
// that are no longer there. Changes are queued in order and saved with the page map's commit.
import type Database from 'better-sqlite3'
import { fromSystemError, PagecowError } from '../errors.js'
import { prepared } from '../store/database.js'
import { rowSum, sumMatches } from './row-sums.js'

/** A change to the table, in the order it was made. */
type Change = { seq: number; page: number; base: bigint } | { seq: number; start: number; end: number }

/** The queued changes a commit takes: saved in its transaction, then dropped from the queue. */
export interface BasesSnapshot {
  changes: readonly Change[]
  /** The last change it holds; later ones stay queued. */
  seq: number
}

/** One recorded base: DATA page `page` was copied up from a lower page whose sum was `base`. */
export interface CopyupBase {
  page: number
  base: bigint
}

export class CopyupBases {
  readonly #db: Database.Database
  readonly #file: number
  readonly #queue: Change[] = []
  #seq = 0
  /** Whether the table may hold rows of this file: when it cannot, drops cost nothing. */
  #any: boolean

  constructor(db: Database.Database, file: number) {
    this.#db = db
    this.#file = file
    this.#any = prepared<[number], { one: number }>(db, 'SELECT 1 AS one FROM copyup_base WHERE file = ? LIMIT 1').get(file) !== undefined
  }

  get isDirty(): boolean {
    return this.#queue.length > 0
  }

  /** Page `page` was copied up from a lower page whose sum is `base`. */
  set(page: number, base: bigint): void {
    this.#any = true
    this.#queue.push({ seq: ++this.#seq, page, base })
  }

  /** Pages [start, end) no longer depend on the lower (wholly rewritten, zeroed, cut off). */
  drop(start: number, end: number): void {
    if (!this.#any || start >= end) return
    const last = this.#queue.at(-1)
    if (last && 'end' in last && last.end >= start && last.start <= end) {
      last.start = Math.min(last.start, start)
      last.end = Math.max(last.end, end)
      last.seq = ++this.#seq
      return
    }
    this.#queue.push({ seq: ++this.#seq, start, end })
  }

  snapshot(): BasesSnapshot {
    return { changes: this.#queue.map((c) => ({ ...c })), seq: this.#seq }
  }

  /** Write a snapshot; call inside the commit's transaction. */
  save(snapshot: BasesSnapshot): void {
    if (snapshot.changes.length === 0) return
    const upsert = prepared(
      this.#db,
      `INSERT INTO copyup_base (file, page, base, sum) VALUES (?, ?, ?, ?)
       ON CONFLICT (file, page) DO UPDATE SET base = excluded.base, sum = excluded.sum`,
    )
    const remove = prepared(this.#db, 'DELETE FROM copyup_base WHERE file = ? AND page >= ? AND page < ?')
    for (const c of snapshot.changes) {
      if ('end' in c) remove.run(this.#file, c.start, c.end)
      else {
        const base = Buffer.alloc(8)
        base.writeBigUInt64LE(c.base)
        upsert.run(this.#file, c.page, base, rowSum.copyupBase(this.#file, c.page, base))
      }
    }
  }

  /** The snapshot's transaction committed: its changes leave the queue. */
  committed(snapshot: BasesSnapshot): void {
    while (this.#queue.length > 0 && this.#queue[0]!.seq <= snapshot.seq) this.#queue.shift()
  }

  /** Committed bases (what the database holds), in page order. */
  static *list(db: Database.Database, file: number, where: string): Generator<CopyupBase> {
    const rows = db.prepare<[number], { page: number; base: unknown; sum: unknown }>('SELECT page, base, sum FROM copyup_base WHERE file = ? ORDER BY page').iterate(file)
    try {
      for (const row of rows) {
        if (!Buffer.isBuffer(row.base) || row.base.length !== 8 || !sumMatches(row.sum, rowSum.copyupBase(file, row.page, row.base))) {
          throw new PagecowError('ECORRUPT', `${where}: the recorded copy-up base of page ${row.page} does not match its checksum; run \`pagecow fsck\``)
        }
        yield { page: row.page, base: row.base.readBigUInt64LE(0) }
      }
    } catch (err) {
      throw fromSystemError(err, `${where}: reading the copy-up bases`)
    }
  }

  /** The number of committed bases of `file`. */
  static count(db: Database.Database, file: number): number {
    return (prepared<[number], { n: number }>(db, 'SELECT count(*) AS n FROM copyup_base WHERE file = ?').get(file) as { n: number }).n
  }
}
