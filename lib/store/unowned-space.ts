// Upper space that no committed page owns: allocated ranges of an upper data file whose pages are
// not DATA in the page map the database holds. A writer killed before its flush leaves them (the
// bytes of writes never committed); nothing reads them, and only `fsck --repair` gives them back.
// While a writer runs, its unflushed pages look the same: only the writer's lock makes them safe
// to punch (see repair-store.ts).
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import type { Geometry } from '../geometry.js'
import { ChunkTable } from '../page/chunk-table.js'
import { PageMap, type PageCounts } from '../page/page-map.js'

/** Pages [start, end) of an upper file, allocated but owned by no DATA page. */
export interface UnownedRange {
  start: number
  end: number
}

/**
 * The unowned ranges of paged file `id`, whose upper file is open as `fd`; `pages` are the page
 * totals its record holds (the caller has read them: no second pass over its page-map rows).
 */
export function* unownedRanges(db: Database.Database, geometry: Geometry, id: number, fd: number, pages: PageCounts): Generator<UnownedRange> {
  const map = new PageMap(new ChunkTable(db, id), pages, `paged file ${id}`)
  let at = 0
  for (;;) {
    const data = fs.seekData(fd, at)
    if (data === null) return
    const hole = fs.seekHole(fd, data) ?? fs.fstatSync(fd).size
    const first = geometry.pageOf(data)
    const end = geometry.pagesFor(hole)
    for (const run of map.runs(first, end)) {
      if (run.state !== 'data') yield { start: run.start, end: run.end }
    }
    if (hole <= data) return
    at = hole
  }
}
