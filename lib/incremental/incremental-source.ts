// What an incremental is exported from: the image of an image store, or one regular file of a
// tree store. Both give their size, their changes since a mark and their bytes; the export does
// the rest the same way for either.
import type { ChangedExtent } from '../changes/changed-extents.js'
import type { Mark } from '../changes/mark-table.js'
import { PagecowError } from '../errors.js'
import type { ImageStore } from '../image/image-store.js'
import type { TreeStore } from '../tree/tree-store.js'
import { storeIdentity } from './store-identity.js'

export interface IncrementalSource {
  readonly kind: 'image' | 'file'
  /** `file`: the file's path in the tree (name form). */
  readonly path?: string
  readonly pageSize: number
  readonly store: string
  marks(): Mark[]
  size(): Promise<number>
  changed(since: string): Generator<ChangedExtent>
  readInto(target: Buffer, offset: number): Promise<number>
  close(): Promise<void>
}

export function imageSource(store: ImageStore): IncrementalSource {
  return {
    kind: 'image',
    pageSize: store.pageSize,
    store: storeIdentity(store.info()),
    marks: () => store.marks(),
    size: async () => store.size,
    changed: (since) => store.changedExtents(since),
    // In the thread pool: a bulk read, and the event loop stays free to see SIGINT.
    readInto: (target, offset) => store.readInto(target, offset, { threadPool: true }),
    close: async () => {},
  }
}

/**
 * One regular file of a tree store. Refused (EINVAL) when the name now holds another object than
 * at the mark (created, replaced or renamed since): its changes would not apply to the old file.
 */
export async function treeFileSource(store: TreeStore, path: string, since: string): Promise<IncrementalSource> {
  const info = store.info()
  const normal = (p: string) => `/${p.split('/').filter((c) => c !== '').join('/')}`
  const wanted = normal(path)
  // Throws ENOENT for a mark that does not exist, before the path is looked at.
  const moved = store.changedSince(since).find((c) => normal(c.path) === wanted && (c.status === 'created' || c.status === 'replaced' || c.status === 'renamed'))
  if (moved) {
    throw new PagecowError('EINVAL', `${path} was ${moved.status} since the mark ${JSON.stringify(since)}: a file incremental applies to the same file; export the file whole instead`)
  }
  const handle = await store.open(path, 'r')
  return {
    kind: 'file',
    path: wanted,
    pageSize: info.pageSize,
    store: storeIdentity(info),
    marks: () => store.marks(),
    size: async () => (await handle.stat()).size,
    changed: (mark) => store.changedExtents(path, mark),
    readInto: (target, offset) => handle.readInto(target, offset),
    close: async () => {
      await handle.close()
    },
  }
}
