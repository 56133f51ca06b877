// Bad inputs, from a table: each gets a typed error with a stable `code` (SPEC §8) and loses
// nothing: the store still opens and every flushed byte reads back.
import { execFileSync, spawn } from 'node:child_process'
import {
  appendFileSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { MAX_FILE_SIZE, PAGES_PER_CHUNK } from '../lib/geometry.js'
import { checkStore } from '../lib/image/fsck.js'
import { ImageStore, MAX_IO_BYTES } from '../lib/image/image-store.js'
import { checkTreeStore, TreeStore } from '../lib/index.js'
import { SCHEMA_VERSION } from '../lib/store/migrations.js'
import { pattern } from '../tools/crash/pattern.js'
import { ImageModel } from './fixtures/image-model.js'
import { makeLower, type Lower } from './fixtures/lower.js'
import { actualFs, pagecowWithFs, systemError } from './fixtures/mock-fs.js'
import { Random } from './fixtures/random.js'
import { checkModel } from './fixtures/store.js'
import { cannotRun } from './fixtures/cannot-run.js'

const P = 4096
/** A round mtime that utimes can set back exactly. */
const LOWER_TIME = 1_700_000_000

interface Flushed {
  dir: string
  storeDir: string
  lower: Lower
  model: ImageModel
  /** Write the lower again exactly as it was made: same bytes, same holes, same mtime. */
  restoreLower(): void
}

/**
 * A closed store over a lower with data and holes, with flushed DATA pages (0–2 and 10) and ZERO
 * pages (20–23), and the model of what it holds. `twoChunks` also writes a page in chunk 1 (use a
 * small page size: chunk 1 starts at 65536 pages).
 */
async function flushedStore(
  t: Test,
  options: { pageSize?: number; twoChunks?: boolean; api?: typeof ImageStore } = {},
): Promise<Flushed> {
  const pageSize = options.pageSize ?? P
  const dir = t.testdir()
  const restoreLower = () => {
    const made = makeLower(`${dir}/lower.img`, 40 * pageSize + 123, new Random(42), 0.7)
    utimesSync(made.path, LOWER_TIME, LOWER_TIME)
    return made
  }
  const lower = restoreLower()
  const storeDir = `${dir}/store`
  const store = await (options.api ?? ImageStore).create(storeDir, { lower: lower.path, pageSize, autoFlushMs: 0 })
  const model = new ImageModel(pageSize, lower)
  const far = PAGES_PER_CHUNK * pageSize + 7
  const ops: Array<(s: ImageStore | ImageModel) => unknown> = [
    (s) => s.write(0, pattern(1, 0, 3 * pageSize)),
    (s) => s.write(10 * pageSize + 5, pattern(2, 10 * pageSize + 5, 100)),
    (s) => s.zero(20 * pageSize, 4 * pageSize),
  ]
  if (options.twoChunks) ops.push((s) => s.write(far, pattern(3, far, 100)))
  for (const op of ops) {
    await op(store)
    op(model)
  }
  await store.close()
  return { dir, storeDir, lower, model, restoreLower }
}

/** Nothing was lost: the store opens (writable) and reads exactly as the model. */
async function nothingLost(t: Test, f: Flushed, label: string): Promise<void> {
  const store = await ImageStore.open(f.storeDir, { autoFlushMs: 0 })
  try {
    t.ok(await checkModel(t, store, f.model, `${label}: nothing lost`))
  } finally {
    await store.close()
  }
}

/**
 * Whether `err` is a PagecowError with `code`. By name, not instanceof: a store loaded through
 * t.mockImport has its own copy of the errors module.
 */
function hasCode(err: unknown, code?: string): err is Error & { code: string } {
  return err instanceof Error && err.name === 'PagecowError' && (code === undefined || (err as { code?: unknown }).code === code)
}

/** Assert `fn` fails with a PagecowError of `code`. */
async function rejectsWith(t: Test, fn: () => unknown, code: string, message: string): Promise<boolean> {
  try {
    await fn()
  } catch (err) {
    const ok = hasCode(err, code)
    return t.ok(ok, `${message}: ${code}`, ok ? {} : { got: err })
  }
  return t.fail(`${message}: expected ${code}, nothing was thrown`)
}

t.test('bad arguments to every operation', async (t) => {
  const f = await flushedStore(t)
  const store = await ImageStore.open(f.storeDir, { autoFlushMs: 0 })
  const big = MAX_FILE_SIZE
  type Case = [string, string, (s: ImageStore) => unknown]
  const cases: Case[] = [
    ['read at a negative offset', 'EINVAL', (s) => s.read(-1, 10)],
    ['read at a fractional offset', 'EINVAL', (s) => s.read(1.5, 10)],
    ['read at NaN', 'EINVAL', (s) => s.read(NaN, 10)],
    ['read at Infinity', 'EINVAL', (s) => s.read(Infinity, 10)],
    ['read at a string offset', 'EINVAL', (s) => s.read('5' as unknown as number, 10)],
    ['read at a bigint offset', 'EINVAL', (s) => s.read(5n as unknown as number, 10)],
    ['read at 2^53 (not a safe integer)', 'EINVAL', (s) => s.read(2 ** 53, 1)],
    ['read past the largest file size', 'EFBIG', (s) => s.read(big, 1)],
    ['read of a negative length', 'EINVAL', (s) => s.read(0, -1)],
    ['read of a fractional length', 'EINVAL', (s) => s.read(0, 0.5)],
    ['read of NaN bytes', 'EINVAL', (s) => s.read(0, NaN)],
    ['read over MAX_IO_BYTES', 'EINVAL', (s) => s.read(0, MAX_IO_BYTES + 1)],
    ['readInto a string', 'EINVAL', (s) => s.readInto('buffer' as unknown as Uint8Array, 0)],
    ['readInto null', 'EINVAL', (s) => s.readInto(null as unknown as Uint8Array, 0)],
    ['readInto at a negative offset', 'EINVAL', (s) => s.readInto(Buffer.alloc(4), -4)],
    ['readInto past the largest file size', 'EFBIG', (s) => s.readInto(Buffer.alloc(4), big - 2)],
    ['readInto with a misspelled option', 'EINVAL', (s) => s.readInto(Buffer.alloc(4), 0, { threadpool: true } as never)],
    ['readInto with threadPool not a boolean', 'EINVAL', (s) => s.readInto(Buffer.alloc(4), 0, { threadPool: 1 } as never)],
    ['readInto with options that are not an object', 'EINVAL', (s) => s.readInto(Buffer.alloc(4), 0, 'pool' as never)],
    ['readInto with null options', 'EINVAL', (s) => s.readInto(Buffer.alloc(4), 0, null as never)],
    ['readIntoSync of a string', 'EINVAL', (s) => s.readIntoSync('buffer' as unknown as Uint8Array, 0)],
    ['readIntoSync at a negative offset', 'EINVAL', (s) => s.readIntoSync(Buffer.alloc(4), -4)],
    ['readIntoSync past the largest file size', 'EFBIG', (s) => s.readIntoSync(Buffer.alloc(4), big - 2)],
    ['write at a negative offset', 'EINVAL', (s) => s.write(-1, Buffer.from('x'))],
    ['write at a fractional offset', 'EINVAL', (s) => s.write(0.5, Buffer.from('x'))],
    ['write at NaN', 'EINVAL', (s) => s.write(NaN, Buffer.from('x'))],
    ['write ending past the largest file size', 'EFBIG', (s) => s.write(big - 1, Buffer.from('xy'))],
    ['write at the largest file size', 'EFBIG', (s) => s.write(big, Buffer.from('x'))],
    ['write at 2^60', 'EINVAL', (s) => s.write(2 ** 60, Buffer.from('x'))],
    ['write of a string', 'EINVAL', (s) => s.write(0, 'hello' as unknown as Uint8Array)],
    ['write of an array of numbers', 'EINVAL', (s) => s.write(0, [1, 2, 3] as unknown as Uint8Array)],
    ['write of null', 'EINVAL', (s) => s.write(0, null as unknown as Uint8Array)],
    ['write of an ArrayBuffer', 'EINVAL', (s) => s.write(0, new ArrayBuffer(8) as unknown as Uint8Array)],
    ['zero of a negative length', 'EINVAL', (s) => s.zero(0, -P)],
    ['zero at NaN', 'EINVAL', (s) => s.zero(NaN, P)],
    ['zero past the largest file size', 'EFBIG', (s) => s.zero(big - P, 2 * P)],
    ['discard of a fractional length', 'EINVAL', (s) => s.discard(0, P + 0.25)],
    ['discard past the largest file size', 'EFBIG', (s) => s.discard(1, big)],
    ['truncate to a negative size', 'EINVAL', (s) => s.truncate(-1)],
    ['truncate to a fractional size', 'EINVAL', (s) => s.truncate(P / 3)],
    ['truncate to NaN', 'EINVAL', (s) => s.truncate(NaN)],
    ['truncate past the largest file size', 'EFBIG', (s) => s.truncate(big + 1)],
    ['extents at a negative offset', 'EINVAL', (s) => [...s.extents(-1)]],
    ['extents of a negative length', 'EINVAL', (s) => [...s.extents(0, -5)]],
    ['extents past the largest file size', 'EFBIG', (s) => [...s.extents(big, 1)]],
    ['nextData at NaN', 'EINVAL', (s) => s.nextData(NaN)],
    ['nextHole at a negative offset', 'EINVAL', (s) => s.nextHole(-P)],
  ]
  for (const [name, code, fn] of cases) {
    await rejectsWith(t, () => fn(store), code, name)
    if (!(await checkModel(t, store, f.model, `after ${name}`))) break
  }
  t.equal(store.info().dirty, false, 'no bad call left anything to flush')
  await store.close()
  await nothingLost(t, f, 'bad arguments')
})

t.test('bad options', async (t) => {
  const f = await flushedStore(t)
  const createCases: Array<[string, Record<string, unknown>]> = [
    ['page size not a power of two', { lower: f.lower.path, pageSize: 1000 }],
    ['page size too small', { lower: f.lower.path, pageSize: 256 }],
    ['page size too big', { lower: f.lower.path, pageSize: 2 * 1024 * 1024 }],
    ['page size zero', { lower: f.lower.path, pageSize: 0 }],
    ['fractional page size', { lower: f.lower.path, pageSize: 4096.5 }],
    ['page size as a string', { lower: f.lower.path, pageSize: '4096' }],
    ['misspelled pageSize', { lower: f.lower.path, pagesize: 4096 }],
    ['readOnly is not a create option', { lower: f.lower.path, readOnly: true }],
    ['no lower', {}],
    ['an empty lower path', { lower: '' }],
    ['a lower that is not a string', { lower: 42 }],
    ['negative autoFlushMs', { lower: f.lower.path, autoFlushMs: -1 }],
  ]
  for (const [i, [name, options]] of createCases.entries()) {
    const dir = `${f.dir}/new-${i}`
    await rejectsWith(t, () => ImageStore.create(dir, options as never), 'EINVAL', `create: ${name}`)
    t.notOk(existsSync(dir), `create: ${name}: nothing was created`)
  }
  await rejectsWith(t, () => ImageStore.create(`${f.dir}/new-x`, null as never), 'EINVAL', 'create: null options')

  const openCases: Array<[string, unknown]> = [
    ['misspelled readOnly (readonly)', { readonly: true }],
    ['readOnly as a string', { readOnly: 'yes' }],
    ['fractional autoFlushMs', { autoFlushMs: 1.5 }],
    ['autoFlushMs over a day', { autoFlushMs: 25 * 3600 * 1000 }],
    ['pageSize is not an open option', { pageSize: 4096 }],
    ['options that are not an object', 'readOnly'],
  ]
  for (const [name, options] of openCases) {
    await rejectsWith(t, () => ImageStore.open(f.storeDir, options as never), 'EINVAL', `open: ${name}`)
  }
  await nothingLost(t, f, 'bad options (and no writer lock left behind)')
})

t.test('a missing, odd or changed lower', async (t) => {
  const f = await flushedStore(t)
  await rejectsWith(t, () => ImageStore.create(`${f.dir}/a`, { lower: `${f.dir}/no-such.img` }), 'ENOENT', 'create over a missing lower')
  mkdirSync(`${f.dir}/a-dir`)
  await rejectsWith(t, () => ImageStore.create(`${f.dir}/b`, { lower: `${f.dir}/a-dir` }), 'EINVAL', 'create over a directory')

  const changes: Array<[string, string, () => void]> = [
    ['the lower is missing', 'ENOENT', () => renameSync(f.lower.path, `${f.lower.path}.away`)],
    ['the lower grew by a byte', 'ESTALE', () => {
      appendFileSync(f.lower.path, 'x')
      utimesSync(f.lower.path, LOWER_TIME, LOWER_TIME)
    }],
    ['the lower shrank', 'ESTALE', () => {
      truncateSync(f.lower.path, f.lower.size - 1)
      utimesSync(f.lower.path, LOWER_TIME, LOWER_TIME)
    }],
    ['the lower has other bytes (same size and mtime)', 'ESTALE', () => {
      const fd = openSync(f.lower.path, 'r+')
      writeSync(fd, Buffer.from('changed'), 0, 7, 0)
      closeSync(fd)
      utimesSync(f.lower.path, LOWER_TIME, LOWER_TIME)
    }],
    ['the lower has a new mtime', 'ESTALE', () => utimesSync(f.lower.path, LOWER_TIME + 1, LOWER_TIME + 1)],
  ]
  for (const [name, code, change] of changes) {
    change()
    await rejectsWith(t, () => ImageStore.open(f.storeDir), code, `open when ${name}`)
    await rejectsWith(t, () => ImageStore.open(f.storeDir, { readOnly: true }), code, `read-only open when ${name}`)
    const report = await checkStore(f.storeDir)
    t.ok(report.problems.some((p) => p.code === code), `fsck reports ${code} when ${name}`, { problems: report.problems })
    if (existsSync(`${f.lower.path}.away`)) renameSync(`${f.lower.path}.away`, f.lower.path)
    f.restoreLower()
    await nothingLost(t, f, `after ${name} (lower restored)`)
  }
})

t.test('a missing store, a non-empty directory, a store from the future', async (t) => {
  const f = await flushedStore(t)
  await rejectsWith(t, () => ImageStore.open(`${f.dir}/nowhere`), 'ENOENT', 'open a directory that does not exist')
  await rejectsWith(t, () => ImageStore.open(`${f.dir}/nowhere`, { readOnly: true }), 'ENOENT', 'read-only open of nothing')
  await rejectsWith(t, () => checkStore(`${f.dir}/nowhere`), 'ENOENT', 'fsck of nothing')
  mkdirSync(`${f.dir}/empty`)
  await rejectsWith(t, () => ImageStore.open(`${f.dir}/empty`), 'ENOENT', 'open an empty directory')
  t.same(readdirSync(`${f.dir}/empty`), [], 'opening an empty directory creates nothing in it')

  mkdirSync(`${f.dir}/busy`)
  writeFileSync(`${f.dir}/busy/precious.txt`, 'keep me')
  await rejectsWith(t, () => ImageStore.create(`${f.dir}/busy`, { lower: f.lower.path }), 'EEXIST', 'create in a non-empty directory')
  t.same(readdirSync(`${f.dir}/busy`), ['precious.txt'], 'the directory is left as it was')
  t.equal(readFileSync(`${f.dir}/busy/precious.txt`, 'utf8'), 'keep me')
  await rejectsWith(t, () => ImageStore.create(f.storeDir, { lower: f.lower.path }), 'EEXIST', 'create over an existing store')
  await nothingLost(t, f, 'after create over it')

  const setVersion = (v: number) => {
    const db = new Database(`${f.storeDir}/pagecow.db`)
    db.pragma(`user_version = ${v}`)
    db.close()
  }
  setVersion(SCHEMA_VERSION + 10)
  await rejectsWith(t, () => ImageStore.open(f.storeDir), 'EVERSION', 'open a store from the future')
  await rejectsWith(t, () => ImageStore.open(f.storeDir, { readOnly: true }), 'EVERSION', 'read-only open of a store from the future')
  const report = await checkStore(f.storeDir)
  t.ok(report.problems.some((p) => p.code === 'EVERSION'), 'fsck reports EVERSION', { problems: report.problems })
  setVersion(SCHEMA_VERSION)
  await nothingLost(t, f, 'after the version is set back')
})

/** A copy of the store to damage, leaving the original for the next case. */
function copyStore(f: Flushed, name: string): string {
  const to = `${f.dir}/${name}`
  mkdirSync(to)
  for (const file of readdirSync(f.storeDir)) copyFileSync(`${f.storeDir}/${file}`, `${to}/${file}`)
  return to
}

/**
 * A damaged store must be refused at open (ECORRUPT) or reported by fsck (ECORRUPT), and must never
 * serve bytes other than the model's. Returns what happened, for the tally.
 */
async function neverGarbage(t: Test, dir: string, model: ImageModel, label: string): Promise<string> {
  let opened = 'refused'
  let served = 'nothing'
  try {
    const store = await ImageStore.open(dir, { readOnly: true })
    opened = 'opened'
    try {
      const same = store.size === model.size && (await store.read(0, model.size)).equals(model.read(0, model.size))
      served = same ? 'the right bytes' : 'OTHER BYTES'
    } catch (err) {
      if (!hasCode(err)) t.fail(`${label}: a read failed with an untyped error`, { err })
      served = `refused (${(err as { code?: string }).code})`
    } finally {
      await store.close()
    }
  } catch (err) {
    if (!hasCode(err)) t.fail(`${label}: open failed with an untyped error`, { err })
    opened = `refused (${(err as { code?: string }).code})`
  }
  let fsck: string
  try {
    const report = await checkStore(dir)
    fsck = report.clean ? 'clean' : report.problems.some((p) => p.code === 'ECORRUPT') ? 'ECORRUPT' : report.problems.map((p) => p.code).join()
  } catch (err) {
    fsck = `threw ${(err as { code?: string }).code}`
  }
  return `open ${opened}, served ${served}, fsck ${fsck}`
}

t.test('a truncated database and a database with garbage written into it', async (t) => {
  const f = await flushedStore(t)
  const dbSize = statSync(`${f.storeDir}/pagecow.db`).size
  const pageSize = 4096
  t.ok(dbSize >= 4 * pageSize, `the database has several pages (${dbSize} bytes)`)
  const detected = (outcome: string) => outcome.startsWith('open refused (ECORRUPT)') || outcome.endsWith('fsck ECORRUPT')

  for (const length of [0, 50, 100, pageSize, Math.floor(dbSize / 2), dbSize - pageSize]) {
    const dir = copyStore(f, `truncated-${length}`)
    truncateSync(`${dir}/pagecow.db`, length)
    const outcome = await neverGarbage(t, dir, f.model, `truncated to ${length}`)
    t.ok(detected(outcome) && !outcome.includes('OTHER BYTES'), `database truncated to ${length} bytes: ${outcome}`)
  }

  const rng = new Random(3)
  for (let page = 0; page * pageSize < dbSize; page++) {
    const dir = copyStore(f, `garbage-${page}`)
    const fd = openSync(`${dir}/pagecow.db`, 'r+')
    writeSync(fd, rng.bytes(pageSize), 0, pageSize, page * pageSize)
    closeSync(fd)
    const outcome = await neverGarbage(t, dir, f.model, `garbage over page ${page}`)
    t.ok(detected(outcome) && !outcome.includes('OTHER BYTES'), `database page ${page} overwritten with garbage: ${outcome}`)
  }
  await nothingLost(t, f, 'the original store')
})

t.test('single-byte damage anywhere in the tables never hangs or throws an untyped error', async (t) => {
  // SQLite keeps no checksums, so a flipped bit inside a value (the image size, a bitmap run) can
  // read as another valid value: those cases are counted and printed, not failed (a known limit).
  const f = await flushedStore(t)
  const dbSize = statSync(`${f.storeDir}/pagecow.db`).size
  const rng = new Random(4)
  const tally = new Map<string, number>()
  const undetected: number[] = []
  const base = copyStore(f, 'flip-base')
  const original = readFileSync(`${base}/pagecow.db`)
  for (let trial = 0; trial < 120; trial++) {
    // Pages 2–4 hold meta, files and page_chunks, their rows at the end of each page: aim there.
    const offset = rng.chance(0.8) ? rng.int(1, 4) * 4096 + rng.int(4096 - 400, 4096) : rng.int(0, dbSize)
    const damaged = Buffer.from(original)
    damaged[offset]! ^= 1 << rng.int(0, 8)
    writeFileSync(`${base}/pagecow.db`, damaged)
    const outcome = await neverGarbage(t, base, f.model, `bit flipped at ${offset}`)
    tally.set(outcome, (tally.get(outcome) ?? 0) + 1)
    if (outcome.includes('OTHER BYTES') && outcome.endsWith('fsck clean')) undetected.push(offset)
  }
  t.comment(`outcomes: ${JSON.stringify(Object.fromEntries(tally))}`)
  if (undetected.length > 0) t.comment(`known limit: undetected single-bit damage at database offsets ${undetected.join(', ')}`)
  t.pass('120 single-bit damages handled without a hang or an untyped error')
})

t.test('a damaged page-map row', async (t) => {
  const f = await flushedStore(t, { pageSize: 512, twoChunks: true })
  const db = new Database(`${f.storeDir}/pagecow.db`)
  const row = db.prepare('SELECT * FROM page_chunks WHERE chunk = 0').get() as Record<string, unknown>
  db.close()
  t.ok(row, 'chunk 0 exists')
  const damage: Array<[string, string]> = [
    ['a data blob of garbage', "UPDATE page_chunks SET data = X'DEADBEEF00112233' WHERE chunk = 0"],
    ['a zero blob cut short', 'UPDATE page_chunks SET zero = substr(zero, 1, 5) WHERE chunk = 0'],
    ['a wrong DATA count', 'UPDATE page_chunks SET data_count = data_count + 1 WHERE chunk = 0'],
    ['a blob where the count should be', "UPDATE page_chunks SET zero_count = X'05' WHERE chunk = 0"],
    ['the bitmaps swapped into overlap', 'UPDATE page_chunks SET zero = data, zero_count = data_count WHERE chunk = 0'],
    ['a chunk index turned into text', "UPDATE page_chunks SET chunk = '' WHERE chunk = 0"],
    ['a chunk index turned into a fraction', 'UPDATE page_chunks SET chunk = 0.5 WHERE chunk = 0'],
  ]
  for (const [name, sql] of damage) {
    const dir = copyStore(f, `row-${name.replace(/\W+/g, '-')}`)
    const d = new Database(`${dir}/pagecow.db`)
    d.exec(sql)
    d.close()
    let store: ImageStore | undefined
    try {
      store = await ImageStore.open(dir, { autoFlushMs: 0 })
    } catch (err) {
      t.ok(hasCode(err, 'ECORRUPT'), `${name}: refused at open with ECORRUPT`, { err })
    }
    if (store) {
      await rejectsWith(t, () => store!.read(0, 3 * 512), 'ECORRUPT', `${name}: a read of the damaged chunk`)
      await rejectsWith(t, () => store!.write(512, Buffer.from('x')), 'ECORRUPT', `${name}: a write into it`)
      await rejectsWith(t, async () => [...store!.extents()], 'ECORRUPT', `${name}: its map`)
      await store.close()
    }
    const report = await checkStore(dir)
    t.ok(report.problems.some((p) => p.code === 'ECORRUPT'), `${name}: fsck reports ECORRUPT`, { problems: report.problems })
  }
  await nothingLost(t, f, 'the undamaged original')
})

const HOLD_WRITER = fileURLToPath(new URL('./fixtures/hold-writer.ts', import.meta.url))

t.test('one writer at a time; readers share; a read-only store refuses writes', async (t) => {
  const f = await flushedStore(t)
  const first = await ImageStore.open(f.storeDir, { autoFlushMs: 0 })
  try {
    await ImageStore.open(f.storeDir)
    t.fail('a second writer in the same process was let in')
  } catch (err) {
    t.ok(hasCode(err, 'EBUSY'), 'a second writer in the same process: EBUSY')
    t.match((err as Error).message, new RegExp(`\\bpid ${process.pid}\\b`), 'the message names the holder pid')
  }
  await first.close()

  const child = spawn(process.execPath, ['--import', 'tsx', HOLD_WRITER, f.storeDir], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve())
    void exited.then(() => reject(new Error(`the holder exited early: ${stderr}`)))
  })
  try {
    await ImageStore.open(f.storeDir)
    t.fail('a second writer was let in while another process holds the store')
  } catch (err) {
    t.ok(hasCode(err, 'EBUSY'), 'a writer in another process: EBUSY')
    t.match((err as Error).message, new RegExp(`\\bpid ${child.pid}\\b`), `the message names the holder (pid ${child.pid})`)
  }
  const reader = await ImageStore.open(f.storeDir, { readOnly: true })
  t.ok(await checkModel(t, reader, f.model, 'a reader shares the store with the writer'))
  for (const [name, fn] of [
    ['write', () => reader.write(0, Buffer.from('x'))],
    ['zero', () => reader.zero(0, P)],
    ['discard', () => reader.discard(0, P)],
    ['truncate', () => reader.truncate(0)],
  ] as const) {
    await rejectsWith(t, fn, 'EROFS', `${name} on a read-only store`)
  }
  t.ok(await checkModel(t, reader, f.model, 'the refused writes changed nothing'))
  await reader.close()
  child.stdin.end()
  t.equal(await exited, 0, 'the holder closed cleanly')
  await nothingLost(t, f, 'after the other writer left')
})

/**
 * A full disk, emulated on the upper: writes into blocks the upper already has succeed, a write
 * that needs a new block stops there (short) and the next call fails with ENOSPC, like a real
 * file system with no free block.
 */
async function fullDiskApi(t: Test) {
  const upperFds = new Set<number>()
  const state = { full: false, fdatasyncFailures: 0, calls: 0 }
  const api = await pagecowWithFs(t, {
    openSync: ((path: string, ...rest: unknown[]) => {
      const fd = (actualFs.openSync as (...a: unknown[]) => number)(path, ...rest)
      if (path.endsWith('/upper.img')) upperFds.add(fd)
      return fd
    }) as typeof actualFs.openSync,
    closeSync: ((fd: number) => {
      upperFds.delete(fd)
      actualFs.closeSync(fd)
    }) as typeof actualFs.closeSync,
    writeSync: ((fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => {
      if (state.full && upperFds.has(fd)) {
        state.calls++
        const allocated = actualFs.seekHole(fd, position)
        const inData = actualFs.seekData(fd, position) === position
        const room = inData && allocated !== null ? Math.min(length, allocated - position) : 0
        if (room === 0) throw systemError('ENOSPC', 'write')
        return actualFs.writeSync(fd, buffer, offset, room, position)
      }
      return (actualFs.writeSync as (...a: unknown[]) => number)(fd, buffer, offset, length, position)
    }) as typeof actualFs.writeSync,
    fdatasync: (async (fd: number) => {
      if (state.fdatasyncFailures > 0 && upperFds.has(fd)) {
        state.fdatasyncFailures--
        throw systemError('ENOSPC', 'fdatasync')
      }
      return actualFs.fdatasync(fd)
    }) as typeof actualFs.fdatasync,
  })
  return { api, state }
}

t.test('a full disk fails the write, not the store (ENOSPC injected)', async (t) => {
  const { api, state } = await fullDiskApi(t)
  const f = await flushedStore(t, { api: api.ImageStore as unknown as typeof ImageStore })
  const store = (await api.ImageStore.open(f.storeDir, { autoFlushMs: 0 })) as unknown as ImageStore
  // Pages 0–2 and 10 are DATA, 20–23 ZERO, the rest LOWER; the image ends inside page 40.
  type Case = [string, 'write' | 'zero', number, number, 'ENOSPC' | 'fits']
  const cases: Case[] = [
    ['a partial write into a LOWER page (copy-up)', 'write', 5 * P + 10, 20, 'ENOSPC'],
    ['a whole-page write over a LOWER page', 'write', 6 * P, P, 'ENOSPC'],
    ['a write over a DATA page and a LOWER page', 'write', 2 * P, 2 * P, 'ENOSPC'],
    ['a write over a LOWER page and a DATA page', 'write', 9 * P, 2 * P, 'ENOSPC'],
    ['a write straddling a DATA and a LOWER page', 'write', 3 * P - 5, 10, 'ENOSPC'],
    ['a partial write into a ZERO page', 'write', 21 * P + 3, 3, 'ENOSPC'],
    ['a write past the end (grows the image)', 'write', 50 * P, 100, 'ENOSPC'],
    ['a write across two DATA pages', 'write', P - 1, 2, 'fits'],
    ['zero over a DATA page edge, whole pages and a LOWER page edge', 'zero', 2 * P + 100, 4 * P, 'ENOSPC'],
    ['zero over a LOWER page edge and a DATA page edge', 'zero', 9 * P + 100, P, 'ENOSPC'],
    ['zero of a partial LOWER page', 'zero', 7 * P + 1, 10, 'ENOSPC'],
    ['zero of part of a DATA page', 'zero', 10 * P + 1, 10, 'fits'],
  ]
  state.full = true
  for (const [name, op, offset, length, expected] of cases) {
    const before = store.info()
    try {
      if (op === 'write') await store.write(offset, pattern(900, offset, length))
      else await store.zero(offset, length)
      t.equal(expected, 'fits', `${name}: succeeds on a full disk`)
      if (op === 'write') f.model.write(offset, pattern(900, offset, length))
      else f.model.zero(offset, length)
    } catch (err) {
      t.equal(expected, 'ENOSPC', `${name}: fails`)
      t.ok(hasCode(err, 'ENOSPC'), `${name}: with ENOSPC`, { err })
      t.same(store.info().pages, before.pages, `${name}: the page map did not change`)
      t.equal(store.size, before.size, `${name}: the size did not change`)
    }
    t.ok(await checkModel(t, store, f.model, `${name}: every page reads as before`))
  }
  t.ok(state.calls > 0, 'the full-disk emulation was exercised')
  // Discard needs no space (and frees some); a flush works on the full disk.
  await store.discard(0, P)
  f.model.discard(0, P)
  await store.flush()
  state.full = false
  await store.write(5 * P + 10, Buffer.from('space again'))
  f.model.write(5 * P + 10, Buffer.from('space again'))
  await store.close()
  await nothingLost(t, f, 'after the disk was full')
})

t.test('a flush that fails with ENOSPC can be retried and loses nothing', async (t) => {
  const { api, state } = await fullDiskApi(t)
  const f = await flushedStore(t, { api: api.ImageStore as unknown as typeof ImageStore })
  const store = (await api.ImageStore.open(f.storeDir, { autoFlushMs: 0 })) as unknown as ImageStore
  await store.write(30 * P, pattern(5, 30 * P, 2 * P))
  f.model.write(30 * P, pattern(5, 30 * P, 2 * P))
  await store.zero(0, P)
  f.model.zero(0, P)
  state.fdatasyncFailures = 1
  await rejectsWith(t, () => store.flush(), 'ENOSPC', 'the flush')
  t.equal(state.fdatasyncFailures, 0, 'the injected failure was hit')
  t.equal(store.info().dirty, true, 'the changes are still waiting for a flush')
  t.ok(await checkModel(t, store, f.model, 'the writes still read back'))
  await store.flush()
  t.equal(store.info().dirty, false, 'the retry committed them')
  state.fdatasyncFailures = 1
  await store.write(31 * P + 7, Buffer.from('again'))
  f.model.write(31 * P + 7, Buffer.from('again'))
  await rejectsWith(t, () => store.close(), 'ENOSPC', 'a close whose flush fails')
  t.equal(store.info().readOnly, false, 'the store stays open after a failed close')
  await store.close()
  await nothingLost(t, f, 'after the failed flushes')
})

/** Run `work` on a fresh 2 MiB tmpfs mounted under the test's directory; skip (or fail under CI) where that cannot be done. */
async function onSmallTmpfs(t: Test, work: (dir: string, mnt: string) => Promise<void>): Promise<void> {
  if (process.getuid?.() !== 0 || process.platform !== 'linux') {
    const reason = 'needs root on Linux to mount a tmpfs'
    return void cannotRun(t, reason)
  }
  const dir = t.testdir()
  const mnt = `${dir}/mnt`
  mkdirSync(mnt)
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { stdio: 'pipe' })
  } catch (err) {
    const reason = `mount -t tmpfs failed: ${String((err as { stderr?: unknown }).stderr ?? err).trim()}`
    return void cannotRun(t, reason)
  }
  try {
    await work(dir, mnt)
  } finally {
    // Unmount here, not in a teardown: the test directory is removed before teardowns run.
    execFileSync('umount', ['-l', mnt])
  }
}

t.test('a real full disk (a 2 MiB tmpfs)', (t) => onSmallTmpfs(t, (dir, mnt) => fillTheDisk(t, dir, mnt)))

t.test('a tree store on a full disk opens for writing, reads, and refuses writes with ENOSPC', (t) =>
  onSmallTmpfs(t, async (dir, mnt) => {
    const lower = `${dir}/lower`
    mkdirSync(`${lower}/etc`, { recursive: true })
    writeFileSync(`${lower}/etc/hosts`, 'lower hosts\n')
    const storeDir = `${mnt}/store`
    const store = await TreeStore.create(storeDir, { lower, autoFlushMs: 0 })
    const h = await store.open('/etc/hosts', 'r+')
    await h.write(0, Buffer.from('UPPER'))
    await h.close()
    await store.close()
    // A writer killed while holding the store leaves its WAL and shared-memory files behind.
    const holder = spawn(process.execPath, ['--import', 'tsx', HOLD_WRITER, storeDir], { stdio: ['pipe', 'pipe', 'inherit'] })
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve())
      holder.once('exit', (code) => reject(new Error(`the writer exited with ${code} before holding the store`)))
    })
    holder.kill('SIGKILL')
    await new Promise((resolve) => holder.once('exit', resolve))
    // Fill what is left of the disk, down to the last block.
    const filler = openSync(`${mnt}/filler`, 'w')
    try {
      for (let chunk = 64 * 1024; chunk >= 512; ) {
        try {
          writeSync(filler, Buffer.alloc(chunk, 1))
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
          chunk /= 2
        }
      }
    } finally {
      closeSync(filler)
    }
    t.equal(statfsSync(mnt).bavail, 0, 'the disk is full')
    const full = await TreeStore.open(storeDir, { autoFlushMs: 0 })
    t.pass('a writable open needs no space')
    const r = await full.open('/etc/hosts')
    t.equal((await r.read(0, 100)).toString(), 'UPPER hosts\n', 'what was flushed reads back')
    await r.close()
    await rejectsWith(t, () => full.create('/etc/new'), 'ENOSPC', 'creating a file on a full disk')
    t.equal(await full.statIfExists('/etc/new'), undefined, 'the failed create left nothing')
    const w = await full.open('/etc/hosts', 'r+')
    let failure: unknown
    try {
      await w.write(0, Buffer.alloc(256 * 1024, 7))
      await w.fsync()
    } catch (err) {
      failure = err
    }
    t.ok(hasCode(failure, 'ENOSPC'), 'a write that needs space fails with ENOSPC', { failure })
    await w.close()
    rmSync(`${mnt}/filler`)
    await full.flush()
    await full.close()
    const again = await TreeStore.open(storeDir, { autoFlushMs: 0 })
    const hosts = await again.open('/etc/hosts')
    t.equal((await hosts.read(0, 5)).toString(), 'UPPER', 'the store opens again once space is back, its flushed data kept')
    await hosts.close()
    await again.close()
    t.same((await checkTreeStore(storeDir)).problems, [], 'fsck is clean')
  }))

async function fillTheDisk(t: Test, dir: string, mnt: string): Promise<void> {
  const lower = makeLower(`${dir}/lower.img`, 2048 * P + 5, new Random(77), 0.9)
  const store = await ImageStore.create(`${mnt}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  const model = new ImageModel(P, lower)
  let failure: unknown
  let page = 0
  for (; page < 2048 && !failure; page++) {
    const data = pattern(page + 1, page * P, P)
    try {
      await store.write(page * P, data)
      model.write(page * P, data)
    } catch (err) {
      failure = err
    }
  }
  t.ok(hasCode(failure, 'ENOSPC'), `the disk filled up after ${page - 1} pages: ENOSPC`, { failure })
  t.ok(await checkModel(t, store, model, 'the failed write changed nothing'))
  // A write over a DATA page and a new page: the DATA page must not change.
  try {
    await store.write(0, pattern(5000, 0, P).subarray(0, P)) // in place: needs no space
    model.write(0, pattern(5000, 0, P))
    await store.write((page - 2) * P, pattern(5001, (page - 2) * P, 2 * P))
    model.write((page - 2) * P, pattern(5001, (page - 2) * P, 2 * P))
  } catch (err) {
    t.ok(hasCode(err, 'ENOSPC'), 'a write over the last DATA page and a new one: ENOSPC', { err })
  }
  t.ok(await checkModel(t, store, model, 'the DATA page kept its bytes'))
  let flushed = false
  for (let freed = 0; !flushed && freed < 64; freed += 16) {
    try {
      await store.flush()
      flushed = true
    } catch (err) {
      t.ok(hasCode(err, 'ENOSPC'), `the flush on a full disk: ENOSPC (freeing 16 pages and retrying)`, { err })
      await store.discard(freed * P, 16 * P)
      model.discard(freed * P, 16 * P)
    }
  }
  t.ok(flushed, 'the flush succeeds once space was freed')
  await store.close()
  const again = await ImageStore.open(`${mnt}/store`, { autoFlushMs: 0 })
  t.ok(await checkModel(t, again, model, 'after reopening, everything flushed reads back'))
  await again.close()
  t.ok((await checkStore(`${mnt}/store`)).clean, 'fsck is clean')
}
