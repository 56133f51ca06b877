// Open a store, do one command's work on it, and close it (closing flushes) whatever happens.
import { ImageStore, type OpenOptions } from '../index.js'

/** Run `work` on the store at `path`; the work's error wins over an error while closing. */
export async function withStore<T>(path: string, options: OpenOptions, work: (store: ImageStore) => Promise<T>): Promise<T> {
  const store = await ImageStore.open(path, options)
  let result: T
  try {
    result = await work(store)
  } catch (err) {
    await store.close().catch(() => {})
    throw err
  }
  await store.close()
  return result
}
