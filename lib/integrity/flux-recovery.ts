// A writable open after a writer was killed: the pages it noted as being rewritten in place (see
// FluxLog) hold whatever it wrote last, which their committed sums do not describe. Their bytes
// are a later write (SPEC §3), not damage: their sums are taken again from the upper, committed
// durably, and the log starts empty. A noted page that is no longer DATA is left alone.
import { ChangeLog } from '../changes/change-log.js'
import * as fs from '../fs.js'
import { Geometry } from '../geometry.js'
import { ChunkTable } from '../page/chunk-table.js'
import { PageMap } from '../page/page-map.js'
import { UpperFile } from '../page/upper-file.js'
import { readStoreMeta } from '../store/meta.js'
import type { StoreCore } from '../store/store-core.js'
import type { FluxNote } from './flux-log.js'
import { pageSum } from './hash.js'
import { PageSums } from './page-sums.js'
import { upperPathOf } from './upper-path.js'

/** Re-sum the noted pages of the store `core` opens (writable, at open); returns how many sums changed. */
export function recoverFlux(core: StoreCore): number {
  const { db, path: storePath, flux } = core
  const notes = flux.notes()
  if (notes.length === 0) return 0
  const meta = readStoreMeta(db, storePath)
  const g = new Geometry(meta.pageSize)
  const byFile = new Map<number, FluxNote[]>()
  for (const n of notes) {
    if (!byFile.has(n.file)) byFile.set(n.file, [])
    byFile.get(n.file)!.push(n)
  }
  const page = Buffer.alloc(g.pageSize)
  const changed: PageSums[] = []
  // The noted pages may hold bytes written after the last commit: changed since every mark.
  const touched: ChangeLog[] = []
  let count = 0
  for (const [file, ranges] of byFile) {
    const path = upperPathOf(storePath, meta.kind, file)
    if (!fs.existsSync(path) || !db.prepare('SELECT 1 FROM files WHERE id = ?').get(file)) continue // removed since
    const chunks = new ChunkTable(db, file)
    const map = new PageMap(chunks, chunks.totals(), `file ${file}`)
    const sums = new PageSums(db, file, `file ${file}`)
    const log = new ChangeLog(core.tracking, file)
    for (const { start, end } of ranges) log.touch(start, end)
    if (log.isDirty) touched.push(log)
    const upper = UpperFile.open(path, { readOnly: true })
    try {
      for (const { start, end } of ranges) {
        for (const run of map.runs(start, end)) {
          if (run.state !== 'data') continue
          for (let p = run.start; p < run.end; p++) {
            upper.readInto(page, 0, g.pageSize, g.byteOf(p))
            const sum = pageSum(page)
            if (sums.get(p) !== sum) {
              sums.set(p, sum)
              count++
            }
          }
        }
      }
    } finally {
      upper.close()
    }
    if (sums.isDirty) changed.push(sums)
  }
  // Durable before the notes go (the database is synchronous=FULL at open).
  core.commit(() => {
    for (const sums of changed) sums.save(sums.snapshot())
    for (const log of touched) log.save(log.snapshot())
  })
  flux.reset([], 0) // the notes this process made (if it ran later than the open) remain
  return count
}
