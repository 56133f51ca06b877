// The open regular files of a tree store and their data: every file's pages are a PagedFile of the
// page store (its own id in `files`, its own `upper/<id>`, its PageMap in a ChunkTable), committed
// with the image-mode ordering: fdatasync the upper data, then one SQLite transaction.
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import type { Geometry } from '../geometry.js'
import { sampleHash } from '../image/fingerprint.js'
import { ChangeLog } from '../changes/change-log.js'
import type { Tracking } from '../changes/tracking.js'
import { ChunkTable } from '../page/chunk-table.js'
import { EMPTY_LOWER } from '../page/lower-source.js'
import { PagedFile, type DetectZeroes, type FileState } from '../page/paged-file.js'
import { FileGuard } from '../integrity/file-guard.js'
import type { FluxLog, FluxNote } from '../integrity/flux-log.js'
import { FileCommit } from '../page/file-commit.js'
import { CopyupBases } from '../integrity/copyup-bases.js'
import { PageMap } from '../page/page-map.js'
import { UpperFile } from '../page/upper-file.js'
import { readFileRecord, readFileState, writeFileState } from '../store/meta.js'
import type { Entry } from './entry.js'
import { FileNode, type NodeTimes } from './file-node.js'
import { printChanges, type LowerPrint } from './lower-print.js'
import type { LowerStat } from '../lower-stat.js'
import type { LowerFile, LowerTree } from './lower-tree.js'
import { rowFromLower } from './lower-row.js'
import type { Namespace } from './namespace.js'

/** Where the upper data files live inside the store directory: `upper/<file id>`. */
export const UPPER_DIR = 'upper'

export interface NodeContext {
  path: string
  db: Database.Database
  /** The store's log of pages rewritten in place (see FluxLog). */
  flux: FluxLog
  /** The store's marks and change records. */
  tracking: Tracking
  ns: Namespace
  lower: LowerTree
  geometry: Geometry
  readOnly: boolean
  /** A bound lower: wrap an opened lower file (inode `ino`) so its reads are checked. */
  bindLower?: ((lower: LowerFile, ino: number, where: string) => LowerFile) | undefined
}

interface FlushWork {
  node: FileNode
  commits: number
  data: FileCommit | undefined
  times: { times: NodeTimes; version: number } | undefined
}

export class NodeTable {
  readonly #ctx: NodeContext
  readonly #nodes = new Map<number, FileNode>()
  /** What writes of whole zero pages do in every file opened from now (the store's open option). */
  detectZeroes: DetectZeroes = 'off'

  constructor(ctx: NodeContext) {
    this.#ctx = ctx
  }

  get(ino: number): FileNode | undefined {
    return this.#nodes.get(ino)
  }

  /** The nodes in memory (open, or closed with data not yet committed). */
  list(): FileNode[] {
    return [...this.#nodes.values()]
  }

  /** Whether a handle is open on `ino`. */
  isOpen(ino: number): boolean {
    return (this.#nodes.get(ino)?.refs ?? 0) > 0
  }

  get isDirty(): boolean {
    for (const node of this.#nodes.values()) if (node.isDirty) return true
    return false
  }

  /** The shared node of a regular file, opened on first use; one more reference on it. */
  acquire(entry: Entry): FileNode {
    const node = this.#nodes.get(entry.ino) ?? this.#open(entry)
    node.refs++
    return node
  }

  /** Drop one reference; an idle clean node releases its files. Returns the references left. */
  release(node: FileNode): number {
    node.refs = Math.max(0, node.refs - 1)
    if (node.refs === 0 && !node.isDirty) this.#drop(node)
    return node.refs
  }

  /** The inode is gone: discard its node and whatever it had not committed. */
  forget(ino: number): void {
    const node = this.#nodes.get(ino)
    if (!node) return
    node.deleted = true
    this.#drop(node)
  }

  #open(entry: Entry): FileNode {
    const ctx = this.#ctx
    const row = entry.row
    const node = new FileNode(entry.ino, row ? (row.origin ?? undefined) : entry.lowerPath)
    try {
      if (row?.file != null) {
        const state = readFileState(ctx.db, row.file, ctx.path)
        if (node.lowerPath !== undefined && state.lowerCut > 0) node.lower = this.#openLower(node, row.lowerPrint, true)
        const upper = UpperFile.open(this.upperPath(row.file), { readOnly: ctx.readOnly })
        this.#attach(node, row.file, upper, state, true)
      } else if (node.lowerPath !== undefined) {
        node.lower = this.#openLower(node, row?.lowerPrint ?? null, false)
      }
    } catch (err) {
      node.close()
      throw err
    }
    this.#nodes.set(node.ino, node)
    return node
  }

  #attach(node: FileNode, id: number, upper: UpperFile, state: FileState, persisted: boolean): void {
    const chunks = new ChunkTable(this.#ctx.db, id)
    const counts = persisted ? chunks.checkTotals(readFileRecord(this.#ctx.db, id, this.#ctx.path).pages) : { data: 0, zero: 0 }
    const map = new PageMap(chunks, counts, `${this.#ctx.path}, file ${id}`)
    const guard = FileGuard.open(this.#ctx.db, this.#ctx.flux, this.#ctx.readOnly, id, this.#ctx.geometry.pageSize, `${this.#ctx.path}, file ${id}`)
    node.paged = new PagedFile(this.#ctx.geometry, node.lower ?? EMPTY_LOWER, upper, map, guard, new CopyupBases(this.#ctx.db, id), new ChangeLog(this.#ctx.tracking, id), state)
    node.paged.detectZeroes = this.detectZeroes
    node.chunks = chunks
    node.fileId = id
  }

  /**
   * Open the lower file under a node and check it is the one the upper recorded: same inode,
   * size and mtime, and (once pages were copied up) the same sampled bytes. ESTALE otherwise:
   * pages of one file are never mixed with a different lower.
   */
  #openLower(node: FileNode, print: LowerPrint | null, sampled: boolean): LowerFile {
    const path = this.#ctx.lower.full(node.lowerPath!)
    let lower: LowerFile
    try {
      lower = this.#ctx.lower.openFile(node.lowerPath!)
    } catch (err) {
      const e = fromSystemError(err, `opening the lower file ${path}`)
      if (e.code === 'ENOENT' || e.code === 'ELOOP') throw new PagecowError('ESTALE', `the lower file ${path} is gone or was replaced since the store recorded it`, { cause: err })
      throw e
    }
    const changes: string[] = []
    try {
      const st = lower.stat()
      if (st.ino !== node.ino) changes.push(`inode ${node.ino} → ${st.ino}`)
      if (print) {
        changes.push(...printChanges(print, lower.size, lower.mtimeNs))
        if (sampled && print.sample !== undefined && changes.length === 0 && sampleHash(lower) !== print.sample) changes.push('sampled bytes differ')
      }
    } catch (err) {
      lower.close()
      throw fromSystemError(err, `checking the lower file ${path}`)
    }
    if (changes.length > 0) {
      lower.close()
      throw new PagecowError('ESTALE', `the lower file ${path} changed underneath the store (${changes.join(', ')}); its copied pages would mix with different lower bytes, so it is not served`)
    }
    if (!this.#ctx.bindLower) return lower
    try {
      return this.#ctx.bindLower(lower, node.ino, `the lower file ${path}`)
    } catch (err) {
      lower.close()
      throw err
    }
  }

  /**
   * Give a node its paged file before its first change (delayed copy-up: nothing is copied
   * here; the write that follows copies only its own pages). Commits at once.
   */
  beginData(node: FileNode): PagedFile {
    if (node.paged) return node.paged
    const ctx = this.#ctx
    const id = ctx.ns.peekFileId()
    const path = this.upperPath(id)
    // An id is only taken by the commit below: a file left here by a crash before it is stale.
    try {
      fs.rmSync(path, { force: true })
    } catch (err) {
      throw fromSystemError(err, `removing a stale upper file ${path}`)
    }
    const upper = UpperFile.open(path, { readOnly: false, create: true })
    try {
      fs.syncDirectory(`${ctx.path}/${UPPER_DIR}`)
      const lower = node.lower
      const size = lower?.size ?? 0
      let print: LowerPrint | null = null
      let lowerStat: LowerStat | undefined
      if (lower) {
        lowerStat = lower.stat()
        print = { size: lower.size, mtime: { ns: lower.mtimeNs }, blocks: lowerStat.blocks, sample: sampleHash(lower) }
      }
      const state: FileState = { size, lowerCut: size, bytesWritten: 0, upperWritten: 0 }
      ctx.ns.transaction(() => {
        if (!ctx.ns.inode(node.ino)) {
          if (!lowerStat || node.lowerPath === undefined) throw new PagecowError('ECORRUPT', `inode ${node.ino} has no record`)
          ctx.ns.insertInode(rowFromLower('file', node.lowerPath, lowerStat))
        }
        writeFileState(ctx.db, id, state, { data: 0, zero: 0 })
        ctx.ns.setFile(node.ino, id, print)
        ctx.ns.takeFileId(id)
      })
      this.#attach(node, id, upper, state, false)
      return node.paged!
    } catch (err) {
      upper.close()
      fs.rmSync(path, { force: true })
      throw fromSystemError(err, `starting the upper data of inode ${node.ino}`)
    }
  }

  upperPath(id: number): string {
    return `${this.#ctx.path}/${UPPER_DIR}/${id}`
  }

  /** Bytes the upper data file of `id` takes on disk. */
  upperUsage(id: number): { allocated: number; apparent: number } {
    for (const node of this.#nodes.values()) if (node.fileId === id && node.paged) return node.paged.upper.diskUsage()
    try {
      const st = fs.lstatSync(this.upperPath(id))
      return { allocated: st.blocks * 512, apparent: st.size }
    } catch {
      return { allocated: 0, apparent: 0 }
    }
  }

  /**
   * Make the data and times of `only` (default: every node) durable: snapshot, fdatasync every
   * upper, then one transaction. A node removed or committed meanwhile is skipped.
   */
  async flush(only?: FileNode[]): Promise<void> {
    const work = this.#snapshot(only ?? [...this.#nodes.values()])
    if (work.length === 0) return
    await Promise.all(work.map((w) => w.data?.sync()))
    this.#commit(work.filter((w) => !w.node.deleted && w.node.commits === w.commits))
  }

  /** Commit one node now, synchronously (truncate: no other commit may overtake it). */
  commitNow(node: FileNode): void {
    const work = this.#snapshot([node])
    if (work.length === 0) return
    for (const w of work) w.data?.syncNow()
    this.#commit(work)
  }

  #snapshot(nodes: FileNode[]): FlushWork[] {
    const work: FlushWork[] = []
    for (const node of nodes) {
      if (node.deleted || !node.isDirty) continue
      work.push({
        node,
        commits: node.commits,
        data: node.paged ? FileCommit.take(node.paged, node.chunks!, node.fileId!) : undefined,
        times: node.snapshotTimes(),
      })
    }
    return work
  }

  #commit(work: FlushWork[]): void {
    if (work.length === 0) return
    const ctx = this.#ctx
    try {
      // Durable: the flush's promise (and truncate's, before it punches holes) rests on it.
      ctx.ns.transaction(() => {
        for (const w of work) {
          w.data?.save(ctx.db)
          if (w.times) ctx.ns.setMeta(w.node.ino, w.times.times, false) // the write that moved them recorded its pages
        }
      }, 'now')
    } catch (err) {
      throw fromSystemError(err, 'committing file data')
    }
    for (const w of work) {
      w.node.commits++
      w.data?.committed()
      if (w.times) w.node.timesCommitted(w.times.version)
      if (w.node.refs === 0 && !w.node.isDirty) this.#drop(w.node)
    }
  }

  /** The pages of every open file written since their sums were taken (see FluxLog). */
  *inFlux(): Generator<FluxNote> {
    for (const node of this.#nodes.values()) {
      if (!node.paged || node.fileId === undefined) continue
      yield* node.paged.guard.inFlux()
    }
  }

  /** A read-only store follows its writer: reload what another process committed. */
  reload(): void {
    const ctx = this.#ctx
    for (const node of this.#nodes.values()) {
      if (node.paged && node.fileId !== undefined) {
        node.paged.reload(readFileState(ctx.db, node.fileId, ctx.path))
        node.paged.map.reload(node.chunks!.totals())
        continue
      }
      const row = ctx.ns.inode(node.ino)
      if (row?.file != null) {
        const state = readFileState(ctx.db, row.file, ctx.path)
        this.#attach(node, row.file, UpperFile.open(this.upperPath(row.file), { readOnly: true }), state, true)
      }
    }
  }

  /** Delete upper data files whose records are gone (after their commit is durable, and at open). */
  purge(ids: number[]): void {
    if (ids.length === 0) return
    const done: number[] = []
    for (const id of ids) {
      try {
        fs.rmSync(this.upperPath(id), { force: true })
        done.push(id)
      } catch {
        // Left in the purge table: the next open retries. Only space is lost meanwhile.
      }
    }
    try {
      // The removals must be durable before their records go, or a power cut could bring back
      // files nothing accounts for.
      fs.syncDirectory(`${this.#ctx.path}/${UPPER_DIR}`)
      // Losing this commit only means the next open deletes (absent) files again.
      this.#ctx.ns.transaction(() => {
        for (const id of done) this.#ctx.ns.removePurge(id)
      }, 'optional')
    } catch {
      // As above: the next open finishes the job.
    }
  }

  closeAll(): void {
    for (const node of this.#nodes.values()) node.close()
    this.#nodes.clear()
  }

  #drop(node: FileNode): void {
    node.close()
    if (this.#nodes.get(node.ino) === node) this.#nodes.delete(node.ino)
  }
}
