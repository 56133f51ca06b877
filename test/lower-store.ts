// A tree store as the lower of another (lower-store.ts): its merged tree read through, the base
// sealed against writes, writes on top, and a store in a stack (A:STORE:C) against the kernel's
// overlay of the same layers with the store exported to a directory.
import { join } from 'node:path'
import * as nodeFs from 'node:fs'
import t from 'tap'
import { bindLower, checkStore, exportTree, TreeStore } from '../lib/index.js'
import { DATABASE_FILE, openDatabase } from '../lib/store/database.js'
import { readStoreMeta, writeMeta } from '../lib/store/meta.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { mountTestDir } from './fixtures/fuse-mounted.js'
import { buildLayers, compareWalks, kernelOverlay, walkFs, walkStore } from './fixtures/overlay-layers.js'
import { IS_ROOT } from './fixtures/tree-lower.js'

const ALL = { times: true, dirSizes: true }

/** A base store over a directory, changed in every way a namespace can change. */
async function makeBase(dir: string): Promise<string> {
  const lower = join(dir, 'base-lower')
  nodeFs.mkdirSync(join(lower, 'etc'), { recursive: true })
  nodeFs.writeFileSync(join(lower, 'etc/hosts'), '127.0.0.1 localhost\n')
  nodeFs.writeFileSync(join(lower, 'etc/gone'), 'removed in the base\n')
  nodeFs.writeFileSync(join(lower, 'big'), Buffer.alloc(5 * 4096, 'b'))
  nodeFs.writeFileSync(join(lower, 'moved'), 'renamed in the base\n')
  nodeFs.linkSync(join(lower, 'big'), join(lower, 'big-link'))
  const path = join(dir, 'base')
  const base = await TreeStore.create(path, { lower, autoFlushMs: 0 })
  const h = await base.open('/big', 'r+')
  await h.write(4096 + 10, Buffer.from('BASE'))
  await h.close()
  await base.unlink('/etc/gone')
  await base.rename('/moved', '/etc/moved')
  await base.mkdir('/new-dir', { mode: 0o750 })
  const n = await base.open('/new-dir/new', 'w')
  await n.write(0, Buffer.from('made in the base\n'))
  await n.close()
  await base.chmod('/etc/hosts', 0o600)
  await base.setxattr('/etc/hosts', 'user.base', Buffer.from('yes'))
  await base.symlink('etc/hosts', '/hosts-link')
  await base.close()
  return path
}

t.test('a tree store on a tree store: read through, the base sealed, writes on top, fsck clean', async (t) => {
  const dir = t.testdir()
  const basePath = await makeBase(dir)
  const topPath = join(dir, 'top')
  const top = await TreeStore.create(topPath, { lower: basePath, autoFlushMs: 0 })
  t.same(top.info().lower, { path: basePath, format: 'store' }, 'the base is detected as a store')
  const base = await TreeStore.open(basePath, { readOnly: true })
  compareWalks(t, await walkStore(top, ALL), await walkStore(base, ALL), 'the top reads the base as the base reads itself')
  t.notSame((await top.stat('/big')).ino, (await top.stat('/new-dir/new')).ino, 'the base lower and upper objects keep distinct numbers')
  await base.close()

  await t.rejects(TreeStore.open(basePath), { code: 'EROFS' }, 'the sealed base refuses a writable open')
  await t.rejects(bindLower(basePath), { code: 'EROFS' }, 'and refuses to bind its lower (verify --record would write into it)')

  // Writes on top: a page of a file whose pages the base holds, a file the base made, a removal.
  const h = await top.open('/big', 'r+')
  await h.write(3 * 4096, Buffer.from('TOP'))
  await h.close()
  await top.unlink('/new-dir/new')
  await top.rename('/etc/moved', '/moved-back')
  await top.close()

  const again = await TreeStore.open(topPath, { readOnly: true })
  const big = await again.open('/big')
  const bytes = await big.read(0, 5 * 4096)
  await big.close()
  t.equal(bytes.subarray(4096 + 10, 4096 + 14).toString(), 'BASE', "the base's page reads through")
  t.equal(bytes.subarray(3 * 4096, 3 * 4096 + 3).toString(), 'TOP', 'the page written on top')
  t.equal(bytes.subarray(0, 4).toString(), 'bbbb', "the base's lower bytes read through")
  t.same((await again.readdir('/new-dir')).map((e) => e.name), [], 'removed on top')
  t.equal((await again.stat('/moved-back')).type, 'file', 'renamed on top')
  await again.close()

  const baseAfter = await TreeStore.open(basePath, { readOnly: true })
  const bb = await baseAfter.open('/big')
  t.equal((await bb.read(3 * 4096, 3)).toString(), 'bbb', 'the base is unchanged by the top')
  await bb.close()
  t.equal((await baseAfter.stat('/new-dir/new')).type, 'file', 'the base keeps what the top removed')
  await baseAfter.close()
  for (const path of [topPath, basePath]) {
    const report = await checkStore(path)
    t.ok(report.clean, `fsck ${path}: clean`, { problems: report.problems })
  }

  // Depth two: a store on the top.
  const third = await TreeStore.create(join(dir, 'third'), { lower: topPath, autoFlushMs: 0 })
  const b3 = await third.open('/big')
  t.equal((await b3.read(3 * 4096, 3)).toString(), 'TOP', 'a store on a store on a store reads through both')
  await b3.close()
  await third.close()
  await t.rejects(TreeStore.open(topPath), { code: 'EROFS' }, 'the middle store is sealed now too')
})

t.test('a base sealed again since (or unsealed): the store on it is refused with ESTALE', async (t) => {
  const dir = t.testdir()
  const basePath = await makeBase(dir)
  const top = await TreeStore.create(join(dir, 'top'), { lower: basePath })
  await top.close()
  const db = openDatabase(join(basePath, DATABASE_FILE), { readOnly: false })
  const meta = readStoreMeta(db, basePath)
  if (meta.kind !== 'tree') throw new Error('a tree store')
  db.transaction(() => writeMeta(db, { ...meta, sealed: { id: 'another-seal', at: new Date().toISOString() } }))()
  db.close()
  await t.rejects(TreeStore.open(join(dir, 'top')), { code: 'ESTALE' }, 'ESTALE: the base may have been written')
  await t.rejects(TreeStore.open(join(dir, 'top'), { readOnly: true }), { code: 'ESTALE' }, 'read-only too')
  const report = await checkStore(join(dir, 'top'))
  t.ok(report.problems.some((p) => p.code === 'ESTALE'), 'fsck names it', { problems: report.problems })
})

t.test('a store in a stack (A:STORE:C) reads as the kernel overlays A, the store exported, and C', async (t) => {
  if (!IS_ROOT) return cannotRun(t, 'whiteouts (mknod), trusted.overlay.* and an overlay mount need root')
  const dir = mountTestDir(t)
  const [a, b, c] = buildLayers(join(dir, 'layers'))
  const basePath = join(dir, 'base')
  const base = await TreeStore.create(basePath, { lower: b, autoFlushMs: 0 })
  const h = await base.open('/mid.txt', 'r+')
  await h.write(100, Buffer.from('written in the store'))
  await h.close()
  // A store layer shows its merged tree, as its export does: what it removed is absent from it,
  // not a whiteout over the layers below it (C's both.txt shows through, in both).
  await base.unlink('/both.txt')
  await base.mkdir('/from-store', { mode: 0o755 })
  const exported = join(dir, 'exported')
  await exportTree(base, exported)
  await base.close()
  const mnt = join(dir, 'kernel')
  kernelOverlay(t, [a, exported, c], mnt)
  const stack = await TreeStore.create(join(dir, 'stack'), { lower: [a, basePath, c], autoFlushMs: 0 })
  const times = { times: false, dirSizes: false } // an export makes new directories (their own sizes, and times where it writes)
  compareWalks(t, await walkStore(stack, times), walkFs(mnt, times), 'pagecow A:STORE:C vs the kernel over A:export:C')
  await stack.close()
  const report = await checkStore(join(dir, 'stack'))
  t.ok(report.clean, 'fsck: clean', { problems: report.problems })
})
