// The kinds of object a tree holds, and their st_mode type bits (Linux values).
import type { Stats } from 'node:fs'

/** What an object of the merged tree is. Special files are metadata only: they hold no data. */
export type FileType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device'

export const FILE_TYPES: readonly FileType[] = ['file', 'directory', 'symlink', 'fifo', 'socket', 'char-device', 'block-device']

const S_IFMT = 0o170000
const TYPE_BITS: Record<FileType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  fifo: 0o010000,
  socket: 0o140000,
  'char-device': 0o020000,
  'block-device': 0o060000,
}

/** st_mode of an object of `type` with permission bits `perm` (07777). */
export function modeOf(type: FileType, perm: number): number {
  return TYPE_BITS[type] | (perm & 0o7777)
}

/** The type encoded in an st_mode, or undefined for a value no Linux file system returns. */
export function typeOfMode(mode: number): FileType | undefined {
  const bits = mode & S_IFMT
  for (const type of FILE_TYPES) if (TYPE_BITS[type] === bits) return type
  return undefined
}

/** The type of an lstat result or a readdir entry (Stats and Dirent share these predicates). */
export function typeOfStats(st: Pick<Stats, 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isSocket' | 'isCharacterDevice' | 'isBlockDevice'>): FileType | undefined {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'directory'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isSocket()) return 'socket'
  if (st.isCharacterDevice()) return 'char-device'
  if (st.isBlockDevice()) return 'block-device'
  return undefined
}
