// What changed in a tree store since a mark (SPEC §7), like `git diff --stat`: names created,
// removed, replaced and renamed (from the name journal and the entries as they are now), files
// whose data changed with their changed bytes (from the change records), and objects whose
// metadata changed. The cost grows with what changed, not with the tree.
import { changedExtents, type ChangedExtent } from '../changes/changed-extents.js'
import { ChangeLog } from '../changes/change-log.js'
import { markNameSchema } from '../changes/mark-name.js'
import { parseWith } from '../errors.js'
import { nameFromBytes } from '../name-bytes.js'
import { compareNames, type TreePath } from './names.js'
import { joinPlace, Places } from './places.js'
import type { FileType } from './file-type.js'
import type { TreeParts } from './tree-parts.js'

/**
 * One path changed since the mark. `status`: `created` (a name that did not exist), `removed`,
 * `replaced` (the name holds another object), `renamed` (the object that was at `from`),
 * `modified` (a file's data), `metadata` (mode, owner, times or xattrs only).
 */
export interface TreeChangeSince {
  path: string
  status: 'created' | 'removed' | 'replaced' | 'renamed' | 'modified' | 'metadata'
  /** The object's type (for `removed`: as it was). */
  type: string | null
  /** For `renamed`: the path it had. */
  from?: string
  /** Regular files whose data changed: bytes of the pages changed (whole pages). */
  changedBytes?: number
}

/** The changed extents of regular file `path` since the mark `since` (see ImageStore.changedExtents). */
export function changedExtentsOf(p: TreeParts, path: TreePath, since: string): Generator<ChangedExtent> {
  const mark = markOf(p, since, 'changedExtents')
  const names = p.begin(path, 'changes')
  const entry = p.resolver.resolve(names, 'changes')
  p.checkRegular(entry, names, 'changes')
  const node = p.acquire(entry)
  return (function* () {
    try {
      if (node.paged) yield* changedExtents(node.paged, node.paged.changes.changedRuns(mark.epoch))
    } finally {
      p.releaseNode(node)
    }
  })()
}

/** Everything changed since the mark `since`, one record per path, in path order. */
export function changedSince(p: TreeParts, since: string): TreeChangeSince[] {
  const mark = markOf(p, since, 'changes')
  const { ns, lower } = p
  const rootIno = p.rootIno
  const places = new Places(ns, lower, rootIno)
  const journal = p.core.tracking.journal
  const out = new Map<string, TreeChangeSince>()
  const typeOf = (ino: number): string | null => ns.inode(ino)?.type ?? null

  const lowerAt = (parent: number, name: string) => lowerEntryAt(p, parent, name)

  // Names: what each changed entry held at the mark against what it holds now.
  const gone = new Map<number, string>()
  const came = new Map<number, string>()
  for (const e of journal.entriesSince(mark.epoch)) {
    const name = nameFromBytes(e.name)
    const dir = places.of(e.parent)
    if (dir === null) continue // its directory is gone (reported itself) or hidden
    const path = joinPlace(dir, name)
    const before = e.had ? (e.ino === null ? null : { ino: e.ino, type: e.type }) : lowerAt(e.parent, name)
    const current = ns.dirent(e.parent, name)
    const now = current === undefined ? lowerAt(e.parent, name) : current.ino === null ? null : { ino: current.ino, type: typeOf(current.ino) }
    if (before?.ino === now?.ino) continue
    if (before) gone.set(before.ino, path)
    if (now) came.set(now.ino, path)
    const status = before && now ? 'replaced' : now ? 'created' : 'removed'
    out.set(path, { path, status, type: now?.type ?? before?.type ?? null })
  }
  for (const [ino, path] of came) {
    const from = gone.get(ino)
    if (from === undefined) continue
    const record = out.get(path)!
    if (record.status === 'created') out.set(path, { ...record, status: 'renamed', from })
    const left = out.get(from)
    if (left?.status === 'removed') out.delete(from)
  }

  // Data: the files with pages changed since the mark, committed or not.
  const reported = new Set([...came.keys()])
  for (const { ino, log } of filesChangedSince(p, mark.epoch)) {
    if (ino === undefined) continue
    const path = places.of(ino)
    if (path === null) continue
    let pages = 0
    for (const [a, b] of log.changedRuns(mark.epoch)) pages += b - a
    const changedBytes = p.geometry.byteOf(pages)
    const record = out.get(path)
    out.set(path, record ? { ...record, changedBytes } : { path, status: 'modified', type: 'file', changedBytes })
    reported.add(ino)
  }

  // Metadata only.
  for (const ino of journal.inodesSince(mark.epoch)) {
    if (reported.has(ino)) continue
    const path = places.of(ino)
    if (path === null || out.has(path)) continue
    out.set(path, { path, status: 'metadata', type: typeOf(ino) })
  }
  return [...out.values()].sort((a, b) => compareNames(a.path, b.path))
}

/**
 * What the lower shows at (parent, name) when no upper entry hides it (null also when the
 * directory's record is gone: what it showed is not known any more).
 */
export function lowerEntryAt(p: TreeParts, parent: number, name: string): { ino: number; type: FileType } | null {
  const rootIno = p.rootIno
  const row = parent === rootIno ? undefined : p.ns.inode(parent)
  if (row?.opaque) return null
  const dirRel = parent === rootIno ? '' : (row?.origin ?? null)
  if (dirRel === null) return null
  const found = p.lower.lstat(dirRel === '' ? name : `${dirRel}/${name}`)
  return found ? { ino: found.stat.ino, type: found.type } : null
}

/**
 * The paged files with pages changed in epoch `since` or later, committed or not: each with its
 * change log (an open file's own, else one over the records) and its inode (undefined if none
 * holds it any more).
 */
export function filesChangedSince(p: TreeParts, since: number): Array<{ ino: number | undefined; log: ChangeLog }> {
  const open = new Map<number, { ino: number; log: ChangeLog }>()
  for (const node of p.nodes.list()) if (node.paged && node.fileId !== undefined) open.set(node.fileId, { ino: node.ino, log: node.paged.changes })
  const out = new Map<number, { ino: number | undefined; log: ChangeLog }>()
  for (const [file, o] of open) if (o.log.pendingSince(since)) out.set(file, o)
  for (const file of p.core.tracking.table.files(since)) {
    if (!out.has(file)) out.set(file, open.get(file) ?? { ino: p.ns.inoOfFile(file), log: new ChangeLog(p.core.tracking, file) })
  }
  return [...out.values()]
}

export function markOf(p: TreeParts, since: string, what: string) {
  p.core.checkOpen()
  const name = parseWith(markNameSchema, since, what)
  p.core.refresh()
  return p.core.tracking.get(name)
}

