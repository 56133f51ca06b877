// Schema 20 (tree mode) upgrades a store written at schema 10: an image store made by the release
// before tree mode opens, migrates, and reads as before; its kind is read by openStore().
import t from 'tap'
import Database from 'better-sqlite3'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ImageStore, openStore, checkStore } from '../lib/index.js'
import { fingerprint } from '../lib/image/fingerprint.js'
import { LowerImage } from '../lib/image/lower-image.js'
import { SCHEMA_VERSION } from '../lib/store/migrations.js'

const INIT = fileURLToPath(new URL('../migrations/0010-init.sql', import.meta.url))

t.test('a schema-10 image store opens and is migrated to the tree schema', async (t) => {
  const dir = t.testdir()
  const lowerPath = join(dir, 'base.raw')
  nodeFs.writeFileSync(lowerPath, Buffer.alloc(1 << 20, 7))
  const storeDir = join(dir, 'store')
  nodeFs.mkdirSync(storeDir)
  nodeFs.writeFileSync(join(storeDir, 'upper.img'), '')
  // Exactly what pagecow wrote at schema 10: the init migration, the store record, file 1.
  const lower = LowerImage.open(lowerPath)
  const meta = { format: 'pagecow', kind: 'image', pageSize: 4096, lower: { path: lowerPath, fingerprint: fingerprint(lower) }, createdAt: '2025-01-01T00:00:00.000Z', createdBy: 'pagecow 0.1.0' }
  lower.close()
  const db = new Database(join(storeDir, 'pagecow.db'))
  db.pragma('journal_mode = WAL')
  db.exec(nodeFs.readFileSync(INIT, 'utf8'))
  db.pragma('user_version = 10')
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('store', JSON.stringify(meta))
  db.prepare('INSERT INTO files (id, size, lower_cut) VALUES (1, ?, ?)').run(1 << 20, 1 << 20)
  db.close()

  const store = await openStore(storeDir)
  t.equal(store.kind, 'image')
  if (store.kind === 'image') {
    t.same([...(await store.read(0, 4))], [7, 7, 7, 7])
    await store.write(4096, Buffer.from('new'))
  }
  await store.close()
  const after = new Database(join(storeDir, 'pagecow.db'), { readonly: true })
  t.equal(after.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'migrated to the newest schema')
  t.ok(after.prepare("SELECT 1 FROM sqlite_master WHERE name = 'inodes'").get(), 'the tree tables exist')
  after.close()
  t.ok((await checkStore(storeDir)).clean)
  const again = await ImageStore.open(storeDir, { readOnly: true })
  t.equal((await again.read(4096, 3)).toString(), 'new')
  await again.close()
})
