// What a lower is, told from what is there: a directory, a squashfs image (by its magic) or any
// other file, which is a raw image. `createStore` picks the kind of store from it; the
// `lowerFormat` option (`--lower-format`) forces one, so a script can insist on what it expects.
import { z } from 'zod'
import * as fs from './fs.js'
import { fromSystemError, PagecowError } from './errors.js'
import { SQUASHFS_MAGIC } from './squashfs/superblock.js'
import { hasDatabase } from './store/database.js'

/**
 * The kinds of lower: a raw image (image mode), a directory or a squashfs image (tree mode), or
 * another pagecow store (a directory holding a store database: a chain, SPEC §11).
 */
export const LOWER_FORMATS = ['raw', 'directory', 'squashfs', 'store'] as const
export type LowerFormat = (typeof LOWER_FORMATS)[number]

export const lowerFormatSchema = z.enum(LOWER_FORMATS)

/** The lower formats of a tree store. */
export const treeLowerFormatSchema = z.enum(['directory', 'squashfs'])
export type TreeLowerFormat = z.infer<typeof treeLowerFormatSchema>

/** Whether `fd` starts with the squashfs 4.0 magic ("hsqs"). */
function hasSquashfsMagic(fd: number): boolean {
  const head = Buffer.alloc(4)
  return fs.readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === SQUASHFS_MAGIC
}

/**
 * The format of the lower at `path` (symlinks followed, as a lower path given by a user is):
 * 'store' for a directory holding a pagecow store, 'directory', 'squashfs' if it starts with the
 * squashfs magic, else 'raw'. ENOENT if nothing is there.
 */
export function detectLowerFormat(path: string): LowerFormat {
  let fd: number
  try {
    if (fs.statSync(path).isDirectory()) return hasDatabase(path) ? 'store' : 'directory'
    // O_NONBLOCK: a FIFO named as the lower must not hang the detection (the open that follows refuses it).
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  } catch (err) {
    const e = fromSystemError(err, `reading the lower ${path}`)
    if (e.code === 'ENOENT') throw new PagecowError('ENOENT', `the lower ${path} does not exist`, { cause: err })
    throw e
  }
  try {
    if (!fs.fstatSync(fd).isFile() && !fs.fstatSync(fd).isBlockDevice()) return 'raw'
    return hasSquashfsMagic(fd) ? 'squashfs' : 'raw'
  } catch (err) {
    throw fromSystemError(err, `reading the lower ${path}`)
  } finally {
    fs.closeSync(fd)
  }
}
