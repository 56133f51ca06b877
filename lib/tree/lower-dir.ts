// A directory tree as the lower of a tree store, read lazily and never written: one lstat per path
// component, never following a symlink, never leaving the lower's file system. Paths relative to
// the lower root are strings in name form (name-bytes.ts): every name, UTF-8 or not, is reachable.
import type { BigIntStats } from 'node:fs'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { LowerImage } from '../image/lower-image.js'
import { lowerStatOf } from '../lower-stat.js'
import { fsPath, nameFromBytes } from '../name-bytes.js'
import { typeOfStats, type FileType } from './file-type.js'
import { UPPER_INO_BASE } from './ino.js'
import type { LowerFile, LowerName, LowerObject, LowerTree } from './lower-tree.js'

export class LowerDir implements LowerTree {
  /** Absolute, symlink-free path of the lower root. */
  readonly root: string
  readonly #dev: number

  private constructor(root: string, dev: number) {
    this.root = root
    this.#dev = dev
  }

  /** Open the lower at `root`; `rootIno` (from the store record) must match its root directory. */
  static open(root: string, rootIno?: number): LowerDir {
    let st: import('node:fs').Stats
    try {
      st = fs.lstatSync(root)
    } catch (err) {
      const e = fromSystemError(err, `reading the lower ${root}`)
      if (e.code === 'ENOENT') throw new PagecowError('ENOENT', `the lower directory ${root} does not exist`, { cause: err })
      throw e
    }
    if (!st.isDirectory()) throw new PagecowError('ENOTDIR', `the lower ${root} is not a directory`)
    if (rootIno !== undefined && st.ino !== rootIno) {
      throw new PagecowError('ESTALE', `the lower directory ${root} was replaced since the store was created (root inode ${rootIno} → ${st.ino}); the store refuses to overlay a different tree`)
    }
    return new LowerDir(root, st.dev)
  }

  /** The absolute path of lower path `rel`. */
  full(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`
  }

  /**
   * lstat the lower object at `rel`, whose parent components were each found a directory by
   * this walk. Null if nothing is there.
   */
  lstat(rel: string): LowerObject | null {
    let stat: BigIntStats | undefined
    try {
      // A missing name is common (every negative lookup): answered without building an error.
      stat = fs.lstatSync(fsPath(this.full(rel)), { bigint: true, throwIfNoEntry: false })
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return null
      throw fromSystemError(err, `reading the lower ${this.full(rel)}`)
    }
    if (!stat) return null
    if (Number(stat.dev) !== this.#dev) {
      throw new PagecowError('EXDEV', `the lower ${this.full(rel)} is on another file system (a mount point inside the lower); tree mode overlays one file system`)
    }
    if (stat.ino >= BigInt(UPPER_INO_BASE)) {
      throw new PagecowError('EIO', `the lower ${this.full(rel)} has inode number ${stat.ino}, past the ${UPPER_INO_BASE} tree mode keeps for the lower`)
    }
    const type = typeOfStats(stat)
    /* c8 ignore next -- every Linux file system object has one of the seven types */
    if (!type) throw new PagecowError('EIO', `the lower ${this.full(rel)} has an unknown file type`)
    return { path: rel, type, stat: lowerStatOf(stat) }
  }

  child(dir: string, name: string): LowerObject | null {
    return this.lstat(dir === '' ? name : `${dir}/${name}`)
  }

  /** Whether the lower directory `dir` has an entry `name`. */
  has(dir: string, name: string): boolean {
    try {
      return fs.lstatSync(fsPath(this.full(dir === '' ? name : `${dir}/${name}`)), { throwIfNoEntry: false }) !== undefined
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return false
      throw fromSystemError(err, `reading the lower ${this.full(dir)}`)
    }
  }

  /** The entries of lower directory `dir`, unsorted; every name, in name form. */
  list(dir: string): LowerName[] {
    let entries: Array<import('node:fs').Dirent<Buffer>>
    try {
      entries = fs.readdirSync(fsPath(this.full(dir)), { withFileTypes: true, encoding: 'buffer' })
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return []
      throw fromSystemError(err, `listing the lower ${this.full(dir)}`)
    }
    const out: LowerName[] = []
    for (const entry of entries) {
      const name = nameFromBytes(entry.name)
      const type = typeOfStats(entry) ?? this.child(dir, name)?.type
      if (type) out.push({ name, type })
    }
    return out
  }

  /** The target of the lower symlink at `rel`, its bytes in name form. */
  readlink(rel: string): string {
    try {
      return nameFromBytes(fs.readlinkSync(fsPath(this.full(rel)), 'buffer'))
    } catch (err) {
      throw fromSystemError(err, `reading the lower symlink ${this.full(rel)}`)
    }
  }

  /** Open the lower regular file at `rel` for reading (O_NOFOLLOW: a symlink there is ELOOP). */
  openFile(rel: string): LowerFile {
    return LowerImage.open(this.full(rel), { noFollow: true })
  }

  /** The lower object's extended attributes. Symlinks and device nodes report none. */
  xattrs(rel: string, type: FileType): Map<string, Buffer> {
    const out = new Map<string, Buffer>()
    if (type === 'symlink' || type === 'char-device' || type === 'block-device' || type === 'socket') return out
    let fd: number
    try {
      fd = fs.openSync(fsPath(this.full(rel)), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
    } catch (err) {
      throw fromSystemError(err, `reading the attributes of the lower ${this.full(rel)}`)
    }
    try {
      for (const name of fs.listXattrs(fd)) {
        const value = fs.getXattr(fd, name)
        if (value) out.set(name, value)
      }
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw fromSystemError(err, `reading the attributes of the lower ${this.full(rel)}`)
    } finally {
      fs.closeSync(fd)
    }
    return out
  }

  /** Nothing to release: every call opens and closes what it reads. */
  close(): void {}
}
