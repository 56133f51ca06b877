// stat() and the extended attributes of an object of the merged tree: from its upper record if it
// has one, else from the lower (and an open file's own size and times while it is being written).
import { readFileState } from '../store/meta.js'
import { byteLength } from '../name-bytes.js'
import { msOfNs } from '../time-ns.js'
import type { Entry } from './entry.js'
import type { FileNode } from './file-node.js'
import { modeOf } from './file-type.js'
import type { TreeParts } from './tree-parts.js'
import type { TreeStat } from './tree-stat.js'

/** st_size reported for a directory created in the upper. */
const DIRECTORY_SIZE = 4096

export function statOf(p: TreeParts, entry: Entry): TreeStat {
  const blksize = p.meta.pageSize
  const row = entry.row
  if (!row) {
    const st = entry.lower!.stat
    const node = entry.type === 'file' ? p.nodes.get(entry.ino) : undefined
    return {
      ino: entry.ino,
      mode: st.mode,
      type: entry.type,
      nlink: entry.type === 'directory' ? p.dirs.nlink(entry) : st.nlink,
      uid: st.uid,
      gid: st.gid,
      rdev: st.rdev,
      size: node ? node.size : st.size,
      blocks: st.blocks,
      blksize,
      ...times(st.atimeNs, st.mtimeNs, st.ctimeNs),
    }
  }
  let size = 0
  let blocks = 0
  let mtimeNs = row.mtimeNs
  let ctimeNs = row.ctimeNs
  if (row.type === 'file') {
    const node = p.nodes.get(row.ino)
    let lowerCut = row.lowerPrint?.size ?? 0
    if (node?.paged) {
      size = node.paged.size
      lowerCut = node.paged.state.lowerCut
    } else if (row.file !== null) {
      const state = readFileState(p.db, row.file, p.path)
      size = state.size
      lowerCut = state.lowerCut
    } else {
      size = node ? node.size : (row.lowerPrint?.size ?? 0)
    }
    if (row.file !== null) blocks += Math.ceil(p.nodes.upperUsage(row.file).allocated / 512)
    if (row.lowerPrint && lowerCut > 0) blocks += row.lowerPrint.blocks
    const times = node?.times
    if (times) {
      mtimeNs = times.mtimeNs
      ctimeNs = times.ctimeNs
    }
  } else if (row.type === 'symlink') {
    size = row.target !== null ? byteLength(row.target) : (row.lowerPrint?.size ?? 0)
    blocks = row.lowerPrint?.blocks ?? 0
  } else if (row.type === 'directory') {
    size = row.lowerPrint?.size ?? DIRECTORY_SIZE
    blocks = row.lowerPrint?.blocks ?? DIRECTORY_SIZE / 512
  }
  return {
    ino: row.ino,
    mode: modeOf(row.type, row.mode),
    type: row.type,
    nlink: row.type === 'directory' ? p.dirs.nlink(entry) : row.nlink,
    uid: row.uid,
    gid: row.gid,
    rdev: row.rdev,
    size,
    blocks,
    blksize,
    ...times(row.atimeNs, mtimeNs, ctimeNs),
  }
}

/** The entry of an open node, from its row, or from its lower file if the upper has none. */
export function entryOfNode(p: TreeParts, node: FileNode): Entry {
  const row = p.ns.inode(node.ino)
  if (row) return { ino: node.ino, type: 'file', row, lower: undefined, lowerPath: row.origin ?? undefined }
  const stat = node.lower!.stat()
  return { ino: node.ino, type: 'file', row: undefined, lower: { path: node.lowerPath!, type: 'file', stat }, lowerPath: node.lowerPath }
}

export function xattrsOf(p: TreeParts, entry: Entry): Map<string, Buffer> {
  const merged = lowerXattrs(p, entry)
  for (const [name, value] of p.ns.xattrs(entry.ino)) {
    if (value === null) merged.delete(name)
    else merged.set(name, value)
  }
  return merged
}

export function lowerXattrs(p: TreeParts, entry: Entry): Map<string, Buffer> {
  const fromLower = entry.row ? entry.row.origin !== null : entry.lowerPath !== undefined
  return fromLower ? p.lower.xattrs(entry.lowerPath!, entry.type) : new Map()
}

/** A stat's times: exact nanoseconds, and milliseconds as node:fs derives them. */
function times(atimeNs: bigint, mtimeNs: bigint, ctimeNs: bigint): Pick<TreeStat, 'atimeNs' | 'mtimeNs' | 'ctimeNs' | 'atimeMs' | 'mtimeMs' | 'ctimeMs'> {
  return { atimeNs, mtimeNs, ctimeNs, atimeMs: msOfNs(atimeNs), mtimeMs: msOfNs(mtimeNs), ctimeMs: msOfNs(ctimeNs) }
}
