// The operations of a tree incremental (OP records): what `apply` does to a directory made by a
// full export at the mark to make it equal a full export made now. Each is idempotent given the
// phase it belongs to (see treePhaseOf), so an apply cut short is finished by running its phase
// again: a detach of a name already gone, an attach or create of a name already there, are done.
import { z } from 'zod'
import { isNameForm } from '../name-bytes.js'

/**
 * A path in the tree, name form (name-bytes.ts), absolute and normalized: never `.`, `..` or an
 * empty component, so an operation can never reach outside the target directory.
 */
export const treePathSchema = z
  .string()
  .max(64 * 1024)
  .refine((p) => p === '/' || (p.startsWith('/') && p.slice(1).split('/').every((c) => c !== '' && c !== '.' && c !== '..' && !c.includes('\0'))) && isNameForm(p), 'not an absolute, normalized path')

const dataTypeSchema = z.enum(['file', 'directory', 'symlink', 'fifo', 'char-device', 'block-device'])
const nsSchema = z.string().regex(/^-?[0-9]{1,22}$/)
/** A staging key: the object's inode number in the store. */
const keySchema = z.string().regex(/^[0-9]{1,20}$/)

export const treeOperationSchema = z.discriminatedUnion('op', [
  /** Take the name `path` (where it was at the mark) away: into staging as `keep` when the object lives on under another name, else removed (a directory with what is left in it). */
  z.strictObject({ op: z.literal('detach'), path: treePathSchema, keep: keySchema.nullable() }),
  /** Give the staged object `key` the name `path`. */
  z.strictObject({ op: z.literal('attach'), path: treePathSchema, key: keySchema }),
  /** A new object at `path`: its content (files) and metadata come in later records. */
  z.strictObject({
    op: z.literal('create'),
    path: treePathSchema,
    type: dataTypeSchema,
    /** Symlinks: the target, name form. */
    target: z.string().min(1).optional(),
    /** Device nodes: the device number (Linux encoding). */
    rdev: z.number().int().nonnegative().optional(),
  }),
  /** Another name `path` for the non-directory at `to` (its path once every attach and create is done). */
  z.strictObject({ op: z.literal('link'), path: treePathSchema, to: treePathSchema }),
  /** The regular file at `path` is `size` bytes; the DATA and ZERO records that follow are its changed ranges (or, for a new file, its content). */
  z.strictObject({ op: z.literal('file'), path: treePathSchema, size: z.number().int().nonnegative().max(2 ** 52) }),
  /** The metadata of the object at `path`, whole: mode, owner, times (ns, decimal), xattrs (null: none are kept for this type). */
  z.strictObject({
    op: z.literal('meta'),
    path: treePathSchema,
    type: dataTypeSchema,
    mode: z.number().int().min(0).max(0o7777),
    uid: z.number().int().nonnegative(),
    gid: z.number().int().nonnegative(),
    atimeNs: nsSchema,
    mtimeNs: nsSchema,
    xattrs: z.array(z.tuple([z.string().min(1).max(255), z.base64()])).nullable(),
  }),
])

export type TreeOperation = z.infer<typeof treeOperationSchema>

/** The phases of a tree apply, in order; the records of a tree incremental come in this order. */
export const TREE_PHASES = ['detach', 'attach', 'data', 'meta'] as const
export type TreePhase = (typeof TREE_PHASES)[number]

export function treePhaseOf(op: TreeOperation): TreePhase {
  switch (op.op) {
    case 'detach':
      return 'detach'
    case 'attach':
    case 'create':
    case 'link':
      return 'attach'
    case 'file':
      return 'data'
    case 'meta':
      return 'meta'
  }
}

/** Largest OP record: a meta operation carries an object's xattrs (each at most 64 KiB in Linux). */
export const MAX_OP_BYTES = 16 * 1024 * 1024
