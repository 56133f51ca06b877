// The recorded sums of one bound lower object's pages (table lower_sums, laid out as page_sums):
// read on demand through a small bounded cache, each row's own sum checked when it is loaded.
import type Database from 'better-sqlite3'
import { fromSystemError, PagecowError } from '../errors.js'
import { prepared } from '../store/database.js'
import { SUMS_PER_BLOCK } from './page-sums.js'
import { rowSum, sumMatches } from './row-sums.js'

/** Blocks kept per lower object (16 × 8 KiB: the sums of 64 MiB of 4 KiB pages). */
const CACHE_BLOCKS = 16

/** The key of an image store's one lower object in lower_sums. */
export const IMAGE_LOWER_KEY = 1

export class LowerSums {
  readonly #db: Database.Database
  readonly #key: number
  readonly #where: string
  /** Loaded blocks, least recently used first; null: no row (no pages recorded there). */
  readonly #cache = new Map<number, BigUint64Array | null>()

  /** `key`: IMAGE_LOWER_KEY, or a tree lower file's inode number; `where` names the lower in messages. */
  constructor(db: Database.Database, key: number, where: string) {
    this.#db = db
    this.#key = key
    this.#where = where
  }

  /** The recorded sum of `page`, or 0n if none was recorded (past the end, or not bound). */
  get(page: number): bigint {
    const block = this.block(Math.floor(page / SUMS_PER_BLOCK))
    return block ? block[page % SUMS_PER_BLOCK]! : 0n
  }

  /** The sums of pages [b × 1024, (b + 1) × 1024), or null if none are recorded there. Do not change it. */
  block(b: number): BigUint64Array | null {
    let block = this.#cache.get(b)
    if (block === undefined) {
      block = readLowerBlock(this.#db, this.#key, b, this.#where)
      if (this.#cache.size >= CACHE_BLOCKS) this.#cache.delete(this.#cache.keys().next().value!)
    } else {
      this.#cache.delete(b)
    }
    this.#cache.set(b, block)
    return block
  }

  /** Whether anything is recorded for this lower object (block 0 always is, once bound). */
  get recorded(): boolean {
    return this.#loadFirst() !== null
  }

  /**
   * Whether the recorded pages are exactly `pages` (a bound object's size is told by its sums:
   * its pages are the leading non-zero ones, the last one hashed short).
   */
  hasPages(pages: number): boolean {
    if (this.#loadFirst() === null) return false
    return (pages === 0 || this.get(pages - 1) !== 0n) && this.get(pages) === 0n
  }

  #loadFirst(): BigUint64Array | null {
    this.get(0)
    return this.#cache.get(0) ?? null
  }
}

/** Row `block` of lower object `key`, its own sum checked; null if there is none. */
export function readLowerBlock(db: Database.Database, key: number, block: number, where: string): BigUint64Array | null {
  let row: { sums: unknown; sum: unknown } | undefined
  try {
    row = prepared<[number, number], { sums: unknown; sum: unknown }>(db, 'SELECT sums, sum FROM lower_sums WHERE file = ? AND block = ?').get(key, block)
  } catch (err) {
    throw fromSystemError(err, `${where}: reading the lower's recorded sums`)
  }
  if (!row) return null
  const { sums, sum } = row
  if (!Buffer.isBuffer(sums) || sums.length !== SUMS_PER_BLOCK * 8 || !sumMatches(sum, rowSum.lowerSums(key, block, sums))) {
    throw new PagecowError('ECORRUPT', `${where}: the recorded sums of lower pages ${block * SUMS_PER_BLOCK}–${(block + 1) * SUMS_PER_BLOCK - 1} are damaged; record them again with \`pagecow verify --record\``)
  }
  const copy = new BigUint64Array(SUMS_PER_BLOCK)
  new Uint8Array(copy.buffer).set(sums)
  return copy
}

/** Write row `block` of lower object `key` (inside the caller's transaction). */
export function writeLowerBlock(db: Database.Database, key: number, block: number, sums: BigUint64Array): void {
  const bytes = Buffer.from(sums.buffer, sums.byteOffset, sums.byteLength)
  prepared(
    db,
    `INSERT INTO lower_sums (file, block, sums, sum) VALUES (?, ?, ?, ?)
     ON CONFLICT (file, block) DO UPDATE SET sums = excluded.sums, sum = excluded.sum`,
  ).run(key, block, bytes, rowSum.lowerSums(key, block, bytes))
}
