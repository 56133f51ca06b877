// The object types a squashfs image holds, with the type numbers of its inodes and directory
// entries (basic 1-7; an extended inode is the basic number plus 7).

/** What an object of the image is (the same names as tree mode's FileType). */
export type SquashfsFileType = 'directory' | 'file' | 'symlink' | 'block-device' | 'char-device' | 'fifo' | 'socket'

/** Indexed by basic type number: 1 directory ... 7 socket. */
const BASIC_TYPES: readonly (SquashfsFileType | undefined)[] = [undefined, 'directory', 'file', 'symlink', 'block-device', 'char-device', 'fifo', 'socket']

/** The type of basic type number `n` (1-7), or undefined. */
export function basicType(n: number): SquashfsFileType | undefined {
  return BASIC_TYPES[n]
}

const TYPE_BITS: Record<SquashfsFileType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  fifo: 0o010000,
  socket: 0o140000,
  'char-device': 0o020000,
  'block-device': 0o060000,
}

/** The st_mode type bits of `type` (S_IFREG...). */
export function typeBits(type: SquashfsFileType): number {
  return TYPE_BITS[type]
}
