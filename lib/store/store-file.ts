// Files inside a store are never reached through symlinks and never trusted when they are not
// what the store made (SPEC §8): a symlink planted at STORE/lock or STORE/upper.img must not make
// a command truncate, overwrite or read its target, and a FIFO must not make one hang.
import { basename, dirname } from 'node:path'
import type { Stats } from 'node:fs'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'

/** What a `pagecow mount` server printed: a store file like the others. */
export const MOUNT_LOG_FILE = 'mount.log'

/** The control socket a server of the store listens on (lib/control): a socket, owned like the rest. */
export const CONTROL_SOCKET_FILE = 'control.sock'

/** What a non-regular file is, for messages. */
function describeType(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symlink'
  if (st.isDirectory()) return 'a directory'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isSocket()) return 'a socket'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  return 'not a regular file'
}

/** The owner of the directory holding `path`: every store file must have it. */
export function ownerOfDirectory(dir: string): { uid: number; gid: number } {
  try {
    const st = fs.statSync(dir)
    return { uid: st.uid, gid: st.gid }
  } catch (err) {
    throw fromSystemError(err, `reading the store directory ${dir}`)
  }
}

function unsafe(path: string, why: string): PagecowError {
  return new PagecowError('EUNSAFE', `${path} ${why}; pagecow refuses a store whose files are not the regular files it made (remove or fix it)`)
}

/**
 * lstat `path` (a file of a store) and check it: a regular file owned by `owner`. Undefined when
 * it does not exist. EUNSAFE otherwise; a symlink is never followed.
 */
export function checkStoreFile(path: string, owner: { uid: number }, expect: 'file' | 'directory' | 'socket' = 'file'): Stats | undefined {
  let st: Stats
  try {
    st = fs.lstatSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fromSystemError(err, `checking the store file ${path}`)
  }
  if (expect === 'file' ? !st.isFile() : expect === 'directory' ? !st.isDirectory() : !st.isSocket()) {
    throw unsafe(path, `is ${describeType(st)}, not ${expect === 'file' ? 'a regular file' : `a ${expect}`}`)
  }
  if (st.uid !== owner.uid) throw unsafe(path, `is owned by uid ${st.uid}, not by uid ${owner.uid}, the owner of ${dirname(path)}`)
  return st
}

/** checkStoreFile for each of `names` in the store directory `dir` (missing ones are fine). */
export function checkStoreFiles(dir: string, names: readonly string[]): void {
  const owner = ownerOfDirectory(dir)
  for (const name of names) checkStoreFile(`${dir}/${name}`, owner, name === CONTROL_SOCKET_FILE ? 'socket' : 'file')
}

export interface StoreFileOpen {
  /** Create the file if missing. */
  create?: boolean
  /** Fail if it exists (implies create). */
  exclusive?: boolean
  /** Permission bits of a new file. Default 0o600. */
  mode?: number
}

/**
 * Open a file of a store: never through a symlink (O_NOFOLLOW), never blocking on a FIFO
 * (O_NONBLOCK, and nothing that is not a regular file is opened at all), and only if it is owned
 * like the directory holding it. A file created here by root in a directory owned by someone else
 * is given to that owner, so the store stays theirs. Returns the descriptor.
 */
export function openStoreFile(path: string, access: 'r' | 'rw', options: StoreFileOpen = {}): number {
  const c = fs.constants
  const dir = dirname(path)
  const owner = ownerOfDirectory(dir)
  const before = options.exclusive ? undefined : checkStoreFile(path, owner)
  if (!before && !options.create && !options.exclusive) {
    throw fromSystemError(Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' }), `opening ${path}`)
  }
  let flags = (access === 'rw' ? c.O_RDWR : c.O_RDONLY) | c.O_NOFOLLOW | c.O_NONBLOCK
  if (options.create || options.exclusive) flags |= c.O_CREAT
  if (options.exclusive) flags |= c.O_EXCL
  let fd: number
  try {
    fd = fs.openSync(path, flags, options.mode ?? 0o600)
  } catch (err) {
    // A symlink planted between the check and the open: O_NOFOLLOW refused it.
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(path, 'is a symlink')
    throw fromSystemError(err, `opening ${path}`)
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) throw unsafe(path, `is ${describeType(st)}, not a regular file`)
    if (before && (st.ino !== before.ino || st.dev !== before.dev)) throw unsafe(path, 'was replaced while it was being opened')
    if (st.uid !== owner.uid) {
      // Only a file this call just made may change hands: it is ours, root's, in someone's store.
      if (before || st.uid !== process.geteuid?.()) throw unsafe(path, `is owned by uid ${st.uid}, not by uid ${owner.uid}, the owner of ${dir}`)
      fs.fchownSync(fd, owner.uid, owner.gid)
    }
    return fd
  } catch (err) {
    fs.closeSync(fd)
    throw err instanceof PagecowError ? err : fromSystemError(err, `opening ${path}`)
  }
}

/**
 * Give `path` (a file or directory the store just made, by its own path) to the owner of the
 * store directory `dir` when they differ: root creating a store in a user's directory.
 */
export function adoptStoreFile(path: string, dir: string): void {
  const owner = ownerOfDirectory(dir)
  let st: Stats
  try {
    st = fs.lstatSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw fromSystemError(err, `checking ${path}`)
  }
  if (st.isSymbolicLink()) throw unsafe(path, 'is a symlink')
  // Only root can give a file away; anyone else's new file is theirs, and the open that follows
  // refuses it if that is not the store directory's owner.
  if ((st.uid === owner.uid && st.gid === owner.gid) || process.geteuid?.() !== 0) return
  try {
    fs.lchownSync(path, owner.uid, owner.gid)
  } catch (err) {
    throw fromSystemError(err, `giving ${basename(path)} to the owner of ${dir}`)
  }
}
