// The namespace walk of the tree-mode benchmark: readdir every directory and stat every entry,
// through a TreeStore or through node's `fs` on a plain directory. Both return the entries seen.
import * as fs from 'node:fs'
import type { TreeStore } from '../../lib/index.js'

/** readdir (in pages of 1024, as exportTree does) and stat of everything under `dir` of `store`. */
export async function walkStore(store: TreeStore, dir = '/'): Promise<number> {
  let seen = 0
  let after: string | undefined
  for (;;) {
    const batch = await store.readdir(dir, after === undefined ? { limit: 1024 } : { after, limit: 1024 })
    if (batch.length === 0) return seen
    after = batch[batch.length - 1]!.name
    for (const entry of batch) {
      const path = dir === '/' ? `/${entry.name}` : `${dir}/${entry.name}`
      const st = await store.stat(path)
      seen++
      if (st.type === 'directory') seen += await walkStore(store, path)
    }
  }
}

/** The same walk with node's synchronous `fs` calls (readdirSync, lstatSync). */
export function walkPlain(dir: string): number {
  let seen = 0
  for (const name of fs.readdirSync(dir)) {
    const path = `${dir}/${name}`
    const st = fs.lstatSync(path)
    seen++
    if (st.isDirectory()) seen += walkPlain(path)
  }
  return seen
}
