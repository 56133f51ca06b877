// A lower file that changed underneath the store after the upper recorded it is reported as
// ESTALE, never mixed with its copied pages; fsck says what changed.
import t from 'tap'
import type { TapTest } from './fixtures/tap-test.js'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { TreeStore, checkStore } from '../lib/index.js'
import { buildLower } from './fixtures/tree-lower.js'

async function setup(t: TapTest) {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const dir = join(root, 'store')
  const store = await TreeStore.create(dir, { lower, autoFlushMs: 0 })
  return { root, lower, dir, store }
}

async function writeAt(store: TreeStore, path: string, offset: number, data: string) {
  const h = await store.open(path, 'r+')
  await h.write(offset, Buffer.from(data))
  await h.close()
}

const cases: Array<[string, (path: string) => void]> = [
  ['same size and mtime, different bytes', (path) => {
    const st = nodeFs.statSync(path)
    const fd = nodeFs.openSync(path, 'r+')
    nodeFs.writeSync(fd, Buffer.from('Z'), 0, 1, 7000)
    nodeFs.closeSync(fd)
    nodeFs.utimesSync(path, st.atime, st.mtime)
  }],
  ['grown', (path) => nodeFs.appendFileSync(path, 'more')],
  ['replaced by another file', (path) => {
    nodeFs.rmSync(path)
    nodeFs.writeFileSync(path, Buffer.alloc(10_000, 'c'))
  }],
  ['removed', (path) => nodeFs.rmSync(path)],
  ['replaced by a symlink', (path) => {
    nodeFs.rmSync(path)
    nodeFs.symlinkSync('/etc/passwd', path)
  }],
]

for (const [what, change] of cases) {
  t.test(`a lower file with copied pages, then ${what}: ESTALE`, async (t) => {
    const s = await setup(t)
    await writeAt(s.store, '/etc/ssl/cert.pem', 0, 'UPPER')
    await s.store.close()
    change(join(s.lower, 'etc/ssl/cert.pem'))
    const store = await TreeStore.open(s.dir)
    t.teardown(() => store.close())
    await t.rejects(store.open('/etc/ssl/cert.pem'), { code: 'ESTALE' }, 'open refuses to mix')
    await t.rejects(store.fileInfo('/etc/ssl/cert.pem'), { code: 'ESTALE' })
    t.equal((await store.stat('/etc/passwd')).type, 'file', 'the rest of the tree is served')
    const h = await store.open('/etc/hosts')
    t.equal((await h.read(0, 9)).toString(), '127.0.0.1')
    await h.close()
    const report = await checkStore(s.dir)
    t.notOk(report.clean, 'fsck reports it')
    t.ok(report.problems.some((p) => p.code === 'ESTALE'), JSON.stringify(report.problems))
  })
}

t.test('a metadata-only copy-up notices a changed lower file too', async (t) => {
  const s = await setup(t)
  await s.store.chmod('/etc/passwd', 0o600)
  await s.store.close()
  nodeFs.appendFileSync(join(s.lower, 'etc/passwd'), 'x')
  const store = await TreeStore.open(s.dir)
  t.teardown(() => store.close())
  await t.rejects(store.open('/etc/passwd'), { code: 'ESTALE' })
})

t.test('a lower file truncated to zero in the store does not depend on the lower any more', async (t) => {
  const s = await setup(t)
  const h = await s.store.open('/etc/passwd', 'w')
  await h.write(0, Buffer.from('fresh'))
  await h.close()
  await s.store.close()
  nodeFs.appendFileSync(join(s.lower, 'etc/passwd'), 'changed')
  const store = await TreeStore.open(s.dir)
  t.teardown(() => store.close())
  const r = await store.open('/etc/passwd')
  t.equal((await r.read(0, 100)).toString(), 'fresh')
  await r.close()
})

t.test('a lower file nothing was recorded about follows the lower', async (t) => {
  const s = await setup(t)
  await s.store.close()
  nodeFs.appendFileSync(join(s.lower, 'etc/hosts'), '::1 localhost\n')
  const store = await TreeStore.open(s.dir)
  t.teardown(() => store.close())
  const r = await store.open('/etc/hosts')
  t.match((await r.read(0, 100)).toString(), /::1 localhost/)
  await r.close()
})

t.test('a replaced lower root is refused at open', async (t) => {
  const s = await setup(t)
  await s.store.close()
  nodeFs.renameSync(s.lower, join(s.root, 'old-lower'))
  buildLower(s.lower)
  await t.rejects(TreeStore.open(s.dir), { code: 'ESTALE' })
  nodeFs.rmSync(s.lower, { recursive: true })
  await t.rejects(TreeStore.open(s.dir), { code: 'ENOENT' })
})
