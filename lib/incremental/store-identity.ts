// Which store an export came from, so that an incremental is never applied to another store's
// image: the identity an image store records (made at its creation since layers), or for a store
// without one a digest of what it recorded when it was made (its kind, the moment, its lower).
import { createHash } from 'node:crypto'

/**
 * 32 hex digits naming a store, the same for every open of it (and, for a store with a recorded
 * `identity`, wherever its lower is found: a moved or re-pointed store keeps it).
 */
export function storeIdentity(info: { kind: 'image' | 'tree'; createdAt: string; lower: { path: string }; identity?: string }): string {
  return info.identity ?? createHash('sha256').update(JSON.stringify([info.kind, info.createdAt, info.lower.path])).digest('hex').slice(0, 32)
}
