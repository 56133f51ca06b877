// fsck reads every DATA page back against its checksum and its upper space, reports each problem
// with its file and page, checks the generation; --quick skips the bytes; --repair gives back the
// upper space a killed writer left and changes nothing else.
import t from 'tap'
import Database from 'better-sqlite3'
import { spawnSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { checkStore, ImageStore, repairStore, TreeStore } from '../lib/index.js'
import { childEnv } from './fixtures/child-env.js'
import { runCli } from './fixtures/cli-io.js'
import type { TapTest } from './fixtures/tap-test.js'

const PAGE = 4096

function flipByte(path: string, offset: number): void {
  const fd = nodeFs.openSync(path, 'r+')
  const b = Buffer.alloc(1)
  nodeFs.readSync(fd, b, 0, 1, offset)
  b[0]! ^= 0x10
  nodeFs.writeSync(fd, b, 0, 1, offset)
  nodeFs.closeSync(fd)
}

function allocatedBytes(path: string): number {
  return nodeFs.statSync(path).blocks * 512
}

async function imageStore(t: TapTest, pages = 64) {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  nodeFs.writeFileSync(lower, Buffer.alloc(pages * PAGE, 0x5a))
  const storeDir = join(dir, 'store')
  const store = await ImageStore.create(storeDir, { lower, autoFlushMs: 0 })
  const data = Buffer.alloc(16 * PAGE)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff
  await store.write(4 * PAGE, data) // pages 4..19 DATA
  await store.write(30 * PAGE + 100, Buffer.from('partial')) // page 30 DATA (copy-up)
  await store.close()
  return { dir, lower, storeDir, data }
}

t.test('a clean image store: every DATA page read back and verified', async (t) => {
  const { storeDir } = await imageStore(t)
  const report = await checkStore(storeDir)
  t.same(report.problems, [])
  t.match(report, { clean: true, dataChecked: true, checked: { dataPages: 17, verifiedPages: 17, inFluxPages: 0, unownedBytes: 0 } })
  const progress: Array<{ done: number; total: number }> = []
  await checkStore(storeDir, { onProgress: (p) => progress.push(p) })
  t.ok(progress.length > 0, 'progress reported')
  t.same(progress.at(-1), { done: 17 * PAGE, total: 17 * PAGE }, 'progress ends at the bytes of every DATA page')
})

t.test('a flipped byte in the upper: fsck names the page, reads refuse it, --quick does not read it', async (t) => {
  const { storeDir, data } = await imageStore(t)
  flipByte(join(storeDir, 'upper.img'), 9 * PAGE + 1234)
  const report = await checkStore(storeDir)
  t.equal(report.clean, false)
  t.same(report.problems.map((p) => [p.code, p.file, p.page]), [['ECORRUPT', 'image', 9]])
  t.equal(report.checked.verifiedPages, 16)
  const quick = await checkStore(storeDir, { quick: true })
  t.match(quick, { clean: true, dataChecked: false, checked: { verifiedPages: 0, dataPages: 17 } }, '--quick reads no page bytes')

  const store = await ImageStore.open(storeDir, { readOnly: true })
  t.teardown(() => store.close())
  await t.rejects(store.read(9 * PAGE, PAGE), { code: 'ECORRUPT' }, 'the damaged page is not served')
  t.same(await store.read(8 * PAGE, PAGE), data.subarray(4 * PAGE, 5 * PAGE), 'its neighbour is')

  const cli = await runCli(['fsck', storeDir, '--json'])
  t.equal(cli.code, 4, 'exit 4: not clean')
  const json = JSON.parse(cli.stdout) as { problems: Array<{ code: string; file: string; page: number }> }
  t.match(json.problems, [{ code: 'ECORRUPT', file: 'image', page: 9 }])
})

t.test('a hole punched under DATA pages, and an upper cut short', async (t) => {
  const { storeDir } = await imageStore(t)
  const upper = join(storeDir, 'upper.img')
  const punched = spawnSync('fallocate', ['-p', '-o', String(6 * PAGE), '-l', String(3 * PAGE), upper])
  t.equal(punched.status, 0, 'fallocate -p')
  let report = await checkStore(storeDir)
  t.same(report.problems.map((p) => [p.code, p.page, p.pages]), [['ECORRUPT', 6, 3]], 'one problem for the three pages of the hole')
  nodeFs.truncateSync(upper, 25 * PAGE)
  report = await checkStore(storeDir)
  t.ok(report.problems.some((p) => p.code === 'ECORRUPT' && p.page === 30), 'page 30, past the upper\'s end, is reported')
  const store = await ImageStore.open(storeDir, { readOnly: true })
  t.teardown(() => store.close())
  await t.rejects(store.read(30 * PAGE, 10), { code: 'ECORRUPT' }, 'and not served as zeros')
  await t.rejects(store.read(7 * PAGE, 10), { code: 'ECORRUPT' }, 'nor the hole')
})

t.test('a killed writer: its unflushed space is reported, --repair gives it back and changes nothing else', async (t) => {
  const { storeDir, data } = await imageStore(t, 64 * 256)
  const child = join(storeDir, '..', 'writer.mts')
  nodeFs.writeFileSync(
    child,
    `import { ImageStore } from ${JSON.stringify(new URL('../lib/index.ts', import.meta.url).pathname)}
const s = await ImageStore.open(process.argv[2], { autoFlushMs: 0 })
const buf = Buffer.alloc(1 << 20, 7)
for (let i = 0; i < 32; i++) await s.write((8 << 20) + (i << 20), buf)
process.kill(process.pid, 'SIGKILL')
`,
  )
  const run = spawnSync(process.execPath, ['--import', 'tsx', child, storeDir], { env: childEnv() })
  t.equal(run.signal, 'SIGKILL', 'the writer was killed before any flush')
  const upper = join(storeDir, 'upper.img')
  const before = allocatedBytes(upper)
  t.ok(before >= 32 << 20, `the killed writes hold ${before} bytes`)
  const report = await checkStore(storeDir)
  t.ok(report.clean, 'not damage')
  t.equal(report.checked.unownedBytes, 32 << 20, 'fsck counts the space no committed page owns')

  // While a writer has the store, repair refuses (its unflushed pages look the same).
  const writer = await ImageStore.open(storeDir)
  await t.rejects(repairStore(storeDir), { code: 'EBUSY' })
  await writer.close()

  const cli = await runCli(['fsck', storeDir, '--repair'])
  t.equal(cli.code, 0, cli.stderr)
  t.match(cli.stdout, /repaired .*punched 8192 pages/)
  t.ok(allocatedBytes(upper) <= before - (32 << 20), `space given back (${before} → ${allocatedBytes(upper)})`)
  const after = await checkStore(storeDir)
  t.match(after, { clean: true, checked: { unownedBytes: 0, verifiedPages: 17 } })
  const store = await ImageStore.open(storeDir, { readOnly: true })
  t.teardown(() => store.close())
  t.same(await store.read(4 * PAGE, 16 * PAGE), data, 'the committed pages read as written')
  t.same(await store.read(8 << 20, 4), Buffer.alloc(4, 0x5a), 'the killed writes were never committed: the lower shows')
})

t.test('a tree store: problems name the file by its path; repair removes upper files no record names', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  nodeFs.mkdirSync(join(lower, 'etc'), { recursive: true })
  nodeFs.writeFileSync(join(lower, 'etc/hosts'), Buffer.alloc(5 * PAGE, 0x41))
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  const h = await store.open('/etc/hosts', 'r+')
  await h.write(2 * PAGE, Buffer.from('changed'))
  await h.close()
  await store.mkdir('/new')
  const n = await store.open('/new/file', 'w')
  await n.write(0, Buffer.alloc(3 * PAGE, 0x42))
  await n.close()
  await store.close()
  t.match(await checkStore(dir), { clean: true, checked: { verifiedPages: 4 } })

  // /new/file's upper holds three pages (/etc/hosts's one: only page 2 was copied up).
  const fileId = nodeFs.readdirSync(join(dir, 'upper')).find((name) => nodeFs.statSync(join(dir, 'upper', name)).blocks * 512 === 3 * PAGE)
  flipByte(join(dir, 'upper', String(fileId)), PAGE + 1)
  const report = await checkStore(dir)
  t.same(report.problems.map((p) => [p.code, p.file, p.page]), [['ECORRUPT', '/new/file', 1]])

  nodeFs.writeFileSync(join(dir, 'upper', '999'), Buffer.alloc(8 * PAGE, 1))
  const repaired = await repairStore(dir)
  t.match(repaired.actions, [/upper\/999: removed/])
  t.notOk(nodeFs.existsSync(join(dir, 'upper', '999')))
  t.ok(nodeFs.existsSync(join(dir, 'upper', String(fileId))), 'a damaged file is left for the user, not deleted')
  t.same((await checkStore(dir)).problems.map((p) => p.page), [1], 'the damage is still reported')
})

t.test('lost commits: the WAL deleted after a flush while the writer was down', async (t) => {
  const { storeDir } = await imageStore(t)
  // A store whose last commits are still in its WAL: copy it while a writer holds it open.
  const store = await ImageStore.open(storeDir, { autoFlushMs: 0 })
  await store.write(40 * PAGE, Buffer.alloc(PAGE, 1))
  await store.flush()
  const copy = `${storeDir}-copy`
  nodeFs.cpSync(storeDir, copy, { recursive: true })
  await store.close()
  nodeFs.rmSync(join(copy, 'lock'), { force: true })
  t.ok(nodeFs.existsSync(join(copy, 'pagecow.db-wal')), 'the copy has a WAL')
  nodeFs.rmSync(join(copy, 'pagecow.db-wal'))
  await t.rejects(ImageStore.open(copy), { code: 'ECORRUPT', message: /lost commits/ }, 'refused at open, writable')
  await t.rejects(ImageStore.open(copy, { readOnly: true }), { code: 'ECORRUPT' }, 'and read-only')
  const report = await checkStore(copy)
  t.ok(report.problems.some((p) => p.code === 'ECORRUPT' && /lost commits/.test(p.message)), 'fsck reports it')
})

t.test('bad fsck options', async (t) => {
  const { storeDir } = await imageStore(t)
  await t.rejects(checkStore(storeDir, { quick: 'yes' } as never), { code: 'EINVAL' })
  await t.rejects(checkStore(storeDir, { fast: true } as never), { code: 'EINVAL' })
  await t.rejects(repairStore(join(storeDir, 'nope')), { code: 'ENOENT' })
  const cli = await runCli(['fsck', storeDir, '--quick', '--bogus'])
  t.equal(cli.code, 2, 'a usage error')
})

t.test('damaged copy-up base and lower binding rows are reported', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  nodeFs.writeFileSync(lower, Buffer.alloc(16 * PAGE, 0x5a))
  const storeDir = join(dir, 'store')
  const store = await ImageStore.create(storeDir, { lower, autoFlushMs: 0, bindLower: true })
  await store.write(3 * PAGE + 5, Buffer.from('partial')) // a copy-up base for page 3
  await store.close()
  t.match(await checkStore(storeDir), { clean: true })
  const db = new Database(join(storeDir, 'pagecow.db'))
  db.prepare('UPDATE copyup_base SET base = zeroblob(8)').run()
  db.prepare('UPDATE lower_sums SET sums = zeroblob(8192)').run()
  db.close()
  const report = await checkStore(storeDir)
  t.match(report.problems, [{ code: 'ECORRUPT', message: /lower pages 0–1023/ }, { code: 'ECORRUPT', file: 'image', page: 3, message: /copy-up base/ }])
})

t.test('the CLI: --quick reads no page, --repair --json reports what it gave back with the check', async (t) => {
  const { storeDir } = await imageStore(t)
  flipByte(join(storeDir, 'upper.img'), 9 * PAGE + 1)
  const quick = await runCli(['fsck', storeDir, '--quick', '--json'])
  t.equal(quick.code, 0, 'a flipped page byte is not seen without reading pages')
  t.match(JSON.parse(quick.stdout), { clean: true, dataChecked: false, checked: { verifiedPages: 0 } })
  const full = await runCli(['fsck', storeDir])
  t.equal(full.code, 4)
  t.match(full.stdout, /^ECORRUPT {2}the image, page 9: /m)
  // Space no page owns: a page written past the map's knowledge (as a killed writer leaves it).
  const fd = nodeFs.openSync(join(storeDir, 'upper.img'), 'r+')
  nodeFs.writeSync(fd, Buffer.alloc(PAGE * 64, 9), 0, PAGE * 64, PAGE * 200)
  nodeFs.closeSync(fd)
  const repaired = await runCli(['fsck', storeDir, '--repair', '--json'])
  t.equal(repaired.code, 4, 'still not clean: repair gives space back, it does not mend damage')
  const json = JSON.parse(repaired.stdout) as { repair: { reclaimedBytes: number; actions: string[] }; problems: Array<{ page: number }>; checked: { unownedBytes: number } }
  t.equal(json.repair.reclaimedBytes, 64 * PAGE, 'the 64 unowned pages given back')
  t.match(json.repair.actions, [/punched 64 pages/])
  t.equal(json.checked.unownedBytes, 0)
  t.ok(json.problems.some((p) => p.page === 9), 'the damaged page is still reported')
})

t.test('the generation record: damaged is refused, missing is written again', async (t) => {
  const { storeDir } = await imageStore(t)
  const file = join(storeDir, 'generation')
  const good = nodeFs.readFileSync(file)
  t.equal(good.length, 16, 'a count and its sum')
  flipByte(file, 2)
  await t.rejects(ImageStore.open(storeDir), { code: 'ECORRUPT', message: /generation/ }, 'a damaged record refuses the store')
  t.ok((await checkStore(storeDir)).problems.some((p) => p.code === 'ECORRUPT' && /generation/.test(p.message)), 'and fsck says so')
  nodeFs.rmSync(file)
  const store = await ImageStore.open(storeDir)
  await store.close()
  t.same(nodeFs.readFileSync(file), good, 'a missing record (a store made before it) is written again at a writable open')
})
