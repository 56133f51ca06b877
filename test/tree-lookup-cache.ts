// The namespace's lookup cache (lib/tree/lookup-cache.ts, bounded-cache.ts, Namespace.cached*):
// a path looked up, then changed, is never served from what was cached before the change, in the
// writer's store, in a reader's store following it, and after a transaction that rolled back.
import t from 'tap'
import type { TapTest } from './fixtures/tap-test.js'
import Database from 'better-sqlite3'
import { execFileSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { TreeStore } from '../lib/index.js'
import { BoundedCache } from '../lib/tree/bounded-cache.js'
import { LOWER_ROWS_TRACKED } from '../lib/tree/lookup-cache.js'
import { Namespace, type InodeRow } from '../lib/tree/namespace.js'
import { UPPER_INO_BASE } from '../lib/tree/ino.js'
import { buildLower } from './fixtures/tree-lower.js'
import { childEnv } from './fixtures/child-env.js'

async function setup(t: TapTest) {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  t.teardown(() => store.close())
  return { root, lower, dir, store }
}

/** The store's database, its writer closed, with a Namespace over it. */
async function rawNamespace(t: TapTest) {
  const s = await setup(t)
  await s.store.close()
  const db = new Database(join(s.dir, 'pagecow.db'))
  db.function('pagecow_counted', (n: unknown) => n) // as pagecow's own connections (lib/store/database.ts)
  t.teardown(() => db.close())
  return { ...s, db, ns: new Namespace(db, s.dir) }
}

function upperRow(ino: number, origin: string | null): InodeRow {
  return { ino, type: 'file', origin, nlink: 1, mode: 0o644, uid: 0, gid: 0, rdev: 0, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, target: null, file: null, lowerPrint: null, opaque: false }
}

t.test('BoundedCache keeps at most its size, dropping the least recently used', async (t) => {
  const c = new BoundedCache<string, number | null>(3)
  c.set('a', 1)
  c.set('b', null)
  c.set('c', 3)
  t.equal(c.get('a'), 1, 'a is now the most recently used')
  c.set('d', 4)
  t.equal(c.size, 3)
  t.equal(c.get('b'), undefined, 'b went first')
  t.equal(c.get('c'), 3)
  c.set('e', 5)
  t.equal(c.get('a'), undefined, 'then a')
  t.same([c.get('c'), c.get('d'), c.get('e')], [3, 4, 5])
  c.set('c', 30)
  t.equal(c.get('c'), 30, 'set replaces')
  c.delete('c')
  t.equal(c.get('c'), undefined)
  c.clear()
  t.equal(c.size, 0)
})

t.test('the writer sees its own changes right after a cached lookup', async (t) => {
  const { store } = await setup(t)
  // Each case looks the names up first (filling the cache, negatives included), then changes them.
  t.equal((await store.stat('/etc/hosts')).type, 'file')
  await store.unlink('/etc/hosts')
  await t.rejects(store.stat('/etc/hosts'), { code: 'ENOENT' }, 'a whiteout right after a positive lookup')
  await t.rejects(store.stat('/etc/hosts'), { code: 'ENOENT' }, 'and again, from the cache')
  await store.create('/etc/hosts', { mode: 0o600 })
  t.match(await store.stat('/etc/hosts'), { size: 0, mode: 0o100600 }, 'a fresh object where the whiteout was')

  await t.rejects(store.stat('/new'), { code: 'ENOENT' })
  await store.mkdir('/new')
  t.equal((await store.stat('/new')).type, 'directory', 'a name created right after a negative lookup')

  const passwd = await store.stat('/etc/passwd')
  await store.rename('/etc/passwd', '/new/passwd')
  await t.rejects(store.stat('/etc/passwd'), { code: 'ENOENT' }, 'renamed away')
  t.equal((await store.stat('/new/passwd')).ino, passwd.ino, 'found at its new name')
  await store.rename('/new/passwd', '/etc/passwd')
  t.equal((await store.stat('/etc/passwd')).ino, passwd.ino, 'and back')
  await t.rejects(store.stat('/new/passwd'), { code: 'ENOENT' })

  t.equal((await store.stat('/usr/share/doc/README')).type, 'file')
  await store.rm('/usr/share/doc', { recursive: true })
  await store.mkdir('/usr/share/doc')
  await t.rejects(store.stat('/usr/share/doc/README'), { code: 'ENOENT' }, 'hidden by an opaque directory')
  t.same(await store.readdir('/usr/share/doc'), [])

  t.equal((await store.stat('/usr/bin/tool-link')).mode & 0o7777, 0o755)
  await store.chmod('/usr/bin/tool', 0o700)
  t.equal((await store.stat('/usr/bin/tool-link')).mode & 0o7777, 0o700, 'metadata recorded through one lower hard link shows through the other')
  t.equal((await store.stat('/usr/bin/tool')).nlink, 2)
  await store.unlink('/usr/bin/tool')
  t.equal((await store.stat('/usr/bin/tool-link')).nlink, 1, 'the link count follows')

  t.equal((await store.stat('/var/empty')).mode & 0o7777, 0o711)
  await store.chmod('/var/empty', 0o755)
  t.equal((await store.stat('/var/empty')).mode & 0o7777, 0o755, 'a row recorded for a directory right after it was walked')
  await store.symlink('target', '/var/empty/link')
  t.equal(await store.readlink('/var/empty/link'), 'target', 'an entry in a directory cached as having none')
})

t.test('a read-only store follows the writer past its cached lookups', async (t) => {
  const { dir, store } = await setup(t)
  const ro = await TreeStore.open(dir, { readOnly: true })
  t.teardown(() => ro.close())
  // Fill the reader's cache: positives, negatives, and the set of recorded lower objects.
  const hosts = await ro.stat('/etc/hosts')
  await t.rejects(ro.stat('/made'), { code: 'ENOENT' })
  t.equal((await ro.stat('/etc/passwd')).mode & 0o7777, 0o644)
  t.equal((await ro.stat('/usr/bin/tool-link')).nlink, 2)
  await t.rejects(ro.stat('/usr/bin/tool2'), { code: 'ENOENT' })

  await store.mkdir('/made')
  t.equal((await ro.stat('/made')).type, 'directory', 'a directory the writer made after a negative lookup')
  await store.unlink('/etc/hosts')
  await t.rejects(ro.stat('/etc/hosts'), { code: 'ENOENT' }, 'a whiteout the writer made after a positive lookup')
  await store.chmod('/etc/passwd', 0o600)
  t.equal((await ro.stat('/etc/passwd')).mode & 0o7777, 0o600, 'a row the writer recorded for a lower file')
  await store.rename('/usr/bin/tool', '/usr/bin/tool2')
  t.equal((await ro.stat('/usr/bin/tool2')).type, 'file', 'the new name of a rename')
  await t.rejects(ro.stat('/usr/bin/tool'), { code: 'ENOENT' }, 'the old name')
  t.equal((await ro.stat('/usr/bin/tool-link')).nlink, 2, 'the other lower hard link now resolves to the recorded row')

  const h = await store.open('/made/file', 'wx')
  await h.write(0, Buffer.from('hello'))
  await h.close()
  await store.flush()
  t.match(await ro.stat('/made/file'), { type: 'file', size: 5 }, 'a file created and flushed by the writer')
  t.same((await ro.readdir('/made')).map((e) => e.name), ['file'])
  await store.create('/etc/hosts')
  t.not((await ro.stat('/etc/hosts')).ino, hosts.ino, 'a fresh object where the lower file was')

  // A reader opened after the writer closed sees the same.
  await store.close()
  const again = await TreeStore.open(dir, { readOnly: true })
  t.teardown(() => again.close())
  t.equal((await again.stat('/etc/passwd')).mode & 0o7777, 0o600)
  t.equal((await again.stat('/made/file')).size, 5)
})

t.test('a read-only store follows a writer in another process past its cached lookups', async (t) => {
  const { dir, store } = await setup(t)
  await store.close()
  const ro = await TreeStore.open(dir, { readOnly: true })
  t.teardown(() => ro.close())
  await t.rejects(ro.stat('/other'), { code: 'ENOENT' })
  t.equal((await ro.stat('/etc/shadow')).mode & 0o7777, 0o600)
  t.equal((await ro.stat('/home/user/notes.txt')).type, 'file')
  const script = `
    const { TreeStore } = await import(${JSON.stringify(new URL('../lib/index.ts', import.meta.url).href)})
    const store = await TreeStore.open(${JSON.stringify(dir)}, { autoFlushMs: 0 })
    await store.mkdir('/other')
    await store.chmod('/etc/shadow', 0o640)
    await store.unlink('/home/user/notes.txt')
    await store.close()`
  execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: childEnv(), stdio: 'inherit' })
  t.equal((await ro.stat('/other')).type, 'directory')
  t.equal((await ro.stat('/etc/shadow')).mode & 0o7777, 0o640)
  await t.rejects(ro.stat('/home/user/notes.txt'), { code: 'ENOENT' })
})

t.test('a lower root that is gone is ESTALE, whatever path is asked', async (t) => {
  const { root, dir, store } = await setup(t)
  await store.close()
  const ro = await TreeStore.open(dir, { readOnly: true })
  t.teardown(() => ro.close())
  t.equal((await ro.stat('/etc/hosts')).type, 'file')
  nodeFs.renameSync(join(root, 'lower'), join(root, 'lower.moved'))
  await t.rejects(ro.stat('/etc/hosts'), { code: 'ESTALE' })
  await t.rejects(ro.stat('/nothing'), { code: 'ESTALE' })
  await t.rejects(ro.stat('/'), { code: 'ESTALE' })
  await t.rejects(ro.readdir('/'), { code: 'ESTALE' })
  nodeFs.renameSync(join(root, 'lower.moved'), join(root, 'lower'))
  t.equal((await ro.stat('/etc/hosts')).type, 'file', 'served again once it is back')
})

t.test('a rolled-back transaction leaves nothing it read in the cache', async (t) => {
  const { ns, lower } = await rawNamespace(t)
  const rootIno = nodeFs.lstatSync(lower).ino
  const etcIno = nodeFs.lstatSync(join(lower, 'etc')).ino
  const boom = new Error('boom')
  t.equal(ns.cachedDirent(rootIno, 'x'), undefined)
  t.throws(() =>
    ns.transaction(() => {
      ns.insertInode(upperRow(UPPER_INO_BASE + 100, null))
      ns.setDirent(rootIno, 'x', UPPER_INO_BASE + 100)
      t.same(ns.cachedDirent(rootIno, 'x'), { ino: UPPER_INO_BASE + 100 }, 'seen inside the transaction')
      t.ok(ns.cachedInode(UPPER_INO_BASE + 100))
      throw boom
    }),
  )
  t.equal(ns.cachedDirent(rootIno, 'x'), undefined, 'gone with the rollback')
  t.equal(ns.cachedInode(UPPER_INO_BASE + 100), undefined)

  ns.transaction(() => {
    ns.insertInode(upperRow(etcIno, 'etc'))
    ns.setDirent(rootIno, 'y', etcIno)
  })
  t.same(ns.cachedDirent(rootIno, 'y'), { ino: etcIno })
  t.throws(() =>
    ns.transaction(() => {
      ns.deleteDirentsOf(rootIno)
      ns.deleteInode(etcIno)
      t.equal(ns.cachedDirent(rootIno, 'y'), undefined, 'removed inside the transaction')
      t.equal(ns.cachedInode(etcIno), undefined)
      t.equal(ns.cachedInodeAtOrigin('etc'), undefined)
      throw boom
    }),
  )
  t.same(ns.cachedDirent(rootIno, 'y'), { ino: etcIno }, 'back after the rollback')
  t.equal(ns.cachedInode(etcIno)?.origin, 'etc')
  t.equal(ns.cachedInodeAtOrigin('etc')?.ino, etcIno)
})

t.test('cached rows are frozen: a caller cannot change what the next one reads', async (t) => {
  const { ns } = await rawNamespace(t)
  ns.insertInode(upperRow(7, 'seven'))
  const row = ns.cachedInode(7)!
  t.throws(() => {
    ;(row as InodeRow).mode = 0o777
  }, TypeError)
  t.equal(ns.cachedInode(7)!.mode, 0o644)
})

t.test('a write outside a transaction drops what it changes from the cache', async (t) => {
  const { ns } = await rawNamespace(t)
  ns.insertInode(upperRow(UPPER_INO_BASE + 1, null))
  t.equal(ns.cachedInode(UPPER_INO_BASE + 1)?.mode, 0o644)
  ns.setMeta(UPPER_INO_BASE + 1, { mode: 0o600 })
  t.equal(ns.cachedInode(UPPER_INO_BASE + 1)?.mode, 0o600, 'setMeta')
  ns.setDirent(UPPER_INO_BASE + 1, 'a', UPPER_INO_BASE + 1)
  t.same(ns.cachedDirent(UPPER_INO_BASE + 1, 'a'), { ino: UPPER_INO_BASE + 1 })
  ns.setDirent(UPPER_INO_BASE + 1, 'a', null)
  t.same(ns.cachedDirent(UPPER_INO_BASE + 1, 'a'), { ino: null }, 'setDirent over an entry read before')
  ns.deleteDirent(UPPER_INO_BASE + 1, 'a')
  t.equal(ns.cachedDirent(UPPER_INO_BASE + 1, 'a'), undefined, 'deleteDirent')
  ns.setNlink(UPPER_INO_BASE + 1, 0)
  t.equal(ns.cachedInode(UPPER_INO_BASE + 1)?.nlink, 0, 'setNlink')
  ns.deleteInode(UPPER_INO_BASE + 1)
  t.equal(ns.cachedInode(UPPER_INO_BASE + 1), undefined, 'deleteInode')
})

t.test(`more than ${LOWER_ROWS_TRACKED} recorded lower objects: every lookup asks SQLite`, async (t) => {
  const { ns, db, dir } = await rawNamespace(t)
  t.equal(ns.cachedInode(10), undefined, 'the set of recorded lower objects is read (empty)')
  const n = LOWER_ROWS_TRACKED + 10
  ns.transaction(() => {
    for (let i = 0; i < n; i++) ns.insertInode(upperRow(1_000_000 + i, `many/${i}`))
  })
  t.equal(ns.cachedInode(1_000_000 + n - 1)?.origin, `many/${n - 1}`, 'rows inserted past the limit are found')
  t.equal(ns.cachedInodeAtOrigin('many/3')?.ino, 1_000_003)
  t.equal(ns.cachedInode(10), undefined)
  t.equal(ns.cachedInodeAtOrigin('many/none'), undefined)
  const fresh = new Namespace(db, dir)
  t.equal(fresh.cachedInode(1_000_000 + 5)?.origin, 'many/5', 'a namespace that finds too many to track from the start')
  t.equal(fresh.cachedInode(10), undefined)
  t.equal(fresh.cachedInodeAtOrigin(`many/${n - 1}`)?.ino, 1_000_000 + n - 1)
})
