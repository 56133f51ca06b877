// One open regular file of a tree store, shared by every handle on its inode (SPEC §6 "one
// view"): the lower file it reads through and, once a page was written, its PagedFile.
import type { LowerFile } from './lower-tree.js'
import type { ChunkTable } from '../page/chunk-table.js'
import type { PagedFile } from '../page/paged-file.js'

export interface NodeTimes {
  mtimeNs: bigint
  ctimeNs: bigint
}

export class FileNode {
  readonly ino: number
  /** The data's path in the lower, if the file came from there. */
  readonly lowerPath: string | undefined
  /** Handles open on this node. */
  refs = 0
  /** The lower file, open while any of its bytes can still be read. */
  lower: LowerFile | undefined
  /** The file's pages, from its first write on (or from open, when it has upper data). */
  paged: PagedFile | undefined
  chunks: ChunkTable | undefined
  fileId: number | undefined
  /** The inode was removed: nothing of it may be committed any more. */
  deleted = false
  /** Bumped by every commit of this node; a flush that an other commit overtook skips it. */
  commits = 0
  /** mtime/ctime changed by writes, not yet committed. */
  #times: NodeTimes | undefined
  #timesVersion = 0
  #timesSaved = 0

  constructor(ino: number, lowerPath: string | undefined) {
    this.ino = ino
    this.lowerPath = lowerPath
  }

  /** Logical size: the paged file's, else the lower's, else 0 (a new empty file). */
  get size(): number {
    return this.paged ? this.paged.size : this.lower ? this.lower.size : 0
  }

  get times(): NodeTimes | undefined {
    return this.#times && { ...this.#times }
  }

  get isDirty(): boolean {
    return (this.paged?.isDirty ?? false) || this.#timesVersion !== this.#timesSaved
  }

  /** Record mtime/ctime set by a write, a truncate or a utimens while the node is open. */
  setTimes(times: NodeTimes): void {
    this.#times = { ...times }
    this.#timesVersion++
  }

  snapshotTimes(): { times: NodeTimes; version: number } | undefined {
    return this.#timesVersion === this.#timesSaved || !this.#times ? undefined : { times: { ...this.#times }, version: this.#timesVersion }
  }

  timesCommitted(version: number): void {
    this.#timesSaved = version
  }

  /** Read into `target` from `offset`, stopping at the end of the file. Returns bytes read. */
  readInto(target: Uint8Array, offset: number): number {
    if (this.paged) return this.paged.readInto(target, offset)
    if (!this.lower || offset >= this.lower.size) return 0
    const length = Math.min(target.length, this.lower.size - offset)
    const n = this.lower.readInto(target, 0, length, offset)
    if (n < length) target.fill(0, n, length)
    return length
  }

  /** readInto, reading in libuv's thread pool (see PagedFile.readIntoAsync). */
  async readIntoAsync(target: Uint8Array, offset: number): Promise<number> {
    if (this.paged) return this.paged.readIntoAsync(target, offset)
    if (!this.lower || offset >= this.lower.size) return 0
    const length = Math.min(target.length, this.lower.size - offset)
    const n = await this.lower.readIntoAsync(target, 0, length, offset)
    if (n < length) target.fill(0, n, length)
    return length
  }

  close(): void {
    this.paged?.upper.close()
    this.lower?.close()
    this.paged = undefined
    this.lower = undefined
  }
}
