// One writer per store (SPEC §8): an OFD lock on <store>/lock, whose content names the holder.
import { hostname } from 'node:os'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { openStoreFile } from './store-file.js'

export const LOCK_FILE = 'lock'

interface Holder {
  pid: number
  host: string
  command: string
  since: string
}

export class WriterLock {
  readonly #fd: number

  private constructor(fd: number) {
    this.#fd = fd
  }

  /** Take the lock or fail with EBUSY naming who holds it. */
  static acquire(path: string): WriterLock {
    let fd: number
    try {
      fd = openStoreFile(path, 'rw', { create: true, mode: 0o644 })
    } catch (err) {
      throw fromSystemError(err, `opening the lock file ${path}`)
    }
    if (!fs.tryLockExclusive(fd)) {
      const holder = describeHolder(fd)
      fs.closeSync(fd)
      throw new PagecowError('EBUSY', `the store is open for writing by ${holder}; close it or open read-only`)
    }
    const holder: Holder = {
      pid: process.pid,
      host: hostname(),
      command: [process.argv0, ...process.argv.slice(1)].join(' ').slice(0, 200),
      since: new Date().toISOString(),
    }
    try {
      fs.ftruncateSync(fd, 0)
      fs.writeSync(fd, JSON.stringify(holder) + '\n', 0)
    } catch {
      // The holder note is a courtesy for the next writer's error message; the lock is what counts.
    }
    return new WriterLock(fd)
  }

  /** Whether no process holds the lock of the store at `path` (a missing lock file: none). */
  static isFree(path: string): boolean {
    let fd: number
    try {
      fd = openStoreFile(path, 'rw')
    } catch {
      // Missing, or not a lock file a store would use (a symlink, a FIFO): nobody holds it.
      return true
    }
    try {
      if (!fs.tryLockExclusive(fd)) return false
      fs.unlock(fd)
      return true
    } finally {
      fs.closeSync(fd)
    }
  }

  release(): void {
    fs.unlock(this.#fd)
    fs.closeSync(this.#fd)
  }
}

function describeHolder(fd: number): string {
  try {
    const buf = Buffer.alloc(1024)
    const n = fs.readSync(fd, buf, 0, buf.length, 0)
    const h = JSON.parse(buf.subarray(0, n).toString('utf8')) as Partial<Holder>
    return `pid ${h.pid} on ${h.host} (${h.command}) since ${h.since}`
  } catch {
    return 'another process'
  }
}
