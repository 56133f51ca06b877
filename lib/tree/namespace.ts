// The namespace tables of a tree store (inodes, dirents, xattrs, counters, purge): typed reads and
// writes, validated on the way in from disk. Callers group writes in one transaction per change.
// Path resolution reads through a bounded cache of lookups (lookup-cache.ts) that every write drops.
import type { Tracking } from '../changes/tracking.js'
import type Database from 'better-sqlite3'
import { z } from 'zod'
import { PagecowError } from '../errors.js'
import { FILE_TYPES, type FileType } from './file-type.js'
import { FIRST_FILE_ID, UPPER_INO_BASE } from './ino.js'
import { dataVersion } from '../store/database.js'
import { joinNs, splitNs } from '../time-ns.js'
import { LOWER_ROWS_TRACKED, LookupCache, type LowerRows } from './lookup-cache.js'
import { nameFromBytes, nameToBytes } from '../name-bytes.js'
import { decodePrint, encodePrint, type LowerPrint } from './lower-print.js'
import type { Generation } from '../integrity/generation.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'

/** An inode row: the whole metadata of an object the upper knows about. */
export interface InodeRow {
  ino: number
  type: FileType
  /** Path in the lower ('' = its root), names in their byte form (name-bytes.ts); null for objects created in the upper. */
  origin: string | null
  nlink: number
  /** Permission bits (07777). */
  mode: number
  uid: number
  gid: number
  rdev: number
  /** Times in nanoseconds since the epoch. */
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  /** Target of an upper-created symlink (its bytes in name form). */
  target: string | null
  /** Paged file id holding the data, or null while the data is all the lower's. */
  file: number | null
  lowerPrint: LowerPrint | null
  opaque: boolean
}

export type InodeMeta = Pick<InodeRow, 'mode' | 'uid' | 'gid' | 'atimeNs' | 'mtimeNs' | 'ctimeNs'>

const bytes = z.instanceof(Buffer)
const sec = z.number().int()
const nsec = z.number().int().min(0).max(999_999_999)

const inodeRowSchema = z.strictObject({
  ino: z.number().int().nonnegative(),
  type: z.enum(FILE_TYPES as [FileType, ...FileType[]]),
  origin: bytes.nullable(),
  nlink: z.number().int().nonnegative(),
  mode: z.number().int().min(0).max(0o7777),
  uid: z.number().int(),
  gid: z.number().int(),
  rdev: z.number().int(),
  atime_sec: sec,
  atime_nsec: nsec,
  mtime_sec: sec,
  mtime_nsec: nsec,
  ctime_sec: sec,
  ctime_nsec: nsec,
  target: bytes.nullable(),
  file: z.number().int().positive().nullable(),
  lower_fp: z.string().nullable(),
  opaque: z.number().int(),
})

/** A directory entry of the upper: ino null is a whiteout. `type` is the inode's (null for whiteouts). */
export interface DirentRow {
  parent: number
  name: string
  ino: number | null
  type: FileType | null
}

const INODE_COLUMNS =
  'ino, type, origin, nlink, mode, uid, gid, rdev, atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, target, file, lower_fp, opaque'

export class Namespace {
  readonly #db: Database.Database
  readonly #where: string
  readonly #statements = new Map<string, Database.Statement>()
  readonly #cache = new LookupCache()
  /** data_version at the last refresh(). */
  #seenVersion: number | undefined
  #relaxed = false
  /** Transactions committed by this connection, and how many of them are known durable. */
  #commits = 0
  #durableCommits = 0

  /** Durable commits count as the store's commits (see Generation); undefined for fsck's reads. */
  readonly #generation: Generation | undefined

  /** Where entry and metadata changes are recorded while marks exist; undefined for fsck's reads. */
  readonly #tracking: Tracking | undefined

  constructor(db: Database.Database, where: string, generation?: Generation, tracking?: Tracking) {
    this.#db = db
    this.#where = where
    this.#generation = generation
    this.#tracking = tracking
  }

  /**
   * Changes whenever the namespace may have: a commit by this connection (total_changes) or by
   * another one (data_version). Caches of merged listings are keyed by it.
   */
  version(): string {
    const own = (this.#get('SELECT total_changes() AS n') as { n: number }).n
    return `${dataVersion(this.#db)}:${own}`
  }

  /**
   * Drop the cached lookups if another connection committed since the last call (a read-only
   * store following its writer) and return SQLite's data_version. Call it before each operation
   * that resolves paths on a connection others write to; this connection's own writes keep the
   * cache true by themselves (a writer's store has no other writer: the writer lock).
   */
  refresh(): number {
    const version = dataVersion(this.#db)
    if (version !== this.#seenVersion) {
      this.#seenVersion = version
      this.#cache.dropAll()
    }
    return version
  }

  /**
   * Commits are atomic but not each durable (synchronous=NORMAL): SPEC §3 asks durability of a
   * change only at the next flush, which makes every earlier commit durable at once with one
   * durable commit. A writable tree store turns this on; the default is every commit durable.
   */
  relax(): void {
    this.#db.pragma('synchronous = NORMAL')
    this.#relaxed = true
  }

  /** Whether every commit so far is durable. */
  get synced(): boolean {
    return this.#durableCommits === this.#commits
  }

  /**
   * Run `fn` in one SQLite transaction (synchronous: no await inside). `durability`: 'flush'
   * (made durable by the next flush), 'now' (on disk when this returns, with every commit before
   * it: the WAL is one sequence), or 'optional' (losing it is harmless: a flush need not wait
   * for it, and `synced` does not count it).
   */
  transaction<T>(fn: () => T, durability: Durability = 'flush'): T {
    const durable = durability === 'now'
    const full = durable && this.#relaxed
    if (full) this.#db.pragma('synchronous = FULL')
    let result: T
    const counted = durable ? this.#generation : undefined
    try {
      result = this.#db.transaction(() => {
        const r = fn()
        counted?.bump()
        return r
      })()
    } catch (err) {
      // Rolled back: what was read inside may never have been committed.
      this.#cache.dropAll()
      counted?.rolledBack()
      throw err
    } finally {
      if (full) this.#db.pragma('synchronous = NORMAL')
    }
    counted?.publish()
    if (durability === 'optional') return result
    this.#commits++
    if (durable || !this.#relaxed) this.#durableCommits = this.#commits
    return result
  }

  /** Make every commit so far durable: one durable commit if any is not yet (a flush's last step). */
  sync(): void {
    if (this.synced) return
    this.transaction(() => this.#setCounter('syncs', this.#counter('syncs', 0) + 1), 'now')
  }

  // ---- cached lookups, for path resolution ----
  // The same answers as dirent(), inode() and inodeAtOrigin(), as of the last refresh() and this
  // connection's writes. Rows handed out are frozen and shared: callers must not change them.

  /** dirent(), cached; a directory known to have no upper entries answers without a query. */
  cachedDirent(parent: number, name: string): { readonly ino: number | null } | undefined {
    const cache = this.#cache
    let may = cache.mayHaveDirents.get(parent)
    if (may === undefined) {
      may = this.hasDirents(parent)
      cache.mayHaveDirents.set(parent, may)
    }
    if (!may) return undefined
    const key = `${parent}/${name}`
    const hit = cache.dirents.get(key)
    if (hit !== undefined) return hit ?? undefined
    const found = this.dirent(parent, name)
    const frozen = found ? Object.freeze({ ino: found.ino }) : undefined
    cache.dirents.set(key, frozen ?? null)
    return frozen
  }

  /** inode(), cached; a lower inode number the upper never recorded answers without a query. */
  cachedInode(ino: number): Readonly<InodeRow> | undefined {
    if (ino < UPPER_INO_BASE && this.#lowerRows()?.inos.has(ino) === false) return undefined
    const cache = this.#cache
    const hit = cache.inodes.get(ino)
    if (hit !== undefined) return hit ?? undefined
    const row = this.inode(ino)
    const frozen = row ? freezeRow(row) : undefined
    cache.inodes.set(ino, frozen ?? null)
    return frozen
  }

  /** inodeAtOrigin(), cached; a lower path the upper never recorded answers without a query. */
  cachedInodeAtOrigin(origin: string): Readonly<InodeRow> | undefined {
    if (this.#lowerRows()?.origins.has(origin) === false) return undefined
    const cache = this.#cache
    const hit = cache.origins.get(origin)
    if (hit !== undefined) return hit ?? undefined
    const row = this.inodeAtOrigin(origin)
    const frozen = row ? freezeRow(row) : undefined
    cache.origins.set(origin, frozen ?? null)
    return frozen
  }

  /** The inode numbers and origins of the lower objects the upper records, if few enough to keep. */
  #lowerRows(): LowerRows | null {
    const cache = this.#cache
    if (cache.lowerRows !== undefined) return cache.lowerRows
    const limit = LOWER_ROWS_TRACKED + 1
    const inos = this.#pluck('SELECT ino FROM inodes WHERE ino < ? LIMIT ?', UPPER_INO_BASE, limit) as number[]
    const origins = inos.length < limit ? (this.#pluck('SELECT origin FROM inodes WHERE origin IS NOT NULL LIMIT ?', limit) as Buffer[]).map(nameFromBytes) : []
    cache.lowerRows = inos.length < limit && origins.length < limit ? { inos: new Set(inos), origins: new Set(origins) } : null
    return cache.lowerRows
  }

  inode(ino: number): InodeRow | undefined {
    const row = this.#get(`SELECT ${INODE_COLUMNS}, sum FROM inodes WHERE ino = ?`, ino)
    return row === undefined ? undefined : this.#decode(row)
  }

  /** A linked inode recorded at lower path `origin` (an object of the lower the upper knows). */
  inodeAtOrigin(origin: string): InodeRow | undefined {
    const row = this.#get(`SELECT ${INODE_COLUMNS}, sum FROM inodes WHERE origin = ? AND nlink > 0 LIMIT 1`, nameToBytes(origin))
    return row === undefined ? undefined : this.#decode(row)
  }

  /** Every inode row, in inode order (fsck, changes). */
  *inodes(): Generator<InodeRow> {
    for (const row of this.#iterate(`SELECT ${INODE_COLUMNS}, sum FROM inodes ORDER BY ino`)) yield this.#decode(row)
  }

  insertInode(row: InodeRow): void {
    this.#cache.inodeInserted(row.ino, row.origin, row.ino < UPPER_INO_BASE)
    this.#cache.inodeChanged(row.ino)
    const a = splitNs(row.atimeNs)
    const m = splitNs(row.mtimeNs)
    const c = splitNs(row.ctimeNs)
    const cells = [
      row.ino, row.type, row.origin === null ? null : nameToBytes(row.origin), row.nlink, row.mode, row.uid, row.gid, row.rdev,
      a.sec, a.nsec, m.sec, m.nsec, c.sec, c.nsec,
      row.target === null ? null : nameToBytes(row.target), row.file, row.lowerPrint ? encodePrint(row.lowerPrint) : null, row.opaque ? 1 : 0,
    ]
    this.#run(`INSERT INTO inodes (${INODE_COLUMNS}, sum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ...cells, rowSum.inodes(cells))
  }

  /**
   * `journal` false: not recorded as a metadata change since the marks (the times a data write
   * deferred: the data change is recorded with the pages, at the moment of the write).
   */
  setMeta(ino: number, meta: Partial<InodeMeta>, journal = true): void {
    const sets: string[] = []
    const values: unknown[] = []
    for (const key of ['mode', 'uid', 'gid'] as const) {
      if (meta[key] === undefined) continue
      sets.push(`${key} = ?`)
      values.push(meta[key])
    }
    for (const [key, column] of [['atimeNs', 'atime'], ['mtimeNs', 'mtime'], ['ctimeNs', 'ctime']] as const) {
      const ns = meta[key]
      if (ns === undefined) continue
      const t = splitNs(ns)
      sets.push(`${column}_sec = ?`, `${column}_nsec = ?`)
      values.push(t.sec, t.nsec)
    }
    if (sets.length === 0) return
    this.#cache.inodeChanged(ino)
    if (journal) this.#inodeChanging(ino)
    this.#run(`UPDATE inodes SET ${sets.join(', ')} WHERE ino = ?`, ...values, ino)
    this.#resumInode(ino)
  }

  setNlink(ino: number, nlink: number): void {
    this.#cache.inodeChanged(ino)
    this.#run('UPDATE inodes SET nlink = ? WHERE ino = ?', nlink, ino)
    this.#resumInode(ino)
  }

  setFile(ino: number, file: number, lowerPrint: LowerPrint | null): void {
    this.#cache.inodeChanged(ino)
    this.#run('UPDATE inodes SET file = ?, lower_fp = ? WHERE ino = ?', file, lowerPrint ? encodePrint(lowerPrint) : null, ino)
    this.#resumInode(ino)
  }

  /** After an UPDATE of inode `ino`: its sum again, over the row as it is now. */
  #resumInode(ino: number): void {
    const row = this.#get(`SELECT ${INODE_COLUMNS} FROM inodes WHERE ino = ?`, ino) as Record<string, unknown> | undefined
    if (row) this.#run('UPDATE inodes SET sum = ? WHERE ino = ?', rowSum.inodes(inodeCells(row)), ino)
  }

  /** Every object that has data in the upper (a paged file). */
  inodesWithData(): number[] {
    return [...this.#iterate('SELECT ino FROM inodes WHERE file IS NOT NULL ORDER BY ino')].map((r) => (r as { ino: number }).ino)
  }

  /** The object whose data paged file `file` holds, if any. */
  inoOfFile(file: number): number | undefined {
    return (this.#get('SELECT ino FROM inodes WHERE file = ?', file) as { ino: number } | undefined)?.ino
  }

  /** Delete an inode row and its xattrs. */
  deleteInode(ino: number): void {
    this.#cache.inodeChanged(ino)
    this.#run('DELETE FROM inodes WHERE ino = ?', ino)
    this.#run('DELETE FROM xattrs WHERE ino = ?', ino)
  }

  /** Inodes no name refers to any more (left by a crash while a removed file was open). */
  orphans(): InodeRow[] {
    return [...this.#iterate(`SELECT ${INODE_COLUMNS}, sum FROM inodes WHERE nlink = 0`)].map((r) => this.#decode(r))
  }

  dirent(parent: number, name: string): { ino: number | null } | undefined {
    const bytes = nameToBytes(name)
    const row = this.#get('SELECT ino, sum FROM dirents WHERE parent = ? AND name = ?', parent, bytes) as { ino: number | null; sum: unknown } | undefined
    if (!row) return undefined
    this.#checkDirent(parent, bytes, row.ino, row.sum)
    return { ino: row.ino }
  }

  #checkDirent(parent: number, name: Buffer, ino: number | null, sum: unknown): void {
    if (!sumMatches(sum, rowSum.dirents(parent, name, ino))) {
      throw new PagecowError('ECORRUPT', `${this.#where}: entry ${JSON.stringify(nameFromBytes(name))} of directory ${parent} does not match its checksum; run \`pagecow fsck\``)
    }
  }

  setDirent(parent: number, name: string, ino: number | null): void {
    this.#cache.direntSet(parent)
    this.#cache.direntChanged(parent, name)
    const bytes = nameToBytes(name)
    this.#entryChanging(parent, bytes)
    this.#run(
      'INSERT INTO dirents (parent, name, ino, sum) VALUES (?, ?, ?, ?) ON CONFLICT (parent, name) DO UPDATE SET ino = excluded.ino, sum = excluded.sum',
      parent, bytes, ino, rowSum.dirents(parent, bytes, ino),
    )
  }

  deleteDirent(parent: number, name: string): void {
    this.#cache.direntsRemoved(parent)
    this.#cache.direntChanged(parent, name)
    const bytes = nameToBytes(name)
    this.#entryChanging(parent, bytes)
    this.#run('DELETE FROM dirents WHERE parent = ? AND name = ?', parent, bytes)
  }

  /** Entry (parent, name) is about to change: while a mark exists, what it is now is recorded (SPEC §7). */
  #entryChanging(parent: number, name: Buffer): void {
    const epoch = this.#tracking?.epoch ?? 0
    if (epoch === 0) return
    const row = this.#get('SELECT ino, sum FROM dirents WHERE parent = ? AND name = ?', parent, name) as { ino: number | null; sum: unknown } | undefined
    if (row) this.#checkDirent(parent, name, row.ino, row.sum)
    const ino = row?.ino ?? null
    const type = ino === null ? null : ((this.#get('SELECT type FROM inodes WHERE ino = ?', ino) as { type: string } | undefined)?.type ?? null)
    this.#tracking!.journal.entry(epoch, { parent, name, had: row !== undefined, ino, type })
  }

  /** Object `ino`'s metadata is about to change: recorded while a mark exists. */
  #inodeChanging(ino: number): void {
    const epoch = this.#tracking?.epoch ?? 0
    if (epoch !== 0) this.#tracking!.journal.inode(epoch, ino)
  }

  deleteDirentsOf(parent: number): void {
    this.#cache.direntsRemoved(parent)
    this.#cache.written()
    this.#run('DELETE FROM dirents WHERE parent = ?', parent)
  }

  /** The upper entries of a directory (whiteouts included), in byte order of name. */
  direntsOf(parent: number): DirentRow[] {
    return [...this.#iterate('SELECT d.parent, d.name, d.ino, d.sum, i.type FROM dirents d LEFT JOIN inodes i ON i.ino = d.ino WHERE d.parent = ? ORDER BY d.name', parent)].map((r) => this.#decodeDirent(r))
  }

  hasDirents(parent: number): boolean {
    return this.#get('SELECT 1 AS one FROM dirents WHERE parent = ? LIMIT 1', parent) !== undefined
  }

  /** The entries naming `ino`. */
  namesOf(ino: number): Array<{ parent: number; name: string }> {
    return [...(this.#iterate('SELECT parent, name, sum FROM dirents WHERE ino = ? ORDER BY parent, name', ino) as Iterable<{ parent: number; name: Buffer; sum: unknown }>)].map((r) => {
      this.#checkDirent(r.parent, r.name, ino, r.sum)
      return { parent: r.parent, name: nameFromBytes(r.name) }
    })
  }

  /** Every upper entry (fsck, changes), whiteouts included. */
  *allDirents(): Generator<DirentRow> {
    for (const raw of this.#iterate('SELECT d.parent, d.name, d.ino, d.sum, i.type FROM dirents d LEFT JOIN inodes i ON i.ino = d.ino ORDER BY d.parent, d.name')) yield this.#decodeDirent(raw)
  }

  /** The upper's xattrs of `ino`: value null means "removed from the lower's". */
  xattrs(ino: number): Map<string, Buffer | null> {
    const out = new Map<string, Buffer | null>()
    for (const row of this.#iterate('SELECT name, value, sum FROM xattrs WHERE ino = ? ORDER BY name', ino) as Iterable<{ name: string; value: Buffer | null; sum: unknown }>) {
      if (!sumMatches(row.sum, rowSum.xattrs(ino, row.name, row.value))) {
        throw new PagecowError('ECORRUPT', `${this.#where}: attribute ${JSON.stringify(row.name)} of inode ${ino} does not match its checksum; run \`pagecow fsck\``)
      }
      out.set(row.name, row.value)
    }
    return out
  }

  hasXattrs(ino: number): boolean {
    return this.#get('SELECT 1 AS one FROM xattrs WHERE ino = ? LIMIT 1', ino) !== undefined
  }

  setXattr(ino: number, name: string, value: Uint8Array | null): void {
    this.#inodeChanging(ino)
    this.#run(
      'INSERT INTO xattrs (ino, name, value, sum) VALUES (?, ?, ?, ?) ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value, sum = excluded.sum',
      ino, name, value, rowSum.xattrs(ino, name, value),
    )
  }

  deleteXattr(ino: number, name: string): void {
    this.#inodeChanging(ino)
    this.#run('DELETE FROM xattrs WHERE ino = ? AND name = ?', ino, name)
  }

  /** Take the next inode number for an upper-created object. */
  allocateIno(): number {
    return this.#take('next_ino', UPPER_INO_BASE)
  }

  /** The next paged file id, not yet taken: takeFileId() in the commit that records it. */
  peekFileId(): number {
    return this.#counter('next_file', FIRST_FILE_ID)
  }

  takeFileId(id: number): void {
    this.#setCounter('next_file', Math.max(this.#counter('next_file', FIRST_FILE_ID), id + 1))
  }

  counter(name: 'next_ino' | 'next_file'): number {
    return this.#counter(name, name === 'next_ino' ? UPPER_INO_BASE : FIRST_FILE_ID)
  }

  /** Remove a paged file's records (its page chunks and its size record). */
  deleteFileRecords(file: number): void {
    this.#run('DELETE FROM page_chunks WHERE file = ?', file)
    this.#run('DELETE FROM page_sums WHERE file = ?', file)
    this.#run('DELETE FROM copyup_base WHERE file = ?', file)
    this.#run('DELETE FROM page_changes WHERE file = ?', file)
    this.#run('DELETE FROM files WHERE id = ?', file)
  }

  addPurge(file: number): void {
    this.#run('INSERT OR IGNORE INTO purge (file, sum) VALUES (?, ?)', file, rowSum.purge(file))
  }

  removePurge(file: number): void {
    this.#run('DELETE FROM purge WHERE file = ?', file)
  }

  purgeList(): number[] {
    return ([...this.#iterate('SELECT file, sum FROM purge ORDER BY file')] as Array<{ file: number; sum: unknown }>).map((r) => {
      if (!sumMatches(r.sum, rowSum.purge(r.file))) throw new PagecowError('ECORRUPT', `${this.#where}: a purge record (file ${r.file}) does not match its checksum; run \`pagecow fsck\``)
      return r.file
    })
  }

  #counter(name: string, initial: number): number {
    const row = this.#get('SELECT value, sum FROM counters WHERE name = ?', name) as { value: number; sum: unknown } | undefined
    if (!row) return initial
    if (!sumMatches(row.sum, rowSum.counters(name, row.value))) throw new PagecowError('ECORRUPT', `${this.#where}: counter ${name} does not match its checksum; run \`pagecow fsck\``)
    return row.value
  }

  #take(name: string, initial: number): number {
    const value = this.#counter(name, initial)
    this.#setCounter(name, value + 1)
    return value
  }

  #setCounter(name: string, value: number): void {
    this.#run('INSERT INTO counters (name, value, sum) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, sum = excluded.sum', name, value, rowSum.counters(name, value))
  }

  #decode(raw: unknown): InodeRow {
    const { sum, ...cells } = raw as Record<string, unknown>
    if (!sumMatches(sum, rowSum.inodes(inodeCells(cells)))) {
      throw new PagecowError('ECORRUPT', `${this.#where}: inode ${String(cells.ino)} record does not match its checksum; run \`pagecow fsck\``)
    }
    const result = inodeRowSchema.safeParse(cells)
    if (!result.success) {
      const ino = (raw as { ino?: unknown })?.ino
      throw new PagecowError('ECORRUPT', `${this.#where}: inode ${String(ino)} record is invalid (${result.error.issues[0]?.path.join('.')}: ${result.error.issues[0]?.message}); run \`pagecow fsck\``)
    }
    const r = result.data
    let lowerPrint: LowerPrint | null = null
    if (r.lower_fp !== null) {
      lowerPrint = decodePrint(r.lower_fp)
      if (!lowerPrint) throw new PagecowError('ECORRUPT', `${this.#where}: inode ${r.ino} lower record is invalid; run \`pagecow fsck\``)
    }
    return {
      ino: r.ino,
      type: r.type,
      origin: r.origin === null ? null : nameFromBytes(r.origin),
      nlink: r.nlink,
      mode: r.mode,
      uid: r.uid,
      gid: r.gid,
      rdev: r.rdev,
      atimeNs: joinNs(r.atime_sec, r.atime_nsec),
      mtimeNs: joinNs(r.mtime_sec, r.mtime_nsec),
      ctimeNs: joinNs(r.ctime_sec, r.ctime_nsec),
      target: r.target === null ? null : nameFromBytes(r.target),
      file: r.file,
      lowerPrint,
      opaque: r.opaque !== 0,
    }
  }

  #decodeDirent(raw: unknown): DirentRow {
    const r = raw as { parent: number; name: Buffer; ino: number | null; sum: unknown; type: FileType | null }
    this.#checkDirent(r.parent, r.name, r.ino, r.sum)
    return { parent: r.parent, name: nameFromBytes(r.name), ino: r.ino, type: r.type }
  }

  #statement(sql: string): Database.Statement {
    let s = this.#statements.get(sql)
    if (!s) {
      s = this.#db.prepare(sql)
      this.#statements.set(sql, s)
    }
    return s
  }

  #get(sql: string, ...params: unknown[]): unknown {
    return this.#statement(sql).get(...params)
  }

  #iterate(sql: string, ...params: unknown[]): Iterable<unknown> {
    return this.#statement(sql).iterate(...params)
  }

  /** The first column of every row (a statement used here is used for nothing else). */
  #pluck(sql: string, ...params: unknown[]): unknown[] {
    return this.#statement(sql).pluck().all(...params)
  }

  /**
   * Every write goes through here. The methods that change inodes or dirents tell the lookup
   * cache exactly what changed before they call it; other tables are not cached.
   */
  #run(sql: string, ...params: unknown[]): void {
    this.#statement(sql).run(...params)
  }
}

/** When a namespace commit must be on disk: see Namespace.transaction(). */
export type Durability = 'flush' | 'now' | 'optional'


/** An inodes row's cells in the order INODE_COLUMNS names them (what its sum covers). */
function inodeCells(row: Record<string, unknown>): Array<number | string | Uint8Array | null> {
  return INODE_COLUMNS.split(', ').map((c) => row[c] as number | string | Uint8Array | null)
}

function freezeRow(row: InodeRow): Readonly<InodeRow> {
  if (row.lowerPrint) Object.freeze(row.lowerPrint)
  return Object.freeze(row)
}
