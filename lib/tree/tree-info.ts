// What a tree store tells of itself: its totals (`info()`, `pagecow inspect --json`) and what
// changed, like `git status` (`changes()`), counting what is written but not flushed yet.
import { readFileState } from '../store/meta.js'
import { databaseBytes } from '../store/database.js'
import { listChanges, type TreeChange } from './changes.js'
import { formatOfLower, type TreeLowerKind } from './open-lower.js'
import type { TreeParts } from './tree-parts.js'

/** What `info()` returns: plain data, printed as is by `pagecow inspect --json`. */
export interface TreeStoreInfo {
  path: string
  kind: 'tree'
  readOnly: boolean
  pageSize: number
  /**
   * The lower: a directory, a squashfs image read in user space or a tree store; several of them
   * as a 'stack', its path the lowers joined as overlayfs's lowerdir option (':' escaped '\\:').
   */
  lower: { path: string; format: TreeLowerKind | 'stack' }
  /** Each lower, leftmost on top. */
  lowers: Array<{ path: string; format: TreeLowerKind }>
  /** Objects the upper records (changed lower objects and new ones), names and whiteouts. */
  namespace: { inodes: number; entries: number; whiteouts: number; xattrs: number }
  /** Regular files with pages in the upper, and their pages by state. */
  files: { withData: number; dataPages: number; zeroPages: number }
  upper: { allocatedBytes: number; apparentBytes: number; databaseBytes: number }
  written: { userBytes: number; upperBytes: number; amplification: number | null }
  dirty: boolean
  autoFlushMs: number
  createdAt: string
}

/** What changed, like `git status`: one record per changed name, sorted by path. */
export function* treeChanges(p: TreeParts): Generator<TreeChange> {
  p.core.checkOpen()
  p.core.refresh()
  yield* listChanges({
    ns: p.ns,
    lower: p.lower,
    rootIno: p.rootIno,
    pageSize: p.meta.pageSize,
    fileState: (id) => {
      const node = p.nodes.list().find((n) => n.fileId === id)
      const state = node?.paged ? node.paged.state : readFileState(p.db, id, p.path)
      const counts = node?.paged ? node.paged.map.counts : p.persistedCounts(id)
      return { size: state.size, data: counts.data, zero: counts.zero }
    },
  })
}

/** Totals and settings as plain data. */
export function treeInfo(p: TreeParts): TreeStoreInfo {
  p.core.checkOpen()
  p.core.refresh()
  const count = (sql: string) => (p.db.prepare(sql).get() as { n: number }).n
  const sums = p.db.prepare('SELECT coalesce(sum(bytes_written), 0) AS user, coalesce(sum(upper_written), 0) AS upper FROM files').get() as { user: number; upper: number }
  const pages = p.db.prepare('SELECT coalesce(sum(data_count), 0) AS data, coalesce(sum(zero_count), 0) AS zero FROM page_chunks').get() as { data: number; zero: number }
  let userBytes = sums.user
  let upperBytes = sums.upper
  for (const node of p.nodes.list()) {
    if (!node.paged || node.fileId === undefined) continue
    const saved = p.persistedCounts(node.fileId)
    const live = node.paged.map.counts
    pages.data += live.data - saved.data
    pages.zero += live.zero - saved.zero
    const savedState = readFileState(p.db, node.fileId, p.path)
    userBytes += node.paged.state.bytesWritten - savedState.bytesWritten
    upperBytes += node.paged.state.upperWritten - savedState.upperWritten
  }
  let allocated = 0
  let apparent = 0
  for (const { id } of p.db.prepare('SELECT id FROM files').all() as Array<{ id: number }>) {
    const usage = p.nodes.upperUsage(id)
    allocated += usage.allocated
    apparent += usage.apparent
  }
  return {
    path: p.path,
    kind: 'tree',
    readOnly: p.readOnly,
    pageSize: p.meta.pageSize,
    lower: p.meta.lowers.length === 1 ? { path: p.meta.lowers[0]!.path, format: formatOfLower(p.meta.lowers[0]!) } : { path: p.lower.root, format: 'stack' },
    lowers: p.meta.lowers.map((l) => ({ path: l.path, format: formatOfLower(l) })),
    namespace: {
      inodes: count('SELECT count(*) AS n FROM inodes'),
      entries: count('SELECT count(*) AS n FROM dirents WHERE ino IS NOT NULL'),
      whiteouts: count('SELECT count(*) AS n FROM dirents WHERE ino IS NULL'),
      xattrs: count('SELECT count(*) AS n FROM xattrs'),
    },
    files: { withData: count('SELECT count(*) AS n FROM files'), dataPages: pages.data, zeroPages: pages.zero },
    upper: { allocatedBytes: allocated, apparentBytes: apparent, databaseBytes: databaseBytes(p.path) },
    written: { userBytes, upperBytes, amplification: userBytes > 0 ? upperBytes / userBytes : null },
    dirty: p.dirty,
    autoFlushMs: p.core.autoFlushMs,
    createdAt: p.meta.createdAt,
  }
}
