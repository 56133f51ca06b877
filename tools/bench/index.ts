// `npm run bench [-- --quick] [case or group …]`: run the image-mode benchmarks, print the
// machine and a table of pagecow against its baselines, and write the results as JSON.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BenchCase } from './bench-case.js'
import { DEFAULT_CONFIG, QUICK_CONFIG, type Config } from './config.js'
import { BenchContext } from './context.js'
import { describeMachine, formatMachine } from './machine.js'
import { randRead, seqRead } from './reads.js'
import { randWrite } from './writes.js'
import { firstWrite } from './first-write.js'
import { extentsMap } from './extents-map.js'
import { flushCost } from './flush-cost.js'
import { qemuWrites } from './qemu.js'
import { nbdCase } from './nbd-case.js'
import { treeCase } from './tree-case.js'
import { fuseCase } from './fuse.js'
import { fuseRead } from './fuse-read.js'
import { fuseFio } from './fuse-fio.js'
import { squashfsCase } from './squashfs.js'
import { squashfsLowerCase } from './squashfs-lower.js'
import { dirtyMap } from './dirty-map.js'
import { nbdDirtyBitmap } from './nbd-dirty-bitmap.js'
import { cliStart } from './cli-start.js'
import { boundRead } from './lower-binding.js'
import { INTEGRITY_CASES } from './integrity.js'
import { MARKS_CASES } from './marks.js'
import { layersRead } from './layers.js'
import type { Row } from './row.js'
import { pendingTrash, removeAllScratch } from './scratch.js'
import { formatTable } from './table.js'
import { msSince, now } from './timing.js'

const HERE = dirname(fileURLToPath(import.meta.url))

// The extents case runs before flush-cost: flush-cost adds pages to the shared stores.
export const CASES: BenchCase[] = [seqRead, randRead, randWrite, firstWrite, extentsMap, flushCost, qemuWrites, nbdCase, treeCase, fuseCase, fuseRead, fuseFio, squashfsCase, squashfsLowerCase, dirtyMap, nbdDirtyBitmap, cliStart, boundRead, ...INTEGRITY_CASES, ...MARKS_CASES, layersRead]

const USAGE = `usage: npm run bench -- [--quick] [--reps=N] [--out=FILE] [--list] [case|group …]

Runs every case, or those named (by case id or group). --quick scales the sizes down.
Results go to stdout as a Markdown table and to FILE as JSON
(default tools/bench/results/latest.json, or latest-quick.json with --quick).`

interface Args {
  config: Config
  out: string
  names: string[]
  list: boolean
}

function parseArgs(argv: string[]): Args {
  let quick = false
  let reps: number | undefined
  let out: string | undefined
  let list = false
  const names: string[] = []
  for (const arg of argv) {
    if (arg === '--quick') quick = true
    else if (arg === '--list') list = true
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`)
      process.exit(0)
    } else if (arg.startsWith('--reps=')) reps = Number(arg.slice(7))
    else if (arg.startsWith('--out=')) out = resolve(arg.slice(6))
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`)
    else names.push(arg)
  }
  const config = { ...(quick ? QUICK_CONFIG : DEFAULT_CONFIG) }
  if (reps !== undefined) {
    if (!Number.isInteger(reps) || reps < 1) throw new UsageError('--reps must be a positive integer')
    config.reps = reps
  }
  out ??= resolve(HERE, 'results', quick ? 'latest-quick.json' : 'latest.json')
  return { config, out, names, list }
}

class UsageError extends Error {}

function select(names: string[]): BenchCase[] {
  if (names.length === 0) return CASES
  for (const name of names) {
    if (!CASES.some((c) => c.id === name || c.group === name || String(c.number) === name)) {
      throw new UsageError(`no case or group named ${name}; try --list`)
    }
  }
  return CASES.filter((c) => names.some((n) => c.id === n || c.group === n || String(c.number) === n))
}

async function main(argv: string[]): Promise<number> {
  let args: Args
  let cases: BenchCase[]
  try {
    args = parseArgs(argv)
    cases = select(args.names)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`bench: ${err.message}\n${USAGE}\n`)
    return 1
  }
  if (args.list) {
    for (const c of CASES) process.stdout.write(`${c.number}  ${c.id.padEnd(12)} ${c.group.padEnd(12)} ${c.title}\n`)
    return 0
  }
  const machine = describeMachine()
  const started = new Date()
  process.stdout.write(`pagecow benchmarks, ${started.toISOString()}${args.config.quick ? ' (--quick sizes)' : ''}\n${formatMachine(machine)}\n\n`)
  const earlier = pendingTrash()
  if (earlier.length > 0) {
    process.stdout.write(`Warning: an earlier run's fixtures are still being deleted (${earlier.join(', ')}); the disk is busy, I/O figures may suffer.\n\n`)
  }
  const ctx = new BenchContext(args.config)
  const rows: Row[] = []
  const timings: Record<string, number> = {}
  const t0 = now()
  for (const c of cases) {
    process.stderr.write(`[${c.number}] ${c.id}: ${c.title}\n`)
    const start = now()
    const got = await c.run(ctx)
    timings[c.id] = msSince(start)
    for (const r of got) process.stderr.write(`  ${r.label}: ${r.pagecow} vs ${r.baseline}${r.ratio === null ? '' : `, ratio ${r.ratio.toFixed(2)} (${r.ratioKind})`}\n`)
    rows.push(...got)
  }
  const totalMs = msSince(t0)
  const trash = removeAllScratch()
  process.stdout.write(`${formatTable(rows)}\n\nTotal ${(totalMs / 1000).toFixed(1)} s.\n`)
  if (trash) process.stdout.write(`Fixtures are being deleted in the background: ${trash} (freeing scattered blocks can take minutes).\n`)
  const missed = rows.filter((r) => r.met === false)
  if (missed.length > 0) process.stdout.write(`Targets missed: ${missed.map((r) => `${r.case} (${r.label})`).join('; ')}\n`)
  mkdirSync(dirname(args.out), { recursive: true })
  writeFileSync(args.out, `${JSON.stringify({ startedAt: started.toISOString(), argv, machine, config: args.config, totalMs, caseMs: timings, rows }, null, 2)}\n`)
  process.stdout.write(`Results written to ${args.out}\n`)
  return 0
}

process.exitCode = await main(process.argv.slice(2))
