import { execFileSync } from 'node:child_process'
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ImageStore } from '../lib/index.js'
import { expectedLower, makeSparseLower } from './fixtures/cli-lower.js'
import { runCli, type CliRun } from './fixtures/cli-io.js'
import { cannotRunPart, REQUIRE_ALL } from './fixtures/cannot-run.js'

const KiB = 1024
const MiB = 1024 * KiB
const LOWER_SIZE = 4 * MiB
const REGIONS: Array<[number, number]> = [
  [0, 64 * KiB],
  [MiB, 128 * KiB],
]

/** A sparse lower and a store over it made by `pagecow create`, in a fresh test dir. */
async function setup(t: Test) {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  const store = join(dir, 'store')
  makeSparseLower(lower, LOWER_SIZE, REGIONS)
  const created = await runCli(['create', store, '--lower', lower])
  t.equal(created.code, 0, `create: ${created.stderr}`)
  return { dir, lower, store }
}

/** Assert a failed run: exit 1 and one error line ending in (CODE), no stack; a usage error: exit 2 and a hint. */
function assertFails(t: Test, run: CliRun, code: string, options: { usage?: boolean } = {}) {
  t.equal(run.code, options.usage ? 2 : 1, options.usage ? 'exit code 2 (usage)' : 'exit code 1')
  const lines = run.stderr.trimEnd().split('\n')
  t.match(lines[0], new RegExp(`^pagecow: .+ \\(${code}\\)$`), `one line naming ${code}`)
  if (options.usage) {
    t.equal(lines.length, 2, 'the error and a hint')
    t.match(lines[1], /^Try 'pagecow( \w+)? --help'\.$/)
  } else {
    t.equal(lines.length, 1, 'a single line')
  }
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace')
}

t.test('create: a summary line, or the store info with --json', async (t) => {
  const { dir, lower, store } = await setup(t)
  const again = await runCli(['inspect', store, '--json'])
  t.equal(again.code, 0)
  const json = await runCli(['create', join(dir, 'store64'), '--lower', lower, '--page-size', '64k', '--json'])
  t.equal(json.code, 0, json.stderr)
  t.equal(json.stderr, '')
  const info = JSON.parse(json.stdout)
  t.match(info, { kind: 'image', pageSize: 65536, size: LOWER_SIZE, readOnly: false, lower: { path: lower, size: LOWER_SIZE }, pages: { total: 64, data: 0, zero: 0, lower: 64 } })
  const human = await runCli(['create', join(dir, 'store3'), '--lower', lower])
  t.match(human.stdout, /^created \S+store3: 4\.0 MiB image over \S+lower\.img, page size 4\.0 KiB\n$/)
})

t.test('write from stdin and read to stdout, byte-exact', async (t) => {
  const { store } = await setup(t)
  const data = randomBytes(10_000)
  const w = await runCli(['write', store, '--offset', '1000'], { stdin: data })
  t.equal(w.code, 0, w.stderr)
  t.equal(w.stdout, 'wrote 10000 bytes (9.8 KiB) at offset 1000\n')
  const expected = expectedLower(LOWER_SIZE, REGIONS)
  data.copy(expected, 1000)
  const r = await runCli(['read', store, '--offset', '0', '--length', '20000'])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '')
  t.ok(r.stdoutBytes.equals(expected.subarray(0, 20000)), 'the lower with the write laid over it')

  const whole = await runCli(['read', store, '--offset', '0', '--length', '4M'])
  t.ok(whole.stdoutBytes.equals(expected), 'the whole image')
  const tail = await runCli(['read', store, '--offset', String(LOWER_SIZE - 10), '--length', '100'])
  t.equal(tail.stdoutBytes.length, 10, 'a read is shorter at the end of the image')
  const past = await runCli(['read', store, '--offset', '8M', '--length', '100'])
  t.equal(past.code, 0)
  t.equal(past.stdoutBytes.length, 0, 'nothing past the end')
})

t.test('write --input and read --output go through files', async (t) => {
  const { dir, store } = await setup(t)
  const input = join(dir, 'in.bin')
  const output = join(dir, 'out.bin')
  const data = randomBytes(300 * KiB)
  writeFileSync(input, data)
  t.equal((await runCli(['write', store, '--offset', '1M', '--input', input])).code, 0)
  const r = await runCli(['read', store, '--offset', '1M', '--length', '300KiB', '--output', output])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, '', 'nothing on stdout')
  t.ok(readFileSync(output).equals(data))
})

t.test('a stream bigger than one write is cut at page boundaries: no page is copied up twice', async (t) => {
  const { store } = await setup(t)
  const length = 17 * MiB + 123
  const data = randomBytes(length)
  // Odd-sized pieces, as a pipe delivers them.
  const pieces = [data.subarray(0, 3), data.subarray(3, 70_001), data.subarray(70_001)]
  const w = await runCli(['write', store, '--offset', '1000'], { stdin: pieces })
  t.equal(w.code, 0, w.stderr)
  const info = JSON.parse((await runCli(['inspect', store, '--json'])).stdout).info
  const touchedPages = Math.ceil((1000 + length) / 4096)
  t.equal(info.written.userBytes, length)
  t.equal(info.written.upperBytes, touchedPages * 4096, 'the upper got each touched page once')
  t.equal(info.size, 1000 + length, 'the image grew')
  const r = await runCli(['read', store, '--offset', '1000', '--length', String(length)])
  t.ok(r.stdoutBytes.equals(data), 'read back byte-exact')
})

t.test('inspect: the page map with a legend and totals; --json gives info and cells', async (t) => {
  const { store } = await setup(t)
  await runCli(['write', store, '--offset', '0'], { stdin: Buffer.alloc(4096, 7) })
  await runCli(['zero', store, '--offset', '2M', '--length', '64k'])
  const human = await runCli(['inspect', store])
  t.equal(human.code, 0, human.stderr)
  t.match(human.stdout, /page map: 1 cell = 1 page \(4\.0 KiB\); 1024 cells, 64 per row/)
  t.match(human.stdout, /^legend: █ data \(upper\)/m)
  t.match(human.stdout, /^ +0 B │█░{15}·/m, 'the first row: the written page, then lower data, then holes')
  t.match(human.stdout, /^█ data +1 +4\.0 KiB$/m)
  t.match(human.stdout, /^▒ zero +16 +64\.0 KiB$/m)
  t.match(human.stdout, /^ +total +1024 +4\.0 MiB$/m)
  t.match(human.stdout, /^upper on disk +4\.0 KiB allocated/m)
  t.match(human.stdout, /^database +\d/m)
  t.match(human.stdout, /^write amplification +1\.00×$/m)

  const json = await runCli(['inspect', store, '--json', '--width', '16'])
  t.equal(json.code, 0, json.stderr)
  const { info, map } = JSON.parse(json.stdout)
  t.match(info, { kind: 'image', readOnly: true, pageSize: 4096, pages: { total: 1024, data: 1, zero: 16, lower: 1007 } })
  t.match(map, { pageSize: 4096, size: LOWER_SIZE, width: 16, pagesPerCell: 4 })
  t.equal(map.cells.length, 256)
  t.equal(map.cells[0], 'data')
  t.equal(map.cells[1], 'lower')
  t.equal(map.cells[(2 * MiB) / 4096 / 4], 'zero')
  t.equal(map.totals.data.pages, info.pages.data)
  t.equal(map.totals.lower.pages + map.totals.hole.pages, info.pages.lower)
  const narrow = await runCli(['inspect', store, '--width', '16'])
  t.match(narrow.stdout, /^ +0 B │█░{3}·{12}$/m, 'rows of 16 cells')
})

t.test('map: qemu-img JSON with --output=json, a table by default', async (t) => {
  const { store } = await setup(t)
  await runCli(['write', store, '--offset', '8k'], { stdin: Buffer.alloc(4096, 1) })
  await runCli(['zero', store, '--offset', '2M', '--length', '64k'])
  const json = await runCli(['map', store, '--output=json'])
  t.equal(json.code, 0, json.stderr)
  const expected = [
    { start: 0, length: 8192, depth: 1, present: true, zero: false, data: true, offset: 0 },
    { start: 8192, length: 4096, depth: 0, present: true, zero: false, data: true, offset: 8192 },
    { start: 12288, length: 65536 - 12288, depth: 1, present: true, zero: false, data: true, offset: 12288 },
    { start: 65536, length: MiB - 65536, depth: 1, present: true, zero: true, data: false, offset: 65536 },
    { start: MiB, length: 128 * KiB, depth: 1, present: true, zero: false, data: true, offset: MiB },
    { start: MiB + 128 * KiB, length: MiB - 128 * KiB, depth: 1, present: true, zero: true, data: false, offset: MiB + 128 * KiB },
    { start: 2 * MiB, length: 64 * KiB, depth: 0, present: true, zero: true, data: false },
    { start: 2 * MiB + 64 * KiB, length: 2 * MiB - 64 * KiB, depth: 1, present: true, zero: true, data: false, offset: 2 * MiB + 64 * KiB },
  ]
  const entries = JSON.parse(json.stdout) as Array<Record<string, unknown>>
  t.strictSame(entries, expected)
  for (const e of entries) {
    const keys = ['start', 'length', 'depth', 'present', 'zero', 'data', ...('offset' in e ? ['offset'] : [])]
    t.strictSame(Object.keys(e), keys, 'qemu-img field names, in its order')
  }
  const lines = json.stdout.split('\n')
  t.equal(lines.length, expected.length + 1, 'one entry per line')
  t.match(lines[0], /^\[\{ "start": 0, "length": 8192, "depth": 1, "present": true, "zero": false, "data": true, "offset": 0\},$/)
  t.match(lines[expected.length - 1], /\}\]$/)

  t.equal((await runCli(['map', store, '--json'])).stdout, json.stdout, '--json is --output=json')
  const part = await runCli(['map', store, '--output', 'json', '--offset', '1M', '--length', '64k'])
  t.strictSame(JSON.parse(part.stdout), [{ start: MiB, length: 64 * KiB, depth: 1, present: true, zero: false, data: true, offset: MiB }])

  const human = await runCli(['map', store])
  t.equal(human.code, 0, human.stderr)
  const rows = human.stdout.trimEnd().split('\n')
  t.match(rows[0], /START.*LENGTH.*STATE/)
  t.equal(rows.length, expected.length + 1, 'a header and one row per extent')
  t.match(rows[2], /^\s+8192 8\.0 KiB\s+4096 4\.0 KiB\s+data$/)
  t.match(rows[7], /^\s+2097152 2\.0 MiB\s+65536 64\.0 KiB\s+zero$/)
})

t.test('zero, discard, truncate and flush', async (t) => {
  const { store } = await setup(t)
  const z = await runCli(['zero', store, '--offset', '0', '--length', '8k'])
  t.equal(z.code, 0, z.stderr)
  t.equal(z.stdout, 'zeroed 8192 bytes (8.0 KiB) at offset 0\n')
  const zeros = await runCli(['read', store, '--offset', '0', '--length', '8k'])
  t.ok(zeros.stdoutBytes.equals(Buffer.alloc(8192)), 'zeroed bytes read as zeros')

  const d = await runCli(['discard', store, '--offset', String(MiB + 100), '--length', '64k'])
  t.equal(d.code, 0, d.stderr)
  const map = JSON.parse((await runCli(['map', store, '--json', '--offset', '1M', '--length', '80k'])).stdout) as Array<{ start: number; length: number; zero: boolean; depth: number }>
  t.strictSame(
    map.map((e) => [e.start - MiB, e.length, e.depth, e.zero]),
    [
      [0, 4096, 1, false],
      [4096, 60 * KiB, 0, true],
      [64 * KiB, 16 * KiB, 1, false],
    ],
    'only the whole pages inside the range became ZERO',
  )

  const down = await runCli(['truncate', store, '--size', '1M'])
  t.equal(down.code, 0, down.stderr)
  t.equal(down.stdout, 'size 1048576 bytes (1.0 MiB), was 4194304 bytes (4.0 MiB)\n')
  const up = await runCli(['truncate', store, '--size', '2M'])
  t.equal(up.code, 0, up.stderr)
  const regrown = await runCli(['read', store, '--offset', '1M', '--length', '1M'])
  t.ok(regrown.stdoutBytes.equals(Buffer.alloc(MiB)), 'regrown bytes read zeros, not the old lower')
  const info = JSON.parse((await runCli(['inspect', store, '--json'])).stdout).info
  t.equal(info.size, 2 * MiB)

  const f = await runCli(['flush', store])
  t.equal(f.code, 0, f.stderr)
  t.match(f.stdout, /^flushed \S+store\n$/)
})

t.test('write and zero say when they grew the image', async (t) => {
  const { store } = await setup(t)
  const inside = await runCli(['write', store, '--offset', '1M'], { stdin: 'hello' })
  t.equal(inside.stdout, 'wrote 5 bytes at offset 1048576\n', 'a write inside the image says nothing more')
  const far = await runCli(['write', store, '--offset', '100G'], { stdin: 'hello' })
  t.equal(far.code, 0, far.stderr)
  t.equal(
    far.stdout,
    'wrote 5 bytes at offset 107374182400; the image grew from 4194304 bytes (4.0 MiB) to 107374182405 bytes (100.0 GiB) (pagecow truncate STORE --size 4194304 undoes it)\n',
  )
  const zero = await runCli(['zero', store, '--offset', '200G', '--length', '4k'])
  t.match(zero.stdout, /^zeroed 4096 bytes \(4\.0 KiB\) at offset 214748364800; the image grew from 107374182405 bytes \(100\.0 GiB\) to 214748368896 bytes \(200\.0 GiB\)/)
  const zeroInside = await runCli(['zero', store, '--offset', '0', '--length', '4k'])
  t.equal(zeroInside.stdout, 'zeroed 4096 bytes (4.0 KiB) at offset 0\n')
  t.equal((await runCli(['truncate', store, '--size', '4M'])).code, 0, 'and truncate undoes it')
  t.match(JSON.parse((await runCli(['inspect', store, '--json'])).stdout), { info: { size: LOWER_SIZE } })
})

t.test('fsck: exit 0 when clean, 4 with the problems when not', async (t) => {
  const { lower, store } = await setup(t)
  const clean = await runCli(['fsck', store])
  t.equal(clean.code, 0, clean.stderr)
  t.match(clean.stdout, /: clean \(checked \d+ chunks?, 0 data pages, 0 zero pages\)\n$/)
  const cleanJson = await runCli(['fsck', store, '--json'])
  t.match(JSON.parse(cleanJson.stdout), { clean: true, problems: [], checked: { dataPages: 0 } })

  utimesSync(lower, new Date(2000, 0, 1), new Date(2000, 0, 1)) // the lower "changed"
  const stale = await runCli(['fsck', store])
  t.equal(stale.code, 4, 'exit 4: not clean')
  t.match(stale.stderr, /^pagecow: \S+ is not clean: 1 problem, the first: .* \(ESTALE\)\n$/, 'one line on stderr')
  t.match(stale.stdout, /^ESTALE {2}the lower image .* changed/m, 'the problems on stdout')
  const staleJson = await runCli(['fsck', store, '--json'])
  t.equal(staleJson.code, 4)
  const report = JSON.parse(staleJson.stdout)
  t.equal(report.clean, false)
  t.equal(report.problems[0].code, 'ESTALE')
})

t.test('export: the merged image as a sparse raw file', async (t) => {
  const { dir, lower, store } = await setup(t)
  await runCli(['write', store, '--offset', '3M'], { stdin: Buffer.alloc(8192, 9) })
  const output = join(dir, 'out.img')
  const e = await runCli(['export', store, output])
  t.equal(e.code, 0, e.stderr)
  t.equal(e.stderr, '', 'no progress bar when stderr is not a terminal')
  t.match(e.stdout, /^exported 4\.0 MiB to \S+out\.img: 200\.0 KiB of data copied, the rest left sparse\n$/)
  const whole = (await runCli(['read', store, '--offset', '0', '--length', '4M'])).stdoutBytes
  t.ok(readFileSync(output).equals(whole), 'the export reads as the store does')
  t.ok(statSync(output).blocks * 512 < LOWER_SIZE / 2, 'the export is sparse')

  const again = await runCli(['export', store, output])
  assertFails(t, again, 'EEXIST')
  t.match(again.stderr, /--force/)
  const onLower = await runCli(['export', store, lower, '--force'])
  assertFails(t, onLower, 'EINVAL')
  t.ok(readFileSync(lower).equals(expectedLower(LOWER_SIZE, REGIONS)), 'export --force never overwrites the lower')
  const forced = await runCli(['export', store, output, '--force', '--json'])
  t.equal(forced.code, 0, forced.stderr)
  t.strictSame(JSON.parse(forced.stdout), { bytesCopied: 200 * KiB, size: LOWER_SIZE })
})

t.test('demo: a sample store and its page map', async (t) => {
  const dir = join(t.testdir(), 'demo')
  const d = await runCli(['demo', dir])
  t.equal(d.code, 0, d.stderr)
  t.match(d.stdout, new RegExp(`^pagecow demo in ${dir}\n`))
  t.match(d.stdout, /^legend: /m)
  t.match(d.stdout, /^page map: 1 cell = 64 pages/m)
  t.match(d.stdout, /█/, 'the writes show')
  t.match(d.stdout, /▒/, 'the zeroed range shows')
  t.equal((await runCli(['fsck', join(dir, 'store')])).code, 0, 'the demo store is clean')
  const lowerBlocks = statSync(join(dir, 'lower.img')).blocks * 512
  t.ok(lowerBlocks <= 4 * MiB, `the sample lower is sparse (${lowerBlocks} bytes on disk)`)
  assertFails(t, await runCli(['demo', dir]), 'EEXIST')
})

t.test('demo without DIR uses a new directory under the temp dir and says where', async (t) => {
  const d = await runCli(['demo'])
  t.equal(d.code, 0, d.stderr)
  const where = /^pagecow demo in (.+)$/m.exec(d.stdout)?.[1]
  t.ok(where, 'it prints the directory')
  if (where) {
    t.teardown(() => rmSync(where, { recursive: true, force: true }))
    t.strictSame(readdirSync(where).sort(), ['lower.img', 'store'])
  }
})

t.test('--help everywhere, --version', async (t) => {
  for (const name of ['create', 'inspect', 'map', 'read', 'write', 'zero', 'discard', 'truncate', 'flush', 'fsck', 'export', 'demo']) {
    const h = await runCli([name, '--help'])
    t.equal(h.code, 0, `${name} --help`)
    t.match(h.stdout, new RegExp(`^Usage: pagecow ${name} `), `${name} usage`)
    t.match(h.stdout, /--debug/)
    t.match(h.stdout, /Examples:/)
    t.equal(h.stderr, '')
  }
  const top = await runCli(['--help'])
  t.equal(top.code, 0)
  t.match(top.stdout, /Commands:[^]*inspect[^]*demo/)
  t.equal((await runCli(['help', 'map'])).code, 0)
  const v = await runCli(['--version'])
  t.equal(v.code, 0)
  t.match(v.stdout, /^\d+\.\d+\.\d+/)
  const none = await runCli([])
  t.equal(none.code, 2, 'no command is a usage error')
  t.match(none.stderr, /^Usage: pagecow/, 'with the help on stderr')
})

t.test('the stack trace only with --debug or PAGECOW_DEBUG=1', async (t) => {
  const dir = t.testdir()
  const plain = await runCli(['inspect', join(dir, 'nowhere')])
  assertFails(t, plain, 'ENOENT')
  const debug = await runCli(['inspect', join(dir, 'nowhere'), '--debug'])
  t.equal(debug.code, 1)
  t.match(debug.stderr, /^pagecow: no pagecow store at .* \(ENOENT\)\nPagecowError: .*\n\s+at /)
  const env = await runCli(['inspect', join(dir, 'nowhere')], { env: { PAGECOW_DEBUG: '1' } })
  t.match(env.stderr, /\n\s+at /)
})

/** Why files cannot be made unwritable here (root ignores modes: it needs chattr +i), or undefined. */
function unwritableUnsupported(probeDir: string): string | undefined {
  if (process.getuid?.() !== 0) return undefined
  const probe = join(probeDir, 'chattr-probe')
  writeFileSync(probe, '')
  try {
    execFileSync('chattr', ['+i', probe], { stdio: 'pipe' })
    execFileSync('chattr', ['-i', probe], { stdio: 'pipe' })
    return undefined
  } catch (err) {
    return `running as root and chattr +i is not available here: ${(err as Error).message.split('\n')[0]}`
  }
}

/**
 * Make every file of `dir` and `dir` itself unwritable, with modes or (as root) chattr +i.
 * Returns the undo: run it before the test ends, the test dir is removed at teardown.
 */
function makeUnwritable(dir: string): () => Promise<void> {
  const paths = [...readdirSync(dir).map((f) => join(dir, f)), dir]
  if (process.getuid?.() !== 0) {
    for (const p of paths) chmodSync(p, p === dir ? 0o555 : 0o444)
    return async () => {
      for (const p of paths) chmodSync(p, p === dir ? 0o755 : 0o644)
    }
  }
  execFileSync('chattr', ['+i', ...paths], { stdio: 'pipe' })
  return async () => {
    execFileSync('chattr', ['-i', ...paths], { stdio: 'pipe' })
  }
}

interface BadInput {
  name: string
  /** The arguments, given the paths of a fresh setup. */
  argv: (p: { dir: string; lower: string; store: string }) => string[]
  code: string
  /** A commander parse error: the error line is followed by a hint to --help. */
  usage?: boolean
  stdin?: string
  /** Why the case cannot run on this machine, if it cannot; given a scratch directory. */
  unsupported?: (scratch: string) => string | undefined
  /** Arrange the trouble; returns the cleanup, if any. */
  arrange?: (p: { dir: string; lower: string; store: string }) => Promise<(() => Promise<void>) | void>
}

const BAD_INPUTS: BadInput[] = [
  { name: 'negative offset', argv: ({ store }) => ['read', store, '--offset', '-1', '--length', '1'], code: 'EINVAL', usage: true },
  { name: 'negative offset with =', argv: ({ store }) => ['read', store, '--offset=-4k', '--length', '1'], code: 'EINVAL', usage: true },
  { name: 'fractional offset', argv: ({ store }) => ['read', store, '--offset', '1.5', '--length', '1'], code: 'EINVAL', usage: true },
  { name: 'fractional size with suffix', argv: ({ store }) => ['zero', store, '--offset', '0', '--length', '0.5M'], code: 'EINVAL', usage: true },
  { name: 'garbage offset', argv: ({ store }) => ['map', store, '--offset', 'abc'], code: 'EINVAL', usage: true },
  { name: 'garbage suffix', argv: ({ store }) => ['read', store, '--offset', '0', '--length', '12q'], code: 'EINVAL', usage: true },
  { name: 'empty offset', argv: ({ store }) => ['write', store, '--offset', ''], code: 'EINVAL', usage: true },
  { name: 'offset past 2^53', argv: ({ store }) => ['read', store, '--offset', '99999999999P', '--length', '1'], code: 'EINVAL', usage: true },
  { name: 'size past the 4 PiB limit', argv: ({ store }) => ['truncate', store, '--size', '5P'], code: 'EFBIG' },
  { name: 'bad page size 3000', argv: ({ dir, lower }) => ['create', join(dir, 'new'), '--lower', lower, '--page-size', '3000'], code: 'EINVAL', usage: true },
  { name: 'page size 2M is too big', argv: ({ dir, lower }) => ['create', join(dir, 'new'), '--lower', lower, '--page-size', '2M'], code: 'EINVAL', usage: true },
  { name: 'bad --output format', argv: ({ store }) => ['map', store, '--output', 'xml'], code: 'EINVAL', usage: true },
  { name: '--json with --output=human', argv: ({ store }) => ['map', store, '--json', '--output=human'], code: 'EINVAL', usage: true },
  { name: 'width 0', argv: ({ store }) => ['inspect', store, '--width', '0'], code: 'EINVAL', usage: true },
  { name: 'unknown option', argv: ({ store }) => ['map', store, '--bogus'], code: 'EINVAL', usage: true },
  { name: 'misspelled option', argv: ({ store }) => ['read', store, '--ofset', '0', '--length', '1'], code: 'EINVAL', usage: true },
  { name: 'unknown command', argv: () => ['frobnicate'], code: 'EINVAL', usage: true },
  { name: 'missing --lower', argv: ({ dir }) => ['create', join(dir, 'new')], code: 'EINVAL', usage: true },
  { name: 'missing STORE', argv: () => ['inspect'], code: 'EINVAL', usage: true },
  { name: 'missing --length', argv: ({ store }) => ['read', store, '--offset', '0'], code: 'EINVAL', usage: true },
  { name: 'an option without its value', argv: ({ store }) => ['write', store, '--offset'], code: 'EINVAL', usage: true },
  { name: 'an extra argument', argv: ({ store }) => ['flush', store, 'extra'], code: 'EINVAL', usage: true },
  { name: 'store does not exist', argv: ({ dir }) => ['inspect', join(dir, 'nowhere')], code: 'ENOENT' },
  { name: 'store does not exist (write)', argv: ({ dir }) => ['write', join(dir, 'nowhere'), '--offset', '0'], code: 'ENOENT', stdin: 'x' },
  { name: 'fsck of no store', argv: ({ dir }) => ['fsck', join(dir, 'nowhere')], code: 'ENOENT' },
  { name: 'lower does not exist', argv: ({ dir }) => ['create', join(dir, 'new'), '--lower', join(dir, 'missing.img')], code: 'ENOENT' },
  { name: 'create over an existing store', argv: ({ store, lower }) => ['create', store, '--lower', lower], code: 'EEXIST' },
  { name: '--input does not exist', argv: ({ store, dir }) => ['write', store, '--offset', '0', '--input', join(dir, 'missing.bin')], code: 'ENOENT' },
  { name: '--output in a missing directory', argv: ({ store, dir }) => ['read', store, '--offset', '0', '--length', '1', '--output', join(dir, 'no', 'out.bin')], code: 'ENOENT' },
  { name: 'export over the lower', argv: ({ store, lower }) => ['export', store, lower, '--force'], code: 'EINVAL' },
  { name: 'read --output into the store', argv: ({ store }) => ['read', store, '--offset', '0', '--length', '1', '--output', join(store, 'upper.img')], code: 'EINVAL' },
  {
    name: 'second writer',
    argv: ({ store }) => ['write', store, '--offset', '0'],
    stdin: 'x',
    code: 'EBUSY',
    arrange: async ({ store }) => {
      const holder = await ImageStore.open(store)
      return () => holder.close()
    },
  },
  {
    name: 'a changed lower',
    argv: ({ store }) => ['inspect', store],
    code: 'ESTALE',
    arrange: async ({ lower }) => {
      utimesSync(lower, new Date(2000, 0, 1), new Date(2000, 0, 1))
    },
  },
  {
    name: 'read-only store write',
    argv: ({ store }) => ['write', store, '--offset', '0'],
    stdin: 'x',
    code: '(?:EACCES|EROFS)',
    unsupported: unwritableUnsupported,
    arrange: async ({ store }) => makeUnwritable(store),
  },
]

t.test('bad input: exit 1 (2 for usage) and one line naming the error code', async (t) => {
  const scratch = t.testdir()
  for (const bad of BAD_INPUTS) {
    const reason = bad.unsupported?.(scratch)
    if (reason !== undefined && REQUIRE_ALL) {
      cannotRunPart(t, `${bad.name}: ${reason}`)
      continue
    }
    await t.test(bad.name, reason === undefined ? {} : { skip: reason }, async (t) => {
      const paths = await setup(t)
      const cleanup = await bad.arrange?.(paths)
      try {
        const run = await runCli(bad.argv(paths), bad.stdin === undefined ? {} : { stdin: bad.stdin })
        assertFails(t, run, bad.code, { usage: bad.usage })
        if (bad.argv(paths).includes('--json')) t.match(JSON.parse(run.stdout), { error: { code: new RegExp(`^${bad.code}$`) } }, 'with --json, the error as JSON on stdout')
        else t.equal(run.stdout, '', 'nothing on stdout')
      } finally {
        await cleanup?.()
      }
    })
  }
})
