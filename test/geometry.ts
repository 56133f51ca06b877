import t from 'tap'
import { Geometry, isValidPageSize, MAX_PAGE_SIZE, MIN_PAGE_SIZE } from '../lib/geometry.js'

t.test('valid page sizes are the powers of two from 512 B to 1 MiB', async (t) => {
  for (let n = MIN_PAGE_SIZE; n <= MAX_PAGE_SIZE; n *= 2) t.ok(isValidPageSize(n), `${n}`)
  for (const bad of [0, 256, 1000, 4095, 4097, 2 * MAX_PAGE_SIZE, 4096.5, -4096, NaN]) t.notOk(isValidPageSize(bad), `${bad}`)
  t.throws(() => new Geometry(1000))
})

t.test('byte and page conversions', async (t) => {
  const g = new Geometry(4096)
  t.equal(g.pageOf(0), 0)
  t.equal(g.pageOf(4095), 0)
  t.equal(g.pageOf(4096), 1)
  t.equal(g.pagesFor(0), 0)
  t.equal(g.pagesFor(1), 1)
  t.equal(g.pagesFor(4097), 2)
  t.same(g.wholePages(1, 8192), [1, 2], 'the first page is partial')
  t.same(g.wholePages(100, 200), [1, 1], 'no whole page inside a sub-page range')
  t.same(g.touchedPages(100, 200), [0, 1])
  t.same(g.touchedPages(4095, 4097), [0, 2])
  t.same(g.touchedPages(5, 5), [0, 0], 'an empty range touches nothing')
})
