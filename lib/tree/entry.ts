// An object of the merged tree as one walk found it: its inode number, its upper row if the
// upper knows it, and where it lives in the lower if it came from there.
import type { FileType } from './file-type.js'
import type { LowerObject } from './lower-tree.js'
import type { InodeRow } from './namespace.js'

export interface Entry {
  ino: number
  type: FileType
  /** The upper's record; undefined for a lower object nothing changed yet. */
  row: InodeRow | undefined
  /** The lower's lstat, for an object without a row (a row holds a copy of its metadata). */
  lower: LowerObject | undefined
  /** The object's path in the lower, if it has one (a row's origin or where the walk found it). */
  lowerPath: string | undefined
}

/** Whether a directory shows its lower directory's entries under its own. */
export function mergesLower(dir: Entry): boolean {
  return dir.type === 'directory' && dir.lowerPath !== undefined && !dir.row?.opaque
}
