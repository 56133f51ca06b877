// The store's own records read back from the database, validated before use (SPEC §8).
import type Database from 'better-sqlite3'
import { z } from 'zod'
import { PagecowError } from '../errors.js'
import { prepared } from './database.js'
import { rowSum, sumMatches } from '../integrity/row-sums.js'
import { isValidPageSize } from '../geometry.js'
import { fingerprintSchema } from '../image/fingerprint.js'
import type { FileState } from '../page/paged-file.js'

/**
 * Present when the lower is bound (`pagecow verify --record`, `create --bind-lower`): every lower
 * page's sum is in lower_sums and reads verify the lower pages they serve. Optional: records
 * made before binding existed, and unbound stores, have none.
 */
export const lowerBindingSchema = z.strictObject({
  /** When the sums were recorded (ISO 8601). */
  recordedAt: z.string(),
  /** Lower pages and bytes the sums cover. */
  pages: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
})

export type LowerBinding = z.infer<typeof lowerBindingSchema>

/**
 * A raw image lower: its path and its fingerprint (a changed image is refused at open, SPEC §8).
 * `relative` (from the store's directory; records made before layers have none) is tried first,
 * so that a store and its image moved together keep working.
 */
export const rawLowerSchema = z.strictObject({ path: z.string().min(1), relative: z.string().min(1).optional(), fingerprint: fingerprintSchema })

/** 32 hex digits naming a store for good (random, made when it is created or first sealed). */
export const storeIdentitySchema = z.string().regex(/^[0-9a-f]{32}$/, 'a store identity is 32 hex digits')

/**
 * Another image store as the lower, read as its merged image (SPEC §11, a chain). `relative` (from
 * this store's directory) is tried first, so that a store and its base moved together keep
 * working; then `path`. The base must be the store `identity` names at `generation` (its count
 * of durable commits): a sealed base never commits again, so any other count means it changed.
 */
export const storeLowerSchema = z.strictObject({
  format: z.literal('store'),
  path: z.string().min(1),
  relative: z.string().min(1),
  identity: storeIdentitySchema,
  generation: z.number().int().nonnegative(),
})

/** What an image store's lower is, as its record says. */
export const imageLowerSchema = z.union([rawLowerSchema, storeLowerSchema])

/**
 * A sealed store is the base of another (SPEC §11): never written again, so writable opens are
 * refused. `by` is the store whose creation sealed it (others may depend on it since).
 */
export const sealSchema = z.strictObject({
  /** When it was sealed (ISO 8601). */
  at: z.string(),
  /** The store (its path then) that was created on it. */
  by: z.string().min(1),
})

export const imageMetaSchema = z.strictObject({
  format: z.literal('pagecow'),
  kind: z.literal('image'),
  pageSize: z.number().int().refine(isValidPageSize),
  lower: imageLowerSchema,
  createdAt: z.string(),
  createdBy: z.string(),
  lowerBinding: lowerBindingSchema.optional(),
  /** Records made before chains existed have none; sealing gives one. */
  identity: storeIdentitySchema.optional(),
  sealed: sealSchema.optional(),
})

/**
 * A directory lower: its path and its root's inode number (a replaced lower is refused at open).
 * Records made before squashfs lowers existed have no `format`: they are directories.
 */
export const directoryLowerSchema = z.strictObject({
  format: z.literal('directory').optional(),
  path: z.string().min(1),
  rootIno: z.number().int().nonnegative(),
})

/**
 * A squashfs image read in user space: its path, the inode number of the image's root directory,
 * and the image's fingerprint, as a raw lower's (a changed image is refused at open).
 */
export const squashfsLowerSchema = z.strictObject({
  format: z.literal('squashfs'),
  path: z.string().min(1),
  rootIno: z.number().int().nonnegative(),
  fingerprint: fingerprintSchema,
})

/**
 * Another tree store's merged tree (schema 70): its directory, the inode number of its root as
 * this store numbers it, and the id of the seal it was given when this store was made on it (a
 * base whose seal changed was unsealed and may have been written: refused at open).
 */
export const treeStoreLowerSchema = z.strictObject({
  format: z.literal('store'),
  path: z.string().min(1),
  rootIno: z.number().int().nonnegative(),
  sealId: z.string().min(1),
})

/** What one lower of a tree store is, as its record says. */
export const treeLowerSchema = z.union([directoryLowerSchema, squashfsLowerSchema, treeStoreLowerSchema])

/** Most lowers a tree store stacks (see lower-inos.ts: the inode numbers of the layers share 48 bits). */
export const MAX_LOWERS = 16

/**
 * A base store other stores are made on (schema 70): writable opens fail with EROFS while it is
 * sealed. `id` is what the stores on it recorded.
 */
export const treeSealSchema = z.strictObject({ id: z.string().min(1), at: z.string() })

export const treeMetaSchema = z.strictObject({
  format: z.literal('pagecow'),
  kind: z.literal('tree'),
  pageSize: z.number().int().refine(isValidPageSize),
  /** The lowers, leftmost on top (overlayfs's lowerdir=A:B:C); schema 70 (one `lower` before). */
  lowers: z.array(treeLowerSchema).min(1).max(MAX_LOWERS),
  createdAt: z.string(),
  createdBy: z.string(),
  lowerBinding: lowerBindingSchema.optional(),
  sealed: treeSealSchema.optional(),
})

/**
 * A tree record as schemas before 70 wrote it (one `lower`), read as this schema's: the kind of an
 * old store is read before it is migrated (storeKind).
 */
const legacyTreeMeta = (value: unknown): unknown => {
  if (typeof value !== 'object' || value === null || !('lower' in value) || (value as { kind?: unknown }).kind !== 'tree') return value
  const { lower, ...rest } = value as Record<string, unknown>
  return { ...rest, lowers: [lower] }
}

/** The store record: a discriminated union on `kind`. */
export const storeMetaSchema = z.preprocess(legacyTreeMeta, z.discriminatedUnion('kind', [imageMetaSchema, treeMetaSchema]))

export type ImageMeta = z.infer<typeof imageMetaSchema>
export type RawLowerRecord = z.infer<typeof rawLowerSchema>
export type StoreLowerRecord = z.infer<typeof storeLowerSchema>
export type ImageLowerRecord = z.infer<typeof imageLowerSchema>
export type Seal = z.infer<typeof sealSchema>

/** Whether an image store's lower is another store (a chain) rather than a raw image. */
export function isStoreLower(lower: ImageLowerRecord): lower is StoreLowerRecord {
  return 'format' in lower && lower.format === 'store'
}
export type TreeMeta = z.infer<typeof treeMetaSchema>
export type TreeLowerRecord = z.infer<typeof treeLowerSchema>
export type TreeStoreLowerRecord = z.infer<typeof treeStoreLowerSchema>
export type StoreMeta = z.output<typeof storeMetaSchema>
export type TreeSeal = z.infer<typeof treeSealSchema>
export type StoreKind = StoreMeta['kind']

const fileRowSchema = z
  .strictObject({
    size: z.number().int().nonnegative(),
    lower_cut: z.number().int().nonnegative(),
    bytes_written: z.number().int().nonnegative(),
    upper_written: z.number().int().nonnegative(),
    data_pages: z.number().int().nonnegative(),
    zero_pages: z.number().int().nonnegative(),
  })
  .refine((row) => row.lower_cut <= row.size, 'lower_cut past the end of the file')

/** Where a store's lower is, as messages name it: the image, or the tree lowers joined by ':'. */
export function lowerPlace(meta: StoreMeta): string {
  return meta.kind === 'image' ? meta.lower.path : meta.lowers.map((l) => l.path).join(':')
}

/** The record of an image store; a tree store is refused with EINVAL (open it with openStore). */
export function readMeta(db: Database.Database, where: string): ImageMeta {
  const meta = readStoreMeta(db, where)
  if (meta.kind !== 'image') {
    throw new PagecowError('EINVAL', `${where} is a ${meta.kind} store, not an image store; open it with openStore() or TreeStore.open()`)
  }
  return meta
}

/**
 * The store record, whatever the kind, its checksum verified. `unchecked`: read it without (the
 * kind of a store whose schema may be older than checksums: the record reads the same there).
 */
export function readStoreMeta(db: Database.Database, where: string, options: { unchecked?: boolean } = {}): StoreMeta {
  const row = options.unchecked
    ? db.prepare<[string], { value: string; sum?: unknown }>('SELECT value FROM meta WHERE key = ?').get('store')
    : db.prepare<[string], { value: string; sum?: unknown }>('SELECT value, sum FROM meta WHERE key = ?').get('store')
  if (!row) throw new PagecowError('ECORRUPT', `${where}: the store record is missing (was creation interrupted?)`)
  if (!options.unchecked && (typeof row.value !== 'string' || !sumMatches(row.sum, rowSum.meta('store', row.value)))) {
    throw new PagecowError('ECORRUPT', `${where}: the store record does not match its checksum; run \`pagecow fsck\``)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(row.value)
  } catch (err) {
    throw new PagecowError('ECORRUPT', `${where}: the store record is not valid JSON`, { cause: err })
  }
  const result = storeMetaSchema.safeParse(parsed)
  if (!result.success) throw new PagecowError('ECORRUPT', `${where}: the store record is invalid (${result.error.issues[0]?.message})`)
  return result.data
}

export function writeMeta(db: Database.Database, meta: StoreMeta): void {
  const value = JSON.stringify(meta)
  db.prepare('INSERT OR REPLACE INTO meta (key, value, sum) VALUES (?, ?, ?)').run('store', value, rowSum.meta('store', value))
}

/** A paged file's record: its state, and its page totals (what its page map rows must add up to). */
export interface FileRecord {
  state: FileState
  pages: { data: number; zero: number }
}

export function readFileState(db: Database.Database, id: number, where: string): FileState {
  return readFileRecord(db, id, where).state
}

/** The record of paged file `id`, its checksum verified. */
export function readFileRecord(db: Database.Database, id: number, where: string): FileRecord {
  const row = prepared<[number], Record<string, unknown>>(db, 'SELECT size, lower_cut, bytes_written, upper_written, data_pages, zero_pages, sum FROM files WHERE id = ?').get(id)
  if (!row) throw new PagecowError('ECORRUPT', `${where}: file ${id} has no record`)
  const { sum, ...cells } = row
  const result = fileRowSchema.safeParse(cells)
  if (!result.success) throw new PagecowError('ECORRUPT', `${where}: file ${id} record is invalid (${result.error.issues[0]?.message})`)
  const r = result.data
  if (!sumMatches(sum, rowSum.files(id, r.size, r.lower_cut, r.bytes_written, r.upper_written, r.data_pages, r.zero_pages))) {
    throw new PagecowError('ECORRUPT', `${where}: file ${id} record does not match its checksum; run \`pagecow fsck\``)
  }
  return {
    state: { size: r.size, lowerCut: r.lower_cut, bytesWritten: r.bytes_written, upperWritten: r.upper_written },
    pages: { data: r.data_pages, zero: r.zero_pages },
  }
}

/** Write paged file `id`'s record: its state and page totals, with its checksum. */
export function writeFileState(db: Database.Database, id: number, state: FileState, pages: { data: number; zero: number }): void {
  prepared(
    db,
    `INSERT INTO files (id, size, lower_cut, bytes_written, upper_written, data_pages, zero_pages, sum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET size = excluded.size, lower_cut = excluded.lower_cut,
       bytes_written = excluded.bytes_written, upper_written = excluded.upper_written,
       data_pages = excluded.data_pages, zero_pages = excluded.zero_pages, sum = excluded.sum`,
  ).run(id, state.size, state.lowerCut, state.bytesWritten, state.upperWritten, pages.data, pages.zero, rowSum.files(id, state.size, state.lowerCut, state.bytesWritten, state.upperWritten, pages.data, pages.zero))
}
