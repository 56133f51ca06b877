// Child process of the extents case: opens a store read-only and maps all of it (mode `map`),
// or only loads the library (mode `idle`), then prints its peak RSS. Nothing else runs here.
import { ImageStore } from '../../lib/index.js'

const [dir, mode] = process.argv.slice(2)
let extents = 0
let openMs = 0
let mapMs = 0
if (mode === 'map') {
  const t0 = process.hrtime.bigint()
  const store = await ImageStore.open(dir!, { readOnly: true })
  const t1 = process.hrtime.bigint()
  for (const _ of store.extents()) extents++
  const t2 = process.hrtime.bigint()
  await store.close()
  openMs = Number(t1 - t0) / 1e6
  mapMs = Number(t2 - t1) / 1e6
} else if (mode !== 'idle') {
  throw new Error(`extents-child: unknown mode ${String(mode)}`)
}
// ru_maxrss is in KiB on Linux.
process.stdout.write(`${JSON.stringify({ mode, extents, openMs, mapMs, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`)
