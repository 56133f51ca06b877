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
  WRITE_KILL_SUIDGID,
  type EntryOut,
  type Request,
} from './protocol.js'

const ENOSYS = 38
const ERANGE = 34
const EIO = 5
const EPROTO = 71
const ENXIO = 6

/** Largest WRITE the kernel may send (and READ it may ask): 256 pages. */
export const MAX_WRITE = 1024 * 1024
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

export interface DispatchLog {
  (message: string): void
}

export class Dispatcher {
  readonly #ops: FuseOperations
  readonly #log: DispatchLog
  /** Set by DESTROY or INIT failure: the session ends after this reply. */
  ended = false
  /** Set once INIT is answered. */
  initialized = false

  constructor(ops: FuseOperations, log: DispatchLog) {
    this.#ops = ops
    this.#log = log
  }

  /** The reply to `req` (null for requests that take none: FORGET, INTERRUPT). */
  async handle(req: Request, scratch: Buffer): Promise<Reply> {
    const unique = req.header.unique
    try {
      return await this.#call(req, scratch)
    } catch (err) {
      if (isPagecowError(err) && err.code !== 'ECORRUPT') return replyError(unique, err.errno)
      this.#log(`fuse: ${req.op} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
      return replyError(unique, EIO)
    }
  }

  async #call(req: Request, scratch: Buffer): Promise<Reply> {
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
        return replyInit(unique, {
          major: KERNEL_MAJOR,
          minor: Math.min(KERNEL_MINOR, req.minor),
          // The kernel takes the smaller of this and its default (128 KiB); the mount raises it after.
          maxReadahead: MAX_WRITE,
          flags: req.flags & WANTED_FLAGS,
          maxBackground: 64,
          congestionThreshold: 48,
          maxWrite: MAX_WRITE,
          timeGran: 1,
          maxPages: MAX_WRITE / 4096,
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
        const opened = await ops.open(nodeid, req.flags, (req.openFlags & OPEN_KILL_SUIDGID) !== 0)
        return new Granting(replyOpen(unique, opened.fh, opened.keepCache ? OpenOut.KEEP_CACHE : 0), () => ops.release(opened.fh))
      }
      case 'create': {
        const { entry, opened } = await ops.create(nodeid, newName(req.name), req.flags, req.mode, caller)
        return new Granting(replyCreate(unique, entry, opened.fh, opened.keepCache ? OpenOut.KEEP_CACHE : 0), async () => {
          try {
            await ops.release(opened.fh)
          } finally {
            ops.forget(entry.nodeid, 1)
          }
        })
      }
      case 'read': {
        if (req.size > scratch.length) throw new PagecowError('EINVAL', `read: ${req.size} bytes is over the ${scratch.length}-byte limit negotiated`)
        const data = await ops.read(req.fh, req.offset, req.size, scratch)
        if (data.length === 0) return replyDataHeader(unique, 0)
        return [replyDataHeader(unique, data.length), Buffer.from(data.buffer, data.byteOffset, data.length)]
      }
      case 'write':
        return replyWrite(unique, await ops.write(req.fh, req.offset, req.data, (req.writeFlags & WRITE_KILL_SUIDGID) !== 0))
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
