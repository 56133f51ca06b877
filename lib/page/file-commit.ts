// One paged file's part of a commit, the same for image and tree stores: its changed chunks and
// its size record as of a snapshot; the upper made durable first (the map must never point at
// pages the disk does not hold), then both saved in the caller's transaction, then marked
// committed in memory. Writes made after the snapshot stay dirty for the next commit.
import type Database from 'better-sqlite3'
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

  private constructor(paged: PagedFile, table: ChunkTable, fileId: number) {
    this.#paged = paged
    this.#table = table
    this.#fileId = fileId
    this.#chunks = paged.map.snapshot()
    this.#record = paged.snapshotState()
  }

  /** What `paged` has to commit now, or undefined if nothing changed since its last commit. */
  static take(paged: PagedFile, table: ChunkTable, fileId: number): FileCommit | undefined {
    return paged.isDirty ? new FileCommit(paged, table, fileId) : undefined
  }

  /** Make the upper's writes durable (in the thread pool). */
  sync(): Promise<void> {
    return this.#paged.upper.sync()
  }

  /** sync(), blocking: for a commit no other may overtake (truncate). */
  syncNow(): void {
    this.#paged.upper.syncNow()
  }

  /** Write the snapshot; call inside the commit's transaction, after sync(). */
  save(db: Database.Database): void {
    this.#table.save(this.#chunks)
    writeFileState(db, this.#fileId, this.#record.state)
  }

  /** The transaction committed: what the snapshot held is clean now. */
  committed(): void {
    this.#paged.map.committed(this.#chunks)
    this.#paged.stateCommitted(this.#record.version)
  }
}
