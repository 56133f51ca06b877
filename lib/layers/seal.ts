// A store that is the base of another is sealed (SPEC §11: a layer that others depend on is never
// written): its record says so, durably, before the store above exists, and writable opens of it
// are refused. Reads go on; the stores above keep their own uppers.
import { PagecowError } from '../errors.js'
import type { ImageMeta } from '../store/meta.js'

/** EROFS for a writable open of a sealed store, saying why and what to do instead. */
export function sealedError(path: string, meta: ImageMeta, what = 'opening it for writing'): PagecowError {
  const seal = meta.sealed!
  return new PagecowError(
    'EROFS',
    `${path} is sealed: it is the base of another store (${seal.by}, created on it at ${seal.at}), and a base is never written while stores depend on it; ${what} is refused. ` +
      `Open it read-only, or write to a store over it instead (pagecow create NEW --lower ${path})`,
  )
}

/** EROFS if the store is sealed. */
export function checkNotSealed(path: string, meta: ImageMeta, what?: string): void {
  if (meta.sealed) throw sealedError(path, meta, what)
}
