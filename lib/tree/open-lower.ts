// The one place that picks how a tree store reads its lower: a directory (LowerDir) or a squashfs
// image read in user space (LowerSquashfs). TreeStore.create records the lower with recordLower();
// TreeStore.open and fsck open it again from that record with openLower().
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { describeChange, fingerprint, sampleHash, type Fingerprint } from '../image/fingerprint.js'
import { LowerImage } from '../image/lower-image.js'
import { detectLowerFormat, type TreeLowerFormat } from '../lower-format.js'
import { SquashfsImage } from '../squashfs/squashfs-image.js'
import type { TreeLowerRecord } from '../store/meta.js'
import { LowerDir } from './lower-dir.js'
import { LowerSquashfs } from './lower-squashfs.js'
import type { LowerTree } from './lower-tree.js'

/** The format a record names (records made before squashfs lowers are directories). */
export function formatOfLower(record: TreeLowerRecord): TreeLowerFormat {
  return record.format ?? 'directory'
}

/**
 * Open the lower a store record describes. A squashfs image must still have the fingerprint it
 * had when the store was made (size, mtime, sampled bytes): ESTALE saying what changed if not.
 */
export function openLower(record: TreeLowerRecord): LowerTree {
  if (record.format !== 'squashfs') return LowerDir.open(record.path, record.rootIno)
  const change = describeChange(record.fingerprint, fingerprintOf(record.path))
  if (change !== null) {
    throw new PagecowError('ESTALE', `the squashfs image ${record.path} changed since the store was created (${change}); the store refuses to mix its pages with a different tree`)
  }
  return LowerSquashfs.open(record.path, { rootIno: record.rootIno })
}

/**
 * The record of a new store's lower at `path` (absolute, symlink-free), checked by opening it:
 * a directory, or a squashfs image (told by its magic). `format` insists on one of them.
 */
export function recordLower(path: string, format?: TreeLowerFormat): TreeLowerRecord {
  const detected = detectLowerFormat(path)
  if (detected === 'store' && format === undefined) {
    throw new PagecowError(
      'EINVAL',
      `the lower ${path} is a pagecow store; a tree store over another store is not supported yet (an image store can be a base: createStore() makes a chain). To overlay the store's own files as a tree, ask for lowerFormat 'directory'`,
    )
  }
  // A store's directory is a directory when one is asked for.
  const found = detected === 'store' ? 'directory' : detected
  const want = format ?? (found === 'raw' ? undefined : found)
  if (want === undefined) {
    throw new PagecowError('ENOTDIR', `the lower ${path} is neither a directory nor a squashfs image; a tree store overlays one of those (a raw image makes an image store: createStore())`)
  }
  if (found !== want) {
    const what = found === 'raw' ? 'not a squashfs image (no squashfs magic at its start)' : `a ${found === 'directory' ? 'directory' : 'squashfs image'}`
    throw new PagecowError(want === 'directory' ? 'ENOTDIR' : 'EINVAL', `the lower ${path} is ${what}, and the lower format asked for is ${want}`)
  }
  if (want === 'directory') {
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
