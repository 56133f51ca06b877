// A store never serves bytes it cannot vouch for (SPEC §8, issue 10). A table of damage — each
// case of the issue, then several hundred random bit flips in the database and the upper — is
// done to copies of one store, and every copy is then opened, read whole and fsck'ed: each read
// must return the bytes written (the model) or fail with a typed error, and damage that changes
// what a read would return must end in ECORRUPT at open, at read or in fsck.
import t from 'tap'
import Database from 'better-sqlite3'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { seekData } from '../lib/fs.js'
import { checkStore, ImageStore, isPagecowError, TreeStore, type TreePath } from '../lib/index.js'
import { Random } from './fixtures/random.js'
import type { TapTest } from './fixtures/tap-test.js'

const PAGE = 4096
const CHUNK_PAGES = 65536
const FAR_PAGE = CHUNK_PAGES + 100 // a second page-map chunk

/** How a damaged copy ended. */
type Outcome = 'refused at open' | 'refused at read' | 'fsck only' | 'harmless'

interface Judged {
  outcome: Outcome
  /** Something read back differently from the model without an error: the one thing never allowed. */
  wrong?: string
  /** Codes of the errors seen. */
  codes: Set<string>
}

// ---- an image store and its model ----

async function makeImage(dir: string): Promise<{ storeDir: string; model: Map<number, Buffer>; size: number }> {
  const lower = join(dir, 'lower.img')
  const size = (FAR_PAGE + 8) * PAGE
  const rng = new Random(7)
  const fd = nodeFs.openSync(lower, 'w')
  const lowerBytes = Buffer.alloc(64 * PAGE)
  for (let i = 0; i < lowerBytes.length; i++) lowerBytes[i] = rng.int(0, 256)
  nodeFs.writeSync(fd, lowerBytes, 0, lowerBytes.length, 0)
  nodeFs.ftruncateSync(fd, size)
  nodeFs.closeSync(fd)
  const storeDir = join(dir, 'store')
  const store = await ImageStore.create(storeDir, { lower, autoFlushMs: 0 })
  const writes: Array<[number, Buffer]> = []
  for (let i = 0; i < 24; i++) {
    const data = Buffer.alloc(rng.int(1, 3 * PAGE))
    for (let j = 0; j < data.length; j++) data[j] = rng.int(0, 256)
    writes.push([rng.int(0, 60 * PAGE), data])
  }
  writes.push([FAR_PAGE * PAGE + 10, Buffer.from('far away, in a second chunk')])
  for (const [at, data] of writes) await store.write(at, data)
  await store.zero(40 * PAGE, 2 * PAGE)
  await store.close()
  // The model: every page as it reads now, from a store nobody damaged.
  const model = new Map<number, Buffer>()
  const clean = await ImageStore.open(storeDir, { readOnly: true })
  for (const p of modelPages()) model.set(p, await clean.read(p * PAGE, PAGE))
  await clean.close()
  return { storeDir, model, size }
}

function* modelPages(): Generator<number> {
  for (let p = 0; p < 64; p++) yield p
  for (let p = FAR_PAGE - 2; p < FAR_PAGE + 8; p++) yield p
}

async function judgeImage(storeDir: string, model: Map<number, Buffer>): Promise<Judged> {
  const codes = new Set<string>()
  const caught = (err: unknown): void => {
    if (!isPagecowError(err)) throw err // an untyped error is a defect of its own
    codes.add(err.code)
  }
  let store: ImageStore
  try {
    store = await ImageStore.open(storeDir, { readOnly: true })
  } catch (err) {
    caught(err)
    return { outcome: 'refused at open', codes }
  }
  let refused = false
  let wrong: string | undefined
  try {
    for (const [p, expected] of model) {
      try {
        const got = await store.read(p * PAGE, PAGE)
        if (!got.equals(expected)) wrong ??= `page ${p} read back different bytes without an error`
      } catch (err) {
        caught(err)
        refused = true
      }
    }
  } finally {
    await store.close().catch(caught)
  }
  if (refused) return { outcome: 'refused at read', codes, ...(wrong ? { wrong } : {}) }
  const report = await checkStore(storeDir)
  for (const p of report.problems) codes.add(p.code)
  return { outcome: report.clean ? 'harmless' : 'fsck only', codes, ...(wrong ? { wrong } : {}) }
}

function copyStore(from: string, to: string): string {
  nodeFs.rmSync(to, { recursive: true, force: true })
  // Sparse: the image's upper has a page 256 MiB in.
  const r = spawnSync('cp', ['-a', '--sparse=always', from, to])
  if (r.status !== 0) throw new Error(`cp: ${r.stderr}`)
  return to
}

function flipBit(path: string, offset: number, bit: number): void {
  const fd = nodeFs.openSync(path, 'r+')
  const b = Buffer.alloc(1)
  nodeFs.readSync(fd, b, 0, 1, offset)
  b[0]! ^= 1 << bit
  nodeFs.writeSync(fd, b, 0, 1, offset)
  nodeFs.closeSync(fd)
}

function withDb(storeDir: string, fn: (db: Database.Database) => void): void {
  const db = new Database(join(storeDir, 'pagecow.db'))
  try {
    fn(db)
  } finally {
    db.close()
  }
}

/** The named cases of the issue, each a damage done to a closed store's copy. */
const imageCases: Array<{ name: string; damage: (dir: string) => void; expect: Outcome[] }> = [
  {
    name: 'a hole punched in upper.img under DATA pages',
    damage: (dir) => {
      const r = spawnSync('fallocate', ['-p', '-o', '0', '-l', String(64 * PAGE), join(dir, 'upper.img')])
      if (r.status !== 0) throw new Error(`fallocate: ${r.stderr}`)
    },
    expect: ['refused at read'],
  },
  { name: 'upper.img truncated', damage: (dir) => nodeFs.truncateSync(join(dir, 'upper.img'), 8 * PAGE), expect: ['refused at read'] },
  { name: 'upper.img removed', damage: (dir) => nodeFs.rmSync(join(dir, 'upper.img')), expect: ['refused at open', 'refused at read'] },
  { name: 'a page_chunks row deleted', damage: (dir) => withDb(dir, (db) => db.prepare('DELETE FROM page_chunks WHERE chunk = 0').run()), expect: ['refused at open'] },
  {
    name: 'two page_chunks rows swapped',
    damage: (dir) =>
      withDb(dir, (db) => {
        const rows = db.prepare('SELECT chunk, data, zero, data_count, zero_count, sum FROM page_chunks ORDER BY chunk').all() as Array<Record<string, unknown>>
        if (rows.length < 2) throw new Error('need two chunks')
        const set = db.prepare('UPDATE page_chunks SET data = ?, zero = ?, data_count = ?, zero_count = ?, sum = ? WHERE chunk = ?')
        const [a, b] = rows as [Record<string, unknown>, Record<string, unknown>]
        db.transaction(() => {
          set.run(b.data, b.zero, b.data_count, b.zero_count, b.sum, a.chunk)
          set.run(a.data, a.zero, a.data_count, a.zero_count, a.sum, b.chunk)
        })()
      }),
    expect: ['refused at open', 'refused at read'],
  },
  { name: 'files.size edited', damage: (dir) => withDb(dir, (db) => db.prepare('UPDATE files SET size = size - 4096').run()), expect: ['refused at open'] },
  { name: 'files.lower_cut edited', damage: (dir) => withDb(dir, (db) => db.prepare('UPDATE files SET lower_cut = 4096').run()), expect: ['refused at open'] },
  { name: 'a page_sums row deleted', damage: (dir) => withDb(dir, (db) => db.prepare('DELETE FROM page_sums WHERE block = 0').run()), expect: ['refused at read'] },
  { name: 'a page_sums cell edited', damage: (dir) => withDb(dir, (db) => db.prepare("UPDATE page_sums SET sums = zeroblob(8192) WHERE block = 0").run()), expect: ['refused at read'] },
  {
    name: 'the page size in the store record edited',
    damage: (dir) => withDb(dir, (db) => db.prepare("UPDATE meta SET value = replace(value, '\"pageSize\":4096', '\"pageSize\":8192') WHERE key = 'store'").run()),
    expect: ['refused at open'],
  },
]

t.test('each damage of the issue ends refused, never served', async (t) => {
  const root = t.testdir()
  const { storeDir, model } = await makeImage(root)
  for (const c of imageCases) {
    const copy = copyStore(storeDir, join(root, 'copy'))
    c.damage(copy)
    const j = await judgeImage(copy, model)
    t.notOk(j.wrong, `${c.name}: nothing served wrong`)
    t.ok(c.expect.includes(j.outcome), `${c.name}: ${j.outcome} (${[...j.codes].join(', ')})`)
    t.ok(j.codes.has('ECORRUPT') || j.codes.has('ENOENT'), `${c.name}: ECORRUPT`)
  }
})

t.test('the database put back from an older moment, or its WAL lost', async (t) => {
  const root = t.testdir()
  const { storeDir, model } = await makeImage(root)
  const older = copyStore(storeDir, join(root, 'older'))
  const store = await ImageStore.open(storeDir, { autoFlushMs: 0 })
  await store.write(5 * PAGE, Buffer.alloc(PAGE, 0xee))
  await store.flush()
  const withWal = copyStore(storeDir, join(root, 'with-wal')) // as a writer killed now would leave it
  await store.close()
  model.set(5, Buffer.alloc(PAGE, 0xee))
  nodeFs.rmSync(join(withWal, 'lock'), { force: true })
  nodeFs.rmSync(join(withWal, 'pagecow.db-wal'))
  let j = await judgeImage(withWal, model)
  t.match(j, { outcome: 'refused at open', codes: new Set(['ECORRUPT']) }, 'the WAL deleted: refused')
  nodeFs.copyFileSync(join(older, 'pagecow.db'), join(storeDir, 'pagecow.db'))
  j = await judgeImage(storeDir, model)
  t.match(j, { outcome: 'refused at open', codes: new Set(['ECORRUPT']) }, 'an older database: refused')
})

/**
 * `count` copies of the store at `storeDir`, each with one random bit flipped — in its database on
 * the copies `inDatabase` picks, else in a DATA byte of one of `uppers` (paths inside the store) —
 * each judged: nothing may be served wrong, and a damaged DATA page must never go unnoticed.
 */
async function flipLoop(
  t: TapTest,
  o: { root: string; storeDir: string; uppers: string[]; seed: number; count: number; inDatabase: (i: number) => boolean; judge: (copy: string) => Promise<Judged> },
): Promise<void> {
  const rng = new Random(o.seed)
  const dbSize = nodeFs.statSync(join(o.storeDir, 'pagecow.db')).size
  const tally: Record<string, number> = {}
  for (let i = 0; i < o.count; i++) {
    const copy = copyStore(o.storeDir, join(o.root, 'copy'))
    const inDb = o.inDatabase(i)
    let where: string
    if (inDb) {
      const at = rng.int(0, dbSize)
      flipBit(join(copy, 'pagecow.db'), at, rng.int(0, 8))
      where = `database byte ${at}`
    } else {
      // Only bytes the upper holds (DATA pages): flips there must always be caught.
      const file = o.uppers[rng.int(0, o.uppers.length)]!
      const path = join(o.storeDir, file)
      let at: number
      do at = rng.int(0, nodeFs.statSync(path).size)
      while (!isDataByte(path, at))
      flipBit(join(copy, file), at, rng.int(0, 8))
      where = `${file} byte ${at} (page ${Math.floor(at / PAGE)})`
    }
    const j = await o.judge(copy)
    if (j.wrong) t.fail(`seed ${rng.seed}, flip ${i} at ${where}: ${j.wrong}`)
    if (!inDb && j.outcome === 'harmless') t.fail(`flip ${i} at ${where}: a damaged DATA page went unnoticed`)
    const key = `${inDb ? 'database' : 'upper'}: ${j.outcome}`
    tally[key] = (tally[key] ?? 0) + 1
  }
  t.comment(`outcomes of ${o.count} flips: ${JSON.stringify(tally)}`)
  t.pass(`${o.count} flips, none served wrong bytes`)
}

t.test('random bit flips in the database and in the upper: none serves wrong bytes', async (t) => {
  const root = t.testdir()
  const { storeDir, model } = await makeImage(root)
  await flipLoop(t, {
    root,
    storeDir,
    uppers: ['upper.img'],
    seed: Number(process.env.PAGECOW_SEED ?? 1010),
    count: Number(process.env.PAGECOW_FLIPS ?? 300),
    inDatabase: (i) => i % 2 === 0,
    judge: (copy) => judgeImage(copy, model),
  })
})

/** Whether byte `at` of the upper lies in allocated space (a DATA page's bytes). */
function isDataByte(path: string, at: number): boolean {
  const fd = nodeFs.openSync(path, 'r')
  try {
    return seekData(fd, at) === at
  } finally {
    nodeFs.closeSync(fd)
  }
}

// ---- a tree store ----

interface TreeModel {
  files: Map<string, { mode: number; size: number; bytes?: Buffer; target?: string }>
}

async function walk(store: TreeStore, path: string, out: TreeModel['files']): Promise<void> {
  for (const e of await store.readdir(path as TreePath)) {
    const p = path === '/' ? `/${e.name}` : `${path}/${e.name}`
    const st = await store.stat(p)
    const entry: { mode: number; size: number; bytes?: Buffer; target?: string } = { mode: st.mode, size: st.size }
    if (e.type === 'file') {
      const h = await store.open(p, 'r')
      try {
        entry.bytes = await h.read(0, st.size)
      } finally {
        await h.close()
      }
    } else if (e.type === 'symlink') entry.target = await store.readlink(p)
    out.set(p, entry)
    if (e.type === 'directory') await walk(store, p, out)
  }
}

async function judgeTree(dir: string, model: TreeModel): Promise<Judged> {
  const codes = new Set<string>()
  let store: TreeStore
  try {
    store = await TreeStore.open(dir, { readOnly: true })
  } catch (err) {
    if (!isPagecowError(err)) throw err
    codes.add(err.code)
    return { outcome: 'refused at open', codes }
  }
  const seen: TreeModel['files'] = new Map()
  let refused = false
  try {
    await walk(store, '/', seen)
  } catch (err) {
    if (!isPagecowError(err)) throw err
    codes.add(err.code)
    refused = true
  } finally {
    await store.close()
  }
  let wrong: string | undefined
  for (const [p, got] of seen) {
    const want = model.files.get(p)
    if (!want) wrong ??= `${p} appeared`
    else if (got.mode !== want.mode || got.size !== want.size || got.target !== want.target || (want.bytes && !got.bytes?.equals(want.bytes))) wrong ??= `${p} reads differently`
  }
  if (!refused) for (const p of model.files.keys()) if (!seen.has(p)) wrong ??= `${p} vanished`
  if (refused) return { outcome: 'refused at read', codes, ...(wrong ? { wrong } : {}) }
  const report = await checkStore(dir)
  for (const p of report.problems) codes.add(p.code)
  return { outcome: report.clean ? 'harmless' : 'fsck only', codes, ...(wrong ? { wrong } : {}) }
}

async function makeTree(t: TapTest, root: string): Promise<{ dir: string; model: TreeModel }> {
  const lower = join(root, 'lower')
  nodeFs.mkdirSync(join(lower, 'etc'), { recursive: true })
  nodeFs.mkdirSync(join(lower, 'usr/bin'), { recursive: true })
  nodeFs.writeFileSync(join(lower, 'etc/hosts'), '127.0.0.1 localhost\n')
  nodeFs.writeFileSync(join(lower, 'usr/bin/tool'), Buffer.alloc(5 * PAGE, 0x33))
  nodeFs.symlinkSync('tool', join(lower, 'usr/bin/link'))
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  const h = await store.open('/usr/bin/tool', 'r+')
  await h.write(PAGE + 7, Buffer.from('patched'))
  await h.close()
  await store.mkdir('/home')
  const n = await store.open('/home/notes', 'w')
  await n.write(0, Buffer.alloc(2 * PAGE + 11, 0x61))
  await n.close()
  await store.rename('/etc/hosts', '/home/hosts')
  await store.chmod('/usr/bin/tool', 0o700)
  await store.symlink('/home/notes', '/home/link')
  await store.close()
  const model: TreeModel = { files: new Map() }
  const clean = await TreeStore.open(dir, { readOnly: true })
  await walk(clean, '/', model.files)
  await clean.close()
  t.ok(model.files.size >= 8, 'the tree has its objects')
  return { dir, model }
}

t.test('a tree store: random bit flips in its database and its upper files', async (t) => {
  const root = t.testdir()
  const { dir, model } = await makeTree(t, root)
  await flipLoop(t, {
    root,
    storeDir: dir,
    uppers: nodeFs.readdirSync(join(dir, 'upper')).map((name) => join('upper', name)),
    seed: Number(process.env.PAGECOW_SEED ?? 2020),
    count: Number(process.env.PAGECOW_FLIPS ?? 300) / 2,
    inDatabase: (i) => i % 3 !== 2,
    judge: (copy) => judgeTree(copy, model),
  })
  const rowCases: Array<[string, string]> = [
    ['a dirent row deleted, its trigger dropped first', "DROP TRIGGER dirents_removed; DELETE FROM dirents WHERE (parent, name) IN (SELECT parent, name FROM dirents LIMIT 1)"],
    ['an inode row deleted, its trigger dropped first', "DROP TRIGGER inodes_removed; DELETE FROM inodes WHERE ino = (SELECT max(ino) FROM inodes)"],
    ['an inode mode edited', 'UPDATE inodes SET mode = mode | 2048 WHERE ino = (SELECT max(ino) FROM inodes)'],
    ['a files row size edited', 'UPDATE files SET size = size + 1'],
  ]
  // Another program cannot add or remove a namespace row: the row-count triggers call a function
  // only pagecow's connections define.
  const copy = copyStore(dir, join(root, 'copy'))
  t.throws(() => withDb(copy, (db) => db.exec('DELETE FROM dirents WHERE (parent, name) IN (SELECT parent, name FROM dirents LIMIT 1)')), /no such function: pagecow_counted/, 'a dirent deleted by another program: refused by SQLite')
  t.throws(() => withDb(copy, (db) => db.exec('DELETE FROM inodes WHERE ino = (SELECT max(ino) FROM inodes)')), /no such function/, 'an inode row likewise')
  t.same(await judgeTree(copy, model), { outcome: 'harmless', codes: new Set() }, 'and the store is as it was')
  for (const [name, sql] of rowCases) {
    const copy = copyStore(dir, join(root, 'copy'))
    try {
      withDb(copy, (db) => db.exec(sql))
    } catch (err) {
      t.comment(`${name}: not applicable (${(err as Error).message})`)
      continue
    }
    const j = await judgeTree(copy, model)
    t.notOk(j.wrong, `${name}: nothing served wrong`)
    t.not(j.outcome, 'harmless', `${name}: ${j.outcome} (${[...j.codes].join(', ')})`)
  }
})
