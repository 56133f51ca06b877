// Options of freeze() and what frozen() reports, the same for every store kind.
import { z } from 'zod'
import { MAX_FREEZE_TIMEOUT_MS } from './write-gate.js'

export const freezeOptionsSchema = z.strictObject({
  /**
   * How long a writer waits for the thaw, in milliseconds from when it started waiting; then its
   * write fails with EFROZEN (and the file stays frozen). 0: writers fail at once. Default: they
   * wait for ever.
   */
  timeoutMs: z.number().int().min(0).max(MAX_FREEZE_TIMEOUT_MS).optional(),
})

export type FreezeOptions = z.input<typeof freezeOptionsSchema>

/** A frozen file, as `frozen()` lists it. */
export interface FrozenFile {
  /** Tree stores: the path given to freeze() (the file may have been renamed since). Images: null. */
  path: string | null
  /** Tree stores: the inode frozen (every name of it). Images: null. */
  ino: number | null
  /** See FreezeOptions; null: writers wait for ever. */
  timeoutMs: number | null
  /** When it was frozen (ISO 8601). */
  frozenAt: string
  /** Writers waiting for the thaw now. */
  waiting: number
}
