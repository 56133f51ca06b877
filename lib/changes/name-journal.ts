// The namespace's part of change tracking (tree stores): the first change of each directory entry
// in an epoch records what the entry was before it, and the objects whose metadata changed are
// listed. Written in the namespace change's own transaction, so a name change and its record
// commit together (and a rolled-back change leaves no record).
import type Database from 'better-sqlite3'
import { PagecowError } from '../errors.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { prepared } from '../store/database.js'

/** An entry as it was before its first change since a mark. */
export interface NameBefore {
  parent: number
  /** The name's bytes. */
  name: Buffer
  /** Whether the upper had an entry there (if not, the lower's showed, if the lower has one). */
  had: boolean
  /** The object the upper entry named; null with `had`: a whiteout. */
  ino: number | null
  type: string | null
}

interface NameRow {
  epoch: number
  parent: number
  name: unknown
  had: number
  ino: number | null
  type: string | null
  sum: unknown
}

export class NameJournal {
  readonly #db: Database.Database
  readonly #where: string

  constructor(db: Database.Database, where: string) {
    this.#db = db
    this.#where = where
  }

  /** Entry (parent, name) is about to change in `epoch`; `before` is what it is now. */
  entry(epoch: number, before: NameBefore): void {
    const had = before.had ? 1 : 0
    prepared(this.#db, 'INSERT OR IGNORE INTO name_changes (epoch, parent, name, had, ino, type, sum) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
      epoch,
      before.parent,
      before.name,
      had,
      before.ino,
      before.type,
      rowSum.nameChanges(epoch, before.parent, before.name, had, before.ino, before.type),
    )
  }

  /** Object `ino`'s metadata changes in `epoch`. */
  inode(epoch: number, ino: number): void {
    prepared(this.#db, 'INSERT OR IGNORE INTO inode_changes (epoch, ino, sum) VALUES (?, ?, ?)').run(epoch, ino, rowSum.inodeChanges(epoch, ino))
  }

  /** Every entry changed in `since` or later, with what it was at `since` (its earliest record). */
  entriesSince(since: number): NameBefore[] {
    const rows = prepared<[number], NameRow>(this.#db, 'SELECT epoch, parent, name, had, ino, type, sum FROM name_changes WHERE epoch >= ? ORDER BY parent, name, epoch').all(since)
    const out: NameBefore[] = []
    let last: NameBefore | undefined
    for (const r of rows) {
      if (!Buffer.isBuffer(r.name) || !sumMatches(r.sum, rowSum.nameChanges(r.epoch, r.parent, r.name, r.had, r.ino, r.type))) {
        throw new PagecowError('ECORRUPT', `${this.#where}: a name change record (directory ${r.parent}, epoch ${r.epoch}) does not match its checksum; run \`pagecow fsck\``)
      }
      if (last && last.parent === r.parent && last.name.equals(r.name)) continue // a later epoch's: not what it was at `since`
      out.push((last = { parent: r.parent, name: r.name, had: r.had === 1, ino: r.ino, type: r.type }))
    }
    return out
  }

  /** The objects whose metadata changed in `since` or later. */
  inodesSince(since: number): Set<number> {
    const rows = prepared<[number], { epoch: number; ino: number; sum: unknown }>(this.#db, 'SELECT epoch, ino, sum FROM inode_changes WHERE epoch >= ?').all(since)
    for (const r of rows) {
      if (!sumMatches(r.sum, rowSum.inodeChanges(r.epoch, r.ino))) throw new PagecowError('ECORRUPT', `${this.#where}: a metadata change record (inode ${r.ino}) does not match its checksum; run \`pagecow fsck\``)
    }
    return new Set(rows.map((r) => r.ino))
  }

  /**
   * Move the records of the epochs in [from, to) into epoch `into`: an entry already recorded
   * there keeps its (earlier) before-state.
   */
  fold(from: number, to: number, into: number): void {
    const names = prepared<[number, number], NameRow>(this.#db, 'SELECT epoch, parent, name, had, ino, type, sum FROM name_changes WHERE epoch >= ? AND epoch < ? ORDER BY epoch').all(from, to)
    for (const r of names) this.entry(into, { parent: r.parent, name: r.name as Buffer, had: r.had === 1, ino: r.ino, type: r.type })
    const inodes = prepared<[number, number], { ino: number }>(this.#db, 'SELECT ino FROM inode_changes WHERE epoch >= ? AND epoch < ?').all(from, to)
    for (const r of inodes) this.inode(into, r.ino)
    this.#delete(from, to)
  }

  dropBefore(epoch: number): void {
    this.#delete(0, epoch)
  }

  #delete(from: number, to: number): void {
    prepared(this.#db, 'DELETE FROM name_changes WHERE epoch >= ? AND epoch < ?').run(from, to)
    prepared(this.#db, 'DELETE FROM inode_changes WHERE epoch >= ? AND epoch < ?').run(from, to)
  }
}
