// Upgrades (STYLE §9, issue 9): the stores every earlier release made open with this pagecow,
// read exactly what that release read, pass fsck, and take writes that survive a reopen.
import { createHash } from 'node:crypto'
import * as nodeFs from 'node:fs'
import t from 'tap'
import { checkStore, ImageStore, nameToBytes, openStore, TreeStore } from '../lib/index.js'
import { schemaVersion, SCHEMA_VERSION } from '../lib/store/migrations.js'
import { DATABASE_FILE, openDatabase } from '../lib/store/database.js'
import { join } from 'node:path'
import type { TapTest } from './fixtures/tap-test.js'
import { copyImageStore, mountTreeStore, releaseManifest, releaseSchema, releasesWithStores, type ManifestEntry } from './fixtures/release-stores.js'

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')

for (const version of releasesWithStores()) {
  const manifest = releaseManifest(version)

  t.test(`an image store made by ${version}`, async (t) => {
    const { storeDir } = copyImageStore(t, version)
    await refusedReadOnlyUntilUpgraded(t, storeDir, version)
    const store = await ImageStore.open(storeDir, { autoFlushMs: 0 })
    t.equal(store.size, manifest.image.size, 'same size')
    t.equal(sha256(await store.read(0, store.size)), manifest.image.sha256, 'same bytes')
    t.same([...store.extents()], manifest.image.extents, 'same map')
    if (manifest.image.marks) {
      t.same(store.marks().map((m) => m.name), manifest.image.marks.map((m) => m.name), 'same marks')
      for (const m of manifest.image.marks) t.same([...store.changedExtents(m.name)], m.changed, `same changes since ${m.name}`)
    }
    await store.write(1000, Buffer.from('written after the upgrade'))
    await store.close()

    const again = await ImageStore.open(storeDir, { readOnly: true })
    t.equal((await again.read(1000, 25)).toString(), 'written after the upgrade', 'a write after the upgrade survives a reopen')
    await again.close()
    const report = await checkStore(storeDir)
    t.ok(report.clean, 'fsck: clean', { problems: report.problems })
  })

  t.test(`an image store made by ${version} becomes the base of a chain`, async (t) => {
    const { storeDir } = copyImageStore(t, version)
    // Creating a store on it upgrades and seals it (a writable open), then reads it read-only.
    const top = await ImageStore.create(`${storeDir}-top`, { lower: storeDir, autoFlushMs: 0 })
    t.equal(top.size, manifest.image.size, 'the top has the base image\'s size')
    t.equal(sha256(await top.read(0, top.size)), manifest.image.sha256, "the top reads the release's image, byte for byte")
    t.same(
      [...top.extentsByLayer()].filter((e) => e.depth === 1 && e.state !== 'hole').map((e) => [e.start, e.length, e.state]),
      manifest.image.extents.filter((e) => e.state === 'data' || e.state === 'zero').map((e) => [e.start, e.length, e.state]),
      "the base's DATA and ZERO pages show at depth 1",
    )
    t.ok(manifest.image.extents.some((e) => e.state === 'data'), 'the release store has DATA pages to show')
    await top.write(0, Buffer.from('the top'))
    await top.close()
    await t.rejects(ImageStore.open(storeDir), { code: 'EROFS' }, 'the upgraded base is sealed')
    for (const path of [storeDir, `${storeDir}-top`]) t.ok((await checkStore(path)).clean, `fsck: ${path} clean`)
  })

  t.test(`a tree store made by ${version}`, async (t) => {
    const fixture = mountTreeStore(t, version)
    if (!fixture) return
    await refusedReadOnlyUntilUpgraded(t, fixture.storeDir, version)
    const opened = await openStore(fixture.storeDir, { autoFlushMs: 0 })
    t.equal(opened.kind, 'tree', 'openStore tells the kind of an old store')
    const store = opened as TreeStore
    const seen = await walk(store)
    for (const [path, expected] of Object.entries(manifest.tree.entries)) {
      const got = seen.get(path)
      if (!got) {
        t.fail(`${path} is missing after the upgrade`)
        continue
      }
      t.same(withoutTimes(got), withoutTimes(expected), `${path}: same type, mode, owner, links, size, xattrs, target, bytes, map`)
      // Times: as read by the release, in milliseconds (it kept no more).
      t.ok(Math.abs(got.mtimeMs - expected.mtimeMs) < 0.001 && Math.abs(got.atimeMs - expected.atimeMs) < 0.001, `${path}: same times`, {
        got: [got.atimeMs, got.mtimeMs],
        expected: [expected.atimeMs, expected.mtimeMs],
      })
    }
    t.same([...store.changes()], manifest.tree.changes, 'same changes')
    if (manifest.tree.marks) {
      t.same(store.marks().map((m) => m.name), manifest.tree.marks.map((m) => m.name), 'same marks')
      for (const m of manifest.tree.marks) t.same(store.changedSince(m.name), m.changedSince, `same changes since ${m.name}`)
    }

    // What the release could not show: names that are not UTF-8, and times to the nanosecond.
    const latin1 = '/data/caf\udce9-latin1.txt'
    t.ok(seen.has(latin1), 'a lower name that is not UTF-8 appears after the upgrade')
    const h1 = await store.open(latin1)
    t.equal((await h1.read(0, 100)).toString(), 'a name in Latin-1\n', 'and reads its bytes')
    await h1.close()
    const changed = new Set(manifest.tree.changes.flatMap((c) => [c.path, c.from]))
    const touched = (path: string) => [...changed].some((c) => c !== undefined && (path === c || path.startsWith(`${c}/`)))
    for (const [path, entry] of seen) {
      // Directories whose entries changed have new times of their own; renamed trees live elsewhere in the lower.
      if (entry.type === 'directory' || touched(path)) continue
      const st = await store.stat(path)
      const real = nodeFs.lstatSync(Buffer.concat([Buffer.from(fixture.lower), nameToBytes(path)]), { bigint: true })
      if (st.mtimeNs !== real.mtimeNs || st.atimeNs !== real.atimeNs) {
        t.fail(`${path}: times differ from the kernel's (${st.mtimeNs} vs ${real.mtimeNs})`)
      }
    }
    t.pass('every lower object the upper never touched has the kernel\'s atime and mtime, to the nanosecond')

    // Writable after the upgrade: data, names and metadata.
    const h = await store.open('/data/big.bin', 'r+')
    await h.write(60_000, Buffer.from('after the upgrade'))
    await h.close()
    await store.rename('/new-dir/new-file', '/new-dir/renamed')
    await store.mkdir('/made-after')
    await store.chmod('/etc/hosts', 0o640)
    await store.close()

    const again = await TreeStore.open(fixture.storeDir, { readOnly: true })
    const big = await again.open('/data/big.bin')
    t.equal((await big.read(60_000, 17)).toString(), 'after the upgrade', 'data written after the upgrade survives a reopen')
    await big.close()
    t.equal((await again.stat('/new-dir/renamed')).type, 'file', 'a rename after the upgrade survives')
    t.equal((await again.stat('/made-after')).type, 'directory', 'a mkdir after the upgrade survives')
    t.equal((await again.stat('/etc/hosts')).mode & 0o7777, 0o640, 'a chmod after the upgrade survives')
    await again.close()
    const report = await checkStore(fixture.storeDir)
    t.ok(report.clean, 'fsck: clean', { problems: report.problems })

    // Schema 70: the record lists its lowers (one here), and its version is past every release
    // before it, whose pagecow refuses a newer schema with EVERSION (checkSchemaVersion).
    const db = openDatabase(join(fixture.storeDir, DATABASE_FILE), { readOnly: true })
    const raw = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'store'").get()!
    t.ok(schemaVersion(db) >= 70 && schemaVersion(db) > releaseSchema(version), `upgraded to schema ${schemaVersion(db)}, past ${version}'s ${releaseSchema(version)}`)
    db.close()
    const record = JSON.parse(raw.value) as Record<string, unknown>
    t.notOk('lower' in record, 'the one lower of the old record is gone')
    t.match(record.lowers, [{ path: fixture.lower }], 'the record lists it as its only lower')
  })
}

/**
 * Before a writable open upgrades it, a store of an older schema is refused read-only (EVERSION);
 * one of this schema (the latest release's, until a migration follows it) opens read-only as is.
 */
async function refusedReadOnlyUntilUpgraded(t: TapTest, storeDir: string, version: string): Promise<void> {
  if (releaseSchema(version) === SCHEMA_VERSION) {
    const store = await openStore(storeDir, { readOnly: true })
    await store.close()
    t.pass(`a store of this schema (${SCHEMA_VERSION}) opens read-only`)
    return
  }
  t.ok(releaseSchema(version) < SCHEMA_VERSION, 'an older schema')
  await t.rejects(openStore(storeDir, { readOnly: true }), { code: 'EVERSION' }, 'a read-only open cannot upgrade: EVERSION')
  const report = await checkStore(storeDir)
  t.ok(report.problems.some((p) => p.code === 'EVERSION' && /open.*for writing/.test(p.message)), 'fsck says how to upgrade', { problems: report.problems })
  t.ok(SCHEMA_VERSION > 20)
}

type Seen = Omit<ManifestEntry, never>

async function walk(store: TreeStore): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>()
  const visit = async (path: string) => {
    const st = await store.stat(path)
    const entry: Seen = { type: st.type, mode: st.mode, uid: st.uid, gid: st.gid, nlink: st.nlink, size: st.size, mtimeMs: st.mtimeMs, atimeMs: st.atimeMs }
    if (st.type !== 'symlink') {
      const xattrs: Record<string, string> = {}
      for (const name of await store.listxattr(path)) xattrs[name] = (await store.getxattr(path, name)).toString('hex')
      entry.xattrs = xattrs
    }
    if (st.type === 'symlink') entry.target = await store.readlink(path)
    if (st.type === 'file') {
      const h = await store.open(path, 'r')
      entry.sha256 = sha256(await h.read(0, st.size))
      await h.close()
      entry.extents = [...store.extents(path)]
    }
    out.set(path, entry)
    if (st.type === 'directory') {
      for (const e of await store.readdir(path)) await visit(path === '/' ? `/${e.name}` : `${path}/${e.name}`)
    }
  }
  await visit('/')
  return out
}

function withoutTimes(e: ManifestEntry): Omit<ManifestEntry, 'mtimeMs' | 'atimeMs'> {
  const { mtimeMs: _m, atimeMs: _a, ...rest } = e
  return rest
}
