// Options of the tree store API, validated with zod at the edge (misspelled options are errors).
import { z } from 'zod'
import { createOptionsSchema, openOptionsSchema } from '../image/options.js'
import { treeLowerFormatSchema } from '../lower-format.js'
import { FILE_TYPES, type FileType } from './file-type.js'
import { MAX_LOWERS } from '../store/meta.js'

const lowerPath = z.string().min(1, 'a lower path is empty')

/**
 * `TreeStore.create(dir, { lower, lowerFormat, pageSize = 4096, autoFlushMs = 5000 })`: `lower` is a
 * directory, a squashfs image or another tree store (its directory), told apart by what is there
 * unless `lowerFormat` ('directory' or 'squashfs') insists on one for every lower; or a list of
 * them (at most MAX_LOWERS, each once), leftmost on top as overlayfs's lowerdir=A:B:C.
 */
export const treeCreateOptionsSchema = createOptionsSchema.extend({
  lower: z.union([lowerPath, z.array(lowerPath).min(1, 'the list of lowers is empty').max(MAX_LOWERS, `at most ${MAX_LOWERS} lowers`)]),
  lowerFormat: treeLowerFormatSchema.optional(),
})
/** `TreeStore.open(dir, { readOnly = false, autoFlushMs = 5000 })`. */
export const treeOpenOptionsSchema = openOptionsSchema

export type TreeCreateOptions = z.input<typeof treeCreateOptionsSchema>
export type TreeOpenOptions = z.input<typeof treeOpenOptionsSchema>

const id = z.number().int().min(0).max(2 ** 32 - 2)
const perm = z.number().int().min(0).max(0o7777)

/** Owner and permission bits of a new object. Default: mode 0o644 (files), 0o755 (directories); the process's uid and gid. */
export const newObjectOptionsSchema = z.strictObject({
  mode: perm.optional(),
  uid: id.optional(),
  gid: id.optional(),
})
export type NewObjectOptions = z.input<typeof newObjectOptionsSchema>

const specialTypes = FILE_TYPES.filter((t) => t !== 'file' && t !== 'directory' && t !== 'symlink') as [FileType, ...FileType[]]

/** `mknod(path, { type, mode = 0o644, rdev = 0, uid, gid })`: a FIFO, socket or device node (metadata only). */
export const mknodOptionsSchema = z.strictObject({
  type: z.enum(specialTypes),
  mode: perm.optional(),
  rdev: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  uid: id.optional(),
  gid: id.optional(),
})
export type MknodOptions = z.input<typeof mknodOptionsSchema>

/** `rename(from, to, { noReplace = false, exchange = false })`: RENAME_NOREPLACE, RENAME_EXCHANGE. */
export const renameOptionsSchema = z.strictObject({
  noReplace: z.boolean().default(false),
  exchange: z.boolean().default(false),
})
export type RenameOptions = z.input<typeof renameOptionsSchema>

/**
 * `readdir(path, { after, limit, encoding = 'utf8' })`: entries whose name sorts after `after` (the
 * cookie: a name, or its bytes), at most `limit`; names as strings in name form, or as Buffers
 * with `encoding: 'buffer'`.
 */
export const readdirOptionsSchema = z.strictObject({
  after: z.union([z.string(), z.instanceof(Uint8Array)]).optional(),
  limit: z.number().int().positive().optional(),
  encoding: z.enum(['utf8', 'buffer']).default('utf8'),
})
export type ReaddirOptions = z.input<typeof readdirOptionsSchema>

const ms = z.union([z.number().finite(), z.literal('now')])
const ns = z.union([z.bigint(), z.literal('now')])
/**
 * `utimens(path, { atimeNs, mtimeNs })`: nanoseconds since the epoch (exact) or 'now'; or
 * `{ atimeMs, mtimeMs }` in milliseconds. A missing one is left as it is (UTIME_OMIT).
 */
export const utimensOptionsSchema = z
  .strictObject({
    atimeNs: ns.optional(),
    mtimeNs: ns.optional(),
    atimeMs: ms.optional(),
    mtimeMs: ms.optional(),
  })
  .refine((o) => o.atimeNs === undefined || o.atimeMs === undefined, 'give atimeNs or atimeMs, not both')
  .refine((o) => o.mtimeNs === undefined || o.mtimeMs === undefined, 'give mtimeNs or mtimeMs, not both')
export type UtimensOptions = z.input<typeof utimensOptionsSchema>

/** `setxattr(path, name, value, { create, replace })`: XATTR_CREATE (EEXIST if set), XATTR_REPLACE (ENODATA if not). */
export const setxattrOptionsSchema = z.strictObject({
  create: z.boolean().default(false),
  replace: z.boolean().default(false),
})
export type SetxattrOptions = z.input<typeof setxattrOptionsSchema>

/** `rm(path, { recursive = false })`: a directory only with `recursive`. */
export const rmOptionsSchema = z.strictObject({
  recursive: z.boolean().default(false),
})
export type RmOptions = z.input<typeof rmOptionsSchema>
