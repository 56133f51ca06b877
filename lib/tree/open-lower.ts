// The one place that picks how a tree store reads its lowers: a directory (LowerDir), a squashfs
// image read in user space (LowerSquashfs), another tree store (LowerStore), and several of them
// stacked (LowerStack). TreeStore.create records each lower with recordLower(); TreeStore.open and
// fsck open them again from those records with openLowers().
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { describeChange, fingerprint, sampleHash, type Fingerprint } from '../image/fingerprint.js'
import { LowerImage } from '../image/lower-image.js'
import { detectLowerFormat, type TreeLowerFormat } from '../lower-format.js'
import { SquashfsImage } from '../squashfs/squashfs-image.js'
import { DATABASE_FILE, openDatabase } from '../store/database.js'
import { readStoreMeta, type TreeLowerRecord } from '../store/meta.js'
import { sealStore } from '../store/seal.js'
import { LowerDir } from './lower-dir.js'
import { stackIno } from './lower-inos.js'
import { LowerSquashfs } from './lower-squashfs.js'
import { LowerStack } from './lower-stack.js'
import { LowerStore } from './lower-store.js'
import type { LowerTree } from './lower-tree.js'

/** What one lower is: a directory, a squashfs image, or another tree store. */
export type TreeLowerKind = TreeLowerFormat | 'store'

/** The format a record names (records made before squashfs lowers are directories). */
export function formatOfLower(record: TreeLowerRecord): TreeLowerKind {
  return record.format ?? 'directory'
}

/** The lowers a store record lists, as one tree (a stack of them if there are several). */
export function openLowers(records: readonly TreeLowerRecord[]): LowerTree {
  if (records.length === 1) return openLower(records[0]!)
  const layers: LowerTree[] = []
  try {
    for (const record of records) layers.push(openLower(record))
    return LowerStack.open(layers)
  } catch (err) {
    for (const layer of layers) layer.close()
    throw err
  }
}

/** The inode number of the merged lowers' root (the store's root unless the upper renumbers it: never). */
export function rootInoOf(records: readonly TreeLowerRecord[]): number {
  const top = records[0]!.rootIno
  return records.length === 1 ? top : stackIno(top, 0, records.length, () => records[0]!.path)
}

/**
 * Open the lower a store record describes. A squashfs image must still have the fingerprint it
 * had when the store was made (size, mtime, sampled bytes): ESTALE saying what changed if not.
 */
export function openLower(record: TreeLowerRecord): LowerTree {
  if (record.format === 'store') return LowerStore.open(record.path, { sealId: record.sealId, rootIno: record.rootIno })
  if (record.format !== 'squashfs') return LowerDir.open(record.path, record.rootIno)
  const change = describeChange(record.fingerprint, fingerprintOf(record.path))
  if (change !== null) {
    throw new PagecowError('ESTALE', `the squashfs image ${record.path} changed since the store was created (${change}); the store refuses to mix its pages with a different tree`)
  }
  return LowerSquashfs.open(record.path, { rootIno: record.rootIno })
}

/**
 * What the lower at `path` (absolute, symlink-free) is, checked without changing anything: a
 * tree store (a directory holding a store database), a directory, or a squashfs image (told by
 * its magic). `format` insists on a directory or an image ('directory' also takes a store's
 * directory as a plain directory).
 */
export function lowerKindOf(path: string, format?: TreeLowerFormat): TreeLowerKind {
  const detected = detectLowerFormat(path)
  if (detected === 'store' && format === undefined) {
    const kind = storeKindNow(path)
    if (kind !== 'tree') throw new PagecowError('EINVAL', `the lower ${path} is an ${kind} store; a tree store overlays a directory, a squashfs image or a tree store (an image store is the base of an image store: createStore() makes a chain)`)
    return 'store'
  }
  // A store's directory is a plain directory when one is asked for.
  const found = detected === 'store' ? 'directory' : detected
  const want = format ?? (found === 'raw' ? undefined : found)
  if (want === undefined) {
    throw new PagecowError('ENOTDIR', `the lower ${path} is neither a directory nor a squashfs image; a tree store overlays one of those (a raw image makes an image store: createStore())`)
  }
  if (found !== want) {
    const what = found === 'raw' ? 'not a squashfs image (no squashfs magic at its start)' : `a ${found === 'directory' ? 'directory' : 'squashfs image'}`
    throw new PagecowError(want === 'directory' ? 'ENOTDIR' : 'EINVAL', `the lower ${path} is ${what}, and the lower format asked for is ${want}`)
  }
  return want
}

/**
 * The record of a new store's lower at `path` (absolute, symlink-free) of kind `kind`
 * (lowerKindOf), checked by opening it. A tree store is sealed first: from now on it is never
 * written (seal.ts).
 */
export function recordLower(path: string, kind: TreeLowerKind): TreeLowerRecord {
  if (kind === 'store') {
    sealStore(path)
    const lower = LowerStore.open(path)
    try {
      return { format: 'store', path, rootIno: lower.rootIno, sealId: lower.sealId }
    } finally {
      lower.close()
    }
  }
  if (kind === 'directory') {
    let rootIno: number
    try {
      rootIno = fs.lstatSync(path).ino
    } catch (err) {
      throw fromSystemError(err, `reading the lower ${path}`)
    }
    LowerDir.open(path, rootIno)
    return { format: 'directory', path, rootIno }
  }
  const print = fingerprintOf(path)
  const lower = LowerSquashfs.open(path)
  try {
    return { format: 'squashfs', path, rootIno: lower.rootIno, fingerprint: print }
  } finally {
    lower.close()
  }
}

/** The kind of the store in `path`, read without its lock (as openStore tells it). */
function storeKindNow(path: string): string {
  let db
  try {
    db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: true, anyOlderSchema: true })
    return readStoreMeta(db, path, { unchecked: true }).kind
  } catch (err) {
    throw fromSystemError(err, `reading the store ${path}`)
  } finally {
    db?.close()
  }
}

/**
 * The image's fingerprint, as a raw lower's. A partition holding the image (a block device) has
 * no size and no meaningful mtime in its stat: there the image's own length (the superblock's
 * bytes used) stands for the size, mtime is 0, and the samples cover that length, the superblock
 * (with the image's making time) and the tables at its end among them.
 */
function fingerprintOf(path: string): Fingerprint {
  const file = LowerImage.open(path)
  try {
    if (!fs.fstatSync(file.fd).isBlockDevice()) return fingerprint(file)
    const image = SquashfsImage.open(path, { cacheBytes: 0 })
    const size = image.superblock.bytesUsed
    image.close()
    const readInto = (target: Uint8Array, offset: number, length: number, position: number) => fs.readSync(file.fd, target, offset, Math.max(0, Math.min(length, size - position)), position)
    return { size, mtimeMs: 0, sample: sampleHash({ size, readInto }) }
  } catch (err) {
    throw fromSystemError(err, `reading the squashfs image ${path}`)
  } finally {
    file.close()
  }
}
