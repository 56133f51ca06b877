// Several lowers as one, leftmost on top as overlayfs's lowerdir=A:B:C (SPEC §11): a name comes
// from the topmost layer that has it, directories of one name merge, a whiteout hides the name
// below it, an opaque directory and a non-directory hide what is below them (overlay-marks.ts).
// A LowerTree itself, so the namespace above it is the one-lower code; each layer is a LowerTree
// of any kind (a directory, a squashfs image, another store) with its own checks. Inode numbers
// are the layers' spread apart (lower-inos.ts).
import { PagecowError } from '../errors.js'
import type { LowerStat } from '../lower-stat.js'
import { BoundedCache } from './bounded-cache.js'
import type { FileType } from './file-type.js'
import { stackIno } from './lower-inos.js'
import type { LowerFile, LowerName, LowerObject, LowerTree } from './lower-tree.js'
import { dirMarks, isWhiteout, withoutOverlayXattrs } from './overlay-marks.js'

/** Merged directories whose layers are kept: a walk finds its directories here. */
const DIRS_KEPT = 4096

/** A directory of one layer that a merged directory shows. */
interface DirLayer {
  index: number
  xattrWhiteouts: boolean
}

/** What a path is in the stack: the object that serves it, and for a directory the layers it merges (topmost first). */
interface Found {
  index: number
  object: LowerObject
  dirs: DirLayer[] | undefined
}

export class LowerStack implements LowerTree {
  /** The layers' places joined as overlayfs's lowerdir option has them. */
  readonly root: string
  readonly #layers: LowerTree[]
  readonly #dirs = new BoundedCache<string, Found | null>(DIRS_KEPT)

  private constructor(layers: LowerTree[]) {
    this.#layers = layers
    this.root = layers.map((l) => l.root.replaceAll('\\', '\\\\').replaceAll(':', '\\:')).join(':')
  }

  /** Stack `layers` (two or more, topmost first); the stack owns them (close() closes them). */
  static open(layers: LowerTree[]): LowerStack {
    const stack = new LowerStack(layers)
    const root = stack.#find('')
    /* c8 ignore next -- every layer's open checked its root is a directory */
    if (!root?.dirs) throw new PagecowError('ENOTDIR', `the lower root of ${stack.root} is not a directory`)
    return stack
  }

  full(rel: string): string {
    const found = this.#find(rel)
    return this.#layers[found?.index ?? 0]!.full(rel)
  }

  lstat(rel: string): LowerObject | null {
    const found = this.#find(rel)
    return found && found.object
  }

  child(dir: string, name: string): LowerObject | null {
    return this.lstat(dir === '' ? name : `${dir}/${name}`)
  }

  has(dir: string, name: string): boolean {
    return this.child(dir, name) !== null
  }

  list(dir: string): LowerName[] {
    const found = this.#find(dir)
    if (!found?.dirs) return []
    const seen = new Set<string>()
    const out: LowerName[] = []
    for (const { index, xattrWhiteouts } of found.dirs) {
      const layer = this.#layers[index]!
      for (const entry of layer.list(dir)) {
        if (seen.has(entry.name)) continue
        seen.add(entry.name)
        if (entry.type === 'char-device' || (xattrWhiteouts && entry.type === 'file')) {
          const object = layer.child(dir, entry.name)
          if (!object || isWhiteout(layer, object, xattrWhiteouts)) continue
        }
        out.push(entry)
      }
    }
    return out
  }

  readlink(rel: string): string {
    return this.#layers[this.#serving(rel).index]!.readlink(rel)
  }

  openFile(rel: string): LowerFile {
    const found = this.#serving(rel)
    if (found.object.type === 'symlink') throw new PagecowError('ELOOP', `the lower ${this.#layers[found.index]!.full(rel)} is a symlink`)
    return new StackedFile(this.#layers[found.index]!.openFile(rel), found.object.stat.ino)
  }

  xattrs(rel: string, type: FileType): Map<string, Buffer> {
    return withoutOverlayXattrs(this.#layers[this.#serving(rel).index]!.xattrs(rel, type))
  }

  close(): void {
    for (const layer of this.#layers) layer.close()
    this.#dirs.clear()
  }

  #serving(rel: string): Found {
    const found = this.#find(rel)
    if (!found) throw new PagecowError('ENOENT', `the lower ${this.#layers[0]!.full(rel)} does not exist in any layer of ${this.root}`)
    return found
  }

  /** What serves `rel`, or null: found name by name from the root, directories kept. */
  #find(rel: string): Found | null {
    const kept = this.#dirs.get(rel)
    if (kept !== undefined) return kept
    let found: Found | null
    if (rel === '') {
      found = this.#root()
    } else {
      const slash = rel.lastIndexOf('/')
      const dirRel = slash < 0 ? '' : rel.slice(0, slash)
      const parent = this.#find(dirRel)
      found = parent?.dirs ? this.#lookup(parent.dirs, dirRel, rel) : null
    }
    // Directories are what walks come back to; other objects are found again (one lstat in the top).
    if (found === null || found.dirs) this.#dirs.set(rel, found)
    return found
  }

  /** The root merges every layer's root (overlayfs honours no mark on a layer's root but its whiteouts form). */
  #root(): Found | null {
    const dirs: DirLayer[] = []
    let top: LowerObject | undefined
    for (let index = 0; index < this.#layers.length; index++) {
      const layer = this.#layers[index]!
      const object = layer.lstat('')
      if (object?.type !== 'directory') return null
      top ??= this.#mapped(object, index)
      dirs.push({ index, xattrWhiteouts: dirMarks(layer, object).xattrWhiteouts })
    }
    return top ? { index: 0, object: top, dirs } : null
  }

  /** The name `rel` in the merged directory whose layers are `dirs`. */
  #lookup(dirs: DirLayer[], dirRel: string, rel: string): Found | null {
    const name = rel.slice(dirRel === '' ? 0 : dirRel.length + 1)
    let found: Found | null = null
    for (const { index, xattrWhiteouts } of dirs) {
      const layer = this.#layers[index]!
      const object = layer.child(dirRel, name)
      if (!object) continue
      if (isWhiteout(layer, object, xattrWhiteouts)) break
      // Below a directory, only directories merge into it; anything else ends the merge.
      if (found && object.type !== 'directory') break
      if (!found) found = { index, object: this.#mapped(object, index), dirs: object.type === 'directory' ? [] : undefined }
      if (!found.dirs) break
      const marks = dirMarks(layer, object)
      found.dirs.push({ index, xattrWhiteouts: marks.xattrWhiteouts })
      if (marks.opaque) break
    }
    return found
  }

  #mapped(object: LowerObject, index: number): LowerObject {
    const ino = stackIno(object.stat.ino, index, this.#layers.length, () => this.#layers[index]!.full(object.path))
    return { path: object.path, type: object.type, stat: { ...object.stat, ino } }
  }
}

/** A layer's file, numbered as the stack numbers it. */
class StackedFile implements LowerFile {
  readonly #file: LowerFile
  readonly #ino: number

  constructor(file: LowerFile, ino: number) {
    this.#file = file
    this.#ino = ino
  }

  get size(): number {
    return this.#file.size
  }

  get mtimeNs(): bigint {
    return this.#file.mtimeNs
  }

  stat(): LowerStat {
    return { ...this.#file.stat(), ino: this.#ino }
  }

  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    return this.#file.readInto(target, targetOffset, length, position)
  }

  readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number> {
    return this.#file.readIntoAsync(target, targetOffset, length, position)
  }

  nextData(position: number): number | null {
    return this.#file.nextData(position)
  }

  nextHole(position: number): number {
    return this.#file.nextHole(position)
  }

  close(): void {
    this.#file.close()
  }
}
