// What a tree store reads its lower through: a read-only tree of objects addressed by their path
// relative to the lower's root ('' is the root; names in name form, name-bytes.ts). A directory
// (lower-dir.ts) and a squashfs image (lower-squashfs.ts) implement it, and open-lower.ts picks
// one from the store record; the store never follows a symlink and never writes.
import type { LowerStat } from '../lower-stat.js'
import type { LowerSource } from '../page/lower-source.js'
import type { FileType } from './file-type.js'

/** One object of the lower: its path relative to the lower root ('' is the root) and its lstat. */
export interface LowerObject {
  path: string
  type: FileType
  stat: LowerStat
}

/** A name in a lower directory, typed from the directory entry (no lstat). */
export interface LowerName {
  name: string
  type: FileType
}

/** An open regular file of the lower: what a paged file reads through, and its stat. */
export interface LowerFile extends LowerSource {
  readonly mtimeNs: bigint
  /** The open file's stat now (its inode, blocks and times). */
  stat(): LowerStat
}

export interface LowerTree {
  /** Where the lower is, as messages name it. */
  readonly root: string
  /** Lower path `rel` as messages name it. */
  full(rel: string): string
  /** The object at `rel` (each parent component a directory found by the same walk), or null. */
  lstat(rel: string): LowerObject | null
  /** The entry `name` of lower directory `dir`, or null. */
  child(dir: string, name: string): LowerObject | null
  /** Whether lower directory `dir` has an entry `name`. */
  has(dir: string, name: string): boolean
  /** The entries of lower directory `dir`, unsorted (none if it is not a directory). */
  list(dir: string): LowerName[]
  /** The target of the lower symlink at `rel`, its bytes in name form. */
  readlink(rel: string): string
  /** Open the lower regular file at `rel` for reading (a symlink there is ELOOP). */
  openFile(rel: string): LowerFile
  /**
   * The object's extended attributes (a directory lower reports none for symlinks, devices and
   * sockets: it cannot open them without following or blocking).
   */
  xattrs(rel: string, type: FileType): Map<string, Buffer>
  /** Release what the lower holds open; files opened from it stop reading. */
  close(): void
}
