// Crash safety (SPEC §3): a store killed at any instant opens, every page reads its content at the
// last completed flush or a later write, never garbage or another page's bytes, and fsck is clean.
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { checkStore } from '../lib/image/fsck.js'
import { ImageStore } from '../lib/image/image-store.js'
import { describeBytes, pattern } from '../tools/crash/pattern.js'
import type { LogEntry } from '../tools/crash/workload.js'
import { ImageModel } from './fixtures/image-model.js'
import { makeLower } from './fixtures/lower.js'
import { Random, testSeeds } from './fixtures/random.js'

const WORKLOAD = fileURLToPath(new URL('../tools/crash/workload.ts', import.meta.url))

/**
 * What a kill -9 leaves on disk, taken from a live store: the database, its WAL and the upper as
 * they are now (a killed process loses nothing the kernel already has). The -shm and the lock are
 * process state and are not copied.
 */
function crashImage(storeDir: string, to: string): string {
  mkdirSync(to)
  for (const f of ['pagecow.db', 'pagecow.db-wal', 'upper.img']) {
    if (existsSync(`${storeDir}/${f}`)) copyFileSync(`${storeDir}/${f}`, `${to}/${f}`)
  }
  return to
}

t.test('crash images taken from a live store', async (t) => {
  const P = 4096
  const dir = t.testdir()
  const lower = makeLower(`${dir}/lower.img`, 8 * P + 300, new Random(1), 1)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  const flushed = new ImageModel(P, lower)

  // Committed: a partial page at the end of a shrunk image, and some DATA and ZERO pages.
  await store.truncate(2 * P + 100)
  await store.write(2 * P, Buffer.alloc(100, 1))
  await store.write(0, Buffer.alloc(P, 2))
  await store.zero(P, P)
  await store.flush()
  flushed.truncate(2 * P + 100)
  flushed.write(2 * P, Buffer.alloc(100, 1))
  flushed.write(0, Buffer.alloc(P, 2))
  flushed.zero(P, P)
  // Not committed: bytes past the committed end of the last page, and more.
  await store.write(2 * P + 100, Buffer.alloc(500, 3))
  await store.write(0, Buffer.alloc(10, 4))
  await store.write(5 * P, Buffer.alloc(P, 5))
  const before = crashImage(`${dir}/store`, `${dir}/crash-1`)

  // A flush caught before its commit (the snapshot and fdatasync run after flush() returns).
  const flushing = store.flush()
  const during = crashImage(`${dir}/store`, `${dir}/crash-2`)
  await flushing
  await store.close()

  for (const image of [before, during]) {
    const report = await checkStore(image)
    t.ok(report.clean, `${image}: fsck is clean`, { problems: report.problems })
    const crashed = await ImageStore.open(image, { autoFlushMs: 0 })
    t.equal(crashed.size, flushed.size, 'the size is the committed one')
    const head = await crashed.read(0, 10)
    t.ok(head.equals(Buffer.alloc(10, 2)) || head.equals(Buffer.alloc(10, 4)), 'page 0 reads its flushed content or the later write')
    t.same(await crashed.read(P, P), Buffer.alloc(P), 'the ZERO page reads zeros')

    // SPEC §4 after a crash: growing the image reads zeros in the gap, never bytes of a write
    // the crash lost (they sit in the upper past the committed end of a DATA page).
    const model = new ImageModel(P, { size: crashed.size, data: [], bytes: await crashed.read(0, crashed.size) })
    await crashed.write(2 * P + 1000, Buffer.from('after'))
    model.write(2 * P + 1000, Buffer.from('after'))
    t.same(await crashed.read(2 * P, 2000), model.read(2 * P, 2000), 'a write past the end: the gap reads zeros')
    await crashed.truncate(4 * P)
    model.truncate(4 * P)
    await crashed.zero(3 * P + 7, 1)
    model.zero(3 * P + 7, 1)
    t.same(await crashed.read(0, crashed.size), model.read(0, model.size), 'truncate and zero past the end: zeros')
    await crashed.close()
    t.ok((await checkStore(image)).clean, 'fsck is still clean')
  }

})

/** The log of one run of the workload, parsed; a torn last line was never acted on. */
function readLog(path: string): LogEntry[] {
  const entries: LogEntry[] = []
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue
    try {
      entries.push(JSON.parse(line) as LogEntry)
    } catch {
      break
    }
  }
  return entries
}

function apply(model: ImageModel, e: LogEntry): void {
  if (e.k === 'write') model.write(e.offset, pattern(e.op, e.offset, e.length))
  else if (e.k === 'zero') model.zero(e.offset, e.length)
  else if (e.k === 'discard') model.discard(e.offset, e.length)
  else if (e.k === 'truncate') model.truncate(e.size)
}


/**
 * What the store may hold after a kill: for every page, its content at the last durable point
 * and after each later logged op; the sizes likewise.
 */
function allowedStates(baseline: ImageModel, entries: LogEntry[]) {
  const durable = Math.max(-1, ...entries.flatMap((e) => (e.k === 'durable' ? [e.op] : [])))
  const ops = entries.filter((e): e is Extract<LogEntry, { op: number }> => 'op' in e && e.k !== 'durable')
  const model = baseline.clone()
  for (const e of ops) if (e.op <= durable) apply(model, e)
  const P = model.pageSize
  const pages = new Map<number, Buffer[]>()
  const pageOf = (m: ImageModel, p: number) => {
    const out = Buffer.alloc(P)
    m.bytes.copy(out, 0, p * P, Math.min(m.bytes.length, (p + 1) * P))
    return out
  }
  const capacity = () => Math.ceil(model.bytes.length / P)
  for (let p = 0; p < capacity(); p++) pages.set(p, [pageOf(model, p)])
  const sizes = new Set([model.size])
  let later = 0
  for (const e of ops) {
    if (e.op <= durable) continue
    later++
    apply(model, e)
    sizes.add(model.size)
    for (let p = 0; p < capacity(); p++) {
      const now = pageOf(model, p)
      const seen = pages.get(p) ?? [Buffer.alloc(P)]
      if (!seen.some((b) => b.equals(now))) seen.push(now)
      pages.set(p, seen)
    }
  }
  return { durable, later, pages, sizes }
}

/** Start the workload and SIGKILL it once it has logged `killAfter` lines (plus a random delay). */
async function runAndKill(args: string[], logPath: string, killAfter: number, delayMs: number): Promise<{ killed: boolean; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKLOAD, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  let done = false
  void exited.then(() => (done = true))
  const deadline = Date.now() + 30_000
  while (!done && Date.now() < deadline) {
    const lines = existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').length - 1 : 0
    if (lines >= killAfter) break
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  if (!done) {
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    child.kill('SIGKILL')
  }
  const code = await exited
  return { killed: code === null, stderr }
}

interface Series {
  name: string
  pageSize: number
  autoFlushMs: number
  rounds: number
}

/** Each series continues one store across its rounds; two series run at a time (2 cores). */
const SERIES: Series[] = [
  { name: 'A', pageSize: 4096, autoFlushMs: 0, rounds: 6 },
  { name: 'B', pageSize: 512, autoFlushMs: 15, rounds: 6 },
  { name: 'C', pageSize: 4096, autoFlushMs: 5, rounds: 6 },
  { name: 'D', pageSize: 1024, autoFlushMs: 30, rounds: 6 },
]
const PARALLEL = 2

/** Run one series: a fresh store, then `rounds` kills, each checked and continued. Returns rounds done. */
async function runSeries(t: Test, root: string, series: Series, rng: Random): Promise<number> {
  const P = series.pageSize
  const dir = `${root}/${series.name}`
  mkdirSync(dir)
  const lower = makeLower(`${dir}/lower.img`, 96 * P + P / 2 + 3, rng, 0.6)
  const storeDir = `${dir}/store`
  await (await ImageStore.create(storeDir, { lower: lower.path, pageSize: P, autoFlushMs: 0 })).close()
  let baseline = new ImageModel(P, lower)
  let nextOp = 1
  for (let r = 0; r < series.rounds; r++) {
    const logPath = `${dir}/log-${r}.jsonl`
    writeFileSync(logPath, '')
    const killAfter = rng.int(2, 150)
    const delay = rng.int(0, 15)
    const args = ['--store', storeDir, '--log', logPath, '--seed', String(rng.int(0, 2 ** 31)), '--first-op', String(nextOp), '--auto-flush', String(series.autoFlushMs), '--max-pages', '160']
    const started = Date.now()
    const { killed, stderr } = await runAndKill(args, logPath, killAfter, delay)
    const ran = Date.now() - started
    const entries = readLog(logPath)
    const label = `${series.name} (P=${P}, auto-flush ${series.autoFlushMs} ms) round ${r}, killed after ${entries.length} log lines`
    if (!killed && !entries.some((e) => e.k === 'closed')) {
      t.fail(`${label}: the workload failed on its own`, { stderr })
      return r
    }
    if (!t.ok(entries.some((e) => e.k === 'open'), `${label}: the workload opened the store`, { stderr })) return r
    const ops = entries.filter((e) => 'op' in e && e.k !== 'durable') as Array<{ op: number }>
    nextOp = (ops.at(-1)?.op ?? nextOp - 1) + 1 // the op in flight may have written: never reuse its number

    const fsck = await checkStore(storeDir)
    t.ok(fsck.clean, `${label}: fsck is clean after the kill`, { problems: fsck.problems })
    const allowed = allowedStates(baseline, entries)
    const store = await ImageStore.open(storeDir, { readOnly: true })
    const size = store.size
    t.ok(allowed.sizes.has(size), `${label}: size ${size} is one the log allows`, { allowed: [...allowed.sizes] })
    const image = await store.read(0, size)
    await store.close()
    let bad = 0
    for (let p = 0; p * P < size; p++) {
      const visible = image.subarray(p * P, Math.min(size, (p + 1) * P))
      const choices = allowed.pages.get(p) ?? [Buffer.alloc(P)]
      if (choices.some((c) => c.subarray(0, visible.length).equals(visible))) continue
      bad++
      if (bad <= 3) {
        t.fail(`${label}: page ${p} holds neither its content at the last flush (op ${allowed.durable}) nor a later op's`, {
          holds: describeBytes(visible, p * P),
          couldHold: choices.map((c) => describeBytes(c.subarray(0, visible.length), p * P)),
        })
      }
    }
    if (bad > 0) return r
    t.pass(`${label}: all ${Math.ceil(size / P)} pages read a flushed or later state (${allowed.later} ops after op ${allowed.durable}; ran ${ran} ms, checked in ${Date.now() - started - ran} ms)`)
    // The next round continues this store from what it holds now.
    baseline = new ImageModel(P, { size, data: [], bytes: image })
  }
  t.ok((await checkStore(storeDir)).clean, `${series.name}: fsck is clean at the end of the series`)
  return series.rounds
}

for (const seed of testSeeds([2024])) {
  t.test(`kill -9 at random moments, stores continued across kills (seed ${seed})`, async (t) => {
    const root = t.testdir()
    const queue = SERIES.map((series, i) => ({ series, rng: new Random(seed + i) }))
    let rounds = 0
    const worker = async () => {
      for (let job = queue.shift(); job; job = queue.shift()) {
        const done = await runSeries(t, root, job.series, job.rng)
        rounds += done
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker))
    t.ok(rounds >= 20, `${rounds} rounds of kill -9 checked`)
  })
}
