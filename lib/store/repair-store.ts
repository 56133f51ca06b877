// `fsck --repair`: give back upper space that nothing owns, and nothing else. The store is opened
// for writing first (its lock keeps writers out, and the open's own recovery runs: a killed
// writer's orphans dropped, flux notes re-summed), so every allocated range whose pages are not
// DATA in the committed map holds only bytes of writes that were never committed. Those ranges
// are punched; upper files of a tree that no record names are removed. Every action is reported.
// Repair never touches a DATA page or a record: damage it finds stays for fsck to report.
import { resolve } from 'node:path'
import * as fs from '../fs.js'
import { openStoreFile } from './store-file.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { Geometry } from '../geometry.js'
import { upperPathOf } from '../integrity/upper-path.js'
import { openStore } from '../open-store.js'
import { DATABASE_FILE, hasDatabase, openDatabase } from './database.js'
import { readFileRecord, readStoreMeta } from './meta.js'
import { unownedRanges } from './unowned-space.js'

/** The image's paged file (lib/image/image-store.ts). */
const IMAGE_FILE_ID = 1
const TREE_UPPER_DIR = 'upper'

export interface RepairReport {
  path: string
  /** Bytes of upper space given back (allocated blocks, as stat counts them). */
  reclaimedBytes: number
  /** What was done, one line each. */
  actions: string[]
}

/** Reclaim the unowned upper space of the store in `dir`; EBUSY while a writer has it open. */
export async function repairStore(dir: string): Promise<RepairReport> {
  const path = resolve(dir)
  if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
  const report: RepairReport = { path, reclaimedBytes: 0, actions: [] }
  const store = await openStore(path) // the writer's lock, and the open's recovery
  try {
    const db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: true })
    try {
      const meta = readStoreMeta(db, path)
      const geometry = new Geometry(meta.pageSize)
      const ids = meta.kind === 'image' ? [IMAGE_FILE_ID] : (db.prepare('SELECT id FROM files ORDER BY id').all() as Array<{ id: number }>).map((r) => r.id)
      for (const id of ids) punchUnowned(upperPathOf(path, meta.kind, id), geometry, db, id, report)
      if (meta.kind === 'tree') removeUnnamedUppers(path, new Set(ids), report)
    } finally {
      db.close()
    }
  } catch (err) {
    throw fromSystemError(err, `repairing ${path}`)
  } finally {
    await store.close()
  }
  return report
}

function punchUnowned(upperPath: string, geometry: Geometry, db: Parameters<typeof unownedRanges>[0], id: number, report: RepairReport): void {
  let fd: number
  try {
    fd = openStoreFile(upperPath, 'rw') // never a FIFO, a symlink or someone else's file
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return // no upper yet: nothing allocated
    throw err
  }
  try {
    const before = fs.fstatSync(fd).blocks * 512
    let ranges = 0
    let pages = 0
    // Collected first: punching while SEEK_DATA walks the same file would move the walk.
    const found = [...unownedRanges(db, geometry, id, fd, readFileRecord(db, id, upperPath).pages)]
    for (const r of found) {
      fs.punchHole(fd, geometry.byteOf(r.start), geometry.byteOf(r.end - r.start))
      ranges++
      pages += r.end - r.start
    }
    if (ranges === 0) return
    fs.fdatasyncSync(fd)
    const freed = Math.max(0, before - fs.fstatSync(fd).blocks * 512)
    report.reclaimedBytes += freed
    report.actions.push(`${upperPath}: punched ${pages} page${pages === 1 ? '' : 's'} in ${ranges} range${ranges === 1 ? '' : 's'} that no page owned (${freed} bytes given back)`)
  } finally {
    fs.closeSync(fd)
  }
}

/** Upper files of a tree store that no paged file record names: left by writes never committed. */
function removeUnnamedUppers(path: string, named: ReadonlySet<number>, report: RepairReport): void {
  const dir = `${path}/${TREE_UPPER_DIR}`
  let removed = false
  for (const name of fs.readdirSync(dir)) {
    if (!/^\d+$/.test(name) || named.has(Number(name))) continue // a strange name is fsck's to report
    const file = `${dir}/${name}`
    const st = fs.lstatSync(file)
    if (!st.isFile()) continue
    fs.rmSync(file)
    removed = true
    report.reclaimedBytes += st.blocks * 512
    report.actions.push(`${file}: removed, no file of the store names it (${st.blocks * 512} bytes given back)`)
  }
  if (removed) fs.syncDirectory(dir)
}
