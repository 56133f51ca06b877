// fsck of a tree store: check the namespace records, every paged file, and what the records say
// of the lower, without changing anything. The lower is lstat'ed only where a record points.
import { resolve } from 'node:path'
import type Database from 'better-sqlite3'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { Geometry } from '../geometry.js'
import { sampleHash } from '../image/fingerprint.js'
import type { FsckReport } from '../image/fsck.js'
import { hasDatabase } from '../store/database.js'
import { checkStoreFile, ownerOfDirectory } from '../store/store-file.js'
import { checkPagedFiles, emptyDataCounts, parseFsckOptions, type DataFile, type FsckOptions } from '../store/fsck-data.js'
import { runFsck, type ReportProblem } from '../store/fsck-runner.js'
import { readFileRecord, readStoreMeta, type TreeMeta } from '../store/meta.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { describeMismatch, rowCountMismatches } from '../integrity/row-counts.js'
import { UPPER_INO_BASE } from './ino.js'
import { openLowers, rootInoOf } from './open-lower.js'
import type { LowerTree } from './lower-tree.js'
import { printChanges } from './lower-print.js'
import { Namespace, type InodeRow } from './namespace.js'
import { nameFromBytes } from '../name-bytes.js'
import { checkName } from './names.js'
import { UPPER_DIR } from './node-table.js'

/** fsck of a tree store: the image report plus what was checked of the namespace. */
export interface TreeFsckReport extends FsckReport {
  kind: 'tree'
  checked: FsckReport['checked'] & {
    inodes: number
    entries: number
    whiteouts: number
    files: number
    /** Removed files still held by a handle when the writer stopped: dropped at the next open. */
    orphans: number
  }
}

type Problem = ReportProblem

/** Check the tree store in `dir` read-only. Throws only when there is no store there at all. */
export async function checkTreeStore(dir: string, fsckOptions: FsckOptions = {}): Promise<TreeFsckReport> {
  const options = parseFsckOptions(fsckOptions)
  const path = resolve(dir)
  if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
  const report: TreeFsckReport = {
    path,
    kind: 'tree',
    clean: true,
    problems: [],
    dataChecked: !options.quick,
    checked: { ...emptyDataCounts(), inodes: 0, entries: 0, whiteouts: 0, files: 0, orphans: 0 },
  }
  return runFsck(path, report, (db, problem) => check(db, path, report, problem, options))
}

async function check(db: Database.Database, path: string, report: TreeFsckReport, problem: Problem, options: FsckOptions): Promise<void> {
  const meta = readStoreMeta(db, path)
  if (meta.kind !== 'tree') throw new PagecowError('EINVAL', `${path} is an ${meta.kind} store`)
  let lower: LowerTree | undefined
  try {
    lower = openLowers(meta.lowers)
  } catch (err) {
    const e = fromSystemError(err, 'opening the lower')
    problem(e.code, e.message)
  }
  try {
    await checkWithLower(db, path, report, problem, meta, lower, options)
  } finally {
    lower?.close()
  }
}

async function checkWithLower(
  db: Database.Database,
  path: string,
  report: TreeFsckReport,
  problem: Problem,
  meta: TreeMeta,
  lower: LowerTree | undefined,
  options: FsckOptions,
): Promise<void> {
  const geometry = new Geometry(meta.pageSize)
  const storeOwner = ownerOfDirectory(path)
  const ns = new Namespace(db, path)
  const rootIno = rootInoOf(meta.lowers)

  // Inodes, one by one, so that one bad record does not hide the others.
  const rows = new Map<number, InodeRow>()
  for (const { ino } of db.prepare('SELECT ino FROM inodes ORDER BY ino').all() as Array<{ ino: number }>) {
    report.checked.inodes++
    try {
      rows.set(ino, ns.inode(ino)!)
    } catch (err) {
      problem('ECORRUPT', (err as Error).message)
    }
  }
  const nextIno = ns.counter('next_ino')
  const nextFile = ns.counter('next_file')
  const names = new Map<number, Array<{ parent: number; name: string }>>()

  for (const raw of db.prepare('SELECT parent, name, ino, sum FROM dirents ORDER BY parent, name').all() as Array<{ parent: number; name: unknown; ino: number | null; sum: unknown }>) {
    if (!Buffer.isBuffer(raw.name)) {
      problem('ECORRUPT', `an entry of directory ${raw.parent} has a name stored as ${typeof raw.name}, not bytes`)
      continue
    }
    if (!sumMatches(raw.sum, rowSum.dirents(raw.parent, raw.name, raw.ino))) {
      problem('ECORRUPT', `entry ${JSON.stringify(nameFromBytes(raw.name))} of directory ${raw.parent} does not match its checksum`)
      continue
    }
    const d = { parent: raw.parent, name: nameFromBytes(raw.name), ino: raw.ino }
    const where = `entry ${JSON.stringify(d.name)} of directory ${d.parent}`
    try {
      checkName(d.name, where)
    } catch (err) {
      problem('ECORRUPT', `${where}: invalid name (${(err as Error).message})`)
    }
    const parent = rows.get(d.parent)
    if (!parent) problem('ECORRUPT', `${where}: the directory has no record`)
    else if (parent.type !== 'directory') problem('ECORRUPT', `${where}: inode ${d.parent} is a ${parent.type}, not a directory`)
    if (d.ino === null) {
      report.checked.whiteouts++
      if (parent && (parent.origin === null || parent.opaque)) problem('ECORRUPT', `${where}: a whiteout in a directory that has no lower`)
      continue
    }
    report.checked.entries++
    if (!rows.has(d.ino)) problem('ECORRUPT', `${where}: names inode ${d.ino}, which has no record`)
    const list = names.get(d.ino) ?? []
    list.push({ parent: d.parent, name: d.name })
    names.set(d.ino, list)
  }

  const fileOwners = new Map<number, number>()
  for (const row of rows.values()) {
    const where = `inode ${row.ino} (${row.type})`
    const linked = names.get(row.ino) ?? []
    if (row.origin === null) {
      if (row.ino < UPPER_INO_BASE) problem('ECORRUPT', `${where}: created in the upper but numbered in the lower's range`)
      else if (row.ino >= nextIno) problem('ECORRUPT', `${where}: past the inode counter (${nextIno})`)
      if (row.type === 'symlink' && row.target === null) problem('ECORRUPT', `${where}: a symlink without a target`)
    } else {
      if (row.ino >= UPPER_INO_BASE) problem('ECORRUPT', `${where}: a lower object numbered in the upper's range`)
      if (lower) checkLowerObject(lower, row, problem)
    }
    if (row.nlink === 0 && row.type !== 'directory') {
      report.checked.orphans++
      if (linked.length > 0) problem('ECORRUPT', `${where}: has no links but ${linked.length} entries name it`)
    } else if (row.type === 'directory') {
      if (linked.length > 1) problem('ECORRUPT', `${where}: a directory with ${linked.length} names`)
      if (row.origin === null && linked.length === 0) problem('ECORRUPT', `${where}: a directory no entry names`)
    } else if (row.origin === null && row.nlink !== linked.length) {
      problem('ECORRUPT', `${where}: link count ${row.nlink} but ${linked.length} entries name it`)
    }
    if (row.file !== null) {
      if (row.type !== 'file') problem('ECORRUPT', `${where}: holds data but is not a regular file`)
      const other = fileOwners.get(row.file)
      if (other !== undefined) problem('ECORRUPT', `${where}: shares paged file ${row.file} with inode ${other}`)
      fileOwners.set(row.file, row.ino)
    }
  }
  checkCycles(rows, names, rootIno, problem)

  checkOtherRows(db, problem)
  for (const m of rowCountMismatches(db)) problem('ECORRUPT', describeMismatch(m))
  const pathOf = (ino: number): string => treePathOf(ino, rows, names, rootIno)

  // Paged files: the same checks as an image, per file.
  const sizes = new Map<number, DataFile>()
  for (const { id } of db.prepare('SELECT id FROM files ORDER BY id').all() as Array<{ id: number }>) {
    report.checked.files++
    const owner = fileOwners.get(id)
    if (owner === undefined) problem('ECORRUPT', `paged file ${id} belongs to no inode`)
    if (id >= nextFile) problem('ECORRUPT', `paged file ${id} is past the file counter (${nextFile})`)
    let record
    try {
      record = readFileRecord(db, id, path)
    } catch (err) {
      problem('ECORRUPT', (err as Error).message)
      continue
    }
    let upperSize = 0
    try {
      const st = checkStoreFile(`${path}/${UPPER_DIR}/${id}`, storeOwner)
      if (st) upperSize = st.size
      else problem('ECORRUPT', `the upper data file ${UPPER_DIR}/${id} of paged file ${id} is missing`)
    } catch (err) {
      const e = fromSystemError(err, 'checking an upper data file')
      problem(e.code, e.message)
    }
    const state = record.state
    const file = owner === undefined ? `paged file ${id}` : pathOf(owner)
    sizes.set(id, { name: owner === undefined ? `paged file ${id}` : `paged file ${id} (${file})`, file, size: state.size, upperSize, upperPath: `${path}/${UPPER_DIR}/${id}`, pages: record.pages })
    const row = owner === undefined ? undefined : rows.get(owner)
    if (lower && row?.origin != null && state.lowerCut > 0 && row.lowerPrint?.sample !== undefined) {
      try {
        const file = lower.openFile(row.origin)
        try {
          if (sampleHash(file) !== row.lowerPrint.sample) problem('ESTALE', `the lower file ${lower.full(row.origin)} changed after pages of it were copied up (sampled bytes differ)`)
        } finally {
          file.close()
        }
      } catch (err) {
        const e = fromSystemError(err, `reading the lower file ${lower.full(row.origin)}`)
        if (e.code !== 'ESTALE') problem('ESTALE', e.message)
      }
    }
  }

  await checkPagedFiles(db, path, geometry, sizes, report.checked, problem, options)

  // Upper data files: each has a record, is being purged, or is a not-yet-committed allocation.
  const purging = new Set(ns.purgeList())
  let upperNames: string[] = []
  try {
    // Not a directory of the store's own (a symlink to elsewhere): its listing means nothing.
    if (!checkStoreFile(`${path}/${UPPER_DIR}`, storeOwner, 'directory')) throw Object.assign(new Error('ENOENT: no such directory'), { code: 'ENOENT' })
    upperNames = fs.readdirSync(`${path}/${UPPER_DIR}`)
  } catch (err) {
    const e = fromSystemError(err, 'upper')
    problem(e.code === 'EUNSAFE' ? e.code : 'ECORRUPT', e.code === 'EUNSAFE' ? e.message : `the upper directory is missing: ${e.message}`)
  }
  for (const name of upperNames) {
    const id = /^\d+$/.test(name) ? Number(name) : NaN
    if (Number.isNaN(id)) problem('ECORRUPT', `unexpected file ${UPPER_DIR}/${name} in the store`)
    else if (!sizes.has(id) && !purging.has(id) && id < nextFile) problem('ECORRUPT', `upper data file ${UPPER_DIR}/${name} belongs to no paged file (wasted space)`)
  }
}

/** A record's origin must still be the same lower object (type and inode number). */
function checkLowerObject(lower: LowerTree, row: InodeRow, problem: Problem): void {
  let found
  try {
    found = lower.lstat(row.origin!)
  } catch (err) {
    const e = fromSystemError(err, `reading the lower ${lower.full(row.origin!)}`)
    problem(e.code, e.message)
    return
  }
  if (!found) problem('ESTALE', `inode ${row.ino}: its lower ${lower.full(row.origin!)} is gone`)
  else if (found.stat.ino !== row.ino || found.type !== row.type) {
    problem('ESTALE', `inode ${row.ino}: its lower ${lower.full(row.origin!)} was replaced (now inode ${found.stat.ino}, a ${found.type})`)
  } else if (row.type === 'file' && row.lowerPrint) {
    const changes = printChanges(row.lowerPrint, found.stat.size, found.stat.mtimeNs)
    if (changes.length > 0) problem('ESTALE', `inode ${row.ino}: its lower ${lower.full(row.origin!)} changed (${changes.join(', ')})`)
  }
}

/** Directory entries must form a tree: following names upwards never comes back. */
function checkCycles(rows: Map<number, InodeRow>, names: Map<number, Array<{ parent: number }>>, rootIno: number, problem: Problem): void {
  const ok = new Set<number>([rootIno])
  for (const row of rows.values()) {
    if (row.type !== 'directory') continue
    const seen = new Set<number>()
    let ino = row.ino
    while (!ok.has(ino)) {
      if (seen.has(ino)) {
        problem('ECORRUPT', `directory ${row.ino} is inside itself (a cycle through inode ${ino})`)
        break
      }
      seen.add(ino)
      const up = names.get(ino)?.[0]
      if (!up) break // a lower directory in its lower place: its parents are the lower's
      ino = up.parent
    }
    for (const s of seen) ok.add(s)
  }
}


/** The rows no other check reads whole: extended attributes, counters, purge records. */
function checkOtherRows(db: Database.Database, problem: Problem): void {
  for (const r of db.prepare('SELECT ino, name, value, sum FROM xattrs ORDER BY ino, name').all() as Array<{ ino: number; name: string; value: Uint8Array | null; sum: unknown }>) {
    if (!sumMatches(r.sum, rowSum.xattrs(r.ino, r.name, r.value))) problem('ECORRUPT', `extended attribute ${JSON.stringify(String(r.name))} of inode ${r.ino} does not match its checksum`)
  }
  for (const r of db.prepare('SELECT name, value, sum FROM counters ORDER BY name').all() as Array<{ name: string; value: number; sum: unknown }>) {
    if (!sumMatches(r.sum, rowSum.counters(r.name, r.value))) problem('ECORRUPT', `counter ${JSON.stringify(String(r.name))} does not match its checksum`)
  }
  for (const r of db.prepare('SELECT file, sum FROM purge ORDER BY file').all() as Array<{ file: number; sum: unknown }>) {
    if (!sumMatches(r.sum, rowSum.purge(r.file))) problem('ECORRUPT', `a purge record (file ${r.file}) does not match its checksum`)
  }
}

/** The path of inode `ino` in the merged tree, as far as the records tell (for reports). */
function treePathOf(ino: number, rows: Map<number, InodeRow>, names: Map<number, Array<{ parent: number; name: string }>>, rootIno: number): string {
  const parts: string[] = []
  const seen = new Set<number>()
  let at = ino
  while (at !== rootIno && !seen.has(at)) {
    seen.add(at)
    const up = names.get(at)?.[0]
    if (!up) {
      // Not renamed: where it is in the lower.
      const origin = rows.get(at)?.origin
      if (origin == null) return `inode ${ino}`
      parts.unshift(origin)
      break
    }
    parts.unshift(up.name)
    at = up.parent
  }
  return `/${parts.join('/')}`.replace(/\/+/g, '/')
}
