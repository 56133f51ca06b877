// The inode row a lower object gets when the upper first records something about it: a copy of
// its metadata (metadata-only copy-up; its data stays in the lower).
import type { Stats } from 'node:fs'
import type { FileType } from './file-type.js'
import type { InodeRow } from './namespace.js'

export function rowFromLower(type: FileType, path: string, stat: Stats): InodeRow {
  return {
    ino: stat.ino,
    type,
    origin: path,
    nlink: stat.nlink,
    mode: stat.mode & 0o7777,
    uid: stat.uid,
    gid: stat.gid,
    rdev: stat.rdev,
    atimeMs: stat.atimeMs,
    mtimeMs: stat.mtimeMs,
    ctimeMs: stat.ctimeMs,
    target: null,
    file: null,
    lowerPrint: { size: stat.size, mtimeMs: stat.mtimeMs, blocks: stat.blocks },
    opaque: false,
  }
}
