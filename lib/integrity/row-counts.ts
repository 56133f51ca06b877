// Rows lost from the namespace tables are caught at open: the row_counts table (schema 40), kept
// by triggers in every transaction that adds or removes a row, must equal what the tables hold.
// A row's own sum cannot tell that a row is missing; its count can.
import type Database from 'better-sqlite3'
import { PagecowError } from '../errors.js'

/** The namespace tables (and the paged files' records), counted since schema 40. */
const NAMESPACE_TABLES = ['inodes', 'dirents', 'xattrs', 'counters', 'files'] as const
/** The change-tracking tables (schema 50), checked by lib/changes. */
export const CHANGE_TABLES = ['marks', 'page_changes', 'name_changes', 'inode_changes'] as const

/** The tables whose row count differs from the recorded one, with both counts. */
export function rowCountMismatches(db: Database.Database, tables: readonly string[] = NAMESPACE_TABLES): Array<{ table: string; recorded: number | undefined; found: number }> {
  const recorded = new Map((db.prepare('SELECT tbl, n FROM row_counts').all() as Array<{ tbl: string; n: number }>).map((r) => [r.tbl, r.n]))
  const out: Array<{ table: string; recorded: number | undefined; found: number }> = []
  for (const table of tables) {
    const found = (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n
    if (recorded.get(table) !== found) out.push({ table, recorded: recorded.get(table), found })
  }
  return out
}

export function describeMismatch(m: { table: string; recorded: number | undefined; found: number }): string {
  return `the ${m.table} table holds ${m.found} rows, its count says ${m.recorded ?? 'nothing'} (rows lost or added)`
}

/** ECORRUPT at open if a namespace table lost or gained rows behind the store's back. */
export function checkRowCounts(db: Database.Database, where: string, tables: readonly string[] = NAMESPACE_TABLES): void {
  const first = rowCountMismatches(db, tables)[0]
  if (first) throw new PagecowError('ECORRUPT', `${where}: ${describeMismatch(first)}; run \`pagecow fsck\``)
}
