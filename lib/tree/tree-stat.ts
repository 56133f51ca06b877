// What stat() returns in tree mode: lstat-like plain data.
import type { FileType } from './file-type.js'

/** An lstat of an object of the merged tree. `ino` is stable across copy-up, rename and reopen. */
export interface TreeStat {
  ino: number
  /** st_mode: type bits and permission bits. */
  mode: number
  type: FileType
  nlink: number
  uid: number
  gid: number
  /** Device number of a device node (Linux encoding), else 0. */
  rdev: number
  /** Bytes; a symlink's is its target's length. */
  size: number
  /** 512-byte blocks on disk: the upper's pages plus the lower's blocks while it is still read. */
  blocks: number
  /** Preferred I/O size: the store's page size. */
  blksize: number
  /** Times, exact: nanoseconds since the epoch (as node:fs's `{ bigint: true }` stat gives them). */
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  /** The same times in milliseconds, as node:fs derives `mtimeMs` (not exact: a double). */
  atimeMs: number
  mtimeMs: number
  ctimeMs: number
}

/** statfs of the file system that holds the store (the upper). */
export interface TreeStatfs {
  bsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  namemax: number
}

/**
 * An entry of a merged directory listing. `name` (in name form: see nameToBytes) is also the
 * cookie to resume after it.
 */
export interface DirEntry {
  name: string
  type: FileType
}

/** A listing entry with its name as bytes: `readdir(path, { encoding: 'buffer' })`. */
export interface DirEntryBytes {
  name: Buffer
  type: FileType
}
