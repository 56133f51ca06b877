// Several lowers (lower-stack.ts), leftmost on top, against the kernel's overlayfs on the same
// layers: the merged tree read through the library and through a FUSE mount, then writes on top
// compared with an overlay mount that has an upper.
import { join } from 'node:path'
import * as nodeFs from 'node:fs'
import t from 'tap'
import { checkStore, createStore, ImageStore, TreeStore } from '../lib/index.js'
import { parseLowerList } from '../lib/cli/lower-list.js'
import { runCli } from './fixtures/cli-io.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { fuseUsable, mountStore, mountTestDir, unmountAndWait } from './fixtures/fuse-mounted.js'
import { buildLayers, compareWalks, kernelOverlay, tmpfs, walkFs, walkStore } from './fixtures/overlay-layers.js'
import { IS_ROOT } from './fixtures/tree-lower.js'

const ALL = { times: true, dirSizes: true }

t.test('several lowers read as the kernel overlays them (lowerdir=A:B:C, read-only)', async (t) => {
  if (!IS_ROOT) return cannotRun(t, 'whiteouts (mknod), trusted.overlay.* and an overlay mount need root')
  const dir = mountTestDir(t)
  const layers = buildLayers(join(dir, 'layers'))
  const mnt = join(dir, 'kernel')
  kernelOverlay(t, layers, mnt)
  const want = walkFs(mnt, ALL)
  const store = await TreeStore.create(join(dir, 'store'), { lower: layers, autoFlushMs: 0 })
  compareWalks(t, await walkStore(store, ALL), want, 'pagecow A:B:C vs the kernel')
  const inos = [...(await walkStore(store, ALL)).values()].map((s) => s.ino)
  t.ok(inos.every((n) => n !== undefined && n < 2 ** 48), 'lower objects keep numbers in the lower range')
  t.same(store.info().lowers.map((l) => l.format), ['directory', 'directory', 'directory'], 'info lists the lowers, top first')
  t.equal(store.info().lower.format, 'stack')
  await store.close()

  const again = await TreeStore.open(join(dir, 'store'), { readOnly: true })
  const reopened = await walkStore(again, ALL)
  t.same([...reopened.values()].map((s) => s.ino), inos, 'inode numbers are the same after a reopen')
  await again.close()
  const report = await checkStore(join(dir, 'store'))
  t.ok(report.clean, 'fsck: clean', { problems: report.problems })
})

t.test('writes on top behave as overlayfs with an upper: copy-up from the middle, rename across lowers, unlink of a name in two lowers', async (t) => {
  if (!IS_ROOT) return cannotRun(t, 'whiteouts (mknod), trusted.overlay.* and an overlay mount need root')
  const dir = mountTestDir(t)
  const layers = buildLayers(join(dir, 'layers'))
  const upperFs = join(dir, 'upper-fs')
  tmpfs(t, upperFs)
  nodeFs.mkdirSync(join(upperFs, 'upper'))
  nodeFs.mkdirSync(join(upperFs, 'work'))
  const mnt = join(dir, 'kernel')
  kernelOverlay(t, layers, mnt, { upperdir: join(upperFs, 'upper'), workdir: join(upperFs, 'work') })
  const store = await TreeStore.create(join(dir, 'store'), { lower: layers, autoFlushMs: 0 })

  // The kernel, through its mount.
  const fd = nodeFs.openSync(join(mnt, 'mid.txt'), 'r+')
  nodeFs.writeSync(fd, Buffer.from('XYZ'), 0, 3, 5000)
  nodeFs.closeSync(fd)
  nodeFs.renameSync(join(mnt, 'renameme.txt'), join(mnt, 'd/renamed.txt'))
  nodeFs.unlinkSync(join(mnt, 'both.txt'))
  nodeFs.unlinkSync(join(mnt, 'd/shared'))
  nodeFs.rmSync(join(mnt, 'c-only'), { recursive: true })
  nodeFs.mkdirSync(join(mnt, 'c-only'), { mode: 0o755 })
  nodeFs.writeFileSync(join(mnt, 'd/sub/new'), 'new on top\n', { mode: 0o644 })
  nodeFs.chmodSync(join(mnt, 'd/b1'), 0o640)

  // pagecow, through its API.
  const h = await store.open('/mid.txt', 'r+')
  await h.write(5000, Buffer.from('XYZ'))
  await h.close()
  await store.rename('/renameme.txt', '/d/renamed.txt')
  await store.unlink('/both.txt')
  await store.unlink('/d/shared')
  await store.rm('/c-only', { recursive: true })
  await store.mkdir('/c-only', { mode: 0o755 })
  const n = await store.open('/d/sub/new', 'w', { mode: 0o644 })
  await n.write(0, Buffer.from('new on top\n'))
  await n.close()
  await store.chmod('/d/b1', 0o640)

  const after = { times: false, dirSizes: false }
  compareWalks(t, await walkStore(store, after), walkFs(mnt, after), 'after the writes')
  for (const l of layers) t.ok(nodeFs.existsSync(join(l, l.endsWith('C') ? 'both.txt' : 'd')), `the lower ${l} is untouched`)
  t.equal(nodeFs.readFileSync(join(layers[1], 'mid.txt'), 'utf8'), 'm'.repeat(16384), 'the middle lower keeps its bytes')
  await store.close()
  const report = await checkStore(join(dir, 'store'))
  t.ok(report.clean, 'fsck: clean', { problems: report.problems })
})

t.test('a FUSE mount of a stacked store shows what the kernel overlay shows', async (t) => {
  if (!IS_ROOT) return cannotRun(t, 'whiteouts (mknod), trusted.overlay.* and an overlay mount need root')
  if (!fuseUsable(t)) return
  const dir = mountTestDir(t)
  const layers = buildLayers(join(dir, 'layers'))
  const kernel = join(dir, 'kernel')
  kernelOverlay(t, layers, kernel)
  const store = await TreeStore.create(join(dir, 'store'), { lower: layers })
  await store.close()
  const mnt = join(dir, 'fuse')
  nodeFs.mkdirSync(mnt)
  const m = await mountStore(t, join(dir, 'store'), mnt, ['--read-only'])
  compareWalks(t, walkFs(mnt, ALL), walkFs(kernel, ALL), 'FUSE vs the kernel')
  await unmountAndWait(t, m)
})

t.test('--lower A:B:C: paths split at ":", "\\:" and "\\\\" escaped as in overlayfs', async (t) => {
  t.same(parseLowerList('a:b:c'), ['a', 'b', 'c'])
  t.same(parseLowerList('one'), ['one'], 'one path, as before')
  t.same(parseLowerList('with\\:colon:b'), ['with:colon', 'b'], "'\\:' is a ':' inside a path")
  t.same(parseLowerList('back\\\\:b'), ['back\\', 'b'], "'\\\\' is a '\\'")
  for (const bad of ['a::b', ':a', 'a:', '', 'a\\b', 'a\\']) t.throws(() => parseLowerList(bad), { code: 'EINVAL' }, `${JSON.stringify(bad)}: EINVAL`)
  const dir = t.testdir({ 'a:colon': { f: 'in a directory whose name holds a colon\n' }, b: { g: 'g\n' } })
  const made = await runCli(['create', join(dir, 'store'), '--lower', `${join(dir, 'a\\:colon')}:${join(dir, 'b')}`, '--json'])
  t.equal(made.code, 0, made.stderr)
  t.same((JSON.parse(made.stdout) as { lowers: Array<{ path: string }> }).lowers.map((l) => l.path), [join(dir, 'a:colon'), join(dir, 'b')])
})

t.test('bad lowers: a clear error, nothing made (library and CLI)', async (t) => {
  const dir = t.testdir({ a: { f: 'a\n' }, b: { g: 'b\n' }, file: 'a regular file\n', image: { 'disk.img': 'x'.repeat(4096) } })
  const at = (name: string) => join(dir, name)
  await ImageStore.create(at('image-store'), { lower: at('image/disk.img') }).then((s) => s.close())
  const many = Array.from({ length: 17 }, (_, i) => at(`many/${i}`))
  for (const m of many) nodeFs.mkdirSync(m, { recursive: true })
  const cases: Array<{ what: string; lower: string | string[]; cli?: string; code: string; exit?: number }> = [
    { what: 'a missing lower', lower: [at('a'), at('missing')], code: 'ENOENT' },
    { what: 'an empty entry (A::B)', lower: [at('a'), '', at('b')], cli: `${at('a')}::${at('b')}`, code: 'EINVAL' },
    { what: 'the same lower twice', lower: [at('a'), at('b'), at('a')], code: 'EINVAL' },
    { what: 'the same lower twice, by another path', lower: [at('a'), `${at('b')}/../a`], code: 'EINVAL' },
    { what: 'a lower that is a regular file', lower: [at('a'), at('file')], code: 'ENOTDIR' },
    { what: 'more than 16 lowers', lower: many, code: 'EINVAL' },
    { what: 'an empty list', lower: [], cli: '', code: 'EINVAL', exit: 2 }, // the CLI's usage error: --lower is required
    { what: 'an image store as a tree lower', lower: [at('a'), at('image-store')], code: 'EINVAL' },
    { what: 'the store inside a lower', lower: [at('b'), at('a')], code: 'EINVAL' },
  ]
  for (const c of cases) {
    const store = c.what === 'the store inside a lower' ? at('a/store') : at('store')
    await t.rejects(TreeStore.create(store, { lower: c.lower }), { code: c.code }, `TreeStore.create: ${c.what}: ${c.code}`)
    await t.rejects(createStore(store, { lower: c.lower }), { code: c.code }, `createStore: ${c.what}: ${c.code}`)
    t.notOk(nodeFs.existsSync(join(store, 'pagecow.db')), `${c.what}: no store made`)
    const cli = await runCli(['create', store, '--lower', c.cli ?? (Array.isArray(c.lower) ? c.lower.join(':') : c.lower)])
    t.equal(cli.code, c.exit ?? 1, `pagecow create: ${c.what}: exit ${c.exit ?? 1}`)
    t.match(cli.stderr, c.exit ? /lower/ : new RegExp(c.code === 'ENOTDIR' ? 'neither a directory' : c.code === 'ENOENT' ? 'does not exist' : 'lower'), `pagecow create: ${c.what}: says why`)
    t.notOk(nodeFs.existsSync(join(store, 'pagecow.db')), `pagecow create: ${c.what}: no store made`)
  }
})
