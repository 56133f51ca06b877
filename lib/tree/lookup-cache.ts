// What path resolution has already read of the namespace, and the rules that keep it true: exact
// lookups are dropped by any write of this connection, summaries ("may this directory have upper
// entries?", "which lower objects does the upper record?") are kept up to date by the writes
// themselves, and everything is dropped when another connection commits or a transaction rolls back.
import { BoundedCache } from './bounded-cache.js'
import type { InodeRow } from './namespace.js'

/** Exact lookups kept per kind (a row is a few hundred bytes: a few MB in all). */
export const LOOKUPS_CACHED = 4096
/** Lower objects the upper records, tracked in memory up to this many; past it, every lookup asks SQLite. */
export const LOWER_ROWS_TRACKED = 8192

/**
 * A superset of the inode numbers (below UPPER_INO_BASE) and origins of the inode rows: a lower
 * object in neither set has no row, so resolving it needs no query.
 */
export interface LowerRows {
  inos: Set<number>
  origins: Set<string>
}

export class LookupCache {
  /** `${parent}/${name}` → the entry, or null for "no entry". */
  readonly dirents = new BoundedCache<string, { readonly ino: number | null } | null>(LOOKUPS_CACHED)
  /** ino → the row, or null for "no row". */
  readonly inodes = new BoundedCache<number, Readonly<InodeRow> | null>(LOOKUPS_CACHED)
  /** origin → the linked row recorded there, or null for none. */
  readonly origins = new BoundedCache<string, Readonly<InodeRow> | null>(LOOKUPS_CACHED)
  /** Directory ino → whether it may have upper entries (false is exact, true may be stale). */
  readonly mayHaveDirents = new BoundedCache<number, boolean>(LOOKUPS_CACHED)
  /** Undefined: not read yet; null: more rows than LOWER_ROWS_TRACKED (stays so: always ask SQLite). */
  lowerRows: LowerRows | null | undefined = undefined

  /** Inode `ino` changed (or went): its row, and any row cached by origin (it may be that one). */
  inodeChanged(ino: number): void {
    this.inodes.delete(ino)
    this.origins.clear()
  }

  /** The entry `name` of directory `parent` changed (or went). */
  direntChanged(parent: number, name: string): void {
    this.dirents.delete(`${parent}/${name}`)
  }

  /** Exact lookups may be wrong now (every entry of a directory went, a rollback, another writer). */
  written(): void {
    this.dirents.clear()
    this.inodes.clear()
    this.origins.clear()
  }

  /** Another connection committed, or a transaction rolled back: nothing read is known to hold. */
  dropAll(): void {
    this.written()
    this.mayHaveDirents.clear()
    if (this.lowerRows !== null) this.lowerRows = undefined
  }

  direntSet(parent: number): void {
    this.mayHaveDirents.set(parent, true)
  }

  direntsRemoved(parent: number): void {
    this.mayHaveDirents.delete(parent)
  }

  inodeInserted(ino: number, origin: string | null, lowerIno: boolean): void {
    const rows = this.lowerRows
    if (!rows) return
    if (lowerIno) rows.inos.add(ino)
    if (origin !== null) rows.origins.add(origin)
    if (rows.inos.size > LOWER_ROWS_TRACKED || rows.origins.size > LOWER_ROWS_TRACKED) this.lowerRows = null
  }
}
