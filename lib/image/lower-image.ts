// A raw image file used as a lower (or, in tree mode, any lower regular file): opened read-only,
// never written, never locked.
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { HeldFd } from '../page/held-fd.js'
import type { LowerSource } from '../page/lower-source.js'
import { fsPath } from '../name-bytes.js'
import { msOfNs } from '../time-ns.js'
import { lowerStatOf, type LowerStat } from '../lower-stat.js'

export class LowerImage implements LowerSource {
  readonly path: string
  readonly size: number
  readonly mtimeMs: number
  /** The mtime exactly, in nanoseconds. */
  readonly mtimeNs: bigint
  readonly #file: HeldFd
  /**
   * The last hole and the last data run found, [start, end): a map asks about the same run once
   * per page run of the upper beside it (10 000 scattered pages over a lower of data: 30 000
   * lseeks without these, a handful with them). The lower never changes under an open store.
   */
  #hole: [number, number] = [0, 0]
  #data: [number, number] = [0, 0]

  private constructor(path: string, fd: number, size: number, mtimeMs: number, mtimeNs: bigint) {
    this.path = path
    this.#file = new HeldFd(fd, `the lower ${path}`)
    this.size = size
    this.mtimeMs = mtimeMs
    this.mtimeNs = mtimeNs
  }

  /**
   * Open `path` (a name-form string: name-bytes.ts) read-only. `noFollow` (tree mode, for any lower regular file) refuses a symlink
   * as the last component (ELOOP) and never blocks on a FIFO swapped in underneath.
   */
  static open(path: string, options: { noFollow?: boolean } = {}): LowerImage {
    let fd: number
    const flags = fs.constants.O_RDONLY | (options.noFollow ? fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK : 0)
    try {
      fd = fs.openSync(fsPath(path), flags)
    } catch (err) {
      const e = fromSystemError(err, `opening the lower ${path}`)
      if (e.code === 'ENOENT') throw new PagecowError('ENOENT', `the lower image ${path} does not exist`, { cause: err })
      throw e
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true })
      if (!st.isFile() && !st.isBlockDevice()) {
        throw new PagecowError('EINVAL', `the lower ${path} is not a regular file`)
      }
      // mtimeMs as node:fs's plain stat gives it (fractional): image fingerprints record that.
      return new LowerImage(path, fd, Number(st.size), msOfNs(st.mtimeNs), st.mtimeNs)
    } catch (err) {
      fs.closeSync(fd)
      throw fromSystemError(err, `reading the lower ${path}`)
    }
  }

  get fd(): number {
    return this.#file.fd
  }

  /** The open file's stat now, exact. */
  stat(): LowerStat {
    try {
      return lowerStatOf(fs.fstatSync(this.#file.fd, { bigint: true }))
    } catch (err) {
      throw fromSystemError(err, `reading the lower ${this.path}`)
    }
  }

  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    return this.#file.readFully(target, targetOffset, this.#clip(length, position), position)
  }

  readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number> {
    return this.#file.readFullyAsync(target, targetOffset, this.#clip(length, position), position)
  }

  /** Reads stop at the size the lower had when opened, should it have grown since. */
  #clip(length: number, position: number): number {
    return Math.max(0, Math.min(length, this.size - position))
  }

  nextData(position: number): number | null {
    if (position >= this.size) return null
    const [holeStart, holeEnd] = this.#hole
    if (position >= holeStart && position < holeEnd) return holeEnd < this.size ? holeEnd : null
    if (position >= this.#data[0] && position < this.#data[1]) return position
    const data = fs.seekData(this.#file.fd, position)
    if (data === null || data >= this.size) {
      this.#hole = [position, this.size]
      return null
    }
    if (data > position) this.#hole = [position, data]
    return data
  }

  nextHole(position: number): number {
    if (position >= this.size) return position
    const [holeStart, holeEnd] = this.#hole
    if (position >= holeStart && position < holeEnd) return position
    if (position >= this.#data[0] && position < this.#data[1]) return this.#data[1]
    const seen = fs.seekHole(this.#file.fd, position)
    const hole = seen === null ? this.size : Math.min(seen, this.size)
    if (hole > position) this.#data = [position, hole]
    return hole
  }

  /** Close; a read in flight in the pool finishes first. */
  close(): void {
    this.#file.close()
  }
}
