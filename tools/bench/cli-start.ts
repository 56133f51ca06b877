// Case 12 (issue 11): whole `pagecow` processes, as a shell runs them, against their peers in the
// same run: `--version` and `--help` against `node -e 0` (the floor of any Node program), `inspect`
// against `qemu-img info`, and `map --output=json` of an image with 10 000 scattered written pages
// against `qemu-img map --output=json` of a 4 KiB-cluster qcow2 overlay holding the same writes.
// pagecow runs as users run it: `node dist/cli/bin.js` (what `npx pagecow` starts), built first.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import { count, duration } from './format.js'
import { makeSparseFile } from './files.js'
import { scatteredPages } from './random.js'
import { range, type Row } from './row.js'
import { scratchDir } from './scratch.js'
import { interleaved, interleavedReps, median } from './timing.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = join(ROOT, 'dist', 'cli', 'bin.js')
const LOWER_BYTES = 1024 ** 3
const PAGE = 4096
const WRITES = 10_000

interface Command {
  name: string
  file: string
  args: string[]
}

export const cliStart: BenchCase = {
  id: 'cli-start',
  group: 'cli',
  number: 12,
  title: 'Whole pagecow processes (--version, --help, inspect, map --output=json) against node -e 0 and qemu-img',
  async run(ctx) {
    const reps = ctx.config.reps
    const batches = ctx.config.quick ? 6 : 12
    ctx.log('building dist/ (what `npx pagecow` runs)')
    run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')])

    const dir = scratchDir('cli')
    const lower = join(dir, 'lower.img')
    makeSparseFile(lower, LOWER_BYTES)
    const offsets = Array.from(scatteredPages(WRITES, LOWER_BYTES / PAGE, 12), (p) => p * PAGE)
    const storeDir = join(dir, 'store')
    const store = await ImageStore.create(storeDir, { lower, autoFlushMs: 0 })
    const data = Buffer.alloc(PAGE, 0xcd)
    for (const off of offsets) await store.write(off, data)
    await store.close()

    const haveQemu = ['qemu-img', 'qemu-io'].every((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0)
    const qcow2 = join(dir, 'top.qcow2')
    if (haveQemu) {
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${PAGE}`, '-b', lower, '-F', 'raw', qcow2])
      const script = join(dir, 'writes.qemu-io')
      writeFileSync(script, offsets.map((off) => `write -q ${off} ${PAGE}\n`).join(''))
      run('sh', ['-c', 'qemu-io -t unsafe -f qcow2 "$1" < "$2"', 'sh', qcow2, script])
      checkSameData(run(process.execPath, [BIN, 'map', storeDir, '--output=json']), run('qemu-img', ['map', '--output=json', qcow2]))
    }

    const pagecow = (...args: string[]): Command => ({ name: `pagecow ${args[0]}`, file: process.execPath, args: [BIN, ...args] })
    const nodeFloor: Command = { name: 'node -e 0', file: process.execPath, args: ['-e', '0'] }
    const pairs: Array<{ what: string; a: Command; b: Command; target?: number }> = [
      { what: '`pagecow --version`', a: pagecow('--version'), b: nodeFloor, target: 1.5 },
      { what: '`pagecow --help`', a: pagecow('--help'), b: nodeFloor },
    ]
    if (haveQemu) {
      const maps = `an image with ${count(WRITES)} scattered written pages (1 GiB sparse lower, ${2 * WRITES + 1} extents)`
      pairs.push(
        { what: `\`pagecow inspect\` of ${maps}`, a: pagecow('inspect', storeDir), b: { name: 'qemu-img info', file: 'qemu-img', args: ['info', qcow2] } },
        {
          what: `\`pagecow map --output=json\` of ${maps}`,
          a: pagecow('map', storeDir, '--output=json'),
          b: { name: 'qemu-img map --output=json (4 KiB-cluster qcow2, same writes)', file: 'qemu-img', args: ['map', '--output=json', qcow2] },
          target: 2,
        },
        { what: 'the start-up floors: `node -e 0`', a: nodeFloor, b: { name: 'qemu-img --version', file: 'qemu-img', args: ['--version'] } },
      )
    }
    const rows: Row[] = []
    for (const p of pairs) {
      const once = (c: Command) => () => void run(c.file, c.args)
      once(p.a)() // warm: the page cache holds the files either side loads
      once(p.b)()
      const got = await interleavedReps(reps, () => interleaved(batches, once(p.a), once(p.b)))
      const perRun = (ms: number[]) => median(ms) / batches
      const ratios = got.a.map((a, i) => a / got.b[i]!)
      const ratio = median(ratios)
      rows.push({
        case: 'cli-start',
        label: `${p.what}, whole process, median of ${reps} × ${batches} runs`,
        pagecow: duration(perRun(got.a)),
        baseline: `${duration(perRun(got.b))} (${p.b.name})`,
        ratio,
        ratioKind: 'time',
        ratioRange: range(ratios),
        target: p.target === undefined ? null : `≤ ${p.target}×`,
        met: p.target === undefined ? null : ratio <= p.target,
        details: { pagecowTotalsMs: got.a, baselineTotalsMs: got.b, runsPerTotal: batches },
      })
    }
    if (!haveQemu) {
      rows.push({
        case: 'cli-start', label: 'inspect and map rows skipped: qemu-img / qemu-io not installed (Debian: qemu-utils)', pagecow: '', baseline: '',
        ratio: null, ratioKind: null, ratioRange: null, target: null, met: null, details: {},
      })
    }
    return rows
  },
}

/** Run a command to completion; its stdout. Throws with its stderr when it fails. */
function run(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8', maxBuffer: 256 << 20 })
  if (r.error || r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.error?.message ?? `status ${r.status}`}): ${(r.stderr ?? '').slice(0, 500)}`)
  return r.stdout
}

/** Both maps put data at the same places: the two sides answer the same question. */
function checkSameData(ours: string, theirs: string): void {
  const dataAt = (text: string) => {
    const ranges: string[] = []
    for (const e of JSON.parse(text) as Array<{ start: number; length: number; data: boolean; depth: number }>) {
      if (e.data && e.depth === 0) ranges.push(`${e.start}+${e.length}`)
    }
    return ranges.join(',')
  }
  const a = dataAt(ours)
  if (a !== dataAt(theirs)) throw new Error('cli-start: pagecow map and qemu-img map disagree on where the written data is')
  if (a.split(',').length !== WRITES) throw new Error(`cli-start: expected ${WRITES} written extents, found ${a.split(',').length}`)
}
