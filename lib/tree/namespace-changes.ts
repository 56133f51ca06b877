// The changes to the namespace of a tree store (SPEC §6), each one SQLite transaction made of the
// primitives of TreeParts: new objects, links, removals, renames, and metadata-only copy-ups
// (mode, owner, times, xattrs). TreeStore's methods of the same names are these.
import { PagecowError, parseWith } from '../errors.js'
import { isNameForm, nameFromBytes, nameToBytes } from '../name-bytes.js'
import { nowNs, nsOfMs } from '../time-ns.js'
import { mergesLower } from './entry.js'
import { childPath, joinPath, PATH_MAX, splitPath, type TreePath } from './names.js'
import {
  mknodOptionsSchema,
  newObjectOptionsSchema,
  renameOptionsSchema,
  setxattrOptionsSchema,
  utimensOptionsSchema,
  type MknodOptions,
  type NewObjectOptions,
  type RenameOptions,
  type SetxattrOptions,
  type UtimensOptions,
} from './options.js'
import { statOf, xattrsOf, lowerXattrs } from './stat-of.js'
import type { TreeParts } from './tree-parts.js'
import type { TreeStat } from './tree-stat.js'
import { checkXattrName, checkXattrValue } from './xattr-name.js'

export async function mkdir(p: TreeParts, path: TreePath, options: NewObjectOptions = {}): Promise<TreeStat> {
  const opts = parseWith(newObjectOptionsSchema, options, 'mkdir')
  const { dir, name } = p.newName(path, 'mkdir')
  // A directory made where the lower has an entry (removed before) hides the lower's content.
  const opaque = mergesLower(dir) && p.lower.has(dir.lowerPath!, name)
  const entry = p.mutate('mkdir', () => p.newObject(dir, name, 'directory', { mode: opts.mode ?? 0o755, uid: opts.uid, gid: opts.gid, opaque }))
  return statOf(p, entry)
}

/** Make a FIFO, socket or device node: metadata only, no data. */
export async function mknod(p: TreeParts, path: TreePath, options: MknodOptions): Promise<TreeStat> {
  const opts = parseWith(mknodOptionsSchema, options, 'mknod')
  const { dir, name } = p.newName(path, 'mknod')
  const rdev = opts.type === 'char-device' || opts.type === 'block-device' ? opts.rdev : 0
  const entry = p.mutate('mknod', () => p.newObject(dir, name, opts.type, { mode: opts.mode ?? 0o644, uid: opts.uid, gid: opts.gid, rdev }))
  return statOf(p, entry)
}

/** Make symlink `path` holding `target` verbatim (the store never follows it). */
export async function symlink(p: TreeParts, target: string | Uint8Array, path: TreePath, options: Omit<NewObjectOptions, 'mode'> = {}): Promise<TreeStat> {
  const bytes = target instanceof Uint8Array ? target : typeof target === 'string' && isNameForm(target) ? nameToBytes(target) : undefined
  if (bytes === undefined || bytes.length === 0 || bytes.includes(0)) {
    throw new PagecowError('EINVAL', 'symlink: the target must be a non-empty string (name form) or Buffer without NUL')
  }
  if (bytes.length >= PATH_MAX) throw new PagecowError('ENAMETOOLONG', `symlink: the target is over ${PATH_MAX - 1} bytes`)
  target = nameFromBytes(bytes)
  const opts = parseWith(newObjectOptionsSchema.omit({ mode: true }), options, 'symlink')
  const { dir, name } = p.newName(path, 'symlink')
  const entry = p.mutate('symlink', () => p.newObject(dir, name, 'symlink', { mode: 0o777, uid: opts.uid, gid: opts.gid, target }))
  return statOf(p, entry)
}

/** Add name `newPath` for the non-directory `existing` (one inode, whatever was copied up). */
export async function link(p: TreeParts, existing: TreePath, newPath: TreePath): Promise<TreeStat> {
  const from = p.beginWrite(existing, 'link')
  const src = p.resolver.resolve(from, 'link')
  const { dir, name } = p.newName(newPath, 'link')
  if (src.type === 'directory') throw new PagecowError('EPERM', `link: ${joinPath(from)} is a directory; directories cannot be hard-linked`)
  p.mutate('link', (fx) => {
    const now = nowNs()
    const row = p.ensureRow(src)
    p.ns.setNlink(src.ino, row.nlink + 1)
    p.setMeta(src.ino, { ctimeNs: now }, fx)
    p.ns.setDirent(dir.ino, name, src.ino)
    p.touchDir(dir, now)
  })
  return statOf(p, p.resolver.resolve(from, 'link'))
}

/** Remove the non-directory `path`; a lower one is hidden by a whiteout, the lower untouched. */
export async function unlink(p: TreeParts, path: TreePath): Promise<void> {
  const names = p.beginWrite(path, 'unlink')
  if (names.length === 0) throw new PagecowError('EISDIR', 'unlink: / is a directory')
  const { dir, name } = p.resolver.parent(names, 'unlink')
  const entry = p.resolver.child(dir, name)
  if (!entry) throw new PagecowError('ENOENT', `unlink: ${joinPath(names)} does not exist`)
  if (entry.type === 'directory') throw new PagecowError('EISDIR', `unlink: ${joinPath(names)} is a directory; use rmdir`)
  p.mutate('unlink', (fx) => {
    const now = nowNs()
    p.removeName(dir, name)
    p.dropLink(entry, fx, now)
    p.touchDir(dir, now)
  })
}

/**
 * Remove `path`: a non-directory, or with `recursive` a directory and everything in it (one
 * transaction per object, deepest first). Returns how many objects were removed.
 */
export async function rm(p: TreeParts, path: TreePath, opts: { recursive: boolean }): Promise<number> {
  const names = p.beginWrite(path, 'rm')
  if (names.length === 0) throw new PagecowError('EBUSY', 'rm: the root cannot be removed')
  const shown = joinPath(names)
  if (p.resolver.resolve(names, 'rm').type !== 'directory') {
    await unlink(p, shown)
    return 1
  }
  if (!opts.recursive) throw new PagecowError('EISDIR', `rm: ${shown} is a directory; remove it with recursive: true`)
  let removed = 0
  for (;;) {
    const dir = p.resolver.resolve(names, 'rm')
    const batch = p.dirs.list(dir).slice(0, 256).map((e) => e.name)
    if (batch.length === 0) break
    for (const name of batch) removed += await rm(p, childPath(shown, name), { recursive: true })
  }
  await rmdir(p, shown)
  return removed + 1
}

/** Remove the directory `path`, empty in the merged view (ENOTEMPTY otherwise). */
export async function rmdir(p: TreeParts, path: TreePath): Promise<void> {
  const names = p.beginWrite(path, 'rmdir')
  if (names.length === 0) throw new PagecowError('EBUSY', 'rmdir: the root cannot be removed')
  const { dir, name } = p.resolver.parent(names, 'rmdir')
  const entry = p.resolver.child(dir, name)
  if (!entry) throw new PagecowError('ENOENT', `rmdir: ${joinPath(names)} does not exist`)
  if (entry.type !== 'directory') throw new PagecowError('ENOTDIR', `rmdir: ${joinPath(names)} is not a directory`)
  if (!p.dirs.isEmpty(entry)) throw new PagecowError('ENOTEMPTY', `rmdir: ${joinPath(names)} is not empty`)
  p.mutate('rmdir', () => {
    p.removeName(dir, name)
    p.removeDirectory(entry)
    p.touchDir(dir, nowNs())
  })
}

/**
 * Rename `from` to `to`, replacing `to` if it exists (a directory only by an empty directory).
 * `noReplace`: EEXIST if `to` exists. `exchange`: swap the two (both must exist). Lower files
 * and directories move without copying data; a moved lower directory keeps its lower entries.
 */
export async function rename(p: TreeParts, from: TreePath, to: TreePath, options: RenameOptions = {}): Promise<void> {
  const opts = parseWith(renameOptionsSchema, options, 'rename')
  const fromNames = p.beginWrite(from, 'rename')
  const toNames = splitPath(to, 'rename')
  if (opts.noReplace && opts.exchange) throw new PagecowError('EINVAL', 'rename: noReplace and exchange exclude each other')
  if (fromNames.length === 0 || toNames.length === 0) throw new PagecowError('EBUSY', 'rename: the root cannot be renamed or replaced')
  const src = p.resolver.parent(fromNames, 'rename')
  const srcEntry = p.resolver.child(src.dir, src.name)
  if (!srcEntry) throw new PagecowError('ENOENT', `rename: ${joinPath(fromNames)} does not exist`)
  const dst = p.resolver.parent(toNames, 'rename')
  const dstEntry = p.resolver.child(dst.dir, dst.name)
  // The kernel's order of checks (do_renameat2, then vfs_rename), so callers see the same errors.
  if (opts.noReplace && dstEntry) throw new PagecowError('EEXIST', `rename: ${joinPath(toNames)} exists`)
  if (opts.exchange && !dstEntry) throw new PagecowError('ENOENT', `rename: ${joinPath(toNames)} does not exist (exchange needs both)`)
  if (srcEntry.type === 'directory' && dst.chain.some((e) => e.ino === srcEntry.ino)) {
    throw new PagecowError('EINVAL', `rename: cannot move ${joinPath(fromNames)} inside itself`)
  }
  if (dstEntry?.type === 'directory' && src.chain.some((e) => e.ino === dstEntry.ino)) {
    if (opts.exchange) throw new PagecowError('EINVAL', `rename: cannot move ${joinPath(toNames)} inside itself`)
    throw new PagecowError('ENOTEMPTY', `rename: ${joinPath(toNames)} contains ${joinPath(fromNames)}`)
  }
  if (dstEntry && dstEntry.ino === srcEntry.ino) return // two names of one inode: POSIX says do nothing
  if (dstEntry && !opts.exchange) {
    if (srcEntry.type === 'directory') {
      if (dstEntry.type !== 'directory') throw new PagecowError('ENOTDIR', `rename: ${joinPath(toNames)} is not a directory`)
      if (!p.dirs.isEmpty(dstEntry)) throw new PagecowError('ENOTEMPTY', `rename: ${joinPath(toNames)} is not empty`)
    } else if (dstEntry.type === 'directory') {
      throw new PagecowError('EISDIR', `rename: ${joinPath(toNames)} is a directory`)
    }
  }
  p.mutate('rename', (fx) => {
    const now = nowNs()
    p.ensureRow(srcEntry)
    if (opts.exchange) {
      p.ensureRow(dstEntry!)
      p.ns.setDirent(src.dir.ino, src.name, dstEntry!.ino)
      p.ns.setDirent(dst.dir.ino, dst.name, srcEntry.ino)
      p.setMeta(dstEntry!.ino, { ctimeNs: now }, fx)
    } else {
      p.removeName(src.dir, src.name)
      if (dstEntry?.type === 'directory') p.removeDirectory(dstEntry)
      else if (dstEntry) p.dropLink(dstEntry, fx, now)
      p.ns.setDirent(dst.dir.ino, dst.name, srcEntry.ino)
    }
    p.setMeta(srcEntry.ino, { ctimeNs: now }, fx)
    p.touchDir(src.dir, now)
    p.touchDir(dst.dir, now)
  })
}

/** Set the permission bits (07777). Metadata only: a lower file's data stays in the lower. */
export async function chmod(p: TreeParts, path: TreePath, mode: number): Promise<void> {
  const names = p.beginWrite(path, 'chmod')
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new PagecowError('EINVAL', `chmod: mode must be an integer from 0 to 0o7777, got ${String(mode)}`)
  const entry = p.resolver.resolve(names, 'chmod')
  if (entry.type === 'symlink') throw new PagecowError('ENOTSUP', `chmod: ${joinPath(names)} is a symlink; symlinks have no mode of their own`)
  p.mutate('chmod', (fx) => {
    p.ensureRow(entry)
    p.setMeta(entry.ino, { mode, ctimeNs: nowNs() }, fx)
  })
}

/** Set owner and group; -1 leaves one as it is. Metadata only. */
export async function chown(p: TreeParts, path: TreePath, uid: number, gid: number): Promise<void> {
  const names = p.beginWrite(path, 'chown')
  for (const [what, v] of [['uid', uid], ['gid', gid]] as const) {
    if (!Number.isInteger(v) || v < -1 || v > 2 ** 32 - 2) throw new PagecowError('EINVAL', `chown: ${what} must be an integer from -1 to ${2 ** 32 - 2}, got ${String(v)}`)
  }
  const entry = p.resolver.resolve(names, 'chown')
  p.mutate('chown', (fx) => {
    p.ensureRow(entry)
    p.setMeta(entry.ino, { uid: uid === -1 ? undefined : uid, gid: gid === -1 ? undefined : gid, ctimeNs: nowNs() }, fx)
  })
}

/** Set access and modification times (ms, or 'now'); a missing one is left as it is. Metadata only. */
export async function utimens(p: TreeParts, path: TreePath, times: UtimensOptions): Promise<void> {
  const opts = parseWith(utimensOptionsSchema, times, 'utimens')
  const names = p.beginWrite(path, 'utimens')
  const entry = p.resolver.resolve(names, 'utimens')
  const now = nowNs()
  const at = (ns: bigint | 'now' | undefined, ms: number | 'now' | undefined) =>
    ns === 'now' || ms === 'now' ? now : ns !== undefined ? ns : ms !== undefined ? nsOfMs(ms) : undefined
  p.mutate('utimens', (fx) => {
    p.ensureRow(entry)
    p.setMeta(entry.ino, { atimeNs: at(opts.atimeNs, opts.atimeMs), mtimeNs: at(opts.mtimeNs, opts.mtimeMs), ctimeNs: now }, fx)
  })
}

/** Set extended attribute `name` (user., trusted., security., system.). Metadata only. */
export async function setxattr(p: TreeParts, path: TreePath, name: string, value: Uint8Array, options: SetxattrOptions = {}): Promise<void> {
  const opts = parseWith(setxattrOptionsSchema, options, 'setxattr')
  const names = p.beginWrite(path, 'setxattr')
  checkXattrName(name, 'setxattr')
  checkXattrValue(value, 'setxattr')
  const entry = p.resolver.resolve(names, 'setxattr')
  const exists = xattrsOf(p, entry).has(name)
  if (opts.create && exists) throw new PagecowError('EEXIST', `setxattr: ${joinPath(names)} already has "${name}"`)
  if (opts.replace && !exists) throw new PagecowError('ENODATA', `setxattr: ${joinPath(names)} has no attribute "${name}"`)
  p.mutate('setxattr', (fx) => {
    p.ensureRow(entry)
    p.ns.setXattr(entry.ino, name, Buffer.from(value))
    p.setMeta(entry.ino, { ctimeNs: nowNs() }, fx)
  })
}

/** Remove extended attribute `name` (ENODATA if it has none); a lower one is hidden. */
export async function removexattr(p: TreeParts, path: TreePath, name: string): Promise<void> {
  const names = p.beginWrite(path, 'removexattr')
  checkXattrName(name, 'removexattr')
  const entry = p.resolver.resolve(names, 'removexattr')
  if (!xattrsOf(p, entry).has(name)) throw new PagecowError('ENODATA', `removexattr: ${joinPath(names)} has no attribute "${name}"`)
  const inLower = lowerXattrs(p, entry).has(name)
  p.mutate('removexattr', (fx) => {
    p.ensureRow(entry)
    if (inLower) p.ns.setXattr(entry.ino, name, null)
    else p.ns.deleteXattr(entry.ino, name)
    p.setMeta(entry.ino, { ctimeNs: nowNs() }, fx)
  })
}
