// A bound lower (create --bind-lower, verify --record): a lower byte changed outside the
// fingerprint's samples, with the old mtime put back, is ESTALE through the library, the CLI,
// FUSE (EIO) and NBD (an error reply) instead of served; `verify` names the page. Copy-up bases
// are recorded for partial copy-ups only. An unbound store behaves as before.
import { spawn, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, openSync, readdirSync, readSync, closeSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { DATABASE_FILE } from '../lib/store/database.js'
import { bindLower, createStore, ImageStore, NbdServer, openStore, TreeStore, verifyStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { childEnv } from './fixtures/child-env.js'
import { checkNothingLeftMounted, fuseUsable, mountStore, mountTestDir, python, ROOT, unmountAndWait } from './fixtures/fuse-mounted.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { shortTempDir } from './fixtures/nbd-served.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { mksquashfs, mksquashfsMissing } from './fixtures/squashfs-tree.js'

const P = 4096
const SIZE = 4 * 1024 * 1024 + 1000 // a short last page
/** The page changed in the tests: outside every 4 KiB sample the fingerprint takes. */
const PAGE = 100

/** Bytes no two pages share, so a page read from the wrong place shows. */
function pattern(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(Math.ceil(size / 4) * 4)
  for (let i = 0; i < size; i += 4) b.writeUInt32LE(Math.imul(i + seed, 2654435761) >>> 0, i)
  return b.subarray(0, size)
}

/** Change one byte of `path` at `offset` and put its mtime back, to the nanosecond. */
function flipByte(t: Test, path: string, offset: number): void {
  const st = statSync(path, { bigint: true })
  const fd = openSync(path, 'r+')
  const b = Buffer.alloc(1)
  readSync(fd, b, 0, 1, offset)
  b[0]! ^= 0x5a
  writeSync(fd, b, 0, 1, offset)
  closeSync(fd)
  const ns = st.mtimeNs
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, path])
  t.equal(statSync(path, { bigint: true }).mtimeNs, ns, 'mtime put back exactly')
}

/** Sample windows of the image fingerprint (lib/image/fingerprint.ts): the test's page avoids them. */
function outsideSamples(size: number, page: number): boolean {
  const span = Math.max(0, size - 4096)
  for (let i = 0; i < 16; i++) {
    const at = Math.floor((span * i) / 15)
    if (at < (page + 1) * P && at + 4096 > page * P) return false
  }
  return true
}

/** The whole of tree file `path`. */
async function readAll(s: TreeStore, path: string): Promise<Buffer> {
  const h = await s.open(path)
  try {
    return await h.read(0, (await h.stat()).size)
  } finally {
    await h.close()
  }
}

async function boundImage(t: Test, bind: 'create' | 'record' | 'none' = 'create'): Promise<{ dir: string; lower: string; store: string; data: Buffer }> {
  const dir = t.testdir()
  const lower = join(dir, 'base.img')
  const data = pattern(SIZE)
  writeFileSync(lower, data)
  const store = join(dir, 'store')
  const created = await createStore(store, { lower, bindLower: bind === 'create', autoFlushMs: 0 })
  await created.close()
  if (bind === 'record') await bindLower(store)
  return { dir, lower, store, data }
}

t.test('a bound image: a changed lower page is ESTALE through the library, every other page reads', async (t) => {
  t.ok(outsideSamples(SIZE, PAGE), 'the changed page is outside the fingerprint samples')
  const { lower, store, data } = await boundImage(t)
  flipByte(t, lower, PAGE * P + 123)
  const s = await ImageStore.open(store, { readOnly: true })
  t.teardown(() => s.close())
  t.equal(s.info().lower.bound, true)
  await t.rejects(s.read(PAGE * P, P), { code: 'ESTALE', message: /page 100 \(bytes 409600–413695\)/ }, 'a whole-page read')
  await t.rejects(s.read(PAGE * P + 10, 5), { code: 'ESTALE' }, 'a partial read of the page')
  await t.rejects(s.read((PAGE - 1) * P, 1024 * 1024), { code: 'ESTALE' }, 'a large read over it')
  await t.rejects(s.readInto(Buffer.alloc(256 * 1024), (PAGE - 10) * P, { threadPool: true }), { code: 'ESTALE' }, 'a read in the thread pool')
  t.same(await s.read((PAGE - 1) * P, P), data.subarray((PAGE - 1) * P, PAGE * P), 'the page before')
  t.same(await s.read((PAGE + 1) * P + 7, 100), data.subarray((PAGE + 1) * P + 7, (PAGE + 1) * P + 107), 'the page after, in part')
  t.same(await s.read(SIZE - 1500, 1500), data.subarray(SIZE - 1500), 'the short last page')
})

t.test('verify names the changed page; the CLI exits 4 with it, and reads fail with ESTALE', async (t) => {
  const { lower, store } = await boundImage(t)
  const clean = await verifyStore(store)
  t.equal(clean.clean, true)
  t.equal(clean.bound, true)
  t.equal(clean.checked.lowerPages, Math.ceil(SIZE / P))
  flipByte(t, lower, PAGE * P + 123)
  const report = await verifyStore(store)
  t.equal(report.clean, false)
  t.same(
    report.problems.map((p) => [p.code, p.what, p.file, p.page]),
    [['ESTALE', 'lower', lower, PAGE]],
  )
  const cli = await runCli(['verify', store, '--json'])
  t.equal(cli.code, 4, 'exit 4: not clean')
  t.equal((JSON.parse(cli.stdout) as { problems: Array<{ page: number }> }).problems[0]?.page, PAGE)
  const human = await runCli(['verify', store])
  t.equal(human.code, 4)
  t.match(human.stdout, /^ESTALE {2}the lower image .* changed at page 100 /m)
  const read = await runCli(['read', store, '--offset', String(PAGE * P), '--length', '10'])
  t.equal(read.code, 1, 'CLI read fails')
  t.match(read.stderr, /ESTALE|changed at page 100/)
  const other = await runCli(['read', store, '--offset', String((PAGE + 1) * P), '--length', '10'])
  t.equal(other.code, 0, 'another page reads')
})

t.test('verify --record binds an existing store; a store left unbound behaves as before', async (t) => {
  const unbound = await boundImage(t, 'none')
  const before = await verifyStore(unbound.store)
  t.equal(before.bound, false)
  t.equal(before.clean, true)
  const cli = await runCli(['verify', unbound.store])
  t.equal(cli.code, 0)
  t.match(cli.stdout, /fingerprint only/)
  flipByte(t, unbound.lower, PAGE * P + 1)
  const s = await ImageStore.open(unbound.store, { readOnly: true })
  const served = await s.read(PAGE * P, P)
  await s.close()
  t.not(served[1], unbound.data[PAGE * P + 1], 'unbound: the changed byte is served, as before (the fingerprint misses it)')

  const { lower, store } = await boundImage(t, 'none')
  const rec = await runCli(['verify', store, '--record', '--json'])
  t.equal(rec.code, 0, rec.stderr)
  t.match(JSON.parse(rec.stdout), { kind: 'image', files: 1, pages: Math.ceil(SIZE / P), bytes: SIZE })
  flipByte(t, lower, PAGE * P + 1)
  const bound = await ImageStore.open(store, { readOnly: true })
  t.teardown(() => bound.close())
  await t.rejects(bound.read(PAGE * P, 1), { code: 'ESTALE' }, 'recorded later: the change is caught')
})

t.test('a bound tree: a changed lower file page is ESTALE, other files and pages read; verify names it', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'lower')
  mkdirSync(join(lower, 'sub'), { recursive: true })
  const big = pattern(SIZE, 7)
  writeFileSync(join(lower, 'sub', 'big'), big)
  writeFileSync(join(lower, 'small'), 'small file')
  writeFileSync(join(lower, 'empty'), '')
  const store = join(dir, 'store')
  const created = (await createStore(store, { lower, bindLower: true, autoFlushMs: 0 })) as TreeStore
  await created.close()
  flipByte(t, join(lower, 'sub', 'big'), PAGE * P + 9)
  const s = await TreeStore.open(store, { readOnly: true })
  t.teardown(() => s.close())
  await t.rejects(readAll(s, '/sub/big'), { code: 'ESTALE', message: /sub\/big changed at page 100/ })
  const h = await s.open('/sub/big')
  t.same(await h.read(3 * P, 3 * P), big.subarray(3 * P, 6 * P), 'other pages of the file')
  await t.rejects(h.read(PAGE * P + 100, 5), { code: 'ESTALE' }, 'a partial read of the page')
  await h.close()
  t.equal((await readAll(s, '/small')).toString(), 'small file', 'another file')
  t.equal((await readAll(s, '/empty')).length, 0, 'an empty file')
  const report = await verifyStore(store)
  t.same(report.problems.map((p) => [p.code, p.what, p.file, p.page]), [['ESTALE', 'lower', join(lower, 'sub', 'big'), PAGE]])
  const read = await runCli(['read', store, '/sub/big'])
  t.equal(read.code, 1, 'CLI read of the file fails')
  // A file added to the lower after binding is not served either.
  writeFileSync(join(lower, 'new'), 'new')
  await t.rejects(readAll(s, '/new'), { code: 'ESTALE' })
})

t.test('copy-up bases: recorded for a partial copy-up, not for a whole page; dropped when the page is rewritten whole', async (t) => {
  const { store, data } = await boundImage(t, 'none')
  const s = await ImageStore.open(store, { autoFlushMs: 0 })
  t.teardown(() => s.close())
  await s.write(10 * P + 100, Buffer.from('partial'))
  await s.write(20 * P, Buffer.alloc(P, 1))
  await s.write(30 * P + 1, Buffer.alloc(2 * P, 2)) // pages 30 and 32 in part, 31 whole
  await s.write(Math.floor(SIZE / P) * P + 10, Buffer.from('tail')) // the short last page
  await s.flush()
  const { pageSum } = await import('../lib/integrity/hash.js')
  const pagesOf = () => s.copyupBases().map((b) => b.page)
  t.same(pagesOf(), [10, 30, 32, Math.floor(SIZE / P)])
  t.equal(s.copyupBases()[0]!.base, pageSum(data.subarray(10 * P, 11 * P)), 'the sum of the lower page it was built on')
  t.equal(s.copyupBases()[3]!.base, pageSum(data.subarray(Math.floor(SIZE / P) * P)), 'the short last page, hashed as stored')
  t.equal(s.info().copyupBases, 4)
  await s.write(10 * P + 200, Buffer.from('again'))
  await s.write(30 * P, Buffer.alloc(P, 3)) // page 30 rewritten whole
  await s.zero(32 * P, P)
  await s.flush()
  t.same(pagesOf(), [10, Math.floor(SIZE / P)], 'a later partial write keeps the base; whole rewrites and zeroing drop it')
  const inspect = await runCli(['inspect', store, '--json'])
  t.equal(inspect.code, 0, inspect.stderr)
  t.equal((JSON.parse(inspect.stdout) as { info: { copyupBases: number } }).info.copyupBases, 2, 'inspect --json shows the count')
})

t.test('tree copy-up bases and verify of drift under a copied page', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'lower')
  mkdirSync(lower)
  writeFileSync(join(lower, 'f'), pattern(8 * P, 3))
  const store = join(dir, 'store')
  const s = (await createStore(store, { lower, autoFlushMs: 0 })) as TreeStore
  const h = await s.open('/f', 'r+')
  await h.write(2 * P + 5, Buffer.from('x'))
  await h.write(4 * P, Buffer.alloc(P, 9))
  await h.close()
  await s.flush()
  t.equal((await s.fileInfo('/f')).copyupBases, 1)
  await s.close()
  t.equal((await verifyStore(store)).clean, true)
  flipByte(t, join(lower, 'f'), 2 * P + 100) // under the copied page: the store serves the upper's copy
  const report = await verifyStore(store)
  t.equal(report.bound, false)
  t.same(report.problems.map((p) => [p.code, p.what, p.page]), [['ESTALE', 'base', 2]], 'drift under a copied page is reported')
})

t.test('FUSE: a changed page of a bound lower (image, tree) reads as EIO; other pages read', async (t) => {
  if (!fuseUsable(t, ['python3'])) return
  const dir = mountTestDir(t)
  const lower = join(dir, 'base.img')
  const data = pattern(SIZE)
  writeFileSync(lower, data)
  const store = join(dir, 'store')
  await (await createStore(store, { lower, bindLower: true })).close()
  flipByte(t, lower, PAGE * P + 3)
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const m = await mountStore(t, store, mnt, ['--read-only'])
  const script = `
import json, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
out = {}
try:
    os.pread(fd, 4096, ${PAGE * P}); out['bad'] = 'served'
except OSError as e:
    out['bad'] = e.errno
out['good'] = os.pread(fd, 16, ${(PAGE + 2) * P}).hex()
print(json.dumps(out))`
  const got = await python<{ bad: number | string; good: string }>(t, script, dir, [m.image!])
  t.equal(got.bad, 5, 'EIO')
  t.equal(got.good, data.subarray((PAGE + 2) * P, (PAGE + 2) * P + 16).toString('hex'), 'another page reads')
  await unmountAndWait(t, m)

  // A tree store: the file's changed page, read through the mount.
  const treeLower = join(dir, 'tree')
  mkdirSync(treeLower)
  writeFileSync(join(treeLower, 'f'), data)
  const treeStore = join(dir, 'tree-store')
  await (await createStore(treeStore, { lower: treeLower, bindLower: true })).close()
  flipByte(t, join(treeLower, 'f'), PAGE * P + 3)
  const treeMnt = join(dir, 'tree-mnt')
  mkdirSync(treeMnt)
  const tm = await mountStore(t, treeStore, treeMnt, ['--read-only'])
  const file = await python<{ bad: number | string; good: string }>(t, script, dir, [join(treeMnt, 'f')])
  t.equal(file.bad, 5, 'tree: EIO')
  t.equal(file.good, data.subarray((PAGE + 2) * P, (PAGE + 2) * P + 16).toString('hex'), 'tree: another page reads')
  await unmountAndWait(t, tm)
})

t.test('NBD: a changed page of a bound lower gets an error reply (EIO); other pages read', async (t) => {
  const { lower, store, data } = await boundImage(t)
  flipByte(t, lower, PAGE * P + 3)
  const s = await ImageStore.open(store, { readOnly: true })
  const socket = join(shortTempDir(t), 'nbd.sock')
  const server = await NbdServer.listen(s, { socket })
  server.on('warning', () => {}) // the failed read is reported as a warning: expected here
  t.teardown(async () => {
    await server.close()
    await s.close()
  })
  const c = await RawClient.connect(socket)
  t.teardown(() => c.destroy())
  await c.start()
  await c.go()
  const bad = await c.read(PAGE * P, P)
  t.equal(bad.errno, 5, 'EIO')
  const good = await c.read((PAGE + 1) * P, P)
  t.equal(good.errno, 0)
  t.same(good.data, data.subarray((PAGE + 1) * P, (PAGE + 2) * P))
})

t.test('bad input: the new options and the verify command', async (t) => {
  const { dir, lower, store } = await boundImage(t, 'none')
  const lib: Array<[string, () => Promise<unknown>, string]> = [
    ['bindLower not a boolean', () => createStore(join(dir, 'x1'), { lower, bindLower: 'yes' as never }), 'EINVAL'],
    ['onProgress not a function', () => createStore(join(dir, 'x2'), { lower, bindLower: true, onProgress: 5 as never }), 'EINVAL'],
    ['bindLower: misspelled option', () => bindLower(store, { onprogress: () => {} } as never), 'EINVAL'],
    ['bindLower: no store', () => bindLower(join(dir, 'none')), 'ENOENT'],
    ['verifyStore: misspelled option', () => verifyStore(store, { record: true } as never), 'EINVAL'],
    ['verifyStore: no store', () => verifyStore(join(dir, 'none')), 'ENOENT'],
  ]
  for (const [name, call, code] of lib) await t.rejects(call(), { code }, name)
  const writer = await openStore(store)
  await t.rejects(bindLower(store), { code: 'EBUSY' }, 'bindLower while a writer holds the store')
  await writer.close()
  const cli: Array<[string, string[], number, RegExp]> = [
    ['verify without a store', ['verify'], 2, /STORE|missing|argument/i],
    ['verify: unknown flag', ['verify', store, '--recrd'], 2, /unknown option|--recrd/],
    ['verify: no store there', ['verify', join(dir, 'none')], 1, /no pagecow store/],
    ['verify --record: no store there', ['verify', join(dir, 'none'), '--record'], 1, /no pagecow store/],
    ['create --bind-lower with a value', ['create', join(dir, 'x3'), '--lower', lower, '--bind-lower=yes'], 2, /bind-lower|unexpected|argument/i],
  ]
  for (const [name, argv, code, message] of cli) {
    const r = await runCli(argv)
    t.equal(r.code, code, `${name}: exit ${code}`)
    t.match(r.stderr, message, name)
  }
  const json = await runCli(['verify', join(dir, 'none'), '--json'])
  t.match(JSON.parse(json.stdout), { error: { code: 'ENOENT' } }, 'a JSON error with --json')
})

t.test('SIGKILL during verify --record leaves a store that opens (unbound) and can be bound again', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'base.img')
  const big = 192 * 1024 * 1024
  const fd = openSync(lower, 'w')
  const chunk = pattern(1024 * 1024, 5)
  for (let at = 0; at < big; at += chunk.length) {
    chunk.writeUInt32LE(at, 0) // no two MiB alike
    writeSync(fd, chunk, 0, chunk.length, at)
  }
  closeSync(fd)
  const store = join(dir, 'store')
  await (await createStore(store, { lower })).close()
  const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')
  for (const delay of [0, 40, 120]) {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, 'verify', store, '--record'], { cwd: ROOT, env: childEnv(), stdio: 'ignore' })
    const exited = once(child, 'exit')
    // Killed while it records: once its first batch of sums is committed, after `delay` ms more.
    const db = new Database(join(store, DATABASE_FILE), { readonly: true, fileMustExist: true })
    let rows = 0
    for (let i = 0; i < 3000 && rows === 0 && child.exitCode === null; i++) {
      await sleep(5)
      try {
        rows = (db.prepare('SELECT count(*) AS n FROM lower_sums').get() as { n: number }).n
      } catch {
        // the writer is migrating or checkpointing: ask again
      }
    }
    db.close()
    await sleep(delay)
    child.kill('SIGKILL')
    const [, signal] = (await exited) as [number | null, string | null]
    t.equal(signal, 'SIGKILL', `killed ${delay} ms after ${rows} rows of sums were committed`)
    t.ok(rows > 0, 'it was killed while recording')
    const s = await ImageStore.open(store)
    t.equal(s.info().lower.bound, false, 'the store opens, unbound')
    t.same(await s.read(big - 10, 10), chunk.subarray(chunk.length - 10), 'and reads')
    await s.close()
  }
  const done = await bindLower(store)
  t.equal(done.pages, big / P, 'bound again, every page recorded')
  const report = await verifyStore(store)
  t.equal(report.clean, true)
  t.equal(report.checked.lowerPages, big / P)
})

checkNothingLeftMounted(t)

t.test('a tree store over a squashfs image binds and verifies, and leaves no descriptor open', async (t) => {
  const missing = mksquashfsMissing()
  if (missing) return cannotRun(t, missing)
  const dir = t.testdir()
  mkdirSync(join(dir, 'src', 'etc'), { recursive: true })
  writeFileSync(join(dir, 'src', 'etc', 'big'), Buffer.alloc(5 * 4096 + 100, 0x61))
  writeFileSync(join(dir, 'src', 'small'), 'small file\n')
  const image = join(dir, 'root.sqfs')
  mksquashfs(join(dir, 'src'), image, [])
  const storeDir = join(dir, 'store')
  await (await TreeStore.create(storeDir, { lower: image })).close()
  const fds = () => readdirSync('/proc/self/fd').length
  const before = fds()
  const bound = await bindLower(storeDir)
  t.equal(bound.files, 2, 'both files of the image recorded')
  const report = await verifyStore(storeDir)
  t.match(report, { clean: true, bound: true })
  t.equal(fds(), before, 'the image is closed after the walks')
  const store = await TreeStore.open(storeDir, { readOnly: true })
  const h = await store.open('/etc/big', 'r')
  t.same(await h.read(4096 * 5, 100), Buffer.alloc(100, 0x61), 'a bound page of the image reads through its check')
  await h.close()
  await store.close()
})
