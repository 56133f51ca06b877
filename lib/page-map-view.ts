// The page map of `pagecow inspect` as plain data: extents folded into cells of 2^k pages. The
// CLI draws it; a control server sends it (the map of a served store, unflushed pages included).
import type { Extent, ExtentState } from './page/extent.js'

/** Which state a mixed cell shows: the strongest one, so one DATA page in a huge cell still shows. */
const RANK: Readonly<Record<ExtentState, number>> = { hole: 0, lower: 1, zero: 2, data: 3 }

/** Cells per row when no width is asked for. */
export const DEFAULT_WIDTH = 64
/** Rows the map grows to before cells start holding more pages. */
export const MAX_ROWS = 16

export interface StateTotal {
  /** Pages in the state; a page counts as `hole` only when all of it is a hole. */
  pages: number
  /** Bytes of the image in the state (the last page may be partial). */
  bytes: number
}

/** The folded map: plain data, printed as is by `pagecow inspect --json`. */
export interface PageMapView {
  pageSize: number
  /** Logical size of the image in bytes. */
  size: number
  /** Pages per cell: a power of two, the smallest that fits the map in `width × MAX_ROWS` cells. */
  pagesPerCell: number
  /** Cells per row. */
  width: number
  /** One state per cell, from the start of the image. */
  cells: ExtentState[]
  totals: Record<ExtentState, StateTotal>
}

/** The smallest power of two of pages per cell that keeps `totalPages` within `maxCells` cells. */
export function pagesPerCellFor(totalPages: number, maxCells: number): number {
  let pages = 1
  while (Math.ceil(totalPages / pages) > maxCells) pages *= 2
  return pages
}

/**
 * Fold the extents of a whole image into cells. Cost grows with the extents and the cells, never
 * with the size of the image: hole cells are the default and hole extents only count totals.
 */
export function buildPageMapView(extents: Iterable<Extent>, options: { size: number; pageSize: number; width?: number }): PageMapView {
  const { size, pageSize } = options
  const width = options.width ?? DEFAULT_WIDTH
  const totalPages = Math.ceil(size / pageSize)
  const pagesPerCell = pagesPerCellFor(totalPages, width * MAX_ROWS)
  const cells: ExtentState[] = new Array<ExtentState>(Math.ceil(totalPages / pagesPerCell)).fill('hole')
  const totals: Record<ExtentState, StateTotal> = {
    data: { pages: 0, bytes: 0 },
    zero: { pages: 0, bytes: 0 },
    lower: { pages: 0, bytes: 0 },
    hole: { pages: 0, bytes: 0 },
  }
  for (const extent of extents) {
    const end = extent.start + extent.length
    const firstPage = Math.floor(extent.start / pageSize)
    const endPage = Math.ceil(end / pageSize)
    totals[extent.state].bytes += extent.length
    if (extent.state === 'hole') {
      // Only pages wholly inside the hole (the image's partial last page counts whole).
      const wholeEnd = end >= size ? endPage : Math.floor(end / pageSize)
      totals.hole.pages += Math.max(0, wholeEnd - Math.ceil(extent.start / pageSize))
      continue
    }
    if (extent.state !== 'lower') totals[extent.state].pages += endPage - firstPage
    const rank = RANK[extent.state]
    const endCell = Math.ceil(endPage / pagesPerCell)
    for (let cell = Math.floor(firstPage / pagesPerCell); cell < endCell; cell++) {
      if (RANK[cells[cell] ?? 'hole'] < rank) cells[cell] = extent.state
    }
  }
  // A page with any lower data is a lower page: what is neither DATA, ZERO nor all hole.
  totals.lower.pages = Math.max(0, totalPages - totals.data.pages - totals.zero.pages - totals.hole.pages)
  return { pageSize, size, pagesPerCell, width, cells, totals }
}
