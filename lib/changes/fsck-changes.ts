// fsck's part for change tracking: every mark and change record matches its own sum, belongs to
// a paged file that exists, and none was lost or added (their row counts).
import type Database from 'better-sqlite3'
import { CHANGE_TABLES, describeMismatch, rowCountMismatches } from '../integrity/row-counts.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import type { ReportProblem } from '../store/fsck-runner.js'

export function checkChangeRows(db: Database.Database, files: ReadonlySet<number>, problem: ReportProblem): void {
  for (const m of rowCountMismatches(db, CHANGE_TABLES)) problem('ECORRUPT', describeMismatch(m))
  const marks = db.prepare('SELECT name, epoch, created, sum FROM marks ORDER BY epoch').all() as Array<{ name: unknown; epoch: unknown; created: unknown; sum: unknown }>
  for (const r of marks) {
    if (typeof r.name !== 'string' || !Number.isSafeInteger(r.epoch) || typeof r.created !== 'string' || !sumMatches(r.sum, rowSum.marks(r.name, r.epoch as number, r.created))) {
      problem('ECORRUPT', `the record of mark ${JSON.stringify(String(r.name))} does not match its checksum`)
    }
  }
  const rows = db.prepare('SELECT file, epoch, chunk, pages, sum FROM page_changes ORDER BY file, epoch, chunk').iterate() as IterableIterator<{ file: number; epoch: number; chunk: number; pages: unknown; sum: unknown }>
  for (const r of rows) {
    if (!files.has(r.file)) problem('ECORRUPT', `a change record (chunk ${r.chunk}, epoch ${r.epoch}) belongs to unknown paged file ${r.file}`)
    else if (!Buffer.isBuffer(r.pages) || !sumMatches(r.sum, rowSum.pageChanges(r.file, r.epoch, r.chunk, r.pages))) {
      problem('ECORRUPT', `the change record of paged file ${r.file}, chunk ${r.chunk} (epoch ${r.epoch}) does not match its checksum`)
    }
  }
  const names = db.prepare('SELECT epoch, parent, name, had, ino, type, sum FROM name_changes').iterate() as IterableIterator<{ epoch: number; parent: number; name: unknown; had: number; ino: number | null; type: string | null; sum: unknown }>
  for (const r of names) {
    if (!Buffer.isBuffer(r.name) || !sumMatches(r.sum, rowSum.nameChanges(r.epoch, r.parent, r.name, r.had, r.ino, r.type))) {
      problem('ECORRUPT', `a name change record (directory ${r.parent}, epoch ${r.epoch}) does not match its checksum`)
    }
  }
  const inodes = db.prepare('SELECT epoch, ino, sum FROM inode_changes').iterate() as IterableIterator<{ epoch: number; ino: number; sum: unknown }>
  for (const r of inodes) {
    if (!sumMatches(r.sum, rowSum.inodeChanges(r.epoch, r.ino))) problem('ECORRUPT', `a metadata change record (inode ${r.ino}, epoch ${r.epoch}) does not match its checksum`)
  }
}
