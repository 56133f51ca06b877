// The upper data file of one paged file: page N lives at byte N × pageSize, so the file is
// sparse and takes about as many blocks as it has DATA pages.
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { openStoreFile } from '../store/store-file.js'
import { HeldFd } from './held-fd.js'

export class UpperFile {
  readonly path: string
  readonly #file: HeldFd
  readonly #readOnly: boolean
  /** Written since the last fdatasync. */
  #unsynced = false

  private constructor(path: string, fd: number, readOnly: boolean) {
    this.path = path
    this.#file = new HeldFd(fd, `the upper ${path}`)
    this.#readOnly = readOnly
  }

  static open(path: string, options: { readOnly: boolean; create?: boolean }): UpperFile {
    try {
      const fd = openStoreFile(path, options.readOnly ? 'r' : 'rw', { exclusive: !options.readOnly && options.create === true })
      return new UpperFile(path, fd, options.readOnly)
    } catch (err) {
      throw fromSystemError(err, `opening the upper ${path}`)
    }
  }

  get readOnly(): boolean {
    return this.#readOnly
  }

  /** Bytes the upper takes on disk. */
  diskUsage(): { allocated: number; apparent: number } {
    const st = fs.fstatSync(this.#file.fd)
    return { allocated: st.blocks * 512, apparent: st.size }
  }

  /** Read into `target`; bytes past the upper's end read as zeros. */
  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): void {
    const done = this.#file.readFully(target, targetOffset, length, position)
    if (done < length) target.fill(0, targetOffset + done, targetOffset + length)
  }

  /** readInto in libuv's thread pool. */
  async readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<void> {
    const done = await this.#file.readFullyAsync(target, targetOffset, length, position)
    if (done < length) target.fill(0, targetOffset + done, targetOffset + length)
  }

  write(source: Uint8Array, position: number): void {
    this.#unsynced = true
    let done = 0
    while (done < source.length) {
      try {
        done += fs.writeSync(this.#file.fd, source, done, source.length - done, position + done)
      } catch (err) {
        const e = fromSystemError(err, `writing the upper ${this.path} at ${position + done}`)
        if (e.code !== 'ENOSPC') throw e
        // True per call of a paged file's write or zero: pages that need new blocks are written
        // before any existing page, and given back when one of them fails.
        throw new PagecowError('ENOSPC', `writing the upper ${this.path}: the disk is full; this write changed nothing; free space and retry`, { cause: err })
      }
    }
  }

  /** Give the blocks under [position, position + length) back; they read as zeros. */
  punch(position: number, length: number): void {
    try {
      fs.punchHole(this.#file.fd, position, length)
    } catch (err) {
      throw fromSystemError(err, `punching a hole in the upper ${this.path}`)
    }
  }

  truncate(size: number): void {
    try {
      fs.ftruncateSync(this.#file.fd, size)
    } catch (err) {
      throw fromSystemError(err, `truncating the upper ${this.path}`)
    }
  }

  /** Make every write so far durable (only if something was written since the last sync). */
  async sync(): Promise<void> {
    if (!this.#unsynced) return
    this.#unsynced = false
    try {
      await this.#file.hold((fd) => fs.fdatasync(fd))
    } catch (err) {
      this.#unsynced = true
      throw syncError(err, this.path)
    }
  }

  /** sync(), blocking: for commits that must not interleave with other work. */
  syncNow(): void {
    try {
      fs.fdatasyncSync(this.#file.fd)
      this.#unsynced = false
    } catch (err) {
      throw syncError(err, this.path)
    }
  }

  /** Close; a read or fdatasync in flight in the pool (a flush racing an unlink) finishes first. */
  close(): void {
    this.#file.close()
  }
}

/** A failed fdatasync: on a full disk, the writes are kept but nothing is committed. */
function syncError(err: unknown, path: string): PagecowError {
  const e = fromSystemError(err, `syncing the upper ${path}`)
  if (e.code !== 'ENOSPC') return e
  return new PagecowError('ENOSPC', `syncing the upper ${path}: the disk is full; the writes since the last flush are not committed (they stay pending, not durable); free space and flush again`, { cause: err })
}
