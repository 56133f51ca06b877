// Every regular file of a tree lower, each inode once (a hard-linked file has one set of pages):
// what a lower binding records and `pagecow verify` rechecks. Symlinks are not followed.
import type { LowerTree } from './lower-tree.js'

/** A regular file of the lower: its path (name form, relative to the root), inode and size. */
export interface LowerFileRef {
  rel: string
  ino: number
  size: number
}

/** The regular files under the lower's root, depth first, each inode once. */
export function* lowerFiles(lower: LowerTree): Generator<LowerFileRef> {
  const seen = new Set<number>()
  const dirs = ['']
  while (dirs.length > 0) {
    const dir = dirs.pop()!
    for (const { name, type } of lower.list(dir)) {
      const rel = dir === '' ? name : `${dir}/${name}`
      if (type === 'directory') dirs.push(rel)
      if (type !== 'file') continue
      const object = lower.lstat(rel)
      if (!object || object.type !== 'file' || seen.has(object.stat.ino)) continue
      seen.add(object.stat.ino)
      yield { rel, ino: object.stat.ino, size: object.stat.size }
    }
  }
}
