// The lower objects of a store as a binding sees them: an image store's one image (key 1), or
// every regular file of a tree lower (keyed by inode number: a lower file has no paged file id
// until it is first copied up, and its inode is what the store already checks it by).
import { isStoreLower, type StoreMeta } from '../store/meta.js'
import type { LowerFile } from '../tree/lower-tree.js'
import { IMAGE_LOWER_KEY } from './lower-sums.js'

export interface LowerObjectRef {
  /** Its key in lower_sums. */
  key: number
  /** How messages name it: "the lower image /srv/base.img". */
  where: string
  /** Its path (absolute). */
  path: string
  size: number
  open(): LowerFile
}

/**
 * The lower objects of the store `meta` describes; a tree lower is walked as this iterates. The
 * refs stay openable after the walk: the lower is closed by the function pushed to `closers`.
 */
export async function* lowerObjects(meta: StoreMeta, closers: Array<() => void>, storePath: string): AsyncGenerator<LowerObjectRef> {
  // A base store yields nothing: it is sealed, and its pages are summed and checked by its own reads.
  if (meta.kind === 'image') {
    const { LowerImage } = await import('../image/lower-image.js')
    const { locateRawLower } = await import('../image/locate-lower.js')
    const lower = meta.lower
    if (isStoreLower(lower)) return
    const path = locateRawLower(storePath, lower)
    const image = LowerImage.open(path)
    const size = image.size
    image.close()
    yield { key: IMAGE_LOWER_KEY, where: `the lower image ${path}`, path, size, open: () => LowerImage.open(path) }
    return
  }
  const { openLowers } = await import('../tree/open-lower.js')
  const { lowerFiles } = await import('../tree/lower-files.js')
  const lower = openLowers(meta.lowers) // directories, squashfs images read in user space, tree stores
  closers.push(() => lower.close())
  for (const f of lowerFiles(lower)) {
    const path = lower.full(f.rel)
    yield { key: f.ino, where: `the lower file ${path}`, path, size: f.size, open: () => lower.openFile(f.rel) }
  }
}
