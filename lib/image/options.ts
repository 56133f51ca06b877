// Options of the image store API, validated with zod at the edge (misspelled options are errors).
import { z } from 'zod'
import { DEFAULT_PAGE_SIZE, isValidPageSize } from '../geometry.js'

/** Default interval between automatic commits of unflushed writes (SPEC §3). */
export const DEFAULT_AUTO_FLUSH_MS = 5000

const autoFlushMs = z
  .number()
  .int()
  .min(0)
  .max(24 * 3600 * 1000)
  .default(DEFAULT_AUTO_FLUSH_MS)
  .describe('milliseconds between automatic commits of unflushed writes; 0 turns them off')

/**
 * What a write of whole pages of zeros does, as qemu's detect-zeroes: 'off' (default) writes them;
 * 'on' makes them ZERO pages (nothing written; a page that was DATA keeps its space, as qemu keeps
 * a zeroed cluster's allocation); 'unmap' makes them ZERO pages and gives DATA pages' space back.
 * Not persistent: an option of each open.
 */
const detectZeroes = z.enum(['off', 'on', 'unmap']).default('off')

export const createOptionsSchema = z.strictObject({
  /** The raw image to overlay. Required. */
  lower: z.string().min(1, 'the lower image path is required'),
  /** Page size in bytes, a power of two from 512 to 1 MiB. Default 4096. */
  pageSize: z
    .number()
    .int()
    .refine(isValidPageSize, 'page size must be a power of two from 512 to 1048576')
    .default(DEFAULT_PAGE_SIZE),
  /** Default 5000; 0 turns automatic commits off. */
  autoFlushMs,
  detectZeroes,
  /**
   * Bind the lower: hash every lower page now (it reads the whole lower once) so that reads check
   * each lower page they serve and `pagecow verify` names changed pages. Default false.
   */
  bindLower: z.boolean().default(false),
  /** With bindLower: called as the lower is read, `{ doneBytes, totalBytes }`. */
  onProgress: z.custom<(progress: { doneBytes: number; totalBytes: number }) => void>((v) => typeof v === 'function', 'onProgress must be a function').optional(),
})

export const openOptionsSchema = z.strictObject({
  /** Open without the writer lock; every write fails with EROFS. Default false. */
  readOnly: z.boolean().default(false),
  /** Default 5000; 0 turns automatic commits off. */
  autoFlushMs,
  detectZeroes,
})

export type CreateOptions = z.input<typeof createOptionsSchema>
export type OpenOptions = z.input<typeof openOptionsSchema>
