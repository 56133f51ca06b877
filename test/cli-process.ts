import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { runCli } from './fixtures/cli-io.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import { childEnv } from './fixtures/child-env.js'
import { cannotRunPart } from './fixtures/cannot-run.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')
const MiB = 1024 * 1024

interface Ran {
  code: number | null
  stdout: Buffer
  stderr: string
}

/** Run the CLI from source as a real process: `node --import tsx lib/cli/bin.ts ...args`. */
function pagecow(args: string[], stdin?: Buffer): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], { cwd: ROOT, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }))
    child.stdin.end(stdin)
  })
}

function which(command: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

/**
 * A sparse 4 MiB lower with data at [0, 64 KiB) and [1 MiB, 1 MiB + 128 KiB), and a store over
 * it, made in-process: only what a test is about runs as a separate process.
 */
async function storeOverLower(t: Test) {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  const store = join(dir, 'store')
  makeSparseLower(lower, 4 * MiB, [
    [0, 64 * 1024],
    [MiB, 128 * 1024],
  ])
  const created = await runCli(['create', store, '--lower', lower])
  t.equal(created.code, 0, created.stderr)
  return { dir, lower, store }
}

t.test('--help exits 0 and prints usage on stdout', async (t) => {
  const r = await pagecow(['--help'])
  t.equal(r.code, 0)
  t.match(r.stdout.toString(), /^Usage: pagecow /)
  t.equal(r.stderr, '')
})

t.test('a write from stdin, then a read to stdout, byte-exact', async (t) => {
  const { store } = await storeOverLower(t)
  const data = randomBytes(100_000)
  const w = await pagecow(['write', store, '--offset', '5000'], data)
  t.equal(w.code, 0, w.stderr)
  const r = await pagecow(['read', store, '--offset', '5000', '--length', '100000'])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.length, data.length)
  t.ok(r.stdout.equals(data), 'the same bytes came back')
})

t.test('an error: exit 1, a single stderr line, no stack', async (t) => {
  const r = await pagecow(['inspect', join(t.testdir(), 'nowhere')])
  t.equal(r.code, 1)
  t.match(r.stderr, /^pagecow: no pagecow store at .* \(ENOENT\)\n$/)
  t.equal(r.stdout.length, 0)
})

t.test('demo in a test dir finishes and prints the legend', async (t) => {
  const r = await pagecow(['demo', join(t.testdir(), 'demo')])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout.toString(), /^legend: /m)
})

const qemuImg = which('qemu-img')
const qemuMissing = qemuImg ? undefined : 'qemu-img is not on PATH (install qemu-utils)'
if (qemuMissing) cannotRunPart(t, `the qemu-img checks: ${qemuMissing}`)

interface QemuEntry {
  start: number
  length: number
  data: boolean
  [field: string]: unknown
}

/** The byte ranges marked data, adjacent ones merged. */
function dataRanges(entries: QemuEntry[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = []
  for (const e of entries) {
    if (!e.data) continue
    const last = ranges[ranges.length - 1]
    if (last && last[1] === e.start) last[1] = e.start + e.length
    else ranges.push([e.start, e.start + e.length])
  }
  return ranges
}

t.test('qemu-img agrees: where the export holds data, and the map field names', { skip: qemuMissing }, async (t) => {
  const { dir, store } = await storeOverLower(t)
  t.equal((await runCli(['write', store, '--offset', '8k'], { stdin: Buffer.alloc(4096, 1) })).code, 0)
  t.equal((await runCli(['write', store, '--offset', '3M'], { stdin: Buffer.alloc(64 * 1024, 2) })).code, 0)
  t.equal((await runCli(['zero', store, '--offset', '1M', '--length', '64k'])).code, 0)
  const exported = join(dir, 'out.img')
  const e = await runCli(['export', store, exported])
  t.equal(e.code, 0, e.stderr)

  const ours = await pagecow(['map', store, '--output=json'])
  t.equal(ours.code, 0, ours.stderr)
  const oursText = ours.stdout.toString()
  const ourEntries = JSON.parse(oursText) as QemuEntry[]
  const qemuText = execFileSync(qemuImg!, ['map', '--output=json', '-f', 'raw', exported], { encoding: 'utf8' })
  const qemuEntries = JSON.parse(qemuText) as QemuEntry[]

  t.strictSame(dataRanges(ourEntries), dataRanges(qemuEntries), 'pagecow map and qemu-img map of the export see data in the same places')
  t.strictSame(dataRanges(ourEntries), [
    [0, 64 * 1024],
    [MiB + 64 * 1024, MiB + 128 * 1024],
    [3 * MiB, 3 * MiB + 64 * 1024],
  ])

  const qemuFields = new Set(qemuEntries.flatMap((entry) => Object.keys(entry)))
  const ourFields = new Set(ourEntries.flatMap((entry) => Object.keys(entry)))
  for (const field of ourFields) t.ok(qemuFields.has(field), `qemu-img prints "${field}" too`)
  // Newer qemu-img (8.2+) also prints "compressed", which a raw image or pagecow never has.
  for (const field of qemuFields) if (field !== 'compressed') t.ok(ourFields.has(field), `pagecow prints qemu's "${field}"`)

  const shape = /^\[?\{ "start": \d+, "length": \d+, "depth": \d+, "present": (true|false), "zero": (true|false), "data": (true|false)(, "compressed": false)?(, "offset": \d+)?\}(,|\])$/
  for (const line of qemuText.trimEnd().split('\n')) t.match(line, shape, 'qemu-img line layout')
  for (const line of oursText.trimEnd().split('\n')) t.match(line, shape, 'pagecow line layout is the same')
})
