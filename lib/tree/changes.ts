// What changed in a tree store, like `git status`: computed from the upper's records only (the
// lower is lstat'ed where a record points, never scanned).
import { compareNames } from './names.js'
import { Places, joinPlace as join } from './places.js'
import type { FileType } from './file-type.js'
import type { LowerTree } from './lower-tree.js'
import type { InodeRow, Namespace } from './namespace.js'

/**
 * One changed name. `status`:
 * - `new`: created in the upper where the lower has nothing;
 * - `replaced`: created in the upper over a removed lower name; `opaque`: the same for a
 *   directory, which hides everything the lower had under it;
 * - `renamed`: a lower object under a new name (`from` is where the lower has it);
 *   `linked`: a new hard link to a lower object that is still at `from` too;
 * - `modified`: a lower file with pages in the upper (`pages`);
 * - `metadata`: a lower object whose mode, owner, times or xattrs changed, data untouched;
 * - `whiteout`: a lower name removed.
 */
export interface TreeChange {
  path: string
  status: 'new' | 'replaced' | 'opaque' | 'renamed' | 'linked' | 'modified' | 'metadata' | 'whiteout'
  type: FileType
  /** For `renamed` and `linked`: the object's path in the lower. */
  from?: string
  /** Regular files with upper data: pages copied (DATA), zeroed (ZERO) and in all. */
  pages?: { copied: number; zero: number; total: number }
  /** Whether metadata differs from the lower's (mode, owner, mtime, xattrs). */
  metadata?: boolean
}

export interface ChangesContext {
  ns: Namespace
  lower: LowerTree
  rootIno: number
  pageSize: number
  /** Size and page counts of a paged file, including what is not flushed yet. */
  fileState(id: number): { size: number; data: number; zero: number }
}

export function* listChanges(ctx: ChangesContext): Generator<TreeChange> {
  const places = new Places(ctx.ns, ctx.lower, ctx.rootIno)
  const out: TreeChange[] = []
  const reported = new Set<number>()
  const { ns, lower } = ctx

  const placeOf = (ino: number, lowerRel?: string | null): string | null => places.of(ino, lowerRel)

  const lowerRelOf = (dirIno: number): string | null => (dirIno === ctx.rootIno ? '' : (ns.inode(dirIno)?.origin ?? null))

  const describe = (row: InodeRow): Pick<TreeChange, 'pages' | 'metadata'> => {
    const extra: Pick<TreeChange, 'pages' | 'metadata'> = {}
    if (row.type === 'file' && row.file !== null) {
      const s = ctx.fileState(row.file)
      extra.pages = { copied: s.data, zero: s.zero, total: Math.ceil(s.size / ctx.pageSize) }
    }
    if (row.origin !== null) extra.metadata = metadataChanged(row)
    return extra
  }

  const metadataChanged = (row: InodeRow): boolean => {
    if (ns.hasXattrs(row.ino)) return true
    const st = lower.lstat(row.origin!)?.stat
    if (!st) return true
    if ((st.mode & 0o7777) !== row.mode || st.uid !== row.uid || st.gid !== row.gid) return true
    // A directory's mtime moves with every entry change; only a file's counts as its own.
    return row.type !== 'directory' && row.file === null && st.mtimeNs !== row.mtimeNs
  }

  for (const d of [...ns.allDirents()]) {
    const dirPlace = placeOf(d.parent)
    if (dirPlace === null) continue
    const path = join(dirPlace, d.name)
    const dirRel = lowerRelOf(d.parent)
    const lowerRel = dirRel === null ? null : dirRel === '' ? d.name : `${dirRel}/${d.name}`
    if (d.ino === null) {
      const type = lowerRel === null ? undefined : lower.lstat(lowerRel)?.type
      if (type) out.push({ path, status: 'whiteout', type })
      continue
    }
    const row = ns.inode(d.ino)
    if (!row) continue
    if (row.origin === null) {
      const overLower = lowerRel !== null && lower.lstat(lowerRel) !== null && !ns.inode(d.parent)?.opaque
      const status = !overLower ? 'new' : row.type === 'directory' ? 'opaque' : 'replaced'
      out.push({ path, status, type: row.type, ...describe(row) })
      continue
    }
    if (row.origin === lowerRel) continue // in place: reported below, with the other lower rows
    reported.add(row.ino)
    const stillThere = placeOfLower(row.origin)
    out.push({ path, status: stillThere ? 'linked' : 'renamed', type: row.type, from: '/' + row.origin, ...describe(row) })
  }

  function placeOfLower(rel: string): boolean {
    const cut = rel.lastIndexOf('/')
    const parentRel = cut < 0 ? '' : rel.slice(0, cut)
    const parentIno = parentRel === '' ? ctx.rootIno : lower.lstat(parentRel)?.stat.ino
    if (parentIno === undefined || ns.dirent(parentIno, rel.slice(cut + 1))) return false
    return placeOf(parentIno, parentRel) !== null
  }

  for (const row of [...ns.inodes()]) {
    if (row.origin === null || reported.has(row.ino) || row.nlink === 0) continue
    const extra = describe(row)
    if (!extra.pages && !extra.metadata) continue
    const path = placeOf(row.ino, row.origin)
    if (path === null || path === '/') {
      if (path === '/' && extra.metadata) out.push({ path, status: 'metadata', type: row.type, ...extra })
      continue
    }
    out.push({ path, status: extra.pages ? 'modified' : 'metadata', type: row.type, ...extra })
  }

  out.sort((a, b) => compareNames(a.path, b.path))
  yield* out
}
