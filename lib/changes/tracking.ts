// Change tracking of one store (SPEC §7): its marks, its change records, and the epoch that new
// changes are tagged with. Every paged file's ChangeLog reads the epoch from here, so taking a
// mark retags every later change at once, whatever file it touches.
import type Database from 'better-sqlite3'
import { PagecowError } from '../errors.js'
import { CHANGE_TABLES, checkRowCounts } from '../integrity/row-counts.js'
import { ChangeTable } from './change-table.js'
import type { Since } from './mark-name.js'
import { MarkTable, type Mark } from './mark-table.js'
import { NameJournal } from './name-journal.js'

export class Tracking {
  readonly marks: MarkTable
  readonly table: ChangeTable
  /** Tree stores: the entries and objects changed. */
  readonly journal: NameJournal
  /**
   * The epoch of the changes made now: the newest mark's (or that of a mark being taken). 0: no
   * mark, nothing is recorded (a store without marks pays nothing).
   */
  epoch: number

  constructor(db: Database.Database, where: string) {
    // A mark or a change record lost behind the store's back would make changes go unreported.
    checkRowCounts(db, where, CHANGE_TABLES)
    this.marks = new MarkTable(db, where)
    this.table = new ChangeTable(db, where)
    this.journal = new NameJournal(db, where)
    this.epoch = this.marks.list().at(-1)?.epoch ?? 0
  }

  /**
   * The mark called `since` (ENOENT if there is none), or, given a mark as handed out earlier,
   * that mark if it is still there (ESTALE if it was removed or taken again since).
   */
  get(since: Since): Mark {
    const name = typeof since === 'string' ? since : since.name
    const mark = this.marks.list().find((m) => m.name === name)
    if (typeof since !== 'string' && mark?.epoch !== since.epoch) {
      throw new PagecowError('ESTALE', `the mark ${JSON.stringify(name)} was removed${mark ? ' and taken again' : ''} since it was read; its changes are no longer those of that moment`)
    }
    if (!mark) throw new PagecowError('ENOENT', `no mark named ${JSON.stringify(name)} (\`pagecow marks\` lists them)`)
    return mark
  }

  /** Move every record of the epochs in [from, to) into epoch `into` (a mark between went away). In a transaction. */
  fold(from: number, to: number, into: number): void {
    this.table.fold(from, to, into)
    this.journal.fold(from, to, into)
  }

  /** Forget every record of the epochs before `epoch` (no mark needs them). In a transaction. */
  dropBefore(epoch: number): void {
    this.table.dropBefore(epoch)
    this.journal.dropBefore(epoch)
  }

  /** A read-only store follows its writer: the newest epoch as the database says. */
  reload(): void {
    this.epoch = this.marks.list().at(-1)?.epoch ?? 0
  }
}
