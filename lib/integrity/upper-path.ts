// Where a paged file's upper data lives, for the integrity work that runs before a store of either
// kind is open (the upgrade, flux recovery): `upper.img` for an image, `upper/<id>` in a tree.
import type { StoreKind } from '../store/meta.js'

export function upperPathOf(storePath: string, kind: StoreKind, fileId: number): string {
  return kind === 'image' ? `${storePath}/upper.img` : `${storePath}/upper/${fileId}`
}
