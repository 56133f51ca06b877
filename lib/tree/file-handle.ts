// An open regular file of a tree store. Handles on one inode share one node, so every handle
// sees every write at once (SPEC §6), whatever order they were opened in.
import { PagecowError } from '../errors.js'
import type { OpenFlags } from './open-flags.js'
import type { TreeStat } from './tree-stat.js'

/** What a handle asks of its store; the store validates state (open, writable) in each. */
export interface HandleHost {
  read(length: number, offset: number): Buffer
  readInto(target: Uint8Array, offset: number): Promise<number>
  /** These three return a promise only when the file's write gate made them wait. */
  write(offset: number, data: Uint8Array, append: boolean): number | Promise<number>
  truncate(size: number): void | Promise<void>
  zero(offset: number, length: number, how: 'zero' | 'discard'): void | Promise<void>
  stat(): TreeStat
  /** Whether the file is frozen now. */
  frozen(): boolean
  fsync(): Promise<void>
  close(): void
}

export class TreeFileHandle {
  /** The path the handle was opened by (a later rename does not change it). */
  readonly path: string
  /** The inode the handle is open on. */
  readonly ino: number
  readonly flags: Readonly<OpenFlags>
  readonly #host: HandleHost
  #closed = false
  /** Reads in flight: close() lets them finish before the file's descriptors may go. */
  readonly #reads = new Set<Promise<number>>()

  constructor(path: string, ino: number, flags: OpenFlags, host: HandleHost) {
    this.path = path
    this.ino = ino
    this.flags = Object.freeze({ ...flags })
    this.#host = host
  }

  /** Read up to `length` bytes at `offset`; shorter at the end of the file. */
  async read(offset: number, length: number): Promise<Buffer> {
    this.#check('read')
    if (!this.flags.read) throw new PagecowError('EBADF', `read: ${this.path} is not open for reading`)
    return this.#host.read(length, offset)
  }

  /** Read into `target` from `offset`; returns the bytes read (fewer at the end of the file). */
  async readInto(target: Uint8Array, offset: number): Promise<number> {
    this.#check('read')
    if (!this.flags.read) throw new PagecowError('EBADF', `read: ${this.path} is not open for reading`)
    if (!(target instanceof Uint8Array)) throw new PagecowError('EINVAL', 'readInto: target must be a Buffer or Uint8Array')
    const read = this.#host.readInto(target, offset)
    this.#reads.add(read)
    try {
      return await read
    } finally {
      this.#reads.delete(read)
    }
  }

  /**
   * Write `data` at `offset` (at the end of the file when opened with O_APPEND, whatever
   * `offset` says). Only the touched pages are copied up. Returns the bytes written.
   */
  async write(offset: number, data: Uint8Array): Promise<number> {
    this.#check('write')
    if (!this.flags.write) throw new PagecowError('EBADF', `write: ${this.path} is not open for writing`)
    return this.#host.write(offset, data, this.flags.append)
  }

  /** Set the file's size (commits at once). */
  async truncate(size: number): Promise<void> {
    this.#check('truncate')
    if (!this.flags.write) throw new PagecowError('EBADF', `truncate: ${this.path} is not open for writing`)
    await this.#host.truncate(size)
  }

  /**
   * Make [offset, offset + length) read as zeros (the file grows if the range ends past it):
   * whole pages become ZERO and store nothing (fallocate's zero-range and punch-hole).
   */
  async zero(offset: number, length: number): Promise<void> {
    this.#check('zero')
    if (!this.flags.write) throw new PagecowError('EBADF', `zero: ${this.path} is not open for writing`)
    await this.#host.zero(offset, length, 'zero')
  }

  /** Trim: the pages of the range wholly inside the file become ZERO; partial pages are left. */
  async discard(offset: number, length: number): Promise<void> {
    this.#check('discard')
    if (!this.flags.write) throw new PagecowError('EBADF', `discard: ${this.path} is not open for writing`)
    await this.#host.zero(offset, length, 'discard')
  }

  async stat(): Promise<TreeStat> {
    this.#check('stat')
    return this.#host.stat()
  }

  /** Make this file's completed writes durable. */
  async fsync(): Promise<void> {
    this.#check('fsync')
    await this.#host.fsync()
  }

  /** Release the handle; closing twice is harmless. Data is committed by the next flush. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled(this.#reads)
    this.#host.close()
  }

  /** Whether the file is frozen now (see TreeStore.freeze()): a write through the handle would wait. */
  get frozen(): boolean {
    return this.#host.frozen()
  }

  get closed(): boolean {
    return this.#closed
  }

  #check(what: string): void {
    if (this.#closed) throw new PagecowError('ECLOSED', `${what}: the handle on ${this.path} is closed`)
  }
}
