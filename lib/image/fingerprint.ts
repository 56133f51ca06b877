// The lower's fingerprint (SPEC §8): size, mtime and a hash of sampled bytes, checked at open.
import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { LowerSource } from '../page/lower-source.js'

const SAMPLES = 16
const SAMPLE_BYTES = 4096

export const fingerprintSchema = z.strictObject({
  size: z.number().int().nonnegative(),
  mtimeMs: z.number().nonnegative(),
  sample: z.string().regex(/^[0-9a-f]{64}$/),
})

export type Fingerprint = z.infer<typeof fingerprintSchema>

/** Hash SAMPLES blocks spread evenly over the lower, first and last included. */
export function fingerprint(lower: LowerSource & { mtimeMs: number }): Fingerprint {
  return { size: lower.size, mtimeMs: lower.mtimeMs, sample: sampleHash(lower) }
}

/** The hash of SAMPLES blocks spread evenly over `lower` (what a lower file's print records). */
export function sampleHash(lower: Pick<LowerSource, 'size' | 'readInto'>): string {
  const hash = createHash('sha256')
  const block = Buffer.alloc(SAMPLE_BYTES)
  const span = Math.max(0, lower.size - SAMPLE_BYTES)
  for (let i = 0; i < SAMPLES; i++) {
    const position = Math.floor((span * i) / (SAMPLES - 1))
    const n = lower.readInto(block, 0, SAMPLE_BYTES, position)
    hash.update(block.subarray(0, n))
  }
  return hash.digest('hex')
}

/** What differs between the recorded and the current fingerprint, or null if nothing. */
export function describeChange(recorded: Fingerprint, current: Fingerprint): string | null {
  const changes: string[] = []
  if (recorded.size !== current.size) changes.push(`size ${recorded.size} → ${current.size} bytes`)
  if (recorded.mtimeMs !== current.mtimeMs) {
    changes.push(`mtime ${new Date(recorded.mtimeMs).toISOString()} → ${new Date(current.mtimeMs).toISOString()}`)
  }
  if (recorded.sample !== current.sample) changes.push('sampled bytes differ')
  return changes.length > 0 ? changes.join(', ') : null
}
