// Times are exact to the nanosecond (SPEC §6, issue 9): lower objects show the kernel's times,
// utimens keeps what it is given, a reopen and an export give it back, writes stamp distinct
// times; bad time arguments are refused.
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { lutimensSync } from '../lib/fs.js'
import { exportTree, TreeStore } from '../lib/index.js'

function buildLower(dir: string): void {
  nodeFs.mkdirSync(join(dir, 'sub'), { recursive: true })
  nodeFs.writeFileSync(join(dir, 'file'), 'data\n')
  nodeFs.symlinkSync('file', join(dir, 'link'))
  lutimensSync(join(dir, 'file'), { sec: 1_500_000_000, nsec: 1 }, { sec: 1_600_000_000, nsec: 999_999_999 })
  lutimensSync(join(dir, 'link'), { sec: 1_400_000_000, nsec: 123 }, { sec: 1_400_000_000, nsec: 456 })
  lutimensSync(join(dir, 'sub'), { sec: -86_400, nsec: 5 }, { sec: 1, nsec: 0 })
}

const times = (st: { atimeNs: bigint; mtimeNs: bigint }) => [st.atimeNs, st.mtimeNs]

t.test('lower times are the kernel\'s, exactly', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const store = await TreeStore.create(join(root, 'store'), { lower, autoFlushMs: 0 })
  t.teardown(() => store.close())
  for (const path of ['file', 'link', 'sub']) {
    const kernel = nodeFs.lstatSync(join(lower, path), { bigint: true })
    const ours = await store.stat(`/${path}`)
    t.same([ours.atimeNs, ours.mtimeNs, ours.ctimeNs], [kernel.atimeNs, kernel.mtimeNs, kernel.ctimeNs], `/${path}: atime, mtime, ctime to the nanosecond`)
    t.equal(ours.mtimeMs, Number(nodeFs.lstatSync(join(lower, path)).mtimeMs), `/${path}: mtimeMs as node:fs derives it`)
  }
  await store.chmod('/file', 0o600) // metadata copy-up: the times are copied exactly
  t.same(times(await store.stat('/file')), [1_500_000_000_000_000_001n, 1_600_000_000_999_999_999n], 'a metadata copy-up keeps them exactly')
})

t.test('utimens keeps nanoseconds through a reopen and an export', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const storeDir = join(root, 'store')
  let store = await TreeStore.create(storeDir, { lower, autoFlushMs: 0 })
  const cases: Array<[string, bigint, bigint]> = [
    ['/file', 1_700_000_000_123_456_789n, 1_700_000_000_987_654_321n],
    ['/link', 1n, -1n],
    ['/sub', -2_147_400_000_000_000_001n, 4_102_444_800_999_999_999n], // 1901 (ext4 holds no earlier) and 2100
  ]
  for (const [path, atimeNs, mtimeNs] of cases) await store.utimens(path, { atimeNs, mtimeNs })
  const h = await store.open('/new', 'wx')
  await h.write(0, Buffer.from('one'))
  const first = (await h.stat()).mtimeNs
  await h.write(3, Buffer.from('two'))
  const second = (await h.stat()).mtimeNs
  await h.close()
  t.ok(second > first, 'two writes in a row get distinct mtimes (nanosecond clock)')
  await store.utimens('/new', { mtimeMs: 1_600_000_000_123.5 })
  t.equal((await store.stat('/new')).mtimeNs, 1_600_000_000_123_500_000n, 'milliseconds still work, to the nearest nanosecond')
  await store.utimens('/new', { atimeNs: 'now' })
  await store.close()

  store = await TreeStore.open(storeDir, { autoFlushMs: 0 })
  t.teardown(() => store.close())
  for (const [path, atimeNs, mtimeNs] of cases) t.same(times(await store.stat(path)), [atimeNs, mtimeNs], `${path}: exact after a reopen`)
  const out = join(root, 'out')
  await exportTree(store, out)
  for (const [path, atimeNs, mtimeNs] of cases) {
    t.same(times(nodeFs.lstatSync(join(out, path), { bigint: true })), [atimeNs, mtimeNs], `${path}: exact in the export (the kernel's stat of it)`)
  }
  t.equal(nodeFs.lstatSync(join(out, 'new'), { bigint: true }).mtimeNs, 1_600_000_000_123_500_000n, 'and a file made in the upper')
})

t.test('bad time arguments', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const store = await TreeStore.create(join(root, 'store'), { lower, autoFlushMs: 0 })
  t.teardown(() => store.close())
  const before = await store.stat('/file')
  const bad: Array<[string, unknown]> = [
    ['a number of nanoseconds', { mtimeNs: 5 }],
    ['both atimeNs and atimeMs', { atimeNs: 1n, atimeMs: 1 }],
    ['both mtimeNs and mtimeMs', { mtimeNs: 1n, mtimeMs: 1 }],
    ['an infinite ms', { mtimeMs: Infinity }],
    ['a string', { mtimeNs: '1' }],
    ['a misspelled option', { mtimeNS: 1n }],
  ]
  for (const [what, options] of bad) await t.rejects(store.utimens('/file', options as never), { code: 'EINVAL' }, `${what} → EINVAL`)
  t.same(times(await store.stat('/file')), times(before), 'nothing changed')
})
