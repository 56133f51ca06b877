// `npx tsx tools/fuzz/squashfs-fuzz.ts [--runs=N] [--seed=S] [--minutes=M]`: the long form of the
// fuzz test in test/squashfs-corrupt.ts. Builds the fuzz tree's image with every compressor (and
// one with nothing compressed), then mutates each at random and walks it whole, round after
// round with new seeds until the runs or the minutes are spent. Prints what was refused and how
// often; exits 1 and prints the seed and the change if anything but a PagecowError escaped. A run
// that never ends is a bug too: the image it is stuck on is the scratch file printed at the start
// (the directory is left in place when the script is killed).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fuzzImage } from '../../test/fixtures/squashfs-fuzz.js'
import { makeFuzzTree, mksquashfs } from '../../test/fixtures/squashfs-tree.js'

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]))
const runs = Number(args.runs ?? 100_000)
const minutes = Number(args.minutes ?? 30)
let seed = Number(args.seed ?? Date.now() % 2 ** 31)
const ROUND = 500

const dir = mkdtempSync(join(tmpdir(), 'pagecow-squashfs-fuzz-'))
try {
  makeFuzzTree(join(dir, 'src'))
  const images: Array<[string, Buffer]> = []
  for (const [name, extra] of [['uncompressed', ['-noI', '-noId', '-noD', '-noF', '-noX']], ['gzip', ['-comp', 'gzip']], ['xz', ['-comp', 'xz']], ['lzo', ['-comp', 'lzo']], ['lz4', ['-comp', 'lz4']], ['zstd', ['-comp', 'zstd']]] as const) {
    const path = join(dir, `${name}.sqfs`)
    mksquashfs(join(dir, 'src'), path, ['-b', '4096', ...extra])
    images.push([name, readFileSync(path)])
  }
  process.stderr.write(`images and the scratch file in ${dir}\n`)
  const deadline = Date.now() + minutes * 60_000
  const totals = { runs: 0, clean: 0, refused: 0, slowestMs: 0 }
  const messages = new Map<string, number>()
  const bugs: string[] = []
  while (totals.runs < runs && Date.now() < deadline) {
    for (const [name, image] of images) {
      const o = fuzzImage(image, join(dir, 'scratch.sqfs'), ROUND, seed)
      totals.runs += ROUND
      totals.clean += o.clean
      totals.refused += Object.values(o.refused).reduce((a, b) => a + b, 0)
      totals.slowestMs = Math.max(totals.slowestMs, o.slowestMs)
      for (const [m, n] of Object.entries(o.messages)) messages.set(m, (messages.get(m) ?? 0) + n)
      bugs.push(...o.bugs.map((b) => `${name}: ${b}`))
    }
    process.stderr.write(`\r${totals.runs} runs, ${totals.refused} refused, ${bugs.length} bugs, seed ${seed}   `)
    seed = (seed + 1) >>> 0
  }
  process.stderr.write('\n')
  const top = [...messages].sort((a, b) => b[1] - a[1])
  process.stdout.write(`${totals.runs} runs: ${totals.clean} clean, ${totals.refused} refused (${messages.size} distinct messages), slowest ${totals.slowestMs.toFixed(0)} ms, ${bugs.length} bugs\n`)
  for (const [m, n] of top.slice(0, 25)) process.stdout.write(`${String(n).padStart(7)}  ${m.slice(0, 160)}\n`)
  for (const b of bugs.slice(0, 50)) process.stdout.write(`BUG ${b}\n`)
  process.exitCode = bugs.length > 0 ? 1 : 0
} finally {
  rmSync(dir, { recursive: true, force: true })
}
