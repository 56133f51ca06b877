// One FUSE request in, one reply out: decode names, call the file system, encode the result.
// Errors become errno replies: a PagecowError's own errno, EIO (logged) for anything else. Damage
// (ECORRUPT: a checksum, a damaged squashfs image) is EIO, as a kernel file system answers a bad
// block, and logged: what is damaged is in the message, which the errno cannot carry.
import { isPagecowError, PagecowError } from '../errors.js'
import { NAME_MAX } from '../tree/names.js'
import { nameFromBytes, nameToBytes } from '../name-bytes.js'
import { joinNs } from '../time-ns.js'
import type { FuseOperations } from './operations.js'
import { ATTR_VALID_MS, ENTRY_VALID_MS } from './operations.js'
import {
  DirentPlusWriter,
  DirentWriter,
  InitFlag,
  KERNEL_MAJOR,
  KERNEL_MINOR,
  replyAttr,
  replyCreate,
  replyData,
  replyDataHeader,
  replyEmpty,
  replyEntry,
  replyError,
  replyInit,
  replyLseek,
  replyOpen,
  replyStatfs,
  replyWrite,
  replyXattrSize,
  OpenOut,
  SetattrValid,
  GETATTR_FH,
  OPEN_KILL_SUIDGID,
  WRITE_CACHE,
  WRITE_KILL_SUIDGID,
  type EntryOut,
  type Request,
} from './protocol.js'

const ENOSYS = 38
const ERANGE = 34
const EIO = 5
const EPROTO = 71
const ENXIO = 6
const O_ACCMODE = 3
const O_WRONLY = 1
const O_RDWR = 2
const O_APPEND = 0o2000

/**
 * Pages in the largest WRITE the kernel may send (and READ it may ask): 255, one less than the 256
 * a pipe holds when its size may not pass 1 MiB (/proc/sys/fs/pipe-max-size), so a READ reply (its
 * header and 255 pages) goes through one pipe when spliced.
 */
export const MAX_PAGES = 255
export const MAX_WRITE = MAX_PAGES * 4096
/** A read buffer must hold one request: the largest write plus its headers. */
export const REQUEST_BUFFER_BYTES = MAX_WRITE + 4096

/** What we ask of the kernel if it offers it. */
const WANTED_FLAGS =
  InitFlag.ASYNC_READ | InitFlag.BIG_WRITES | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.CACHE_SYMLINKS | InitFlag.ATOMIC_O_TRUNC |
  InitFlag.HANDLE_KILLPRIV_V2 |
  // Every listing comes with its entries' attributes: a walk (find, du, ls -l) then costs one
  // request per page of names, not one LOOKUP per name. (READDIRPLUS_AUTO switched to plain
  // READDIR after the first page of each directory: 30k LOOKUPs in a 50k-entry walk.)
  InitFlag.DO_READDIRPLUS

/**
 * A reply that hands the kernel something we count: a lookup of a node (which it FORGETs later)
 * or an open handle (which it RELEASEs). If the reply never reaches it (the write to /dev/fuse
 * fails: the request was interrupted, the connection aborted), nothing will ever give that back:
 * `takeBack` does.
 */
export class Granting {
  readonly reply: Buffer
  readonly takeBack: () => Promise<void> | void

  constructor(reply: Buffer, takeBack: () => Promise<void> | void) {
    this.reply = reply
    this.takeBack = takeBack
  }
}

export type Reply = Buffer | Buffer[] | Granting | null

/** How a READ reply goes to the kernel straight from a file's page cache (splice(2)). */
export interface SpliceChannel {
  /**
   * Send a reply made of `header`, `bytes` bytes of `fd` at `position` and `zeros` zero bytes.
   * False if it cannot (nothing was sent; the bytes are not cached, the reply does not fit): the
   * caller then replies as usual. True once sent, or once the kernel no longer waits for it.
   */
  splice(header: Buffer, fd: number, position: number, bytes: number, zeros: number): boolean
}

export interface DispatchLog {
  (message: string): void
}

export interface DispatchOptions {
  /** How READ replies may be spliced; without it they are always copied. */
  channel?: SpliceChannel
  /**
   * Ask the kernel to cache writes (FUSE_WRITEBACK_CACHE): write(2) returns once the page cache
   * has the data, and the kernel sends it in larger WRITEs later (fsync, close, memory pressure or
   * its dirty timer). The kernel then owns mtime and size while it caches. Default false.
   */
  writebackCache?: boolean
}

export class Dispatcher {
  readonly #ops: FuseOperations
  readonly #log: DispatchLog
  readonly #channel: SpliceChannel | undefined
  readonly #askWriteback: boolean
  /** Set by DESTROY or INIT failure: the session ends after this reply. */
  ended = false
  /** Set once INIT is answered. */
  initialized = false
  /** Whether the kernel caches writes (FUSE_WRITEBACK_CACHE asked for, and granted by INIT). */
  writebackCache = false

  constructor(ops: FuseOperations, log: DispatchLog, options: DispatchOptions = {}) {
    this.#ops = ops
    this.#log = log
    this.#channel = options.channel
    this.#askWriteback = options.writebackCache === true && !ops.readOnly
  }

  /**
   * The reply to `req` (null for requests that take none: FORGET, INTERRUPT, or a READ reply
   * already spliced). `scratch` lends a buffer of MAX_WRITE bytes for a READ reply's data; it must
   * stay untouched until the reply is written.
   */
  /**
   * `detach`, for a request read into one of the session's large buffers: hand that buffer back
   * before the reply (the request's data was copied out).
   */
  async handle(req: Request, scratch: () => Buffer | Promise<Buffer>, detach?: () => void): Promise<Reply> {
    const unique = req.header.unique
    try {
      return await this.#call(req, scratch, detach)
    } catch (err) {
      if (isPagecowError(err)) {
        // Bytes that cannot be vouched for (damage anywhere, a bound lower page that changed) are
        // EIO, as a disk's bad sector is (SPEC §8); the reason goes to the log.
        if (err.code === 'ECORRUPT' || (req.op === 'read' && err.code === 'ESTALE')) {
          this.#log(`fuse: ${req.op} failed: ${err.code} ${err.message}`)
          return replyError(unique, EIO)
        }
        return replyError(unique, err.errno)
      }
      this.#log(`fuse: ${req.op} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
      return replyError(unique, EIO)
    }
  }

  async #call(req: Request, scratch: () => Buffer | Promise<Buffer>, detach: (() => void) | undefined): Promise<Reply> {
    const ops = this.#ops
    const { unique, nodeid } = req.header
    const caller = { uid: req.header.uid, gid: req.header.gid, pid: req.header.pid }
    switch (req.op) {
      case 'init': {
        if (req.major !== KERNEL_MAJOR) {
          this.#log(`fuse: the kernel speaks protocol ${req.major}.${req.minor}; pagecow speaks ${KERNEL_MAJOR}.${KERNEL_MINOR}`)
          this.ended = true
          return replyError(unique, EPROTO)
        }
        this.initialized = true
        const flags = req.flags & (WANTED_FLAGS | (this.#askWriteback ? InitFlag.WRITEBACK_CACHE : 0))
        this.writebackCache = (flags & InitFlag.WRITEBACK_CACHE) !== 0
        return replyInit(unique, {
          major: KERNEL_MAJOR,
          minor: Math.min(KERNEL_MINOR, req.minor),
          // The kernel takes the smaller of this and its default (128 KiB); the mount raises it after.
          maxReadahead: MAX_WRITE,
          flags,
          maxBackground: 64,
          congestionThreshold: 48,
          maxWrite: MAX_WRITE,
          timeGran: 1,
          maxPages: MAX_PAGES,
        })
      }
      case 'destroy':
        await ops.sync()
        this.ended = true
        return replyEmpty(unique)
      case 'lookup': {
        const entry = await ops.lookup(nodeid, lookupName(req.name))
        // nodeid 0: a negative entry the kernel may cache like a positive one.
        return this.#entry(unique, entry ?? { nodeid: 0, generation: 0, entryValidMs: ENTRY_VALID_MS, attrValidMs: 0, attr: NO_ATTR })
      }
      case 'forget':
        ops.forget(nodeid, req.nlookup)
        return null
      case 'batchForget':
        for (const item of req.items) ops.forget(item.nodeid, item.nlookup)
        return null
      case 'interrupt':
        return null // every operation here is short; the reply will come
      case 'getattr':
        return replyAttr(unique, ATTR_VALID_MS, await ops.getattr(nodeid, req.flags & GETATTR_FH ? req.fh : undefined))
      case 'setattr': {
        const v = req.valid
        const changes: Parameters<FuseOperations['setattr']>[1] = {}
        if (v & SetattrValid.MODE) changes.mode = req.mode & 0o7777
        if (v & SetattrValid.UID) changes.uid = req.uid
        if (v & SetattrValid.GID) changes.gid = req.gid
        if (v & SetattrValid.SIZE) changes.size = req.size
        if (v & SetattrValid.ATIME) changes.atimeNs = v & SetattrValid.ATIME_NOW ? 'now' : joinNs(req.atime.sec, req.atime.nsec)
        if (v & SetattrValid.KILL_SUIDGID) changes.killSuidgid = true
        if (v & SetattrValid.MTIME) changes.mtimeNs = v & SetattrValid.MTIME_NOW ? 'now' : joinNs(req.mtime.sec, req.mtime.nsec)
        return replyAttr(unique, ATTR_VALID_MS, await ops.setattr(nodeid, changes, v & SetattrValid.FH ? req.fh : undefined))
      }
      case 'readlink':
        return replyData(unique, nameToBytes(await ops.readlink(nodeid)))
      case 'symlink':
        return this.#entry(unique, await ops.symlink(nodeid, newName(req.name), nameFromBytes(req.target), caller))
      case 'mknod':
        return this.#entry(unique, await ops.mknod(nodeid, newName(req.name), req.mode, req.rdev, caller))
      case 'mkdir':
        return this.#entry(unique, await ops.mkdir(nodeid, newName(req.name), req.mode, caller))
      case 'unlink':
        await ops.unlink(nodeid, existingName(req.name))
        return replyEmpty(unique)
      case 'rmdir':
        await ops.rmdir(nodeid, existingName(req.name))
        return replyEmpty(unique)
      case 'rename':
        await ops.rename(nodeid, existingName(req.name), req.newdir, newName(req.newname), req.flags)
        return replyEmpty(unique)
      case 'link':
        return this.#entry(unique, await ops.link(req.oldnodeid, nodeid, newName(req.name)))
      case 'open': {
        const opened = await ops.open(nodeid, this.#openFlags(req.flags), (req.openFlags & OPEN_KILL_SUIDGID) !== 0)
        return new Granting(replyOpen(unique, opened.fh, opened.keepCache ? OpenOut.KEEP_CACHE : 0), () => ops.release(opened.fh))
      }
      case 'create': {
        const { entry, opened } = await ops.create(nodeid, newName(req.name), this.#openFlags(req.flags), req.mode, caller)
        return new Granting(replyCreate(unique, entry, opened.fh, opened.keepCache ? OpenOut.KEEP_CACHE : 0), async () => {
          try {
            await ops.release(opened.fh)
          } finally {
            ops.forget(entry.nodeid, 1)
          }
        })
      }
      case 'read': {
        if (req.size > MAX_WRITE) throw new PagecowError('EINVAL', `read: ${req.size} bytes is over the ${MAX_WRITE}-byte limit negotiated`)
        // Bytes that lie in a file as they are (an image's unmodified pages) go from its page cache
        // to the kernel without a copy through our memory: half the CPU of a large read.
        const span = this.#channel && ops.spanOf?.(req.fh, req.offset, req.size)
        if (span && this.#channel!.splice(replyDataHeader(unique, span.bytes + span.zeros), span.fd, req.offset, span.bytes, span.zeros)) return null
        const data = await ops.read(req.fh, req.offset, req.size, await scratch())
        if (data.length === 0) return replyDataHeader(unique, 0)
        return [replyDataHeader(unique, data.length), Buffer.from(data.buffer, data.byteOffset, data.length)]
      }
      case 'write': {
        let data = req.data
        // A write to a frozen file waits for the thaw: not in a buffer the session reads requests into.
        if (detach && ops.writeWaits?.(req.fh)) {
          data = Buffer.from(data)
          detach()
        }
        return replyWrite(unique, await ops.write(req.fh, req.offset, data, (req.writeFlags & WRITE_KILL_SUIDGID) !== 0, (req.writeFlags & WRITE_CACHE) !== 0))
      }
      case 'flush':
        return replyEmpty(unique) // close(2): data is in the store already; durability is fsync's
      case 'release':
        await ops.release(req.fh)
        return replyEmpty(unique)
      case 'fsync':
        await ops.fsync(req.fh)
        return replyEmpty(unique)
      case 'fallocate':
        // Not ENOSYS: the kernel would stop asking for good, and a tree file may support it later.
        if (!ops.fallocate) throw new PagecowError('ENOTSUP', 'fallocate is not supported here')
        await ops.fallocate(req.fh, req.offset, req.length, req.mode)
        return replyEmpty(unique)
      case 'lseek': {
        // With the write cache, pages the kernel has not sent yet are data we cannot see, and it
        // sends none before asking: our holes could hide them from cp, tar or rsync. ENOSYS makes
        // the kernel answer for good with its generic rule (all data up to the size), as a file
        // system without SEEK_DATA does: never a byte skipped.
        if (this.writebackCache) return replyError(unique, ENOSYS)
        const found = await ops.lseek(nodeid, req.fh, req.offset, req.whence)
        return found === null ? replyError(unique, ENXIO) : replyLseek(unique, found)
      }
      case 'statfs':
        return replyStatfs(unique, await ops.statfs())
      case 'setxattr':
        await ops.setxattr(nodeid, utf8(req.name, 'attribute name'), req.value, req.flags)
        return replyEmpty(unique)
      case 'getxattr': {
        const value = await ops.getxattr(nodeid, utf8(req.name, 'attribute name'))
        if (req.size === 0) return replyXattrSize(unique, value.length)
        if (value.length > req.size) return replyError(unique, ERANGE)
        return replyData(unique, value)
      }
      case 'listxattr': {
        const list = Buffer.from((await ops.listxattr(nodeid)).map((n) => `${n}\0`).join(''), 'utf8')
        if (req.size === 0) return replyXattrSize(unique, list.length)
        if (list.length > req.size) return replyError(unique, ERANGE)
        return replyData(unique, list)
      }
      case 'removexattr':
        await ops.removexattr(nodeid, utf8(req.name, 'attribute name'))
        return replyEmpty(unique)
      case 'opendir': {
        const fh = await ops.opendir(nodeid)
        return new Granting(replyOpen(unique, fh, ops.stable ? OpenOut.KEEP_CACHE | OpenOut.CACHE_DIR : 0), () => ops.releasedir(fh))
      }
      case 'readdir': {
        const out = new DirentWriter(req.size)
        await ops.readdir(req.fh, req.offset, out)
        return replyData(unique, out.buffer)
      }
      case 'readdirplus': {
        if (!ops.readdirplus) return replyError(unique, ENOSYS)
        const out = new DirentPlusWriter(req.size)
        try {
          await ops.readdirplus(req.fh, req.offset, out)
        } catch (err) {
          // The error reply carries no entries: the lookups counted for those added are given back.
          for (const id of out.nodeids()) ops.forget(id, 1)
          throw err
        }
        return new Granting(replyData(unique, out.buffer), () => {
          for (const id of out.nodeids()) ops.forget(id, 1)
        })
      }
      case 'releasedir':
        await ops.releasedir(req.fh)
        return replyEmpty(unique)
      case 'fsyncdir':
        await ops.sync()
        return replyEmpty(unique)
      default:
        // ACCESS (default_permissions checks in the kernel), locks (the kernel's own),
        // COPY_FILE_RANGE, IOCTL, POLL, BMAP: ENOSYS tells the kernel to do without.
        return replyError(unique, ENOSYS)
    }
  }

  /**
   * The open(2) flags to act on. With the write cache the kernel places every write itself (its
   * size is the true one: the mount is the store's only writer) and sends cached pages at their
   * offsets, so a handle must not append on its own; and it reads a page before writing part of
   * it, through whichever handle it has, so a write-only handle must read too (the kernel checked
   * the caller's access; the reads are its own).
   */
  #openFlags(flags: number): number {
    if (!this.writebackCache) return flags
    const access = (flags & O_ACCMODE) === O_WRONLY ? O_RDWR : flags & O_ACCMODE
    return (flags & ~(O_ACCMODE | O_APPEND)) | access
  }

  /** An entry reply: a positive one counts a lookup (node id 0 is a negative entry, counted by nobody). */
  #entry(unique: bigint, entry: EntryOut): Reply {
    const reply = replyEntry(unique, entry)
    return entry.nodeid === 0 ? reply : new Granting(reply, () => this.#ops.forget(entry.nodeid, 1))
  }
}

const NO_ATTR = { ino: 0, size: 0, blocks: 0, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 }

function utf8(bytes: Buffer, what: string): string {
  const s = bytes.toString('utf8')
  if (!Buffer.from(s, 'utf8').equals(bytes)) throw new PagecowError('EINVAL', `the ${what} is not valid UTF-8`)
  return s
}

function checkLength(name: Buffer): void {
  if (name.length > NAME_MAX) throw new PagecowError('ENAMETOOLONG', `a name of ${name.length} bytes is longer than ${NAME_MAX}`)
}

/** Names are bytes (SPEC §6): every name the kernel sends is one the store can hold, in name form. */
function lookupName(name: Buffer): string {
  checkLength(name)
  return nameFromBytes(name)
}

const existingName = lookupName
const newName = lookupName
