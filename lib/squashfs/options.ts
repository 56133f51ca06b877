// Options of SquashfsImage.open, checked strictly (a misspelled option is an error).
import { z } from 'zod'

/** The default bound of the block cache: fit for a small device. */
export const DEFAULT_CACHE_BYTES = 8 << 20

export const openOptionsSchema = z
  .object({
    /** Bytes of decompressed data and metadata blocks kept (default 8 MiB; 0 keeps none). */
    cacheBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(DEFAULT_CACHE_BYTES),
  })
  .strict()

export type SquashfsOpenOptions = z.input<typeof openOptionsSchema>
