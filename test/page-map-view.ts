import t from 'tap'
import type { Extent } from '../lib/index.js'
import { describeScale, drawPageMap, GLYPHS, legend } from '../lib/cli/page-map-view.js'
import { buildPageMapView, DEFAULT_WIDTH, MAX_ROWS, pagesPerCellFor } from '../lib/page-map-view.js'

const KiB = 1024
const MiB = 1024 * KiB
const TiB = 1024 * 1024 * MiB
const extent = (start: number, length: number, state: Extent['state']): Extent => ({ start, length, state, last: false })

/** Extents covering [0, size) from pieces; the gaps are holes. */
function withHoles(size: number, pieces: Extent[]): Extent[] {
  const out: Extent[] = []
  let pos = 0
  for (const p of pieces) {
    if (p.start > pos) out.push(extent(pos, p.start - pos, 'hole'))
    out.push(p)
    pos = p.start + p.length
  }
  if (pos < size) out.push(extent(pos, size - pos, 'hole'))
  return out
}

t.test('pages per cell is the smallest power of two that fits', async (t) => {
  t.equal(pagesPerCellFor(0, 1024), 1)
  t.equal(pagesPerCellFor(1024, 1024), 1)
  t.equal(pagesPerCellFor(1025, 1024), 2)
  t.equal(pagesPerCellFor(65536, 1024), 64)
  t.equal(pagesPerCellFor(65537, 1024), 128)
})

t.test('a small image gets one cell per page', async (t) => {
  const size = 16 * 4096
  const view = buildPageMapView(withHoles(size, [extent(0, 4096, 'data'), extent(4096, 8192, 'zero'), extent(12288, 4096, 'lower')]), { size, pageSize: 4096 })
  t.equal(view.pagesPerCell, 1)
  t.equal(view.width, DEFAULT_WIDTH)
  t.strictSame(view.cells.slice(0, 5), ['data', 'zero', 'zero', 'lower', 'hole'])
  t.equal(view.cells.length, 16)
  t.strictSame(view.totals, {
    data: { pages: 1, bytes: 4096 },
    zero: { pages: 2, bytes: 8192 },
    lower: { pages: 1, bytes: 4096 },
    hole: { pages: 12, bytes: 12 * 4096 },
  })
})

t.test('a cell shows data over zero over lower over hole', async (t) => {
  const width = 4
  const size = 4 * width * MAX_ROWS * 4096 // four pages per cell
  const pieces = [
    extent(0, 4096, 'lower'),
    extent(4096, 4096, 'data'), // cell 0: lower, data, holes → data
    extent(4 * 4096, 4096, 'lower'),
    extent(5 * 4096, 4096, 'zero'), // cell 1: lower, zero, holes → zero
    extent(8 * 4096 + 100, 50, 'lower'), // cell 2: a sliver of lower data in holes → lower
  ]
  const view = buildPageMapView(withHoles(size, pieces), { size, pageSize: 4096, width })
  t.equal(view.pagesPerCell, 4)
  t.strictSame(view.cells.slice(0, 4), ['data', 'zero', 'lower', 'hole'])
})

t.test('one changed page of a 1 TiB image still shows, at a cost bound by the extents', async (t) => {
  const size = TiB
  const page = 4096
  const at = 123456 * MiB
  const extents = withHoles(size, [extent(at, page, 'data')])
  const started = process.hrtime.bigint()
  const view = buildPageMapView(extents, { size, pageSize: page })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.equal(view.cells.length, DEFAULT_WIDTH * MAX_ROWS)
  t.equal(view.pagesPerCell, size / page / (DEFAULT_WIDTH * MAX_ROWS))
  const cell = Math.floor(at / page / view.pagesPerCell)
  t.equal(view.cells[cell], 'data')
  t.equal(view.cells.filter((c) => c === 'data').length, 1, 'only that cell')
  t.strictSame(view.totals.data, { pages: 1, bytes: page })
  t.equal(view.totals.hole.pages, size / page - 1)
  t.ok(ms < 200, `folding took ${ms.toFixed(1)} ms`)
})

t.test('page totals: a page counts as hole only when all of it is a hole', async (t) => {
  const pageSize = 64 * KiB
  const size = 4 * pageSize + 1000 // a partial last page
  const extents = withHoles(size, [extent(pageSize + 4096, 4096, 'lower'), extent(3 * pageSize, pageSize, 'data')])
  const view = buildPageMapView(extents, { size, pageSize })
  t.strictSame(
    Object.fromEntries(Object.entries(view.totals).map(([k, v]) => [k, v.pages])),
    { data: 1, zero: 0, lower: 1, hole: 3 },
    'page 1 holds lower data, pages 0, 2 and the partial last page are holes',
  )
  t.equal(view.totals.hole.bytes + view.totals.lower.bytes + view.totals.data.bytes, size, 'bytes add up to the size')
})

t.test('an empty image has no cells', async (t) => {
  const view = buildPageMapView([], { size: 0, pageSize: 4096 })
  t.strictSame(view.cells, [])
  t.strictSame(drawPageMap(view), [])
})

t.test('drawing: rows of width cells, each labelled with its offset', async (t) => {
  const size = 40 * 4096
  const view = buildPageMapView(withHoles(size, [extent(0, 4096, 'data'), extent(16 * 4096, 4096, 'zero'), extent(33 * 4096, 4096, 'lower')]), { size, pageSize: 4096, width: 16 })
  const rows = drawPageMap(view)
  t.equal(rows.length, 3)
  t.equal(rows[0], `      0 B │${GLYPHS.data}${GLYPHS.hole.repeat(15)}`)
  t.equal(rows[1], ` 64.0 KiB │${GLYPHS.zero}${GLYPHS.hole.repeat(15)}`)
  t.match(rows[2], new RegExp(`128\\.0 KiB │${GLYPHS.hole}${GLYPHS.lower}${GLYPHS.hole}{6}$`))
  t.equal(new Set(rows.map((r) => r.indexOf('│'))).size, 1, 'labels are padded to one width')
  t.equal(describeScale(view), '1 cell = 1 page (4.0 KiB); 40 cells, 16 per row')
  for (const glyph of Object.values(GLYPHS)) t.ok(legend().includes(glyph), `the legend shows ${glyph}`)
})
