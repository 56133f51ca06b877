// Open an image store, do one command's work on it, and close it (closing flushes) whatever happens.
import { PagecowError } from '../errors.js'
import type { ImageStore } from '../image/image-store.js'
import type { OpenOptions } from '../image/options.js'
import { withAnyStore } from './with-any-store.js'

/** Run `work` on the image store at `path`; a tree store is refused with EINVAL. */
export async function withStore<T>(path: string, options: OpenOptions, work: (store: ImageStore) => Promise<T>): Promise<T> {
  return withAnyStore(path, options, async (store) => {
    if (store.kind !== 'image') throw new PagecowError('EINVAL', `${store.path} is a tree store; this command works on image stores`)
    return work(store)
  })
}
