// Open a store of either kind for one command, and close it (closing flushes) whatever happens.
import { PagecowError } from '../errors.js'
import type { OpenOptions } from '../image/options.js'
import { openStore, type AnyStore } from '../open-store.js'
import type { TreeStore } from '../tree/tree-store.js'

/** Run `work` on the store at `path`, image or tree; the work's error wins over one while closing. */
export async function withAnyStore<T>(path: string, options: OpenOptions, work: (store: AnyStore) => Promise<T>): Promise<T> {
  const store = await openStore(path, options)
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

/** Run `work` on the tree store at `path`; an image store is refused with EINVAL naming `command`. */
export async function withTreeStore<T>(path: string, options: OpenOptions, command: string, work: (store: TreeStore) => Promise<T>): Promise<T> {
  return withAnyStore(path, options, async (store) => {
    if (store.kind !== 'tree') throw new PagecowError('EINVAL', `${command}: ${store.path} is an image store; \`pagecow ${command}\` works on tree stores`)
    return work(store)
  })
}

/** An image store takes no PATH, a tree store needs one: EINVAL otherwise. */
export function checkPathArgument(store: AnyStore, path: string | undefined, command: string): void {
  if (store.kind === 'tree' && path === undefined) {
    throw new PagecowError('EINVAL', `${command}: ${store.path} is a tree store; name a file in it: pagecow ${command} STORE PATH`)
  }
  if (store.kind === 'image' && path !== undefined) {
    throw new PagecowError('EINVAL', `${command}: ${store.path} is an image store; it has no paths (drop ${JSON.stringify(path)})`)
  }
}
