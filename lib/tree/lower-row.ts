// The inode row a lower object gets when the upper first records something about it: a copy of
// its metadata (metadata-only copy-up; its data stays in the lower).
import type { FileType } from './file-type.js'
import type { LowerStat } from '../lower-stat.js'
import type { InodeRow } from './namespace.js'

export function rowFromLower(type: FileType, path: string, stat: LowerStat): InodeRow {
  return {
    ino: stat.ino,
    type,
    origin: path,
    nlink: stat.nlink,
    mode: stat.mode & 0o7777,
    uid: stat.uid,
    gid: stat.gid,
    rdev: stat.rdev,
    atimeNs: stat.atimeNs,
    mtimeNs: stat.mtimeNs,
    ctimeNs: stat.ctimeNs,
    target: null,
    file: null,
    lowerPrint: { size: stat.size, mtime: { ns: stat.mtimeNs }, blocks: stat.blocks },
    opaque: false,
  }
}
