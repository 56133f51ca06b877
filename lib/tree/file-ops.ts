// The files of a tree store: opening them (a handle shares its inode's one node: SPEC §6 "one
// view"), and what changes a file's data by path (truncate, zero, discard) or tells of it (extents,
// fileInfo). A handle's calls go to hostFor(), which checks the store and the handle first.
import { CopyupBases } from '../integrity/copyup-bases.js'
import { PagecowError, parseWith } from '../errors.js'
import { MAX_IO_BYTES } from '../image/image-store.js'
import type { Extent } from '../page/extent.js'
import { ExtentMerger } from '../page/extent.js'
import { lowerPieces } from '../page/lower-pieces.js'
import { ASYNC_READ_BYTES } from '../page/paged-file.js'
import { checkRange } from '../store/checks.js'
import { nowNs } from '../time-ns.js'
import { TreeFileHandle, type HandleHost } from './file-handle.js'
import type { FileNode } from './file-node.js'
import { joinPath, type TreePath } from './names.js'
import { parseOpenFlags } from './open-flags.js'
import { newObjectOptionsSchema, type NewObjectOptions } from './options.js'
import { entryOfNode, statOf } from './stat-of.js'
import type { TreeParts } from './tree-parts.js'
import type { TreeStat } from './tree-stat.js'

/** The page map of one file of the tree (`pagecow inspect STORE PATH`). */
export interface TreeFileInfo {
  path: string
  ino: number
  size: number
  pageSize: number
  pages: { total: number; data: number; zero: number; lower: number }
  upper: { allocatedBytes: number }
  /** Where the data's lower bytes come from, if anywhere. */
  lowerPath: string | null
  /** DATA pages copied up in part whose lower page's sum is recorded (committed ones). */
  copyupBases: number
}

/**
 * Open regular file `path`. `flags`: numeric O_* flags or 'r', 'r+', 'w', 'w+', 'wx', 'a', 'a+'
 * (default 'r'); O_CREAT makes the file with `options` (mode 0o644, the process's uid/gid).
 * Nothing is copied: the first write copies only its pages. Every handle on one inode shares
 * one view. A symlink is not followed (ELOOP); a directory is EISDIR.
 */
export async function open(p: TreeParts, path: TreePath, flags: number | string = 'r', options: NewObjectOptions = {}): Promise<TreeFileHandle> {
  const f = parseOpenFlags(flags)
  const opts = parseWith(newObjectOptionsSchema, options, 'open')
  const names = p.begin(path, 'open')
  if ((f.write || f.create || f.truncate) && p.readOnly) throw new PagecowError('EROFS', 'open: the store is open read-only')
  if (names.length === 0) throw new PagecowError('EISDIR', 'open: / is a directory')
  const shown = joinPath(names)
  const { dir, name } = p.resolver.parent(names, 'open')
  let entry = p.resolver.child(dir, name)
  const existed = entry !== undefined
  if (entry) {
    if (f.create && f.exclusive) throw new PagecowError('EEXIST', `open: ${shown} exists`)
    if (entry.type === 'directory') throw new PagecowError('EISDIR', `open: ${shown} is a directory; list it with readdir()`)
    if (f.directory) throw new PagecowError('ENOTDIR', `open: ${shown} is not a directory`)
    if (entry.type === 'symlink') throw new PagecowError('ELOOP', `open: ${shown} is a symlink; the path API does not follow symlinks (read it with readlink())`)
    if (entry.type !== 'file') throw new PagecowError('ENOTSUP', `open: ${shown} is a ${entry.type}; special files are metadata only`)
  } else {
    if (!f.create) throw new PagecowError('ENOENT', `open: ${shown} does not exist`)
    const mode = opts.mode ?? 0o644
    entry = p.mutate('open', () => p.newObject(dir, name, 'file', { mode, uid: opts.uid, gid: opts.gid }))
  }
  const node = p.acquire(entry)
  try {
    // O_TRUNC truncates whatever the access mode, as Linux does (the kernel checked write
    // permission), and marks mtime and ctime even when the file is already empty (POSIX).
    if (f.truncate && existed) {
      // Only a truncation that changes data waits for a frozen file; times alone do not (see freeze()).
      if (node.size === 0) p.touchFile(entry)
      else if (p.gate.open) truncateNode(p, node, 0)
      else await p.gate.through(node.ino, () => (p.core.checkWritable('open'), truncateNode(p, node, 0)))
    }
  } catch (err) {
    p.releaseNode(node)
    throw err
  }
  return new TreeFileHandle(shown, entry.ino, f, hostFor(p, node))
}

/** Set the size of regular file `path` (commits at once; a lower file's data is not copied). */
export async function truncate(p: TreeParts, path: TreePath, size: number): Promise<void> {
  const names = p.beginWrite(path, 'truncate')
  checkRange(size, 0, 'truncate')
  await changeFile(p, names, 'truncate', (node) => truncateNode(p, node, size))
}

/**
 * Make [offset, offset + length) of regular file `path` read as zeros (the file grows if the
 * range ends past it): whole pages become ZERO and store nothing, partial ones are written.
 */
export async function zero(p: TreeParts, path: TreePath, offset: number, length: number): Promise<void> {
  const names = p.beginWrite(path, 'zero')
  checkRange(offset, length, 'zero')
  await changeFile(p, names, 'zero', (node) => zeroNode(p, node, offset, length, 'zero'))
}

/** Trim: the pages of [offset, offset + length) wholly inside file `path` become ZERO; partial ones are left. */
export async function discard(p: TreeParts, path: TreePath, offset: number, length: number): Promise<void> {
  const names = p.beginWrite(path, 'discard')
  checkRange(offset, length, 'discard')
  await changeFile(p, names, 'discard', (node) => zeroNode(p, node, offset, length, 'discard'))
}

/** The merged view of a regular file as extents (SPEC §5). */
export function* extents(p: TreeParts, path: TreePath, offset = 0, length?: number): Generator<Extent> {
  const names = p.begin(path, 'map')
  checkRange(offset, length ?? 0, 'map')
  const entry = p.resolver.resolve(names, 'map')
  p.checkRegular(entry, names, 'map')
  const node = p.acquire(entry)
  try {
    const end = length === undefined ? node.size : Math.min(node.size, offset + length)
    if (node.paged) yield* node.paged.extents(offset, end)
    else if (node.lower) yield* lowerExtents(node, offset, end)
  } finally {
    p.releaseNode(node)
  }
}

/** Size and page totals of regular file `path`. */
export async function fileInfo(p: TreeParts, path: TreePath): Promise<TreeFileInfo> {
  const names = p.begin(path, 'inspect')
  const entry = p.resolver.resolve(names, 'inspect')
  p.checkRegular(entry, names, 'inspect')
  const node = p.acquire(entry)
  try {
    const total = Math.ceil(node.size / p.meta.pageSize)
    const counts = node.paged?.map.counts ?? { data: 0, zero: 0 }
    return {
      path: joinPath(names),
      ino: entry.ino,
      size: node.size,
      pageSize: p.meta.pageSize,
      pages: { total, data: counts.data, zero: counts.zero, lower: Math.max(0, total - counts.data - counts.zero) },
      upper: { allocatedBytes: node.paged ? node.paged.upper.diskUsage().allocated : 0 },
      lowerPath: node.lowerPath === undefined || (node.paged && node.paged.state.lowerCut === 0) ? null : p.lower.full(node.lowerPath),
      copyupBases: node.fileId === undefined ? 0 : CopyupBases.count(p.db, node.fileId),
    }
  } finally {
    p.releaseNode(node)
  }
}

/** Create an empty regular file (EEXIST if `path` exists). */
export async function create(p: TreeParts, path: TreePath, options: NewObjectOptions = {}): Promise<TreeStat> {
  const opts = parseWith(newObjectOptionsSchema, options, 'create')
  const { dir, name } = p.newName(path, 'create')
  const entry = p.mutate('create', () => p.newObject(dir, name, 'file', { mode: opts.mode ?? 0o644, uid: opts.uid, gid: opts.gid }))
  return statOf(p, entry)
}

/**
 * Run `change` on the node of the regular file at `names`, held for the call. A frozen file is
 * waited for: the change then lands on the file the path named at the call, as an open() and a
 * change through the handle would.
 */
async function changeFile(p: TreeParts, names: string[], what: string, change: (node: FileNode) => void): Promise<void> {
  const entry = p.resolver.resolve(names, what)
  if (entry.type !== 'file' && entry.type !== 'directory' && entry.type !== 'symlink') {
    throw new PagecowError('EINVAL', `${what}: ${joinPath(names)} is a ${entry.type}, not a regular file`)
  }
  p.checkRegular(entry, names, what)
  const node = p.acquire(entry)
  try {
    if (p.gate.open) change(node)
    else await p.gate.through(node.ino, () => (p.core.checkWritable(what), change(node)))
  } finally {
    p.releaseNode(node)
  }
}

/** zero(): the range reads zeros, the file grows to its end; discard(): whole pages inside the file only. */
function zeroNode(p: TreeParts, node: FileNode, offset: number, length: number, how: 'zero' | 'discard'): void {
  if (length === 0) return
  if (how === 'discard') {
    // A discard that covers no whole page changes nothing: no copy-up record, no new times.
    const [first, last] = p.geometry.wholePagesOfFile(offset, Math.min(offset + length, node.size), node.size)
    if (first >= last) return
  }
  const paged = p.nodes.beginData(node)
  if (how === 'zero') paged.zero(offset, length)
  else paged.discard(offset, length)
  const now = nowNs()
  node.setTimes({ mtimeNs: now, ctimeNs: now })
}

function writeNode(p: TreeParts, node: FileNode, at: number, data: Uint8Array): number {
  const paged = p.nodes.beginData(node)
  paged.write(at, data)
  const now = nowNs()
  node.setTimes({ mtimeNs: now, ctimeNs: now })
  return data.length
}

function truncateNode(p: TreeParts, node: FileNode, size: number): void {
  const paged = p.nodes.beginData(node)
  paged.truncate(size)
  const now = nowNs()
  node.setTimes({ mtimeNs: now, ctimeNs: now })
  p.nodes.commitNow(node)
  paged.trimUpper()
}

function hostFor(p: TreeParts, node: FileNode): HandleHost {
  let open = true
  const check = () => {
    p.core.checkOpen()
    if (!open) throw new PagecowError('ECLOSED', 'the handle is closed')
  }
  return {
    read: (length, offset) => {
      check()
      checkRange(offset, length, 'read')
      if (length > MAX_IO_BYTES) throw new PagecowError('EINVAL', `read: length ${length} is over the ${MAX_IO_BYTES}-byte limit of one read`)
      p.core.refresh()
      const target = Buffer.alloc(Math.max(0, Math.min(length, node.size - offset)))
      node.readInto(target, offset)
      return target
    },
    readInto: async (target, offset) => {
      check()
      checkRange(offset, target.length, 'read')
      p.core.refresh()
      const n = Math.max(0, Math.min(target.length, node.size - offset))
      if (n === 0) return 0
      // Small reads stay on the event loop (a pool hop costs more than a cached 4 KiB read);
      // large ones go to the pool, so several overlap on the disk.
      if (n < ASYNC_READ_BYTES) return node.readInto(target.subarray(0, n), offset)
      return p.core.track(node.readIntoAsync(target.subarray(0, n), offset))
    },
    write: (offset, data, append) => {
      check()
      if (p.readOnly) throw new PagecowError('EROFS', 'write: the store is open read-only')
      if (!(data instanceof Uint8Array)) throw new PagecowError('EINVAL', 'write: data must be a Buffer or Uint8Array')
      const at = append ? node.size : offset
      checkRange(at, data.length, 'write')
      if (data.length === 0) return 0
      if (p.gate.open) return writeNode(p, node, at, data)
      return p.gate.through(node.ino, () => {
        check()
        // An append lands at the end as it is when it lands, not when it started waiting.
        const end = append ? node.size : offset
        checkRange(end, data.length, 'write')
        return writeNode(p, node, end, data)
      })
    },
    truncate: (size) => {
      check()
      if (p.readOnly) throw new PagecowError('EROFS', 'truncate: the store is open read-only')
      checkRange(size, 0, 'truncate')
      if (p.gate.open) return truncateNode(p, node, size)
      return p.gate.through(node.ino, () => (check(), truncateNode(p, node, size)))
    },
    zero: (offset, length, how) => {
      check()
      if (p.readOnly) throw new PagecowError('EROFS', `${how}: the store is open read-only`)
      checkRange(offset, length, how)
      if (p.gate.open) return zeroNode(p, node, offset, length, how)
      return p.gate.through(node.ino, () => (check(), zeroNode(p, node, offset, length, how)))
    },
    stat: () => {
      check()
      p.core.refresh()
      return statOf(p, entryOfNode(p, node))
    },
    frozen: () => p.gate.isFrozen(node.ino),
    fsync: () => {
      check()
      if (p.readOnly) return Promise.resolve()
      return p.core.chain(async () => {
        await p.nodes.flush([node])
        p.syncNamespace() // its name and metadata too: cheap once the data commit was durable
      })
    },
    close: () => {
      if (!open) return
      open = false
      p.releaseNode(node)
    },
  }
}

/** Extents of a file all of whose bytes are the lower's: its data and its holes. */
function* lowerExtents(node: FileNode, start: number, end: number): Generator<Extent> {
  const merger = new ExtentMerger()
  for (const [from, to, state] of lowerPieces(node.lower!, start, end, end)) {
    const done = merger.push(from, to, state)
    if (done) yield done
  }
  const last = merger.finish()
  if (last) yield last
}
