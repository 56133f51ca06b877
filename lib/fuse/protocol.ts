// The FUSE kernel protocol (linux/fuse.h) as pagecow speaks it on /dev/fuse: numbers, request
// decoding and reply encoding. Pure: no I/O; the session reads and writes the buffers.
//
// We speak 7.33 (the 7.31 layouts plus the suid/sgid-killing flags). Struct layouts are the ones valid at minor 33 (fuse_setxattr_in is its 8-byte
// form, FUSE_SETXATTR_EXT is never negotiated). All integers are little-endian (x86-64 host order).
import { splitNs } from '../time-ns.js'

/** Kernel protocol version we speak. */
export const KERNEL_MAJOR = 7
export const KERNEL_MINOR = 33
/** Node id of the mount's root directory. */
export const FUSE_ROOT_ID = 1
/** The kernel wants every read() of /dev/fuse to offer at least this many bytes. */
export const MIN_READ_BUFFER = 8192
/** Longest name the kernel accepts in a directory entry (fs/fuse/fuse_i.h FUSE_NAME_MAX). */
export const NAME_MAX_BYTES = 1024

// Struct sizes, checked with gcc against <linux/fuse.h> 7.38 (sizeof/offsetof) on x86-64.
/** struct fuse_in_header. */
export const IN_HEADER_BYTES = 40
/** struct fuse_out_header. */
export const OUT_HEADER_BYTES = 16
/** struct fuse_attr (with `flags`, since 7.9). */
export const ATTR_BYTES = 88
/** struct fuse_entry_out: 40 bytes then fuse_attr. */
export const ENTRY_OUT_BYTES = 128
/** struct fuse_attr_out: 16 bytes then fuse_attr. */
export const ATTR_OUT_BYTES = 104
/** struct fuse_open_out. */
export const OPEN_OUT_BYTES = 16
/** struct fuse_write_out, fuse_getxattr_out and fuse_lseek_out. */
export const WRITE_OUT_BYTES = 8
export const GETXATTR_OUT_BYTES = 8
export const LSEEK_OUT_BYTES = 8
/** struct fuse_statfs_out (fuse_kstatfs). */
export const STATFS_OUT_BYTES = 80
/** struct fuse_init_out (the 64-byte form, since 7.28). */
export const INIT_OUT_BYTES = 64
/** struct fuse_dirent up to its name (FUSE_NAME_OFFSET). */
export const DIRENT_NAME_OFFSET = 24
/** struct fuse_write_in: what precedes the data of a WRITE. */
export const WRITE_IN_BYTES = 40
const FORGET_IN_BYTES = 8
const BATCH_FORGET_IN_BYTES = 8
const FORGET_ONE_BYTES = 16
const GETATTR_IN_BYTES = 16
const SETATTR_IN_BYTES = 88
const MKNOD_IN_BYTES = 16
const MKDIR_IN_BYTES = 8
const RENAME_IN_BYTES = 8
const RENAME2_IN_BYTES = 16
const LINK_IN_BYTES = 8
const OPEN_IN_BYTES = 8
const CREATE_IN_BYTES = 16
const READ_IN_BYTES = 40
const RELEASE_IN_BYTES = 24
const FLUSH_IN_BYTES = 24
const FSYNC_IN_BYTES = 16
const SETXATTR_IN_BYTES = 8 // FUSE_COMPAT_SETXATTR_IN_SIZE; 16 only with FUSE_SETXATTR_EXT
const GETXATTR_IN_BYTES = 8
const ACCESS_IN_BYTES = 8
const INIT_IN_BYTES = 16 // what we read; kernels since 7.36 send 64 (flags2, unused[11])
const INTERRUPT_IN_BYTES = 8
const FALLOCATE_IN_BYTES = 32
const LSEEK_IN_BYTES = 24
const DIRENTPLUS_NAME_OFFSET = ENTRY_OUT_BYTES + DIRENT_NAME_OFFSET

/** Request opcodes (enum fuse_opcode). */
export const Opcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
} as const

const OPCODE_NAMES = new Map<number, string>(Object.entries(Opcode).map(([name, op]) => [op, name]))

/** 'LOOKUP' for 1; 'UNKNOWN(n)' for an opcode not in `Opcode`. For messages and logs. */
export function opcodeName(op: number): string {
  return OPCODE_NAMES.get(op) ?? `UNKNOWN(${op})`
}

/** fuse_init_in/out `flags` (the 32 bits below FUSE_INIT_EXT; the 7.33 set). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  FILE_OPS: 1 << 2,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  SPLICE_WRITE: 1 << 7,
  SPLICE_MOVE: 1 << 8,
  SPLICE_READ: 1 << 9,
  FLOCK_LOCKS: 1 << 10,
  HAS_IOCTL_DIR: 1 << 11,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  POSIX_ACL: 1 << 20,
  ABORT_ERROR: 1 << 21,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  EXPLICIT_INVAL_DATA: 1 << 25,
  /** 7.33: we clear suid/sgid on write, truncate and chown, so the kernel stops asking for
   * security.capability before every write. */
  HANDLE_KILLPRIV_V2: 1 << 28,
} as const

/** fuse_setattr_in `valid`: which fields of a SETATTR to apply (FATTR_*). */
export const SetattrValid = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  /** 7.33: clear suid/sgid with this truncate. */
  KILL_SUIDGID: 1 << 11,
} as const

/** fuse_open_out `open_flags` (FOPEN_*). */
export const OpenOut = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
} as const

/** fuse_release_in `release_flags`. */
export const ReleaseFlag = {
  FLUSH: 1 << 0,
  FLOCK_UNLOCK: 1 << 1,
} as const

/** fuse_getattr_in `getattr_flags`: `fh` is valid. */
export const GETATTR_FH = 1 << 0
/** fuse_write_in `write_flags`: a delayed write from the page cache; `fh` is a guess. */
export const WRITE_CACHE = 1 << 0
/** fuse_write_in `write_flags`: `lock_owner` is valid. */
export const WRITE_LOCKOWNER = 1 << 1
/** fuse_write_in write_flags (7.33): clear suid/sgid with this write. */
export const WRITE_KILL_SUIDGID = 1 << 2
/** fuse_open_in open_flags (7.33): clear suid/sgid with this O_TRUNC open. */
export const OPEN_KILL_SUIDGID = 1 << 0
/** fuse_read_in `read_flags`: `lock_owner` is valid. */
export const READ_LOCKOWNER = 1 << 1
/** rename2 flags (linux/fs.h). */
export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2
export const RENAME_WHITEOUT = 4
/** fuse_fsync_in `fsync_flags`: data only, not metadata. */
export const FSYNC_FDATASYNC = 1

/** Directory entry types (d_type), for `DirentWriter.add`. */
export const DT = {
  UNKNOWN: 0,
  FIFO: 1,
  CHR: 2,
  DIR: 4,
  BLK: 6,
  REG: 8,
  LNK: 10,
  SOCK: 12,
  WHT: 14,
} as const

const EINVAL = 22
const EOVERFLOW = 75

/**
 * A request that cannot be decoded. `errno` (positive) is what to answer with: EINVAL for a
 * malformed request, EOVERFLOW for a 64-bit value past Number.MAX_SAFE_INTEGER. `unique` is
 * set once the header was read, so the session can still reply; undefined when even the
 * header is bad.
 */
export class FuseProtocolError extends Error {
  readonly errno: number
  readonly unique: bigint | undefined

  constructor(errno: number, message: string, unique?: bigint) {
    super(message)
    this.name = 'FuseProtocolError'
    this.errno = errno
    this.unique = unique
  }
}

/** struct fuse_in_header, less `total_extlen` (always 0 at 7.33). */
export interface RequestHeader {
  /** Length of the whole request, header included. */
  len: number
  opcode: number
  unique: bigint
  nodeid: number
  uid: number
  gid: number
  pid: number
}

/** A time as the protocol carries it; `nsec` is in [0, 1e9) and `sec` may be negative. */
export interface Timespec {
  sec: number
  nsec: number
}

/**
 * The decoded body of a request, by `op`. Names are Buffers without their NUL (they need not
 * be UTF-8). Every Buffer is a view into the request buffer, not a copy.
 */
export type RequestBody =
  | { op: 'lookup'; name: Buffer }
  | { op: 'forget'; nlookup: number }
  | { op: 'batchForget'; items: Array<{ nodeid: number; nlookup: number }> }
  | { op: 'getattr'; flags: number; fh: number }
  | {
      op: 'setattr'
      /** SetattrValid bits: which of the fields below apply. */
      valid: number
      fh: number
      size: number
      lockOwner: bigint
      atime: Timespec
      mtime: Timespec
      ctime: Timespec
      mode: number
      uid: number
      gid: number
    }
  | { op: 'readlink' }
  | { op: 'symlink'; name: Buffer; target: Buffer }
  | { op: 'mknod'; mode: number; rdev: number; umask: number; name: Buffer }
  | { op: 'mkdir'; mode: number; umask: number; name: Buffer }
  | { op: 'unlink'; name: Buffer }
  | { op: 'rmdir'; name: Buffer }
  /** RENAME (flags 0) and RENAME2. */
  | { op: 'rename'; newdir: number; flags: number; name: Buffer; newname: Buffer }
  | { op: 'link'; oldnodeid: number; name: Buffer }
  | { op: 'open'; flags: number; openFlags: number }
  | { op: 'read'; fh: number; offset: number; size: number; readFlags: number; lockOwner: bigint; flags: number }
  | {
      op: 'write'
      fh: number
      offset: number
      size: number
      writeFlags: number
      lockOwner: bigint
      flags: number
      /** `size` bytes: a view into the request buffer. */
      data: Buffer
    }
  | { op: 'statfs' }
  | { op: 'release'; fh: number; flags: number; releaseFlags: number; lockOwner: bigint }
  | { op: 'fsync'; fh: number; fsyncFlags: number }
  | { op: 'setxattr'; name: Buffer; value: Buffer; flags: number }
  | { op: 'getxattr'; name: Buffer; size: number }
  | { op: 'listxattr'; size: number }
  | { op: 'removexattr'; name: Buffer }
  | { op: 'flush'; fh: number; lockOwner: bigint }
  | { op: 'init'; major: number; minor: number; maxReadahead: number; flags: number }
  | { op: 'opendir'; flags: number; openFlags: number }
  | { op: 'readdir'; fh: number; offset: number; size: number }
  | { op: 'readdirplus'; fh: number; offset: number; size: number }
  | { op: 'releasedir'; fh: number; flags: number; releaseFlags: number }
  | { op: 'fsyncdir'; fh: number; fsyncFlags: number }
  | { op: 'access'; mask: number }
  | { op: 'create'; flags: number; mode: number; umask: number; openFlags: number; name: Buffer }
  | { op: 'interrupt'; unique: bigint }
  | { op: 'destroy' }
  | { op: 'fallocate'; fh: number; offset: number; length: number; mode: number }
  | { op: 'lseek'; fh: number; offset: number; whence: number }
  /** Any opcode pagecow does not decode (locks, ioctl, poll, bmap, copy_file_range, newer ones). */
  | { op: 'unknown' }

/** One decoded request. */
export type Request = { header: RequestHeader } & RequestBody

const TWO_32 = 2 ** 32

function bad(message: string): FuseProtocolError {
  return new FuseProtocolError(EINVAL, message)
}

/** A u64 field as a number; EOVERFLOW past MAX_SAFE_INTEGER. */
function readU64(b: Buffer, off: number, field: string): number {
  const v = b.readUInt32LE(off + 4) * TWO_32 + b.readUInt32LE(off)
  if (!Number.isSafeInteger(v)) {
    throw new FuseProtocolError(EOVERFLOW, `${field} ${b.readBigUInt64LE(off)} is over Number.MAX_SAFE_INTEGER`)
  }
  return v
}

/** An s64 field (times travel as u64 holding a time64_t) as a number. */
function readI64(b: Buffer, off: number, field: string): number {
  const v = b.readInt32LE(off + 4) * TWO_32 + b.readUInt32LE(off)
  if (!Number.isSafeInteger(v)) {
    throw new FuseProtocolError(EOVERFLOW, `${field} ${b.readBigInt64LE(off)} is outside the safe integer range`)
  }
  return v
}

function writeU64(b: Buffer, off: number, value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${field} must be a safe non-negative integer, not ${value}`)
  b.writeUInt32LE(value % TWO_32, off)
  b.writeUInt32LE(Math.floor(value / TWO_32), off + 4)
}

function writeI64(b: Buffer, off: number, value: number, field: string): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${field} must be a safe integer, not ${value}`)
  const hi = Math.floor(value / TWO_32)
  b.writeUInt32LE(value - hi * TWO_32, off)
  b.writeInt32LE(hi, off + 4)
}

/** A request body read front to back: fixed structs, then NUL-terminated names or data. */
class BodyReader {
  readonly #buf: Buffer
  #pos = 0

  constructor(buf: Buffer) {
    this.#buf = buf
  }

  /** The next `size` bytes, a fuse_*_in struct. */
  struct(size: number, what: string): Buffer {
    const left = this.#buf.length - this.#pos
    if (left < size) throw bad(`${what} needs ${size} bytes, the request has ${left}`)
    const s = this.#buf.subarray(this.#pos, this.#pos + size)
    this.#pos += size
    return s
  }

  /** A NUL-terminated name, without its NUL. */
  name(what = 'name'): Buffer {
    const nul = this.#buf.indexOf(0, this.#pos)
    if (nul < 0) throw bad(`${what} has no terminating NUL`)
    const s = this.#buf.subarray(this.#pos, nul)
    this.#pos = nul + 1
    return s
  }

  /** Exactly `size` more bytes of data. */
  bytes(size: number, what: string): Buffer {
    const left = this.#buf.length - this.#pos
    if (left !== size) throw bad(`${what} of ${size} bytes, the request has ${left}`)
    return this.struct(size, what)
  }

  /** The body must be used up: a longer one means we misread it. */
  end<T>(body: T): T {
    const left = this.#buf.length - this.#pos
    if (left !== 0) throw bad(`${left} unexpected bytes at the end of the request`)
    return body
  }
}

type Parser = (r: BodyReader) => RequestBody

function parseRelease(r: BodyReader): { fh: number; flags: number; releaseFlags: number; lockOwner: bigint } {
  const s = r.struct(RELEASE_IN_BYTES, 'fuse_release_in')
  return { fh: readU64(s, 0, 'fh'), flags: s.readUInt32LE(8), releaseFlags: s.readUInt32LE(12), lockOwner: s.readBigUInt64LE(16) }
}

function parseReadIn(r: BodyReader): { fh: number; offset: number; size: number; readFlags: number; lockOwner: bigint; flags: number } {
  const s = r.struct(READ_IN_BYTES, 'fuse_read_in')
  return {
    fh: readU64(s, 0, 'fh'),
    offset: readU64(s, 8, 'offset'),
    size: s.readUInt32LE(16),
    readFlags: s.readUInt32LE(20),
    lockOwner: s.readBigUInt64LE(24),
    flags: s.readUInt32LE(32),
  }
}

function parseFsync(r: BodyReader): { fh: number; fsyncFlags: number } {
  const s = r.struct(FSYNC_IN_BYTES, 'fuse_fsync_in')
  return { fh: readU64(s, 0, 'fh'), fsyncFlags: s.readUInt32LE(8) }
}

function parseOpenIn(r: BodyReader): { flags: number; openFlags: number } {
  const s = r.struct(OPEN_IN_BYTES, 'fuse_open_in')
  return { flags: s.readUInt32LE(0), openFlags: s.readUInt32LE(4) }
}

function parseRename(r: BodyReader, size: number): RequestBody {
  const s = r.struct(size, size === RENAME_IN_BYTES ? 'fuse_rename_in' : 'fuse_rename2_in')
  const newdir = readU64(s, 0, 'newdir')
  const flags = size === RENAME_IN_BYTES ? 0 : s.readUInt32LE(8)
  const name = r.name('old name')
  const newname = r.name('new name')
  return r.end({ op: 'rename', newdir, flags, name, newname })
}

function parseTime(s: Buffer, secOff: number, nsecOff: number, field: string): Timespec {
  return { sec: readI64(s, secOff, field), nsec: s.readUInt32LE(nsecOff) }
}

const PARSERS: Partial<Record<number, Parser>> = {
  [Opcode.LOOKUP]: (r) => r.end({ op: 'lookup', name: r.name() }),
  [Opcode.FORGET]: (r) => {
    const s = r.struct(FORGET_IN_BYTES, 'fuse_forget_in')
    return r.end({ op: 'forget', nlookup: readU64(s, 0, 'nlookup') })
  },
  [Opcode.BATCH_FORGET]: (r) => {
    const count = r.struct(BATCH_FORGET_IN_BYTES, 'fuse_batch_forget_in').readUInt32LE(0)
    const items: Array<{ nodeid: number; nlookup: number }> = []
    for (let i = 0; i < count; i++) {
      const s = r.struct(FORGET_ONE_BYTES, `fuse_forget_one ${i} of ${count}`)
      items.push({ nodeid: readU64(s, 0, 'nodeid'), nlookup: readU64(s, 8, 'nlookup') })
    }
    return r.end({ op: 'batchForget', items })
  },
  [Opcode.GETATTR]: (r) => {
    const s = r.struct(GETATTR_IN_BYTES, 'fuse_getattr_in')
    return r.end({ op: 'getattr', flags: s.readUInt32LE(0), fh: readU64(s, 8, 'fh') })
  },
  [Opcode.SETATTR]: (r) => {
    const s = r.struct(SETATTR_IN_BYTES, 'fuse_setattr_in')
    return r.end({
      op: 'setattr',
      valid: s.readUInt32LE(0),
      fh: readU64(s, 8, 'fh'),
      size: readU64(s, 16, 'size'),
      lockOwner: s.readBigUInt64LE(24),
      atime: parseTime(s, 32, 56, 'atime'),
      mtime: parseTime(s, 40, 60, 'mtime'),
      ctime: parseTime(s, 48, 64, 'ctime'),
      mode: s.readUInt32LE(68),
      uid: s.readUInt32LE(76),
      gid: s.readUInt32LE(80),
    })
  },
  [Opcode.READLINK]: (r) => r.end({ op: 'readlink' }),
  [Opcode.SYMLINK]: (r) => {
    const name = r.name()
    return r.end({ op: 'symlink', name, target: r.name('symlink target') })
  },
  [Opcode.MKNOD]: (r) => {
    const s = r.struct(MKNOD_IN_BYTES, 'fuse_mknod_in')
    const name = r.name()
    return r.end({ op: 'mknod', mode: s.readUInt32LE(0), rdev: s.readUInt32LE(4), umask: s.readUInt32LE(8), name })
  },
  [Opcode.MKDIR]: (r) => {
    const s = r.struct(MKDIR_IN_BYTES, 'fuse_mkdir_in')
    const name = r.name()
    return r.end({ op: 'mkdir', mode: s.readUInt32LE(0), umask: s.readUInt32LE(4), name })
  },
  [Opcode.UNLINK]: (r) => r.end({ op: 'unlink', name: r.name() }),
  [Opcode.RMDIR]: (r) => r.end({ op: 'rmdir', name: r.name() }),
  [Opcode.RENAME]: (r) => parseRename(r, RENAME_IN_BYTES),
  [Opcode.RENAME2]: (r) => parseRename(r, RENAME2_IN_BYTES),
  [Opcode.LINK]: (r) => {
    const oldnodeid = readU64(r.struct(LINK_IN_BYTES, 'fuse_link_in'), 0, 'oldnodeid')
    return r.end({ op: 'link', oldnodeid, name: r.name() })
  },
  [Opcode.OPEN]: (r) => r.end({ op: 'open', ...parseOpenIn(r) }),
  [Opcode.READ]: (r) => r.end({ op: 'read', ...parseReadIn(r) }),
  [Opcode.WRITE]: (r) => {
    const s = r.struct(WRITE_IN_BYTES, 'fuse_write_in')
    const size = s.readUInt32LE(16)
    return {
      op: 'write',
      fh: readU64(s, 0, 'fh'),
      offset: readU64(s, 8, 'offset'),
      size,
      writeFlags: s.readUInt32LE(20),
      lockOwner: s.readBigUInt64LE(24),
      flags: s.readUInt32LE(32),
      data: r.bytes(size, 'write data'),
    }
  },
  [Opcode.STATFS]: (r) => r.end({ op: 'statfs' }),
  [Opcode.RELEASE]: (r) => r.end({ op: 'release', ...parseRelease(r) }),
  [Opcode.FSYNC]: (r) => r.end({ op: 'fsync', ...parseFsync(r) }),
  [Opcode.SETXATTR]: (r) => {
    const s = r.struct(SETXATTR_IN_BYTES, 'fuse_setxattr_in')
    const name = r.name('xattr name')
    return { op: 'setxattr', name, value: r.bytes(s.readUInt32LE(0), 'xattr value'), flags: s.readUInt32LE(4) }
  },
  [Opcode.GETXATTR]: (r) => {
    const size = r.struct(GETXATTR_IN_BYTES, 'fuse_getxattr_in').readUInt32LE(0)
    return r.end({ op: 'getxattr', name: r.name('xattr name'), size })
  },
  [Opcode.LISTXATTR]: (r) => r.end({ op: 'listxattr', size: r.struct(GETXATTR_IN_BYTES, 'fuse_getxattr_in').readUInt32LE(0) }),
  [Opcode.REMOVEXATTR]: (r) => r.end({ op: 'removexattr', name: r.name('xattr name') }),
  [Opcode.FLUSH]: (r) => {
    const s = r.struct(FLUSH_IN_BYTES, 'fuse_flush_in')
    return r.end({ op: 'flush', fh: readU64(s, 0, 'fh'), lockOwner: s.readBigUInt64LE(16) })
  },
  [Opcode.INIT]: (r) => {
    // Not r.end(): newer kernels send a longer fuse_init_in than the 7.33 one.
    const s = r.struct(INIT_IN_BYTES, 'fuse_init_in')
    return { op: 'init', major: s.readUInt32LE(0), minor: s.readUInt32LE(4), maxReadahead: s.readUInt32LE(8), flags: s.readUInt32LE(12) }
  },
  [Opcode.OPENDIR]: (r) => r.end({ op: 'opendir', ...parseOpenIn(r) }),
  [Opcode.READDIR]: (r) => {
    const { fh, offset, size } = parseReadIn(r)
    return r.end({ op: 'readdir', fh, offset, size })
  },
  [Opcode.READDIRPLUS]: (r) => {
    const { fh, offset, size } = parseReadIn(r)
    return r.end({ op: 'readdirplus', fh, offset, size })
  },
  [Opcode.RELEASEDIR]: (r) => {
    const { fh, flags, releaseFlags } = parseRelease(r)
    return r.end({ op: 'releasedir', fh, flags, releaseFlags })
  },
  [Opcode.FSYNCDIR]: (r) => r.end({ op: 'fsyncdir', ...parseFsync(r) }),
  [Opcode.ACCESS]: (r) => r.end({ op: 'access', mask: r.struct(ACCESS_IN_BYTES, 'fuse_access_in').readUInt32LE(0) }),
  [Opcode.CREATE]: (r) => {
    const s = r.struct(CREATE_IN_BYTES, 'fuse_create_in')
    const name = r.name()
    return r.end({
      op: 'create',
      flags: s.readUInt32LE(0),
      mode: s.readUInt32LE(4),
      umask: s.readUInt32LE(8),
      openFlags: s.readUInt32LE(12),
      name,
    })
  },
  [Opcode.INTERRUPT]: (r) => r.end({ op: 'interrupt', unique: r.struct(INTERRUPT_IN_BYTES, 'fuse_interrupt_in').readBigUInt64LE(0) }),
  [Opcode.DESTROY]: (r) => r.end({ op: 'destroy' }),
  [Opcode.FALLOCATE]: (r) => {
    const s = r.struct(FALLOCATE_IN_BYTES, 'fuse_fallocate_in')
    return r.end({
      op: 'fallocate',
      fh: readU64(s, 0, 'fh'),
      offset: readU64(s, 8, 'offset'),
      length: readU64(s, 16, 'length'),
      mode: s.readUInt32LE(24),
    })
  },
  [Opcode.LSEEK]: (r) => {
    const s = r.struct(LSEEK_IN_BYTES, 'fuse_lseek_in')
    return r.end({ op: 'lseek', fh: readU64(s, 0, 'fh'), offset: readU64(s, 8, 'offset'), whence: s.readUInt32LE(16) })
  },
}

/**
 * Decode the header of a request. Throws FuseProtocolError (EINVAL, no `unique`) when `buf`
 * is shorter than a header or not `len` bytes long, (EOVERFLOW, with `unique`) for a node id
 * past MAX_SAFE_INTEGER.
 */
export function parseHeader(buf: Buffer): RequestHeader {
  if (buf.length < IN_HEADER_BYTES) throw bad(`a request of ${buf.length} bytes is shorter than the ${IN_HEADER_BYTES}-byte header`)
  const len = buf.readUInt32LE(0)
  if (len !== buf.length) throw bad(`the request header says ${len} bytes, the buffer has ${buf.length}`)
  const unique = buf.readBigUInt64LE(8)
  let nodeid: number
  try {
    nodeid = readU64(buf, 16, 'nodeid')
  } catch (err) {
    throw withUnique(err, unique, opcodeName(buf.readUInt32LE(4)))
  }
  return { len, opcode: buf.readUInt32LE(4), unique, nodeid, uid: buf.readUInt32LE(24), gid: buf.readUInt32LE(28), pid: buf.readUInt32LE(32) }
}

function withUnique(err: unknown, unique: bigint, op: string): unknown {
  if (!(err instanceof FuseProtocolError)) return err
  return new FuseProtocolError(err.errno, `${op} request ${unique}: ${err.message}`, unique)
}

/**
 * Decode one request exactly as read from /dev/fuse (`buf.length` must be the header's `len`).
 * Buffers in the result are views into `buf`: copy them before reusing `buf`. Opcodes pagecow
 * does not decode give `{ op: 'unknown' }`. Throws FuseProtocolError on a short or
 * inconsistent request (see parseHeader; body errors carry `unique`).
 */
export function parseRequest(buf: Buffer): Request {
  const header = parseHeader(buf)
  const parser = PARSERS[header.opcode]
  if (parser === undefined) return { header, op: 'unknown' }
  try {
    return { header, ...parser(new BodyReader(buf.subarray(IN_HEADER_BYTES))) }
  } catch (err) {
    throw withUnique(err, header.unique, opcodeName(header.opcode))
  }
}

/** struct fuse_attr (times in nanoseconds since the epoch, exact). */
export interface Attr {
  ino: number
  size: number
  blocks: number
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  blksize: number
}

/** struct fuse_entry_out: the answer to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK and CREATE. */
export interface EntryOut {
  /** 0 for a negative entry (a cached ENOENT). */
  nodeid: number
  generation: number
  /** How long the kernel may cache the name. */
  entryValidMs: number
  /** How long the kernel may cache the attributes. */
  attrValidMs: number
  attr: Attr
}

/** Fields of a STATFS reply (struct fuse_kstatfs). */
export interface StatfsOut {
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  bsize: number
  namelen: number
  frsize: number
}

/** Fields of the INIT reply (the 7.33 fuse_init_out, as at 7.31). */
export interface InitOut {
  major: number
  minor: number
  maxReadahead: number
  flags: number
  /** u16. */
  maxBackground: number
  /** u16. */
  congestionThreshold: number
  maxWrite: number
  /** Timestamp granularity in ns (1 = nanosecond times). */
  timeGran: number
  /** u16; used with InitFlag.MAX_PAGES. */
  maxPages: number
}

/**
 * Split fractional milliseconds into whole seconds (rounded down, so negative for times
 * before 1970) and nanoseconds in [0, 1e9): -1.5 ms is -1 s + 998 500 000 ns.
 */
export function splitMs(ms: number): Timespec {
  if (!Number.isFinite(ms)) throw new RangeError(`a time must be finite, not ${ms}`)
  let sec = Math.floor(ms / 1000)
  let nsec = Math.round((ms - sec * 1000) * 1e6)
  if (nsec >= 1e9) {
    sec += 1
    nsec -= 1e9
  }
  return { sec: sec + 0, nsec } // + 0 turns -0 into 0
}

function writeHeader(b: Buffer, error: number, unique: bigint): void {
  b.writeUInt32LE(b.length, 0)
  b.writeInt32LE(error, 4)
  b.writeBigUInt64LE(unique, 8)
}

/**
 * A zeroed buffer from Node's shared pool (small sizes): Buffer.alloc makes a new ArrayBuffer per
 * reply, and that external memory made V8 collect every few thousand requests.
 */
function zeroed(bytes: number): Buffer {
  return Buffer.allocUnsafe(bytes).fill(0)
}

function reply(unique: bigint, bodyBytes: number): Buffer {
  const b = zeroed(OUT_HEADER_BYTES + bodyBytes)
  writeHeader(b, 0, unique)
  return b
}

/** A validity period: u64 seconds at `secOff`, u32 nanoseconds at `nsecOff`. */
function writeValid(b: Buffer, secOff: number, nsecOff: number, ms: number, field: string): void {
  if (!(ms >= 0)) throw new RangeError(`${field} must be >= 0, not ${ms}`)
  const t = splitMs(ms)
  writeU64(b, secOff, t.sec, field)
  b.writeUInt32LE(t.nsec, nsecOff)
}

function writeTime(b: Buffer, secOff: number, nsecOff: number, ns: bigint, field: string): void {
  const t = splitNs(ns)
  writeI64(b, secOff, t.sec, field)
  b.writeUInt32LE(t.nsec, nsecOff)
}

/** struct fuse_attr at `off`. */
function writeAttr(b: Buffer, off: number, a: Attr): void {
  writeU64(b, off, a.ino, 'ino')
  writeU64(b, off + 8, a.size, 'size')
  writeU64(b, off + 16, a.blocks, 'blocks')
  writeTime(b, off + 24, off + 48, a.atimeNs, 'atime')
  writeTime(b, off + 32, off + 52, a.mtimeNs, 'mtime')
  writeTime(b, off + 40, off + 56, a.ctimeNs, 'ctime')
  b.writeUInt32LE(a.mode, off + 60)
  b.writeUInt32LE(a.nlink, off + 64)
  b.writeUInt32LE(a.uid, off + 68)
  b.writeUInt32LE(a.gid, off + 72)
  b.writeUInt32LE(a.rdev, off + 76)
  b.writeUInt32LE(a.blksize, off + 80)
  // flags (off + 84): 0, no submount or DAX
}

/** struct fuse_entry_out at `off`. */
function writeEntry(b: Buffer, off: number, e: EntryOut): void {
  writeU64(b, off, e.nodeid, 'nodeid')
  writeU64(b, off + 8, e.generation, 'generation')
  writeValid(b, off + 16, off + 32, e.entryValidMs, 'entryValidMs')
  writeValid(b, off + 24, off + 36, e.attrValidMs, 'attrValidMs')
  writeAttr(b, off + 40, e.attr)
}

function writeOpen(b: Buffer, off: number, fh: number, openFlags: number): void {
  writeU64(b, off, fh, 'fh')
  b.writeUInt32LE(openFlags, off + 8)
}

/** A failed request: `errno` is positive (ENOENT = 2) and goes on the wire negated. */
export function replyError(unique: bigint, errno: number): Buffer {
  if (!Number.isInteger(errno) || errno <= 0 || errno >= 4096) throw new RangeError(`errno must be in [1, 4095], not ${errno}`)
  const b = zeroed(OUT_HEADER_BYTES)
  writeHeader(b, -errno, unique)
  return b
}

/** Success with no body (SETXATTR, UNLINK, RELEASE, FLUSH, FSYNC, ...). */
export function replyEmpty(unique: bigint): Buffer {
  return reply(unique, 0)
}

/** fuse_entry_out. */
export function replyEntry(unique: bigint, e: EntryOut): Buffer {
  const b = reply(unique, ENTRY_OUT_BYTES)
  writeEntry(b, OUT_HEADER_BYTES, e)
  return b
}

/** fuse_attr_out (GETATTR, SETATTR). */
export function replyAttr(unique: bigint, attrValidMs: number, attr: Attr): Buffer {
  const b = reply(unique, ATTR_OUT_BYTES)
  writeValid(b, OUT_HEADER_BYTES, OUT_HEADER_BYTES + 8, attrValidMs, 'attrValidMs')
  writeAttr(b, OUT_HEADER_BYTES + 16, attr)
  return b
}

/** fuse_open_out (OPEN, OPENDIR); `openFlags` from OpenOut. */
export function replyOpen(unique: bigint, fh: number, openFlags: number): Buffer {
  const b = reply(unique, OPEN_OUT_BYTES)
  writeOpen(b, OUT_HEADER_BYTES, fh, openFlags)
  return b
}

/** fuse_entry_out then fuse_open_out (CREATE). */
export function replyCreate(unique: bigint, e: EntryOut, fh: number, openFlags: number): Buffer {
  const b = reply(unique, ENTRY_OUT_BYTES + OPEN_OUT_BYTES)
  writeEntry(b, OUT_HEADER_BYTES, e)
  writeOpen(b, OUT_HEADER_BYTES + ENTRY_OUT_BYTES, fh, openFlags)
  return b
}

/** fuse_write_out: how many bytes were written. */
export function replyWrite(unique: bigint, size: number): Buffer {
  return replyU32(unique, WRITE_OUT_BYTES, size)
}

/** fuse_statfs_out. */
export function replyStatfs(unique: bigint, s: StatfsOut): Buffer {
  const b = reply(unique, STATFS_OUT_BYTES)
  const o = OUT_HEADER_BYTES
  writeU64(b, o, s.blocks, 'blocks')
  writeU64(b, o + 8, s.bfree, 'bfree')
  writeU64(b, o + 16, s.bavail, 'bavail')
  writeU64(b, o + 24, s.files, 'files')
  writeU64(b, o + 32, s.ffree, 'ffree')
  b.writeUInt32LE(s.bsize, o + 40)
  b.writeUInt32LE(s.namelen, o + 44)
  b.writeUInt32LE(s.frsize, o + 48)
  return b
}

/** Raw bytes after the header: READ, READLINK, GETXATTR/LISTXATTR values, directory listings. Copies `data`. */
export function replyData(unique: bigint, data: Uint8Array): Buffer {
  const b = reply(unique, data.length)
  b.set(data, OUT_HEADER_BYTES)
  return b
}

/** Only the header of a data reply, for writev(header, data) without a copy. */
export function replyDataHeader(unique: bigint, dataLength: number): Buffer {
  const b = zeroed(OUT_HEADER_BYTES)
  b.writeUInt32LE(OUT_HEADER_BYTES + dataLength, 0)
  b.writeBigUInt64LE(unique, 8)
  return b
}

/** fuse_getxattr_out: the size a GETXATTR or LISTXATTR with `size` 0 asks for. */
export function replyXattrSize(unique: bigint, size: number): Buffer {
  return replyU32(unique, GETXATTR_OUT_BYTES, size)
}

/** A reply whose body is one u32 and padding (fuse_write_out, fuse_getxattr_out). */
function replyU32(unique: bigint, bodyBytes: number, value: number): Buffer {
  const b = reply(unique, bodyBytes)
  b.writeUInt32LE(value, OUT_HEADER_BYTES)
  return b
}

/** fuse_lseek_out. */
export function replyLseek(unique: bigint, offset: number): Buffer {
  const b = reply(unique, LSEEK_OUT_BYTES)
  writeU64(b, OUT_HEADER_BYTES, offset, 'offset')
  return b
}

/** fuse_init_out, 64 bytes (map_alignment, flags2 and unused left 0). */
export function replyInit(unique: bigint, o: InitOut): Buffer {
  const b = reply(unique, INIT_OUT_BYTES)
  const p = OUT_HEADER_BYTES
  b.writeUInt32LE(o.major, p)
  b.writeUInt32LE(o.minor, p + 4)
  b.writeUInt32LE(o.maxReadahead, p + 8)
  b.writeUInt32LE(o.flags >>> 0, p + 12)
  b.writeUInt16LE(o.maxBackground, p + 16)
  b.writeUInt16LE(o.congestionThreshold, p + 18)
  b.writeUInt32LE(o.maxWrite, p + 20)
  b.writeUInt32LE(o.timeGran, p + 24)
  b.writeUInt16LE(o.maxPages, p + 28)
  return b
}

/** FUSE_DIRENT_ALIGN: records are padded to 8 bytes. */
function align8(n: number): number {
  return (n + 7) & ~7
}

function checkDirentName(name: Buffer): void {
  if (name.length === 0 || name.length > NAME_MAX_BYTES || name.includes(0x2f) || name.includes(0)) {
    throw new RangeError(`a directory entry name must be 1 to ${NAME_MAX_BYTES} bytes without '/' or NUL`)
  }
}

/** struct fuse_dirent at `off` (the padding is already zero). */
function writeDirent(b: Buffer, off: number, ino: number, nextOffset: number, type: number, name: Buffer): void {
  writeU64(b, off, ino, 'ino')
  writeU64(b, off + 8, nextOffset, 'nextOffset')
  b.writeUInt32LE(name.length, off + 16)
  b.writeUInt32LE(type, off + 20)
  name.copy(b, off + DIRENT_NAME_OFFSET)
}

/** What a READDIR or READDIRPLUS reply body is: records packed from the front, up to the size the request allows. */
class RecordBuffer {
  readonly #buf: Buffer
  #used = 0
  #count = 0

  constructor(maxBytes: number) {
    this.#buf = zeroed(maxBytes)
  }

  /** The records added so far: a view, not a copy. */
  get buffer(): Buffer {
    return this.#buf.subarray(0, this.#used)
  }

  get count(): number {
    return this.#count
  }

  /** Bytes not used yet. */
  protected get free(): number {
    return this.#buf.length - this.#used
  }

  /**
   * Append a record of `size` bytes that `write` puts at `at` in `buf`. Returns false, adding
   * nothing, when it would not fit; a `write` that throws adds nothing either.
   */
  protected append(size: number, write: (buf: Buffer, at: number) => void): boolean {
    if (size > this.free) return false
    write(this.#buf, this.#used)
    this.#used += size
    this.#count++
    return true
  }
}

/**
 * The body of a READDIR reply: struct fuse_dirent records, each padded to 8 bytes, up to the
 * `size` the request allows. Send with replyData(unique, writer.buffer).
 */
export class DirentWriter extends RecordBuffer {
  /**
   * Append an entry; `nextOffset` is the READDIR offset that resumes after it, `type` a DT
   * value. Returns false, adding nothing, when it would not fit. Throws RangeError for a name
   * the kernel would reject (empty, over NAME_MAX_BYTES, holding '/' or NUL).
   */
  add(ino: number, nextOffset: number, type: number, name: Buffer): boolean {
    checkDirentName(name)
    return this.append(align8(DIRENT_NAME_OFFSET + name.length), (b, at) => writeDirent(b, at, ino, nextOffset, type, name))
  }
}

/**
 * The body of a READDIRPLUS reply: struct fuse_direntplus records (fuse_entry_out then
 * fuse_dirent, padded to 8 bytes). The dirent's ino is `entry.attr.ino`. An entry with
 * nodeid 0 gives the name without a lookup (the kernel takes no reference).
 */
export class DirentPlusWriter extends RecordBuffer {
  /** How many of `names`, in order, still fit (look them up, then add them). */
  fitting(names: readonly Buffer[]): number {
    let free = this.free
    let n = 0
    for (const name of names) {
      free -= align8(DIRENTPLUS_NAME_OFFSET + name.length)
      if (free < 0) break
      n++
    }
    return n
  }

  /** Whether a record for `name` still fits (check before looking the entry up: the kernel counts a lookup for every entry sent). */
  fits(name: Buffer): boolean {
    return align8(DIRENTPLUS_NAME_OFFSET + name.length) <= this.free
  }

  /** As DirentWriter.add, with the entry the kernel caches as if looked up. */
  add(entry: EntryOut, nextOffset: number, type: number, name: Buffer): boolean {
    checkDirentName(name)
    return this.append(align8(DIRENTPLUS_NAME_OFFSET + name.length), (b, at) => {
      writeEntry(b, at, entry)
      writeDirent(b, at + ENTRY_OUT_BYTES, entry.attr.ino, nextOffset, type, name)
    })
  }

  /**
   * The node id of each record that counts a lookup (not the nodeid-0 ones), read back from the
   * buffer: what to forget if the reply never reaches the kernel.
   */
  *nodeids(): Generator<number> {
    const b = this.buffer
    for (let at = 0; at < b.length; at += align8(DIRENTPLUS_NAME_OFFSET + b.readUInt32LE(at + ENTRY_OUT_BYTES + 16))) {
      const nodeid = readU64(b, at, 'nodeid')
      if (nodeid !== 0) yield nodeid
    }
  }
}

/** fuse_notify_code: messages the server sends unasked (unique 0, the code in `error`). */
export const NotifyCode = { INVAL_INODE: 2, INVAL_ENTRY: 3, DELETE: 6 } as const

/**
 * FUSE_NOTIFY_INVAL_ENTRY: ask the kernel to drop its entry `name` of directory `parent`. An
 * inode no longer referenced is then evicted and comes back to us as a FORGET.
 */
export function notifyInvalEntry(parent: number, name: Buffer): Buffer {
  checkDirentName(name)
  const b = Buffer.alloc(OUT_HEADER_BYTES + 16 + name.length + 1)
  writeHeader(b, NotifyCode.INVAL_ENTRY, 0n)
  writeU64(b, OUT_HEADER_BYTES, parent, 'parent')
  b.writeUInt32LE(name.length, OUT_HEADER_BYTES + 8)
  name.copy(b, OUT_HEADER_BYTES + 16)
  return b
}
