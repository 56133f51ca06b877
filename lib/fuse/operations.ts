// What a file system served over FUSE implements: the kernel's low-level operations, by node id,
// with names already decoded and checked. The dispatcher turns requests into these calls and
// their results (or PagecowErrors) into replies.
import type { Attr, DirentPlusWriter, DirentWriter, EntryOut, StatfsOut } from './protocol.js'

/** Who asked: the calling process's fsuid, fsgid and pid. */
export interface Caller {
  uid: number
  gid: number
  pid: number
}

/** setattr's changes; a missing field is left as it is. Times in ns since the epoch, or 'now'. */
export interface AttrChanges {
  mode?: number
  uid?: number
  gid?: number
  size?: number
  atimeNs?: bigint | 'now'
  mtimeNs?: bigint | 'now'
  /** Clear suid/sgid as a write would (the kernel asks when the caller lacks CAP_FSETID). */
  killSuidgid?: boolean
}

/** An open file: our handle number, and whether the kernel may keep its cached pages. */
export interface Opened {
  fh: number
  keepCache: boolean
}

/** statfs as the kernel takes it. */
export type Statfs = StatfsOut

/** Messages a file system may send the kernel unasked. */
export interface Notifier {
  /** Ask the kernel to drop its entry `name` of directory `parent` (and so, once unused, the inode). */
  invalidateEntry(parent: number, name: string): void
}

export interface FuseOperations {
  /**
   * Whether everything that changes the file system comes through this mount, so the kernel may
   * keep pages and listings across opens. False for a read-only store (its writer may be elsewhere).
   */
  readonly stable: boolean
  /** Whether nothing may be changed (a read-only store): the kernel is not asked to cache writes. */
  readonly readOnly: boolean
  /** Called once by the session: how to reach the kernel unasked. Optional. */
  bindNotifier?(notifier: Notifier): void
  /** The entry `name` of directory `parent`, or null if there is none (cached as a negative entry). */
  lookup(parent: number, name: string): Promise<EntryOut | null>
  forget(nodeid: number, nlookup: number): void
  getattr(nodeid: number, fh: number | undefined): Promise<Attr>
  setattr(nodeid: number, changes: AttrChanges, fh: number | undefined): Promise<Attr>
  readlink(nodeid: number): Promise<string>
  symlink(parent: number, name: string, target: string, caller: Caller): Promise<EntryOut>
  mknod(parent: number, name: string, mode: number, rdev: number, caller: Caller): Promise<EntryOut>
  mkdir(parent: number, name: string, mode: number, caller: Caller): Promise<EntryOut>
  unlink(parent: number, name: string): Promise<void>
  rmdir(parent: number, name: string): Promise<void>
  rename(parent: number, name: string, newParent: number, newName: string, flags: number): Promise<void>
  link(nodeid: number, newParent: number, newName: string): Promise<EntryOut>
  /** `killSuidgid`: an O_TRUNC open that must clear suid/sgid. */
  open(nodeid: number, flags: number, killSuidgid: boolean): Promise<Opened>
  create(parent: number, name: string, flags: number, mode: number, caller: Caller): Promise<{ entry: EntryOut; opened: Opened }>
  /** Up to `size` bytes at `offset`; may be a view of `scratch` (the caller's, at least `size` bytes, free until the reply is written). */
  read(fh: number, offset: number, size: number, scratch: Buffer): Promise<Uint8Array>
  /**
   * Where the bytes a READ of `size` at `offset` returns are, if they lie in one file as they are
   * (no copy needed): its descriptor (read from `offset`), the bytes it holds, and the zeros after
   * them; undefined otherwise (read() then). Lets the server splice the reply from the file's page
   * cache. Synchronous: the descriptor must stay open until the reply is sent. Optional.
   */
  spanOf?(fh: number, offset: number, size: number): { fd: number; bytes: number; zeros: number } | undefined
  /**
   * Write through an open file. We handle privilege killing (HANDLE_KILLPRIV_V2): the first
   * write through a handle drops security.capability, and `killSuidgid` clears suid/sgid.
   * `cached`: pages the kernel's write cache sends back (FUSE_WRITE_CACHE), whose write(2) already
   * dropped the privileges in the kernel, maybe long ago: dropping any now would undo what was set
   * since (a capability given through the open file before its close).
   */
  write(fh: number, offset: number, data: Uint8Array, killSuidgid: boolean, cached: boolean): Promise<number>
  /**
   * Whether a write through `fh` would wait now (its file is frozen). Such a WRITE's data is
   * copied out of the session's large request buffer first, so that waiting writes do not take
   * the buffers the session needs to go on reading requests.
   */
  writeWaits?(fh: number): boolean
  release(fh: number): Promise<void>
  fsync(fh: number): Promise<void>
  /**
   * fallocate(2): FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE make the range read as zeros (and
   * give whole pages back); plain allocation is ENOTSUP (nothing can be reserved), so callers
   * fall back to writing. Optional: ENOTSUP when missing.
   */
  fallocate?(fh: number, offset: number, length: number, mode: number): Promise<void>
  /** SEEK_DATA (3) / SEEK_HOLE (4): the offset found, or null for ENXIO (past the end, no data left). */
  lseek(nodeid: number, fh: number, offset: number, whence: number): Promise<number | null>
  statfs(): Promise<Statfs>
  setxattr(nodeid: number, name: string, value: Uint8Array, flags: number): Promise<void>
  getxattr(nodeid: number, name: string): Promise<Buffer>
  listxattr(nodeid: number): Promise<string[]>
  removexattr(nodeid: number, name: string): Promise<void>
  opendir(nodeid: number): Promise<number>
  /** Fill `out` with entries from `offset` (0 = the start; each entry carries the offset after it). */
  readdir(fh: number, offset: number, out: DirentWriter): Promise<void>
  /** readdir with each entry's lookup (READDIRPLUS): a walk then needs no LOOKUP per name. Optional. */
  readdirplus?(fh: number, offset: number, out: DirentPlusWriter): Promise<void>
  releasedir(fh: number): Promise<void>
  /** Make every completed write durable (fsyncdir, and the flush before unmounting). */
  sync(): Promise<void>
}

/** How long the kernel may trust an entry or attributes we sent. The mount is the store's only
 * writer (the writer lock), and the kernel updates its caches on its own changes, so these are
 * about memory, not correctness. */
export const ENTRY_VALID_MS = 1000
export const ATTR_VALID_MS = 1000
