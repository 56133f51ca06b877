// Which store an export came from, so that an incremental is never applied to another store's
// image: a digest of what the store recorded when it was made (its kind, the moment, its lower).
import { createHash } from 'node:crypto'

/** 32 hex digits naming a store, the same for every open of it. */
export function storeIdentity(info: { kind: 'image' | 'tree'; createdAt: string; lower: { path: string } }): string {
  return createHash('sha256').update(JSON.stringify([info.kind, info.createdAt, info.lower.path])).digest('hex').slice(0, 32)
}
