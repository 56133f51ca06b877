// What a whole-tree incremental needs to know about a tree store's changes since a mark, by
// object: each changed name with the object it held at the mark (and where that name was then)
// and the object it holds now (and where it is now), the names of objects that did not move, and
// the objects whose data or metadata changed. From the name journal, the change records and the
// entries as they are now: the cost grows with what changed, never with the tree.
import { UPPER_INO_BASE } from './ino.js'
import { filesChangedSince, lowerEntryAt, markOf } from './changed-since.js'
import type { FileType } from './file-type.js'
import { nameFromBytes } from '../name-bytes.js'
import { joinPlace, Places } from './places.js'
import type { TreeParts } from './tree-parts.js'

export interface DeltaObject {
  ino: number
  type: FileType
}

/** A name whose object changed since the mark. */
export interface DeltaName {
  /**
   * Where the name was at the mark, in the tree as it was then; null when that is not known any
   * more (its directory was removed, and what the lower showed in it is forgotten with it).
   */
  markPath: string | null
  /** Where the name is now; null when its directory is gone. */
  nowPath: string | null
  /** The object it held at the mark (null: none). */
  before: DeltaObject | null
  /** The object it holds now (null: none). */
  now: DeltaObject | null
}

/** An object to bring up to date: its data changed, its metadata, or (directories) its entries. */
export interface DeltaTouched {
  ino: number
  /** One of its paths now. */
  path: string
  /** Whether pages of its data changed (regular files). */
  data: boolean
}

/** Nothing changed when `names` and `touched` are empty. */
export interface NamespaceDelta {
  names: DeltaName[]
  /** For each object a changed name holds now: a path of it whose name did not change (so it is there at the mark), if any. */
  staying: Array<{ ino: number; path: string }>
  touched: DeltaTouched[]
}

const slotKey = (parent: number, name: string) => `${parent}/${name}`

export function namespaceDelta(p: TreeParts, since: string): NamespaceDelta {
  const mark = markOf(p, since, 'export')
  const { ns, lower } = p
  const rootIno = p.rootIno
  const places = new Places(ns, lower, rootIno)
  const journal = p.core.tracking.journal

  const raw: Array<{ parent: number; name: string; before: DeltaObject | null; now: DeltaObject | null }> = []
  const changed = new Set<string>()
  for (const e of journal.entriesSince(mark.epoch)) {
    const name = nameFromBytes(e.name)
    const before: DeltaObject | null = e.had ? (e.ino === null ? null : { ino: e.ino, type: e.type as FileType }) : lowerEntryAt(p, e.parent, name)
    const current = ns.dirent(e.parent, name)
    const nowIno = current === undefined ? (lowerEntryAt(p, e.parent, name)?.ino ?? null) : current.ino
    const nowType = nowIno === null ? null : current === undefined ? lowerEntryAt(p, e.parent, name)!.type : (ns.inode(nowIno)?.type ?? null)
    const now = nowIno === null || nowType === null ? null : { ino: nowIno, type: nowType }
    changed.add(slotKey(e.parent, name))
    if (before?.ino === now?.ino) continue
    raw.push({ parent: e.parent, name, before, now })
  }

  // Where each directory was at the mark: through the name it had then if that changed, else
  // through the name it has now (unchanged, so the same then).
  const markSlot = new Map<number, { parent: number; name: string; parentRel?: string }>()
  for (const r of raw) if (r.before?.type === 'directory') markSlot.set(r.before.ino, { parent: r.parent, name: r.name })
  const markDirs = new Map<number, string | null>([[rootIno, '/']])
  /** `lowerRel`: its lower path, when the caller knows it and the upper has no row of it. */
  const markDir = (ino: number, lowerRel?: string): string | null => {
    const known = markDirs.get(ino)
    if (known !== undefined) return known
    markDirs.set(ino, null) // a cycle (only in a damaged store) ends here
    const slot = markSlot.get(ino) ?? unchangedName(ino, lowerRel)
    const parent = slot ? markDir(slot.parent, slot.parentRel) : null
    const path = slot && parent !== null ? joinPlace(parent, slot.name) : null
    markDirs.set(ino, path)
    return path
  }
  /** A name of `ino` that did not change since the mark: an upper entry, else its lower place. */
  const unchangedName = (ino: number, lowerRel?: string): { parent: number; name: string; parentRel?: string } | undefined => {
    for (const n of ns.namesOf(ino)) if (!changed.has(slotKey(n.parent, n.name))) return n
    const origin = ino < UPPER_INO_BASE ? (ns.inode(ino)?.origin ?? lowerRel ?? null) : null
    if (origin === null || origin === '') return undefined
    const cut = origin.lastIndexOf('/')
    const parentRel = cut < 0 ? '' : origin.slice(0, cut)
    const name = origin.slice(cut + 1)
    const parent = parentRel === '' ? rootIno : lower.lstat(parentRel)?.stat.ino
    if (parent === undefined || changed.has(slotKey(parent, name)) || ns.dirent(parent, name)) return undefined
    return { parent, name, parentRel }
  }

  const names: DeltaName[] = []
  const touched = new Map<number, DeltaTouched>()
  const touch = (ino: number, path: string | null, data = false) => {
    if (path === null) return
    const t = touched.get(ino)
    if (t) t.data ||= data
    else touched.set(ino, { ino, path, data })
  }
  for (const r of raw) {
    const dirMark = r.before ? markDir(r.parent) : null
    const dirNow = places.of(r.parent)
    const nowPath = dirNow === null || !r.now ? null : joinPlace(dirNow, r.name)
    names.push({ markPath: dirMark === null ? null : joinPlace(dirMark, r.name), nowPath, before: r.before, now: dirNow === null ? null : r.now })
    touch(r.parent, dirNow) // its entries changed: its times did
    if (r.now && nowPath !== null) touch(r.now.ino, nowPath)
  }

  const staying: Array<{ ino: number; path: string }> = []
  for (const ino of new Set(names.flatMap((n) => (n.now && n.nowPath !== null ? [n.now.ino] : [])))) {
    const n = unchangedName(ino)
    const dir = n ? places.of(n.parent, 'parentRel' in n ? n.parentRel : undefined) : null
    if (n && dir !== null) staying.push({ ino, path: joinPlace(dir, n.name) })
  }

  for (const { ino } of filesChangedSince(p, mark.epoch)) if (ino !== undefined) touch(ino, places.of(ino), true)
  for (const ino of journal.inodesSince(mark.epoch)) touch(ino, places.of(ino))
  return { names, staying, touched: [...touched.values()] }
}

/** Whether nothing changed (no name, no data, no metadata). */
export function isEmptyDelta(delta: NamespaceDelta): boolean {
  return delta.names.length === 0 && delta.touched.length === 0
}
