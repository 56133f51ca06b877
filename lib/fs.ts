// Every file-system call the library makes goes through this module, so tests can inject
// EIO, ENOSPC and short reads with `t.mockImport` and the rest of the code stays honest.
import * as nodeFs from 'node:fs'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'

const require = createRequire(import.meta.url)
// fs-native-extensions: OFD locks (per open file, so two opens in one process exclude each
// other too) and hole punching with fallocate(PUNCH_HOLE). fs-ext: lseek with SEEK_DATA/SEEK_HOLE.
const native = require('fs-native-extensions') as {
  tryLock(fd: number, options?: { shared?: boolean }): boolean
  unlock(fd: number): void
  trimSync(fd: number, offset: number, length: number): void
}
const fsExt = require('fs-ext') as { seekSync(fd: number, offset: number, whence: number): number }

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
export const mkdirSync = nodeFs.mkdirSync
export const readdirSync = nodeFs.readdirSync
export const readFileSync = nodeFs.readFileSync
export const writeFileSync = nodeFs.writeFileSync
export const existsSync = nodeFs.existsSync
export const renameSync = nodeFs.renameSync
export const rmSync = nodeFs.rmSync
export const constants = nodeFs.constants
export const realpathSync = nodeFs.realpathSync

/** Free the blocks under [offset, offset + length) of `fd`; reads there return zeros. */
export function punchHole(fd: number, offset: number, length: number): void {
  if (length > 0) native.trimSync(fd, offset, length)
}

/** Take an exclusive lock on `fd` without waiting; false if another open file holds it. */
export function tryLockExclusive(fd: number): boolean {
  return native.tryLock(fd)
}

export function unlock(fd: number): void {
  native.unlock(fd)
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
    return fsExt.seekSync(fd, offset, whence)
  } catch (err) {
    if ((err as { code?: string }).code === 'ENXIO') return null
    throw err
  }
}
