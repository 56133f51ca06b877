// The checksums of one paged file's pages, as the database keeps them: rows (file, block) of the
// `page_sums` table, each holding the sums of SUMS_PER_BLOCK pages (a SumBlock, sparse or dense)
// and a sum of its own. Blocks are loaded on demand and kept in a bounded cache; changed ones are pinned until
// a commit saves them (in the same transaction as the page map that points at those pages).
import type Database from 'better-sqlite3'
import { fromSystemError, PagecowError } from '../errors.js'
import { prepared } from '../store/database.js'
import { rowSum as rowSums } from './row-sums.js'
import { SumBlock, SUMS_PER_BLOCK } from './sum-block.js'

export { SUMS_PER_BLOCK }
/** Clean blocks kept in memory (2 MiB). */
const CACHE_BLOCKS = 256
/** Blocks evicted beyond the bound each time it is passed. */
const EVICT_MORE = CACHE_BLOCKS / 4

interface Block {
  sums: SumBlock
  /** Bumped by every change; a commit saves a version and compares on completion. */
  version: number
  savedVersion: number
  /** When it was last asked for (the cache's clock): the least recent clean blocks go first. */
  used: number
}

/** Changed blocks captured for a commit. */
export interface SumsSnapshot {
  blocks: Array<{ block: number; bytes: Buffer; version: number }>
}

export class PageSums {
  readonly #db: Database.Database
  readonly #file: number
  readonly #where: string
  /** Blocks in memory. */
  readonly #cache = new Map<number, Block>()
  readonly #dirty = new Set<number>()
  /** Ticks on every look-up: a stamp, not a reordering of the map (a read asks once a page). */
  #clock = 0

  constructor(db: Database.Database, file: number, where: string) {
    this.#db = db
    this.#file = file
    this.#where = where
  }

  get isDirty(): boolean {
    return this.#dirty.size > 0
  }

  /** The sum of `page`, or 0n when none is recorded. */
  get(page: number): bigint {
    return this.#block(Math.floor(page / SUMS_PER_BLOCK)).sums.get(page % SUMS_PER_BLOCK)
  }

  /** The sums of pages [first, first + count) into out[0…] (0n: none), a block at a time. */
  copyInto(first: number, count: number, out: BigUint64Array): void {
    const end = first + count
    for (let page = first; page < end; ) {
      const b = Math.floor(page / SUMS_PER_BLOCK)
      const stop = Math.min(end, (b + 1) * SUMS_PER_BLOCK)
      this.#block(b).sums.copyInto(page - b * SUMS_PER_BLOCK, stop - b * SUMS_PER_BLOCK, out, page - first)
      page = stop
    }
  }

  set(page: number, sum: bigint): void {
    const b = Math.floor(page / SUMS_PER_BLOCK)
    const block = this.#block(b)
    if (!block.sums.set(page % SUMS_PER_BLOCK, sum)) return
    block.version++
    this.#dirty.add(b)
  }

  /** The changed blocks, copied: writes after this stay pending for the next commit. */
  snapshot(): SumsSnapshot {
    const blocks: SumsSnapshot['blocks'] = []
    for (const b of this.#dirty) {
      const block = this.#cache.get(b)!
      blocks.push({ block: b, bytes: block.sums.encode(), version: block.version })
    }
    return { blocks }
  }

  /** Write a snapshot; call inside the commit's transaction. */
  save(snapshot: SumsSnapshot): void {
    const upsert = prepared(
      this.#db,
      `INSERT INTO page_sums (file, block, sums, sum) VALUES (?, ?, ?, ?)
       ON CONFLICT (file, block) DO UPDATE SET sums = excluded.sums, sum = excluded.sum`,
    )
    for (const { block, bytes } of snapshot.blocks) upsert.run(this.#file, block, bytes, rowSum(this.#file, block, bytes))
  }

  /** The snapshot's transaction committed: blocks not changed since are clean. */
  committed(snapshot: SumsSnapshot): void {
    for (const { block: b, version } of snapshot.blocks) {
      const block = this.#cache.get(b)
      if (!block) continue
      block.savedVersion = version
      if (block.version === version) this.#dirty.delete(b)
    }
    this.#evict()
  }

  /**
   * Load the blocks of pages [start, end) not in memory yet, with one query: fsck reads pages in
   * order, and a query per block cost more than hashing its pages. A row that fails its check is
   * left for get() to report; `checked` hears of each row that passed.
   */
  preload(start: number, end: number, checked?: (block: number) => void): void {
    const from = Math.floor(start / SUMS_PER_BLOCK)
    const to = Math.ceil(end / SUMS_PER_BLOCK)
    let rows: Array<{ block: number; sums: unknown; sum: unknown }>
    try {
      rows = prepared<[number, number, number], { block: number; sums: unknown; sum: unknown }>(
        this.#db,
        'SELECT block, sums, sum FROM page_sums WHERE file = ? AND block >= ? AND block < ? ORDER BY block',
      ).all(this.#file, from, to)
    } catch (err) {
      throw fromSystemError(err, `${this.#where}: reading page checksums`)
    }
    let next = 0
    for (let b = from; b < to; b++) {
      while (next < rows.length && rows[next]!.block < b) next++
      if (this.#cache.has(b)) continue
      const row = rows[next]?.block === b ? rows[next] : undefined
      const sums = row ? decodeRow(this.#file, b, row) : new SumBlock()
      if (sums) this.#cache.set(b, { sums, version: 0, savedVersion: 0, used: ++this.#clock })
      if (sums && row) checked?.(b)
    }
    this.#evict()
  }

  /** Drop every clean block (another process committed). */
  reload(): void {
    for (const b of [...this.#cache.keys()]) if (!this.#dirty.has(b)) this.#cache.delete(b)
  }

  #block(b: number): Block {
    let block = this.#cache.get(b)
    if (block) {
      block.used = ++this.#clock
      return block
    }
    // A block without a row is cached too, as no sums (all 0): otherwise every write into a block
    // that holds no DATA page yet (every write of a fresh store) asks the database again.
    const sums = this.#load(b)
    block = { sums: sums ?? new SumBlock(), version: 0, savedVersion: 0, used: ++this.#clock }
    this.#cache.set(b, block)
    this.#evict()
    return block
  }

  #load(b: number): SumBlock | undefined {
    let row: { sums: unknown; sum: unknown } | undefined
    try {
      row = prepared<[number, number], { sums: unknown; sum: unknown }>(this.#db, 'SELECT sums, sum FROM page_sums WHERE file = ? AND block = ?').get(this.#file, b)
    } catch (err) {
      throw fromSystemError(err, `${this.#where}: reading page checksums`)
    }
    if (!row) return undefined
    const block = decodeRow(this.#file, b, row)
    if (!block) {
      throw new PagecowError('ECORRUPT', `${this.#where}: the checksums of pages ${b * SUMS_PER_BLOCK}–${(b + 1) * SUMS_PER_BLOCK - 1} are damaged; run \`pagecow fsck\``)
    }
    return block
  }

  #evict(): void {
    const over = this.#cache.size - CACHE_BLOCKS - this.#dirty.size
    if (over <= 0) return
    // A quarter of the cache more than needed at once: sorting the cache for every block loaded
    // past the bound was most of fsck's time on a store of scattered pages (a block per page).
    const clean = [...this.#cache].filter(([b]) => !this.#dirty.has(b)).sort((x, y) => x[1].used - y[1].used)
    for (const [b] of clean.slice(0, over + EVICT_MORE)) this.#cache.delete(b)
  }
}

/** The sums of a page_sums row, or undefined if the row fails its own sum or cannot be decoded. */
function decodeRow(file: number, b: number, row: { sums: unknown; sum: unknown }): SumBlock | undefined {
  const { sums, sum } = row
  return Buffer.isBuffer(sums) && Buffer.isBuffer(sum) && sum.equals(rowSum(file, b, sums)) ? SumBlock.decode(sums) : undefined
}

/** A page_sums row's own sum: the file, the block and the sums it holds. */
function rowSum(file: number, block: number, sums: Uint8Array): Buffer {
  return rowSums.pageSums(file, block, sums)
}
