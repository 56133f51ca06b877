// Where a raw lower is now: the path recorded relative to the store first (a store and its image
// moved together keep working), then the absolute one. The first whose fingerprint matches wins;
// failing that the first that exists, so that opening it says what changed (ESTALE).
import { resolve } from 'node:path'
import type { RawLowerRecord } from '../store/meta.js'
import { describeChange, fingerprint } from './fingerprint.js'
import { LowerImage } from './lower-image.js'

/** The path of the raw lower `record` names, for the store at `store` (absolute). */
export function locateRawLower(store: string, record: RawLowerRecord): string {
  if (record.relative === undefined) return record.path
  const candidates = [...new Set([resolve(store, record.relative), record.path])]
  let existing: string | undefined
  for (const path of candidates) {
    let lower: LowerImage
    try {
      lower = LowerImage.open(path)
    } catch {
      continue
    }
    try {
      if (describeChange(record.fingerprint, fingerprint(lower)) === null) return path
    } finally {
      lower.close()
    }
    existing ??= path
  }
  return existing ?? record.path
}
