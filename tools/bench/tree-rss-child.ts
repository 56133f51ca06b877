// Child process of the tree case: walks a tree (readdir + stat of everything) through a store
// opened read-only (mode `store`) or through `fs` (mode `plain`), then prints its peak RSS.
import { TreeStore } from '../../lib/index.js'
import { walkPlain, walkStore } from './tree-walk.js'

const [dir, mode] = process.argv.slice(2)
const t0 = process.hrtime.bigint()
let entries: number
if (mode === 'store') {
  const store = await TreeStore.open(dir!, { readOnly: true })
  entries = await walkStore(store)
  await store.close()
} else if (mode === 'plain') {
  entries = walkPlain(dir!)
} else {
  throw new Error(`tree-rss-child: unknown mode ${String(mode)}`)
}
const walkMs = Number(process.hrtime.bigint() - t0) / 1e6
// ru_maxrss is in KiB on Linux.
process.stdout.write(`${JSON.stringify({ mode, entries, walkMs, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`)
