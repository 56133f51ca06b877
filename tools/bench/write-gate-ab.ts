// What the write gate (freeze, first-dirty hook) costs a write when nothing is frozen or hooked:
// random 4 KiB page-aligned writes through ImageStore.write and a TreeStore handle, this checkout's
// library against the one before the gate (commit 55ccb67), loaded side by side in one process
// and alternated round by round. Rates are per CPU second of this process (user + system): on a
// shared 2-core machine wall time swings with the other jobs far more than the gate could cost.
//   git worktree add ../gate-base 55ccb67 && cp -a node_modules build ../gate-base/
//   npx tsx tools/bench/write-gate-ab.ts ../gate-base [rounds]
import { randomFillSync } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type * as Current from '../../lib/index.js'

type Library = Pick<typeof Current, 'ImageStore' | 'TreeStore'>

const PAGE = 4096
const PAGES = 32_768 // a 128 MiB lower
const WRITES = 20_000

async function main(argv: string[]): Promise<void> {
  const basePath = argv[0]
  if (!basePath) throw new Error('usage: tsx tools/bench/write-gate-ab.ts BASE_CHECKOUT [rounds]')
  const rounds = Number(argv[1] ?? 12)
  const before = (await import(pathToFileURL(join(resolve(basePath), 'lib', 'index.ts')).href)) as Library
  const after = (await import('../../lib/index.js')) as Library
  const dir = mkdtempSync(join(tmpdir(), 'pagecow-gate-ab-'))
  try {
    const lowerDir = join(dir, 'lower')
    mkdirSync(lowerDir)
    const bytes = randomFillSync(Buffer.alloc(PAGES * PAGE))
    writeFileSync(join(lowerDir, 'disk.img'), bytes)
    const data = randomFillSync(Buffer.alloc(PAGE))
    let seed = 1
    const pages = () => Array.from({ length: WRITES }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % PAGES))
    let n = 0
    const image = async (lib: Library): Promise<number> => {
      const storeDir = join(dir, `s${n++}`)
      const store = await lib.ImageStore.create(storeDir, { lower: join(lowerDir, 'disk.img'), autoFlushMs: 0 })
      const list = pages()
      const c0 = process.cpuUsage()
      for (const p of list) await store.write(p * PAGE, data)
      const c = process.cpuUsage(c0)
      await store.close()
      rmSync(storeDir, { recursive: true })
      return WRITES / ((c.user + c.system) / 1e6)
    }
    const tree = async (lib: Library): Promise<number> => {
      const storeDir = join(dir, `s${n++}`)
      const store = await lib.TreeStore.create(storeDir, { lower: lowerDir, autoFlushMs: 0 })
      const h = await store.open('/disk.img', 'r+')
      const list = pages()
      const c0 = process.cpuUsage()
      for (const p of list) await h.write(p * PAGE, data)
      const c = process.cpuUsage(c0)
      await h.close()
      await store.close()
      rmSync(storeDir, { recursive: true })
      return WRITES / ((c.user + c.system) / 1e6)
    }
    for (const [name, run] of [['ImageStore.write', image], ['TreeStore handle write', tree]] as const) {
      await run(before) // warm-up, each
      await run(after)
      const ratios: number[] = []
      const a: number[] = []
      const b: number[] = []
      for (let i = 0; i < rounds; i++) {
        // Alternate which goes first, so neither always follows the other's garbage.
        let x: number
        let y: number
        if (i % 2 === 0) {
          x = await run(before)
          y = await run(after)
        } else {
          y = await run(after)
          x = await run(before)
        }
        a.push(x)
        b.push(y)
        ratios.push(y / x)
      }
      const median = (v: number[]) => [...v].sort((p, q) => p - q)[v.length >> 1]!
      process.stdout.write(
        `${name}: before ${median(a).toFixed(0)} op/CPU-s, after ${median(b).toFixed(0)} op/CPU-s; ` +
          `after/before median ${median(ratios).toFixed(3)} (pairs ${ratios.map((r) => r.toFixed(2)).join(' ')})\n`,
      )
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

await main(process.argv.slice(2))
