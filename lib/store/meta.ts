// The store's own records read back from the database, validated before use (SPEC §8).
import type Database from 'better-sqlite3'
import { z } from 'zod'
import { PagecowError } from '../errors.js'
import { prepared } from './database.js'
import { isValidPageSize } from '../geometry.js'
import { fingerprintSchema } from '../image/fingerprint.js'
import type { FileState } from '../page/paged-file.js'

export const imageMetaSchema = z.strictObject({
  format: z.literal('pagecow'),
  kind: z.literal('image'),
  pageSize: z.number().int().refine(isValidPageSize),
  lower: z.strictObject({ path: z.string().min(1), fingerprint: fingerprintSchema }),
  createdAt: z.string(),
  createdBy: z.string(),
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

/** What a tree store's lower is, as its record says. */
export const treeLowerSchema = z.union([directoryLowerSchema, squashfsLowerSchema])

export const treeMetaSchema = z.strictObject({
  format: z.literal('pagecow'),
  kind: z.literal('tree'),
  pageSize: z.number().int().refine(isValidPageSize),
  lower: treeLowerSchema,
  createdAt: z.string(),
  createdBy: z.string(),
})

/** The store record: a discriminated union on `kind`. */
export const storeMetaSchema = z.discriminatedUnion('kind', [imageMetaSchema, treeMetaSchema])

export type ImageMeta = z.infer<typeof imageMetaSchema>
export type TreeMeta = z.infer<typeof treeMetaSchema>
export type TreeLowerRecord = z.infer<typeof treeLowerSchema>
export type StoreMeta = z.infer<typeof storeMetaSchema>
export type StoreKind = StoreMeta['kind']

const fileRowSchema = z
  .strictObject({
    size: z.number().int().nonnegative(),
    lower_cut: z.number().int().nonnegative(),
    bytes_written: z.number().int().nonnegative(),
    upper_written: z.number().int().nonnegative(),
  })
  .refine((row) => row.lower_cut <= row.size, 'lower_cut past the end of the file')

/** The record of an image store; a tree store is refused with EINVAL (open it with openStore). */
export function readMeta(db: Database.Database, where: string): ImageMeta {
  const meta = readStoreMeta(db, where)
  if (meta.kind !== 'image') {
    throw new PagecowError('EINVAL', `${where} is a ${meta.kind} store, not an image store; open it with openStore() or TreeStore.open()`)
  }
  return meta
}

/** The store record, whatever the kind. */
export function readStoreMeta(db: Database.Database, where: string): StoreMeta {
  const row = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get('store')
  if (!row) throw new PagecowError('ECORRUPT', `${where}: the store record is missing (was creation interrupted?)`)
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
  db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run('store', JSON.stringify(meta))
}

export function readFileState(db: Database.Database, id: number, where: string): FileState {
  const row = prepared(db, 'SELECT size, lower_cut, bytes_written, upper_written FROM files WHERE id = ?').get(id)
  if (!row) throw new PagecowError('ECORRUPT', `${where}: file ${id} has no record`)
  const result = fileRowSchema.safeParse(row)
  if (!result.success) throw new PagecowError('ECORRUPT', `${where}: file ${id} record is invalid (${result.error.issues[0]?.message})`)
  const r = result.data
  return { size: r.size, lowerCut: r.lower_cut, bytesWritten: r.bytes_written, upperWritten: r.upper_written }
}

export function writeFileState(db: Database.Database, id: number, state: FileState): void {
  prepared(
    db,
    `INSERT INTO files (id, size, lower_cut, bytes_written, upper_written) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET size = excluded.size, lower_cut = excluded.lower_cut,
       bytes_written = excluded.bytes_written, upper_written = excluded.upper_written`,
  ).run(id, state.size, state.lowerCut, state.bytesWritten, state.upperWritten)
}
