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
import { actualFs, pagecowWithFs } from './fixtures/mock-fs.js'
import { Random, testSeeds } from './fixtures/random.js'

const WORKLOAD = fileURLToPath(new URL('../tools/crash/workload.ts', import.meta.url))

/**
 * What a kill -9 leaves on disk, taken from a live store: the database, its WAL and the upper as
 * they are now (a killed process loses nothing the kernel already has). The -shm and the lock are
 * process state and are not copied.
 */
function crashImage(storeDir: string, to: string): string {
  mkdirSync(to)
  for (const f of ['pagecow.db', 'pagecow.db-wal', 'upper.img', 'flux']) {
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

  // Each crash image is checked, then grown three ways, each on its own copy.
  type Grow = [string, (s: ImageStore | ImageModel) => unknown]
  const grows: Grow[] = [
    ['a write past the end', (s) => s.write(2 * P + 1000, Buffer.from('after'))],
    ['truncate up', (s) => s.truncate(4 * P)],
    ['zero past the end', (s) => s.zero(3 * P + 7, 1)],
  ]
  for (const [name, image] of [['before the flush', before], ['during the flush', during]] as const) {
    const report = await checkStore(image)
    t.ok(report.clean, `${name}: fsck is clean`, { problems: report.problems })
    const crashed = await ImageStore.open(image, { readOnly: true })
    t.equal(crashed.size, flushed.size, `${name}: the size is the committed one`)
    const head = await crashed.read(0, 10)
    t.ok(head.equals(Buffer.alloc(10, 2)) || head.equals(Buffer.alloc(10, 4)), `${name}: page 0 reads its flushed content or the later write`)
    t.same(await crashed.read(P, P), Buffer.alloc(P), `${name}: the ZERO page reads zeros`)
    t.same(await crashed.read(0, crashed.size), flushed.read(0, flushed.size).fill(4, 0, 10), `${name}: everything else as flushed`)
    await crashed.close()

    // SPEC §4 after a crash: growing the image reads zeros in the gap, never bytes of a write
    // the crash lost (they sit in the upper past the committed end of a DATA page).
    for (const [how, grow] of grows) {
      const copy = crashImage(image, `${image}-${how.replace(/\W+/g, '-')}`)
      const store = await ImageStore.open(copy, { autoFlushMs: 0 })
      const model = flushed.clone()
      model.write(0, Buffer.alloc(10, 4))
      await grow(store)
      grow(model)
      t.same(await store.read(0, store.size), model.read(0, model.size), `${name}, then ${how}: the gap reads zeros`)
      await store.close()
      t.ok((await checkStore(copy)).clean, `${name}, then ${how}: fsck is clean`)
    }
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

/**
 * Check a store after a crash against the log of what ran: fsck is clean, the size is one the log
 * allows, every page reads its content at the last durable point or after a later logged op.
 * Returns the image it read, or undefined after reporting failures.
 */
async function checkCrashed(t: Test, storeDir: string, baseline: ImageModel, entries: LogEntry[], label: string) {
  const P = baseline.pageSize
  const fsck = await checkStore(storeDir)
  t.ok(fsck.clean, `${label}: fsck is clean`, { problems: fsck.problems })
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
  if (bad > 0 || !fsck.clean) return undefined
  const summary = `all ${Math.ceil(size / P)} pages read a flushed or later state (${allowed.later} ops after op ${allowed.durable})`
  return { size, image, summary }
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

    const checked = await checkCrashed(t, storeDir, baseline, entries, label)
    if (!checked) return r
    t.pass(`${label}: ${checked.summary} (ran ${ran} ms, checked in ${Date.now() - started - ran} ms)`)
    const { size, image } = checked
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

t.test('power cuts: upper writes not yet fdatasynced are lost, the map never points past them', async (t) => {
  // lib/fs is replaced so that every fdatasync of the upper also keeps a copy of what it made
  // durable. A power-cut image is the database as committed plus that copy: what a disk with a
  // volatile cache holds after the power goes, if SQLite keeps its own promise (WAL, synchronous=FULL).
  const P = 4096
  const dir = t.testdir()
  const paths = new Map<number, string>()
  let synced = Buffer.alloc(0)
  let syncedFlux: Buffer | undefined
  let atSync: ((phase: 'before' | 'after') => Promise<void>) | undefined
  const keepSynced = (fd: number) => {
    const path = paths.get(fd)
    if (path?.endsWith('/upper.img')) synced = readFileSync(path)
    if (path?.endsWith('/flux')) syncedFlux = readFileSync(path)
  }
  const api = await pagecowWithFs(t, {
    openSync: ((path: string, ...rest: unknown[]) => {
      const fd = (actualFs.openSync as (...a: unknown[]) => number)(path, ...rest)
      paths.set(fd, path)
      return fd
    }) as typeof actualFs.openSync,
    closeSync: ((fd: number) => {
      paths.delete(fd)
      actualFs.closeSync(fd)
    }) as typeof actualFs.closeSync,
    fdatasync: (async (fd: number) => {
      const upper = paths.get(fd)?.endsWith('/upper.img')
      if (upper) await atSync?.('before')
      await actualFs.fdatasync(fd)
      keepSynced(fd)
      if (upper) await atSync?.('after')
    }) as typeof actualFs.fdatasync,
    fdatasyncSync: ((fd: number) => {
      actualFs.fdatasyncSync(fd)
      keepSynced(fd)
    }) as typeof actualFs.fdatasyncSync,
  })

  const rng = new Random(testSeeds([77])[0]!)
  const lower = makeLower(`${dir}/lower.img`, 64 * P + 1000, rng, 0.6)
  const storeDir = `${dir}/store`
  const store = (await api.ImageStore.create(storeDir, { lower: lower.path, pageSize: P, autoFlushMs: 0 })) as unknown as ImageStore
  const baseline = new ImageModel(P, lower)
  const entries: LogEntry[] = []
  let images = 0
  let failed = false
  const powerCut = async (when: string) => {
    if (failed) return
    const to = `${dir}/cut-${images++}`
    mkdirSync(to)
    for (const f of ['pagecow.db', 'pagecow.db-wal']) {
      if (existsSync(`${storeDir}/${f}`)) copyFileSync(`${storeDir}/${f}`, `${to}/${f}`)
    }
    writeFileSync(`${to}/upper.img`, synced)
    // The notes of pages rewritten in place, as of their last fdatasync (a flush syncs them first).
    if (syncedFlux) writeFileSync(`${to}/flux`, syncedFlux)
    if (!(await checkCrashed(t, to, baseline, entries, `power cut ${images - 1} ${when}`))) failed = true
  }
  atSync = async (phase) => {
    if (rng.chance(0.4)) await powerCut(`${phase} the upper's fdatasync in a flush`)
  }

  for (let op = 1; op <= 150 && !failed; op++) {
    const size = store.size
    const r = rng.next()
    if (r < 0.55) {
      const offset = rng.chance(0.4) ? rng.int(0, size / P + 4) * P : rng.int(0, size + 4 * P)
      const length = rng.chance(0.4) ? rng.int(1, 4) * P : rng.int(1, 3 * P)
      entries.push({ k: 'write', op, offset, length })
      await store.write(offset, pattern(op, offset, length))
    } else if (r < 0.7) {
      const k = rng.chance(0.5) ? 'zero' : 'discard'
      const offset = rng.int(0, size + 2 * P)
      const length = rng.int(1, 4 * P)
      entries.push({ k, op, offset, length })
      await store[k](offset, length)
    } else if (r < 0.75) {
      const newSize = rng.int(Math.floor(size / 2), Math.ceil(size * 1.3) + P)
      entries.push({ k: 'truncate', op, size: newSize })
      await store.truncate(newSize)
      entries.push({ k: 'durable', op })
    } else if (r < 0.85) {
      entries.push({ k: 'flush', op })
      await store.flush()
      entries.push({ k: 'durable', op })
    }
    if (rng.chance(0.15)) await powerCut(`after op ${op}`)
  }
  atSync = undefined
  await store.close()
  t.ok(images >= 20, `${images} power-cut images checked`)
})
