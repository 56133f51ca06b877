// What vouches for one paged file's DATA pages (SPEC §8: a store never serves bytes it cannot vouch
// for): each page's checksum, committed with the page map; the pages rewritten since their sum
// was taken (this process wrote them: memory vouches for them until the next commit sums them);
// and the pages verified since the file was opened (a cache, so hot reads hash nothing).
import { PagecowError } from '../errors.js'
import type { FluxLog, FluxNote } from './flux-log.js'
import { firstMismatch, pageSum } from './hash.js'
import type Database from 'better-sqlite3'
import { PageSums, type SumsSnapshot } from './page-sums.js'
import { PageSet } from './page-set.js'

/** Chunks of verified pages remembered per file (a chunk of pages costs a few bytes to 8 KiB). */
const VERIFIED_CHUNKS = 256

export class FileGuard {
  readonly sums: PageSums
  readonly #fileId: number
  readonly #pageSize: number
  readonly #where: string
  /** Set for a writer: rewrites of committed pages are noted there first. */
  readonly #flux: FluxLog | undefined
  /**
   * The store's log as on disk: a reader learns there which pages the writer is rewriting, a writer
   * which pages a killed writer was (until its first flush recovers them).
   */
  readonly #log: FluxLog
  readonly #unsummed = new PageSet()
  readonly #verified = new PageSet()
  /** The sums of the pages a many-page read checks (grown as needed). */
  #expected = new BigUint64Array(256)
  #expectedWords = new Uint32Array(this.#expected.buffer)
  /** Set by #firstDamaged when it passed over a page being rewritten (not verified). */
  #rewrote = false

  constructor(parts: { sums: PageSums; fileId: number; pageSize: number; where: string; flux: FluxLog; readOnly: boolean }) {
    this.sums = parts.sums
    this.#fileId = parts.fileId
    this.#pageSize = parts.pageSize
    this.#where = parts.where
    this.#flux = parts.readOnly ? undefined : parts.flux
    this.#log = parts.flux
  }

  /** The guard of paged file `fileId` of a store: its sums in the store's database. */
  static open(db: Database.Database, flux: FluxLog, readOnly: boolean, fileId: number, pageSize: number, where: string): FileGuard {
    return new FileGuard({ sums: new PageSums(db, fileId, where), fileId, pageSize, where, flux, readOnly })
  }

  /** Whether pages were written since their sums were taken (a commit has sums to take). */
  get hasUnsummed(): boolean {
    return !this.#unsummed.isEmpty
  }

  /** The pages still being rewritten, as notes for the flux log that follows a flush. */
  *inFlux(): Generator<FluxNote> {
    for (const page of this.#unsummed.pages()) yield { file: this.#fileId, start: page, end: page + 1 }
  }

  /** Make the notes of rewrites durable (before the upper is synced: see FluxLog.sync). */
  syncNotes(): void {
    this.#flux?.sync()
  }

  /** Whether reads of [start, end) need no check: every page verified, or written by us since. */
  trusted(start: number, end: number): boolean {
    if (this.#verified.hasRange(start, end)) return true // hot reads: one check per chunk
    for (let p = start; p < end; p++) if (!this.#verified.has(p) && !this.#unsummed.has(p)) return false
    return true
  }

  /**
   * Pages [start, end) of the upper are about to get new bytes. Each that has a sum (a committed,
   * or a commit's pending, DATA page: the map may still point at its old bytes) is noted before
   * its bytes change (see FluxLog); all become unsummed until the next commit sums them.
   */
  beforeWrite(start: number, end: number): void {
    if (this.#unsummed.hasRange(start, end)) return // noted already
    for (let p = start; p < end; p++) {
      if (this.#unsummed.has(p)) continue
      if (this.sums.get(p) !== 0n) this.#flux?.note(this.#fileId, p)
      this.#unsummed.add(p)
      this.#verified.delete(p)
    }
  }

  /**
   * Pages [start, end) become ZERO and their upper blocks are punched at once (before the commit
   * that records it): one note for the range, so a crash before that commit finds the holes noted.
   */
  beforePunch(start: number, end: number): void {
    this.#flux?.note(this.#fileId, start, end)
    this.#verified.deleteRange(start, end)
  }

  /**
   * Check the whole DATA pages in `bytes` (page `first` first) against their sums. ECORRUPT naming
   * the file and the page on a mismatch, or for a DATA page without a sum.
   */
  verify(first: number, bytes: Uint8Array): void {
    const ps = this.#pageSize
    const count = Math.floor(bytes.length / ps)
    if (count === 1) this.#verifyOne(first, bytes)
    else if (count > 1) this.#verifyMany(first, count, bytes)
    this.#verified.trimTo(VERIFIED_CHUNKS)
  }

  #verifyOne(page: number, bytes: Uint8Array): void {
    if (this.#verified.has(page) || this.#unsummed.has(page)) return
    const expected = this.sums.get(page)
    if (expected !== pageSum(bytes)) {
      if (this.#log.isNoted(this.#fileId, page)) return // being rewritten (by the writer, or a killed one)
      throw this.#damaged(page, expected)
    }
    this.#verified.add(page)
  }

  /** Many pages: their sums gathered, then hashed and compared in one native call. */
  #verifyMany(first: number, count: number, bytes: Uint8Array): void {
    if (this.#expected.length < count) {
      this.#expected = new BigUint64Array(Math.max(count, 2 * this.#expected.length))
      this.#expectedWords = new Uint32Array(this.#expected.buffer)
    }
    const expected = this.#expected
    const words = this.#expectedWords
    this.sums.copyInto(first, count, expected)
    // Trusted pages are not checked (expected 0); a page without a sum that is not trusted is
    // damage unless it is being rewritten. The halves of each sum are read as numbers: reading a
    // BigUint64Array makes a BigInt of every element.
    const mixed = !this.#unsummed.isEmpty || !this.#verified.isEmpty
    let skipped = false
    for (let i = 0; i < count; i++) {
      const page = first + i
      if (mixed && (this.#verified.has(page) || this.#unsummed.has(page))) {
        expected[i] = 0n
        skipped = true
      } else if (words[2 * i] === 0 && words[2 * i + 1] === 0) {
        skipped = true
        if (this.#log.isNoted(this.#fileId, page)) continue
        // A page without a sum: the pages before it are judged first, as a page at a time would.
        const before = this.#firstDamaged(first, bytes.subarray(0, i * this.#pageSize), expected)
        throw this.#damaged(first + (before >= 0 ? before : i), before >= 0 ? expected[before]! : 0n)
      }
    }
    const bad = this.#firstDamaged(first, bytes, expected)
    if (bad >= 0) throw this.#damaged(first + bad, expected[bad]!)
    if (!skipped && !this.#rewrote) this.#verified.addRange(first, first + count)
    else for (let i = 0; i < count; i++) if (words[2 * i] !== 0 || words[2 * i + 1] !== 0) this.#verified.add(first + i)
  }

  /**
   * The first page of `bytes` that does not match its expected sum and is not being rewritten, or
   * -1. A page being rewritten that does not match gets expected 0: it is not counted as verified.
   */
  #firstDamaged(first: number, bytes: Uint8Array, expected: BigUint64Array): number {
    this.#rewrote = false
    for (let from = 0; ; ) {
      const bad = firstMismatch(bytes, this.#pageSize, expected, from)
      if (bad < 0 || !this.#log.isNoted(this.#fileId, first + bad)) return bad
      expected[bad] = 0n
      this.#rewrote = true
      from = bad + 1
    }
  }

  #damaged(page: number, expected: bigint): PagecowError {
    const ps = this.#pageSize
    const what = expected === 0n ? 'has no checksum' : 'does not match its checksum'
    return new PagecowError('ECORRUPT', `${this.#where}, page ${page} (bytes ${page * ps}–${(page + 1) * ps - 1}): the upper's copy ${what}; it is not served (run \`pagecow fsck\`)`)
  }

  /**
   * For a commit: the sums of the pages written since the last one, taken now from the upper
   * (`isData` says which pages the map holds as DATA; `readPage` reads one whole page). Pages
   * written after this call stay unsummed for the next commit.
   */
  takeSums(isData: (page: number) => boolean, readPage: (page: number) => Uint8Array): SumsSnapshot {
    for (const page of [...this.#unsummed.pages()]) {
      if (isData(page)) {
        this.sums.set(page, pageSum(readPage(page)))
        this.#verified.add(page)
      } else if (this.sums.get(page) !== 0n) {
        this.sums.set(page, 0n)
      }
    }
    this.#unsummed.clear()
    return this.sums.snapshot()
  }

  /** Another process committed: what was verified may have been rewritten since. */
  reload(): void {
    this.#verified.clear()
    this.sums.reload()
  }
}
