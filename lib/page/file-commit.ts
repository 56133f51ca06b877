// One paged file's part of a commit, the same for image and tree stores: its changed chunks and
// its size record as of a snapshot; the upper made durable first (the map must never point at
// pages the disk does not hold), then both saved in the caller's transaction, then marked
// committed in memory. Writes made after the snapshot stay dirty for the next commit.
import type Database from 'better-sqlite3'
import type { ChangesSnapshot } from '../changes/change-log.js'
import type { BasesSnapshot } from '../integrity/copyup-bases.js'
import type { SumsSnapshot } from '../integrity/page-sums.js'
import { writeFileState } from '../store/meta.js'
import type { ChunkTable } from './chunk-table.js'
import type { FileState, PagedFile } from './paged-file.js'
import type { ChunkSnapshot } from './page-map.js'

export class FileCommit {
  readonly #paged: PagedFile
  readonly #table: ChunkTable
  readonly #fileId: number
  readonly #chunks: ChunkSnapshot[]
  readonly #record: { state: FileState; version: number }
  readonly #sums: SumsSnapshot
  readonly #bases: BasesSnapshot
  readonly #changes: ChangesSnapshot
  /** The file's page totals as of the snapshot: what its map rows add up to once saved. */
  readonly #counts: { data: number; zero: number }

  private constructor(paged: PagedFile, table: ChunkTable, fileId: number) {
    this.#paged = paged
    this.#table = table
    this.#fileId = fileId
    this.#chunks = paged.map.snapshot()
    this.#record = paged.snapshotState()
    this.#counts = paged.map.counts
    this.#bases = paged.bases.snapshot()
    this.#changes = paged.changes.snapshot()
    // The sums of the pages written since the last commit, from the upper as it is now: what the
    // sync below makes durable, and what this commit's map points at.
    const g = paged.geometry
    const page = Buffer.allocUnsafe(g.pageSize)
    this.#sums = paged.guard.takeSums(
      (p) => {
        try {
          return paged.map.stateOf(p) === 'data'
        } catch {
          return false // a damaged chunk (a write into it failed): nothing of it is committed
        }
      },
      (p) => {
        paged.upper.readInto(page, 0, g.pageSize, g.byteOf(p))
        return page
      },
    )
  }

  /** What `paged` has to commit now, or undefined if nothing changed since its last commit. */
  static take(paged: PagedFile, table: ChunkTable, fileId: number): FileCommit | undefined {
    return paged.isDirty ? new FileCommit(paged, table, fileId) : undefined
  }

  /** Make the upper's writes durable (in the thread pool); the notes of its rewrites first. */
  sync(): Promise<void> {
    this.#paged.guard.syncNotes()
    return this.#paged.upper.sync()
  }

  /** sync(), blocking: for a commit no other may overtake (truncate). */
  syncNow(): void {
    this.#paged.guard.syncNotes()
    this.#paged.upper.syncNow()
  }

  /** Write the snapshot; call inside the commit's transaction, after sync(). */
  save(db: Database.Database): void {
    this.#table.save(this.#chunks)
    this.#paged.guard.sums.save(this.#sums)
    this.#paged.bases.save(this.#bases)
    this.#paged.changes.save(this.#changes)
    writeFileState(db, this.#fileId, this.#record.state, this.#counts)
  }

  /** The transaction committed: what the snapshot held is clean now. */
  committed(): void {
    this.#paged.map.committed(this.#chunks)
    this.#paged.guard.sums.committed(this.#sums)
    this.#paged.bases.committed(this.#bases)
    this.#paged.changes.committed(this.#changes)
    this.#paged.stateCommitted(this.#record.version)
  }
}
