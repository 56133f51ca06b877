// Child process of the tree case: walks a tree (readdir + stat of everything) through a store
// opened read-only (mode `store`) or through `fs` (mode `plain`), then prints its peak RSS (VmHWM).
import { readFileSync } from 'node:fs'
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
process.stdout.write(`${JSON.stringify({ mode, entries, walkMs, maxRssBytes: peakRss() })}\n`)

/**
 * This process's peak RSS: VmHWM, which exec resets. ru_maxrss (resourceUsage().maxRSS, KiB) is
 * not: it keeps the parent's RSS at fork, so a big parent hid the walk's own peak.
 */
function peakRss(): number {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]
    if (kib !== undefined) return Number(kib) * 1024
  } catch {
    // Not Linux: fall back to ru_maxrss.
  }
  return process.resourceUsage().maxRSS * 1024
}
