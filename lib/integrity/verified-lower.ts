// A bound lower (opt-in, `pagecow verify --record`): every page it serves is checked against the
// sum recorded for it, so a lower that changed under the store (a byte the fingerprint's samples
// miss, the old mtime put back) fails the read with ESTALE instead of serving different bytes.
import { PagecowError } from '../errors.js'
import type { LowerStat } from '../lower-stat.js'
import type { LowerFile } from '../tree/lower-tree.js'
import { pageSum } from './hash.js'
import type { LowerSums } from './lower-sums.js'
import { SUMS_PER_BLOCK } from './page-sums.js'
import { PageSet } from './page-set.js'

/** Chunks of verified pages remembered per lower object (as FileGuard's). */
const VERIFIED_CHUNKS = 256

export class VerifiedLower implements LowerFile {
  readonly #inner: LowerFile
  readonly #sums: LowerSums
  readonly #pageSize: number
  readonly #where: string
  /** Pages checked since open: the lower never changes under an open store, so once is enough. */
  readonly #verified = new PageSet()

  private constructor(inner: LowerFile, sums: LowerSums, pageSize: number, where: string) {
    this.#inner = inner
    this.#sums = sums
    this.#pageSize = pageSize
    this.#where = where
  }

  /**
   * `inner` checked against its recorded sums as it is read. ESTALE now if its size is not the
   * recorded one, or nothing is recorded for it (a file added to, or replaced in, the lower).
   * `where` names it in messages ("the lower image /srv/base.img").
   */
  static open(inner: LowerFile, sums: LowerSums, pageSize: number, where: string): VerifiedLower {
    const pages = Math.ceil(inner.size / pageSize)
    if (!sums.recorded) {
      throw new PagecowError('ESTALE', `${where} has no recorded page sums: it was added to or replaced in the lower since they were recorded; it is not served (run \`pagecow verify\`)`)
    }
    if (!sums.hasPages(pages)) {
      throw new PagecowError('ESTALE', `${where} changed size since its pages were recorded (now ${inner.size} bytes); it is not served (run \`pagecow verify\`)`)
    }
    return new VerifiedLower(inner, sums, pageSize, where)
  }

  get size(): number {
    return this.#inner.size
  }

  get mtimeNs(): bigint {
    return this.#inner.mtimeNs
  }

  stat(): LowerStat {
    return this.#inner.stat()
  }

  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    const span = this.#span(length, position)
    if (!span) return this.#inner.readInto(target, targetOffset, length, position)
    const { first, a, b, n } = span
    if (a === position && b === position + n) {
      const got = this.#inner.readInto(target, targetOffset, n, position)
      this.#verify(first, target.subarray(targetOffset, targetOffset + got), b - a)
      return got
    }
    // A partial page is read whole to be hashed; its part is copied out.
    const whole = Buffer.allocUnsafe(b - a)
    const got = this.#inner.readInto(whole, 0, b - a, a)
    this.#verify(first, whole.subarray(0, got), b - a)
    target.set(whole.subarray(position - a, position - a + n), targetOffset)
    return n
  }

  async readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number> {
    const span = this.#span(length, position)
    if (!span) return this.#inner.readIntoAsync(target, targetOffset, length, position)
    const { first, a, b, n } = span
    if (a === position && b === position + n) {
      const got = await this.#inner.readIntoAsync(target, targetOffset, n, position)
      this.#verify(first, target.subarray(targetOffset, targetOffset + got), b - a)
      return got
    }
    const whole = Buffer.allocUnsafe(b - a)
    const got = await this.#inner.readIntoAsync(whole, 0, b - a, a)
    this.#verify(first, whole.subarray(0, got), b - a)
    target.set(whole.subarray(position - a, position - a + n), targetOffset)
    return n
  }

  nextData(position: number): number | null {
    return this.#inner.nextData(position)
  }

  nextHole(position: number): number {
    return this.#inner.nextHole(position)
  }

  close(): void {
    this.#inner.close()
  }

  /**
   * The pages a read of `length` bytes at `position` touches, as bytes [a, b) (b clipped at the
   * end), and the bytes it returns (n); undefined when it needs no check (empty, or all verified).
   */
  #span(length: number, position: number): { first: number; a: number; b: number; n: number } | undefined {
    const size = this.#inner.size
    const n = Math.max(0, Math.min(length, size - position))
    if (n === 0) return undefined
    const ps = this.#pageSize
    const first = Math.floor(position / ps)
    const end = Math.ceil((position + n) / ps)
    if (this.#verified.hasRange(first, end)) return undefined
    return { first, a: first * ps, b: Math.min(end * ps, size), n }
  }

  /** Check `bytes` (read from page `first` on; `want` bytes were asked) page by page. */
  #verify(first: number, bytes: Uint8Array, want: number): void {
    const ps = this.#pageSize
    let sums: BigUint64Array | null = null
    let sumsBlock = -1
    for (let i = 0; i * ps < want; i++) {
      const page = first + i
      const b = Math.floor(page / SUMS_PER_BLOCK)
      if (b !== sumsBlock) {
        sums = this.#sums.block(b)
        sumsBlock = b
      }
      // The last page is hashed as stored (short); a short read hashes what came, and fails.
      const actual = pageSum(bytes.subarray(Math.min(i * ps, bytes.length), Math.min((i + 1) * ps, bytes.length)))
      if (actual !== (sums ? sums[page % SUMS_PER_BLOCK]! : 0n)) {
        throw new PagecowError(
          'ESTALE',
          `${this.#where} changed at page ${page} (bytes ${page * ps}–${Math.min((page + 1) * ps, this.#inner.size) - 1}) since its pages were recorded; it is not served (run \`pagecow verify\`)`,
        )
      }
    }
    // Pages verified before are hashed again when a read spans them and new ones: cheaper than asking.
    this.#verified.addRange(first, first + Math.ceil(want / ps))
    this.#verified.trimTo(VERIFIED_CHUNKS)
  }
}
