// fsck of tree stores: clean after real use, and each kind of damage reported with its code.
import t from 'tap'
import type { TapTest } from './fixtures/tap-test.js'
import Database from 'better-sqlite3'
import { sumExistingRows } from '../lib/integrity/sum-existing-rows.js'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { TreeStore, checkStore, checkTreeStore } from '../lib/index.js'
import { buildLower } from './fixtures/tree-lower.js'

async function used(t: TapTest) {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower, { big: true })
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  const w = async (path: string, offset: number, data: string) => {
    const h = await store.open(path, 'r+')
    await h.write(offset, Buffer.from(data))
    await h.close()
  }
  await w('/big.img', 5 * 4096 + 3, 'x')
  await w('/etc/hosts', 0, '#')
  await store.mkdir('/new')
  await (await store.open('/new/file', 'w')).write(0, Buffer.alloc(9000, 7))
  await store.rename('/usr/share', '/new/share')
  await store.unlink('/etc/passwd')
  await store.link('/usr/bin/tool', '/new/tool')
  await store.chmod('/home', 0o700)
  await store.setxattr('/etc/shadow', 'user.x', Buffer.from('1'))
  await store.truncate('/new/file', 5000)
  await store.close()
  return { root, lower, dir }
}

t.test('a used store is clean', async (t) => {
  const { dir } = await used(t)
  const report = await checkTreeStore(dir)
  t.same(report.problems, [])
  t.match(report, { kind: 'tree', clean: true, checked: { files: 3, dataPages: 4, whiteouts: 2, orphans: 0 } })
  t.same(await checkStore(dir), report, 'checkStore() dispatches on the kind')
})

t.test('a removed file left open by a writer that died is an orphan, dropped at the next open', async (t) => {
  const { dir } = await used(t)
  const store = await TreeStore.open(dir)
  const h = await store.open('/new/file', 'r+')
  await h.write(0, Buffer.from('held'))
  await h.fsync()
  await store.unlink('/new/file')
  // Simulate the writer dying with the handle open: copy the store as it is on disk.
  const copy = dir + '-copy'
  nodeFs.cpSync(dir, copy, { recursive: true })
  await h.close()
  await store.close()
  nodeFs.rmSync(join(copy, 'lock'))
  const report = await checkTreeStore(copy)
  t.ok(report.clean, JSON.stringify(report.problems))
  t.equal(report.checked.orphans, 1)
  const reopened = await TreeStore.open(copy)
  await reopened.close()
  const after = await checkTreeStore(copy)
  t.equal(after.checked.orphans, 0, 'dropped')
  t.ok(after.clean)
  t.equal(after.checked.files, 2, 'with its data')
})

const damages: Array<[string, (dir: string, db: Database.Database) => void, string, RegExp]> = [
  ['an entry naming a missing inode', (_d, db) => db.prepare("INSERT INTO dirents (parent, name, ino) VALUES ((SELECT ino FROM inodes WHERE origin = CAST('home' AS BLOB)), CAST('ghost' AS BLOB), 999)").run(), 'ECORRUPT', /no record/],
  ['a missing upper data file', (dir) => nodeFs.rmSync(join(dir, 'upper', '1')), 'ECORRUPT', /missing/],
  ['a stray upper data file', (dir) => nodeFs.writeFileSync(join(dir, 'upper', '0'), 'x'), 'ECORRUPT', /belongs to no paged file/],
  ['a wrong link count', (_d, db) => db.prepare("UPDATE inodes SET nlink = 5 WHERE type = 'file' AND origin IS NULL").run(), 'ECORRUPT', /link count/],
  ['a directory inside itself', (_d, db) => db.prepare("UPDATE dirents SET parent = (SELECT ino FROM inodes WHERE origin = CAST('usr/share' AS BLOB)) WHERE name = CAST('new' AS BLOB)").run(), 'ECORRUPT', /inside itself/],
  ['page chunks of an unknown file', (_d, db) => db.prepare('INSERT INTO page_chunks (file, chunk, data, zero, data_count, zero_count) SELECT 77, chunk, data, zero, data_count, zero_count FROM page_chunks LIMIT 1').run(), 'ECORRUPT', /unknown paged file/],
  ['a damaged bitmap', (_d, db) => db.prepare('UPDATE page_chunks SET data = x\'00\' WHERE file = 1').run(), 'ECORRUPT', /cannot be decoded/],
  ['pages past the end of a file', (_d, db) => db.prepare('UPDATE files SET size = 100, lower_cut = 100 WHERE id = 1').run(), 'ECORRUPT', /past the end/],
  ['an inode record that does not parse', (_d, db) => db.prepare("UPDATE inodes SET lower_fp = 'nope' WHERE origin = CAST('etc/hosts' AS BLOB)").run(), 'ECORRUPT', /lower record is invalid/],
  ['a paged file no inode owns', (_d, db) => db.prepare("UPDATE inodes SET file = NULL WHERE origin = CAST('etc/hosts' AS BLOB)").run(), 'ECORRUPT', /belongs to no inode/],
  ['a whiteout in an upper directory', (_d, db) => db.prepare("INSERT INTO dirents (parent, name, ino) SELECT ino, CAST('w' AS BLOB), NULL FROM dirents WHERE name = CAST('new' AS BLOB)").run(), 'ECORRUPT', /whiteout/],
]

for (const [what, damage, code, message] of damages) {
  t.test(`fsck reports ${what}`, async (t) => {
    const { dir } = await used(t)
    const db = new Database(join(dir, 'pagecow.db'))
    db.pragma('foreign_keys = OFF') // damage is what foreign keys would refuse
    db.function('pagecow_counted', (n: unknown) => n) // a faulty writer that is pagecow: its row counts kept
    try {
      damage(dir, db)
      // Damage as a faulty writer would leave it, its rows' checksums made to match: what the
      // structural checks must find. (Rows edited without their sums: test/corruption.ts.)
      sumExistingRows(db)
    } finally {
      db.close()
    }
    const report = await checkTreeStore(dir)
    t.notOk(report.clean)
    t.ok(report.problems.some((p) => p.code === code && message.test(p.message)), JSON.stringify(report.problems))
  })
}

t.test('fsck reports a lower object the upper records that is gone from the lower', async (t) => {
  const { dir, lower } = await used(t)
  nodeFs.renameSync(join(lower, 'etc/shadow'), join(lower, 'etc/shadow.moved'))
  const report = await checkTreeStore(dir)
  t.ok(report.problems.some((p) => p.code === 'ESTALE' && /gone/.test(p.message)), JSON.stringify(report.problems))
  const store = await TreeStore.open(dir)
  t.teardown(() => store.close())
  await t.rejects(store.stat('/etc/shadow'), { code: 'ESTALE' }, 'and the store says so rather than hiding it')
})

t.test('the store refuses a damaged record instead of serving it', async (t) => {
  const { dir } = await used(t)
  const db = new Database(join(dir, 'pagecow.db'))
  db.function('pagecow_counted', (n: unknown) => n) // a faulty writer that is pagecow: its row counts kept
  db.prepare("INSERT INTO dirents (parent, name, ino) VALUES ((SELECT ino FROM inodes WHERE origin = CAST('home' AS BLOB)), CAST('ghost' AS BLOB), 999)").run()
  db.close()
  const store = await TreeStore.open(dir)
  t.teardown(() => store.close())
  await t.rejects(store.stat('/home/ghost'), { code: 'ECORRUPT' })
})
