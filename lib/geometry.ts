// Page geometry: the one place where byte offsets and page numbers are converted.
// Ranges inside the library are half-open [start, end); page numbers and byte offsets are
// never mixed: a name says which one it holds (`startPage`, `endByte`).

/** Smallest page size a store can have. */
export const MIN_PAGE_SIZE = 512
/** Largest page size a store can have. */
export const MAX_PAGE_SIZE = 1024 * 1024
/** Page size of a store created without `pageSize`. */
export const DEFAULT_PAGE_SIZE = 4096
/** Largest logical size of a file: 4 PiB keeps every byte offset an exact integer. */
export const MAX_FILE_SIZE = 2 ** 52
/** Pages per bitmap chunk: one roaring container, so a chunk's bitmap is at most 8 KiB. */
export const CHUNK_SHIFT = 16
export const PAGES_PER_CHUNK = 2 ** CHUNK_SHIFT

export function isValidPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PAGE_SIZE && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0
}

/** Conversions for one page size. */
export class Geometry {
  readonly pageSize: number

  constructor(pageSize: number) {
    if (!isValidPageSize(pageSize)) throw new RangeError(`bad page size ${pageSize}`)
    this.pageSize = pageSize
  }

  /** The page holding byte `offset`. */
  pageOf(offset: number): number {
    return Math.floor(offset / this.pageSize)
  }

  /** Pages needed to hold `bytes` bytes (the page after the last byte). */
  pagesFor(bytes: number): number {
    return Math.ceil(bytes / this.pageSize)
  }

  /** First byte of `page`. */
  byteOf(page: number): number {
    return page * this.pageSize
  }

  /** Whether `offset` is a page boundary. */
  isAligned(offset: number): boolean {
    return offset % this.pageSize === 0
  }

  /** Pages wholly inside the byte range [start, end): [startPage, endPage), possibly empty. */
  wholePages(start: number, end: number): [number, number] {
    const startPage = this.pagesFor(start)
    const endPage = this.pageOf(end)
    return endPage > startPage ? [startPage, endPage] : [startPage, startPage]
  }

  /**
   * Pages wholly inside [start, end) of a file of `size` bytes. A range that reaches the end of
   * the file covers its last page whole: bytes past the end of a file always read as zeros.
   */
  wholePagesOfFile(start: number, end: number, size: number): [number, number] {
    return this.wholePages(start, end >= size ? this.byteOf(this.pagesFor(end)) : end)
  }

  /** Pages touched by the byte range [start, end): [startPage, endPage). */
  touchedPages(start: number, end: number): [number, number] {
    return end > start ? [this.pageOf(start), this.pagesFor(end)] : [this.pageOf(start), this.pageOf(start)]
  }
}

/** The chunk holding `page`, and the page's index inside it. */
export function chunkOf(page: number): number {
  return Math.floor(page / PAGES_PER_CHUNK)
}

export function firstPageOfChunk(chunk: number): number {
  return chunk * PAGES_PER_CHUNK
}
