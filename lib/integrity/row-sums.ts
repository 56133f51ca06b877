// The checksum every row of a store's database carries in its `sum` column (schema 40): the row's
// table and columns hashed together (recordSum), so that a flipped bit, an edited cell, or a row
// moved into another row's place is caught when the row is read, not served. One function per
// table, the columns in the order the table declares them.
import { recordSum } from './hash.js'

type Cell = number | bigint | string | Uint8Array | null

const sumOf = (table: string, cells: Cell[]): Buffer => recordSum([table, ...cells])

export const rowSum = {
  meta: (key: string, value: string) => sumOf('meta', [key, value]),
  files: (id: number, size: number, lowerCut: number, bytesWritten: number, upperWritten: number, dataPages: number, zeroPages: number) =>
    sumOf('files', [id, size, lowerCut, bytesWritten, upperWritten, dataPages, zeroPages]),
  pageChunks: (file: number, chunk: number, data: Uint8Array, zero: Uint8Array, dataCount: number, zeroCount: number) =>
    sumOf('page_chunks', [file, chunk, data, zero, dataCount, zeroCount]),
  pageSums: (file: number, block: number, sums: Uint8Array) => sumOf('page_sums', [file, block, sums]),
  lowerSums: (file: number, block: number, sums: Uint8Array) => sumOf('lower_sums', [file, block, sums]),
  copyupBase: (file: number, page: number, base: Uint8Array) => sumOf('copyup_base', [file, page, base]),
  inodes: (cells: Cell[]) => sumOf('inodes', cells),
  dirents: (parent: number, name: Uint8Array, ino: number | null) => sumOf('dirents', [parent, name, ino]),
  xattrs: (ino: number, name: string, value: Uint8Array | null) => sumOf('xattrs', [ino, name, value]),
  counters: (name: string, value: number) => sumOf('counters', [name, value]),
  purge: (file: number) => sumOf('purge', [file]),
  marks: (name: string, epoch: number, created: string) => sumOf('marks', [name, epoch, created]),
  nameChanges: (epoch: number, parent: number, name: Uint8Array, had: number, ino: number | null, type: string | null) => sumOf('name_changes', [epoch, parent, name, had, ino, type]),
  inodeChanges: (epoch: number, ino: number) => sumOf('inode_changes', [epoch, ino]),
  pageChanges: (file: number, epoch: number, chunk: number, pages: Uint8Array) => sumOf('page_changes', [file, epoch, chunk, pages]),
}

/** Whether `stored` (a row's sum cell as read) is `expected`. */
export function sumMatches(stored: unknown, expected: Buffer): boolean {
  return Buffer.isBuffer(stored) && stored.equals(expected)
}
