// Every file-system call the library makes goes through this module, so tests can inject
// EIO, ENOSPC and short reads with `t.mockImport` and the rest of the code stays honest.
import * as nodeFs from 'node:fs'
import { createRequire } from 'node:module'
import { constants as osConstants } from 'node:os'
import { promisify } from 'node:util'
import { addon, type PeerCredentials, type ReadableWatch } from './addon.js'
import type { Timespec } from './time-ns.js'

export type { PeerCredentials, ReadableWatch }

const require = createRequire(import.meta.url)
// fs-native-extensions: OFD locks (per open file, so two opens in one process exclude each
// other too) and hole punching with fallocate(PUNCH_HOLE). fs-ext: lseek with SEEK_DATA/SEEK_HOLE.
// Each is loaded at its first use (about 15 and 8 ms here): a read-only `pagecow map` takes no
// lock and punches nothing.
interface NativeExtensions {
  tryLock(fd: number, options?: { shared?: boolean }): boolean
  tryLock(fd: number, offset: number, length: number, options?: { shared?: boolean }): boolean
  tryDowngradeLock(fd: number, offset: number, length: number): boolean
  unlock(fd: number, offset?: number, length?: number): void
  trimSync(fd: number, offset: number, length: number): void
  getAttrSync(fd: number, name: string): Buffer | null
  setAttrSync(fd: number, name: string, value: Uint8Array): void
  listAttrsSync(fd: number): string[]
  removeAttrSync(fd: number, name: string): void
}
let nativeModule: NativeExtensions | undefined
interface FsExt {
  seekSync(fd: number, offset: number, whence: number): number
  flockSync(fd: number, flags: 'exnb' | 'un'): void
}
let fsExtModule: FsExt | undefined
const native = (): NativeExtensions => (nativeModule ??= require('fs-native-extensions') as NativeExtensions)
const fsExt = () => (fsExtModule ??= require('fs-ext') as FsExt)

const own = addon

/** A path as C wants it: its bytes and a NUL. */
function withNul(path: string | Buffer): Buffer {
  return Buffer.concat([typeof path === 'string' ? Buffer.from(path, 'utf8') : path, Buffer.of(0)])
}

const SEEK_DATA = 3
const SEEK_HOLE = 4

export const openSync = nodeFs.openSync
export const closeSync = nodeFs.closeSync
export const readSync = nodeFs.readSync
export const writeSync = nodeFs.writeSync
export const fstatSync = nodeFs.fstatSync
export const statSync = nodeFs.statSync
export const lstatSync = nodeFs.lstatSync
export const ftruncateSync = nodeFs.ftruncateSync
export const fdatasyncSync = nodeFs.fdatasyncSync
export const fsyncSync = nodeFs.fsyncSync
export const fdatasync = promisify(nodeFs.fdatasync)
/** read(2) in libuv's thread pool: for descriptors that block, like /dev/fuse. */
export const read = promisify(nodeFs.read)
export const writevSync = nodeFs.writevSync
/** write(2) in libuv's thread pool: for writes that may block, like FUSE notifications. */
export const write = promisify(nodeFs.write)
export const mkdirSync = nodeFs.mkdirSync
export const readdirSync = nodeFs.readdirSync
export const readFileSync = nodeFs.readFileSync
export const writeFileSync = nodeFs.writeFileSync
export const existsSync = nodeFs.existsSync
export const renameSync = nodeFs.renameSync
export const rmSync = nodeFs.rmSync
export const constants = nodeFs.constants
export const readlinkSync = nodeFs.readlinkSync
export const symlinkSync = nodeFs.symlinkSync
export const linkSync = nodeFs.linkSync
export const rmdirSync = nodeFs.rmdirSync
export const chmodSync = nodeFs.chmodSync
export const lchownSync = nodeFs.lchownSync
export const fchownSync = nodeFs.fchownSync
export const realpathSync = nodeFs.realpathSync
export const statfsSync = nodeFs.statfsSync

/** The extended attribute names of the object `fd` refers to. */
export function listXattrs(fd: number): string[] {
  return native().listAttrsSync(fd)
}

/** The value of extended attribute `name` of `fd`, or null if it has none. */
export function getXattr(fd: number, name: string): Buffer | null {
  return native().getAttrSync(fd, name)
}

export function setXattr(fd: number, name: string, value: Uint8Array): void {
  native().setAttrSync(fd, name, value)
}

/** Remove extended attribute `name` of `fd` (ENODATA if it has none). */
export function removeXattr(fd: number, name: string): void {
  native().removeAttrSync(fd, name)
}

/**
 * flock(2) LOCK_EX without waiting; false if another open file holds it. Unlike an OFD lock it
 * needs no write access, so a directory can be locked too.
 */
export function tryFlockExclusive(fd: number): boolean {
  try {
    fsExt().flockSync(fd, 'exnb')
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EWOULDBLOCK' || (err as NodeJS.ErrnoException).code === 'EAGAIN') return false
    throw err
  }
}

/** mknod(2) for a FIFO or a device node (Node has no binding). Device nodes need CAP_MKNOD. */
export function mknod(path: string | Buffer, type: 'fifo' | 'char' | 'block', mode: number, rdev = 0): void {
  const typeBits = type === 'fifo' ? nodeFs.constants.S_IFIFO : type === 'char' ? nodeFs.constants.S_IFCHR : nodeFs.constants.S_IFBLK
  own().mknod(withNul(path), typeBits | (mode & 0o7777), type === 'fifo' ? 0 : rdev)
}

/** Linux's encoding of a device number (glibc gnu_dev_major / gnu_dev_minor). */
export function deviceMajor(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn))
}

export function deviceMinor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn))
}

/**
 * Set the access and modification times of `path` (a symlink itself, never its target) to the
 * nanosecond: utimensat(2) with AT_SYMLINK_NOFOLLOW. fs.lutimes takes a double of seconds.
 */
export function lutimensSync(path: string | Buffer, atime: Timespec, mtime: Timespec): void {
  own().utimensat(withNul(path), atime.sec, atime.nsec, mtime.sec, mtime.nsec)
}

/**
 * Call `callback` on the event loop whenever `fd` is readable (status 0), or once with a negative
 * libuv status if polling it fails (the watch has then stopped). `fd` becomes non-blocking: read
 * it with readSync until EAGAIN. Close the watch (watchClose) before closing `fd`.
 */
export function watchReadable(fd: number, callback: (status: number) => void): ReadableWatch {
  return own().watchReadable(fd, callback)
}

/** Stop calling back until watchResume (backpressure: the fd stays readable meanwhile). */
export function watchPause(watch: ReadableWatch): void {
  own().watchPause(watch)
}

export function watchResume(watch: ReadableWatch): void {
  own().watchResume(watch)
}

/** Stop watching for good; idempotent. */
export function watchClose(watch: ReadableWatch): void {
  own().watchClose(watch)
}

/**
 * Write one FUSE reply to `fuseFd`: `header`, then `bytes` bytes of `fd` at `position` spliced from
 * its page cache (never copied through our memory), then `zeros` zero bytes. Returns the bytes
 * written, or a negative errno with nothing written: -EAGAIN if the bytes are not all cached
 * (reading them would block), -E2BIG if the reply does not fit the kernel pipe it goes through,
 * -ENOENT if the request was interrupted meanwhile.
 */
export function spliceReply(fuseFd: number, header: Buffer, fd: number, position: number, bytes: number, zeros: number): number {
  return own().spliceReply(fuseFd, header, fd, position, bytes, zeros)
}

/** The most file bytes a spliced reply can carry here (the pipe's size less a page); 0 if none. */
export function spliceCapacity(): number {
  return own().spliceCapacity()
}

/** The credentials of the peer of the connected Unix socket `fd` (getsockopt SO_PEERCRED). */
export function peerCredentials(fd: number): PeerCredentials {
  return own().peerCredentials(fd)
}

/** fsync a directory, so that a file created in it survives a power cut. */
export function syncDirectory(path: string | Buffer): void {
  const fd = nodeFs.openSync(path, nodeFs.constants.O_RDONLY | nodeFs.constants.O_DIRECTORY)
  try {
    nodeFs.fsyncSync(fd)
  } finally {
    nodeFs.closeSync(fd)
  }
}

/** Free the blocks under [offset, offset + length) of `fd`; reads there return zeros. */
export function punchHole(fd: number, offset: number, length: number): void {
  if (length > 0) native().trimSync(fd, offset, length)
}

/** Take an exclusive lock on `fd` without waiting; false if another open file holds it. */
export function tryLockExclusive(fd: number): boolean {
  return native().tryLock(fd)
}

export function unlock(fd: number): void {
  native().unlock(fd)
}

/**
 * An OFD lock on bytes [offset, offset + length) of `fd` without waiting, shared or exclusive;
 * false if another open file holds a conflicting one. OFD and POSIX locks conflict, so this also
 * sees (and is seen by) SQLite's locks, its own process's included.
 */
export function tryLockRange(fd: number, offset: number, length: number, shared: boolean): boolean {
  return native().tryLock(fd, offset, length, { shared })
}

/** Drop the OFD lock on the range (POSIX locks, SQLite's, are not touched). */
export function unlockRange(fd: number, offset: number, length: number): void {
  native().unlock(fd, offset, length)
}

/** Turn an exclusive OFD lock on the range into a shared one, atomically. */
export function downgradeLockRange(fd: number, offset: number, length: number): void {
  if (!native().tryDowngradeLock(fd, offset, length)) throw Object.assign(new Error('EAGAIN: could not downgrade a lock'), { code: 'EAGAIN' })
}

/** lseek(SEEK_DATA): the next offset at or after `offset` holding data, or null past the last. */
export function seekData(fd: number, offset: number): number | null {
  return seekOrNull(fd, offset, SEEK_DATA)
}

/** lseek(SEEK_HOLE): the next hole at or after `offset` (the end of the file counts as one). */
export function seekHole(fd: number, offset: number): number | null {
  return seekOrNull(fd, offset, SEEK_HOLE)
}

function seekOrNull(fd: number, offset: number, whence: number): number | null {
  try {
    return fsExt().seekSync(fd, offset, whence)
  } catch (err) {
    if ((err as { code?: string }).code === 'ENXIO') return null
    throw err
  }
}

const failedPiece = new Int32Array(1)

/**
 * pread `count` pieces of `pageSize` bytes of fd into `target` (piece i from byte positions[i]
 * into target at i × pageSize), neighbours in one pread; bytes past the end of the file read as
 * zeros. Many scattered pages in one call (fsck). Throws as readSync does; `piece` on the error
 * says which piece failed.
 */
export function preadPages(fd: number, target: Uint8Array, pageSize: number, positions: Float64Array, count: number): void {
  const result = own().preadPages(fd, target, pageSize, positions, count, failedPiece)
  if (result === 0) return
  const errno = -result
  const code = Object.entries(osConstants.errno).find(([, n]) => n === errno)?.[0] ?? 'EIO'
  throw Object.assign(new Error(`${code}: pread of ${pageSize} bytes at ${positions[failedPiece[0]!]}`), { code, errno: -errno, syscall: 'pread', piece: failedPiece[0]! })
}

/**
 * Bytes [0, length) of fd as memory shared with the file (mmap MAP_SHARED): stores reach its page
 * cache at once, fdatasync makes them durable. The file must keep those bytes while it is mapped.
 */
export function mapShared(fd: number, length: number): ArrayBuffer {
  return own().mapShared(fd, length)
}

/** Let go of a mapShared buffer: detached now (no access after this), unmapped when freed. */
export function unmapShared(buffer: ArrayBuffer): void {
  own().unmapShared(buffer)
}
