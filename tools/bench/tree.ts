// `npx tsx tools/bench/tree.ts [--quick]`: the tree-mode benchmark on its own (issue 3): prints
// the machine and a table of a TreeStore against `fs` on a plain copy of the same lower tree.
// Default sizes: a lower of 100 dirs × 1000 files and 10 000 small-file creates (issue 3's count;
// PAGECOW_BENCH_TREE_CREATES=N changes it); --quick: 20 dirs × 1000 files and 500 creates.
import { DEFAULT_CONFIG, QUICK_CONFIG } from './config.js'
import { BenchContext } from './context.js'
import { describeMachine, formatMachine } from './machine.js'
import { removeAllScratch } from './scratch.js'
import { formatTable } from './table.js'
import { msSince, now } from './timing.js'
import { treeCase } from './tree-case.js'

const USAGE = 'usage: [PAGECOW_BENCH_TREE_CREATES=N] npx tsx tools/bench/tree.ts [--quick]'

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--quick')
  if (unknown.length > 0) {
    process.stderr.write(`tree bench: unknown argument ${unknown[0]}\n${USAGE}\n`)
    return 1
  }
  const quick = argv.includes('--quick')
  const started = new Date()
  process.stdout.write(`pagecow tree-mode benchmark, ${started.toISOString()}${quick ? ' (--quick sizes)' : ''}\n${formatMachine(describeMachine())}\n`)
  process.stdout.write('Ratios are time pagecow/baseline (≤ 1 is better); the baseline is node fs sync calls on a plain copy of the lower tree, in-process.\n\n')
  const ctx = new BenchContext(quick ? QUICK_CONFIG : DEFAULT_CONFIG)
  const t0 = now()
  const rows = await treeCase.run(ctx)
  removeAllScratch()
  process.stdout.write(`${formatTable(rows)}\n\nTotal ${(msSince(t0) / 1000).toFixed(1)} s.\n`)
  const missed = rows.filter((r) => r.met === false)
  if (missed.length > 0) process.stdout.write(`Targets missed: ${missed.map((r) => r.label.split(',')[0]).join('; ')}\n`)
  return 0
}

process.exitCode = await main(process.argv.slice(2))
