// Names are bytes (SPEC §6, issue 9): a name that is not UTF-8 is listed, looked up, created,
// renamed, linked, removed, given xattrs and exported byte for byte, through string paths in name
// form (PEP 383 escapes) and through Buffer paths alike. The kernel's listing of the same
// directories is the reference.
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { exportTree, nameFromBytes, nameToBytes, TreeStore } from '../lib/index.js'
import { treeChecksum } from './fixtures/tree-lower.js'
import { setXattr, getXattr } from '../lib/fs.js'

const LATIN1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]) // "caf\xe9.txt"
const BAD_DIR = Buffer.from([0x64, 0xff, 0xfe]) // "d\xff\xfe"
const INVALID_TARGET = Buffer.from([0x2e, 0x2e, 0x2f, 0x80, 0x81]) // "../\x80\x81"

const at = (dir: string, ...names: Buffer[]) => Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from('/'), n])])

function buildLower(dir: string): void {
  nodeFs.mkdirSync(dir)
  nodeFs.writeFileSync(at(dir, LATIN1), 'latin-1 name\n')
  nodeFs.writeFileSync(join(dir, 'café.txt'), 'utf-8 name\n')
  nodeFs.mkdirSync(at(dir, BAD_DIR))
  nodeFs.writeFileSync(at(dir, BAD_DIR, Buffer.from([0xc0, 0xaf])), 'overlong slash, inside\n')
  nodeFs.symlinkSync(INVALID_TARGET, at(dir, Buffer.from('link-to-bytes')))
  const fd = nodeFs.openSync(at(dir, LATIN1), 'r')
  setXattr(fd, 'user.lower', Buffer.from('from the lower'))
  nodeFs.closeSync(fd)
}

/** The kernel's listing of `dir`, as sorted byte strings. */
function kernelListing(dir: string | Buffer): Buffer[] {
  return (nodeFs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)
}

t.test('lower names that are not UTF-8 are listed and reachable', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const before = treeChecksum(lower)
  const store = await TreeStore.create(join(root, 'store'), { lower, autoFlushMs: 0 })
  t.teardown(() => store.close())

  const asBytes = await store.readdir('/', { encoding: 'buffer' })
  t.same(asBytes.map((e) => e.name), kernelListing(lower), 'readdir (buffer) lists what the kernel lists, byte for byte')
  const asNames = await store.readdir('/')
  t.same(asNames.map((e) => nameToBytes(e.name)), kernelListing(lower), 'readdir (strings) in name form, the same bytes')
  t.ok(asNames.some((e) => e.name === 'caf\udce9.txt'), 'the Latin-1 é is the escape U+DCE9')

  for (const path of ['/caf\udce9.txt', Buffer.concat([Buffer.from('/'), LATIN1])]) {
    const st = await store.stat(path)
    t.equal(st.size, 13, `stat by ${typeof path === 'string' ? 'escaped string' : 'Buffer'}`)
    const h = await store.open(path)
    t.equal((await h.read(0, 100)).toString(), 'latin-1 name\n', 'reads the lower file')
    await h.close()
    t.same(await store.getxattr(path, 'user.lower'), Buffer.from('from the lower'), 'its lower xattr')
  }
  const inside = await store.readdir(at('', BAD_DIR), { encoding: 'buffer' })
  t.same(inside.map((e) => e.name), kernelListing(at(lower, BAD_DIR)), 'a directory named with invalid bytes lists its entries')
  t.equal(nameToBytes(await store.readlink('/link-to-bytes')).toString('hex'), INVALID_TARGET.toString('hex'), 'a symlink target that is not UTF-8 reads back byte for byte')
  t.equal(treeChecksum(lower), before, 'the lower is untouched')
})

t.test('names that are not UTF-8 round-trip through every change, a reopen and an export', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const storeDir = join(root, 'store')
  let store = await TreeStore.create(storeDir, { lower, autoFlushMs: 0 })

  const made = Buffer.from([0x6e, 0x65, 0x77, 0xa0, 0xff]) // "new\xa0\xff"
  const renamed = Buffer.from([0x72, 0xe8, 0x6e, 0x61, 0x6d, 0x65, 0x64]) // "r\xe8named"
  const linked = Buffer.from([0x6c, 0x69, 0x6e, 0x6b, 0x80]) // "link\x80"
  const dir = Buffer.from([0x64, 0x69, 0x72, 0xfe]) // "dir\xfe"
  const p = (...names: Buffer[]) => at('', ...names)

  await store.mkdir(p(dir))
  const h = await store.open(p(dir, made), 'wx')
  await h.write(0, Buffer.from('made in the upper\n'))
  await h.close()
  await store.setxattr(p(dir, made), 'user.upper', Buffer.from('set in the upper'))
  await store.rename(p(dir, made), p(dir, renamed))
  await store.link(p(dir, renamed), p(linked))
  await store.symlink(INVALID_TARGET, p(dir, Buffer.from('sym')))
  await store.rename(p(LATIN1), `/${nameFromBytes(Buffer.from([0xe9, 0x74, 0xe9]))}`) // a lower file, to "\xe9t\xe9"
  await store.unlink(p(BAD_DIR, Buffer.from([0xc0, 0xaf])))

  const expectRoot = [Buffer.from('café.txt'), BAD_DIR, Buffer.from('link-to-bytes'), dir, linked, Buffer.from([0xe9, 0x74, 0xe9])].sort(Buffer.compare)
  t.same((await store.readdir('/', { encoding: 'buffer' })).map((e) => e.name), expectRoot, 'the root lists the new names, byte for byte, in byte order')
  t.same((await store.readdir(p(dir), { encoding: 'buffer' })).map((e) => e.name), [renamed, Buffer.from('sym')].sort(Buffer.compare))
  t.same(await store.readdir(p(BAD_DIR)), [], 'the removed lower entry is gone')
  t.equal((await store.stat(p(linked))).nlink, 2, 'a hard link under a name that is not UTF-8')
  const changes = [...store.changes()].map((c) => ({ path: nameToBytes(c.path).toString('hex'), status: c.status }))
  t.ok(changes.some((c) => c.path === Buffer.concat([Buffer.from('/'), Buffer.from([0xe9, 0x74, 0xe9])]).toString('hex') && c.status === 'renamed'), 'changes() names the renamed file by its bytes', { changes })
  await store.close()

  store = await TreeStore.open(storeDir, { autoFlushMs: 0 })
  t.teardown(() => store.close())
  t.same((await store.readdir('/', { encoding: 'buffer' })).map((e) => e.name), expectRoot, 'the same after a reopen')
  t.same(await store.getxattr(p(linked), 'user.upper'), Buffer.from('set in the upper'), 'xattrs of a file named with invalid bytes')
  t.same((await store.readdir('/', { after: dir, encoding: 'buffer' })).map((e) => e.name), expectRoot.filter((n) => Buffer.compare(n, dir) > 0), 'resuming a listing after a name given as bytes')

  const out = join(root, 'out')
  await exportTree(store, out)
  t.same(kernelListing(out), expectRoot, 'the export holds every name, byte for byte')
  t.same(kernelListing(at(out, dir)), [renamed, Buffer.from('sym')].sort(Buffer.compare))
  t.equal(nodeFs.readFileSync(at(out, dir, renamed), 'utf8'), 'made in the upper\n')
  t.equal(nodeFs.readlinkSync(at(out, dir, Buffer.from('sym')), 'buffer').toString('hex'), INVALID_TARGET.toString('hex'), 'the exported symlink target')
  t.equal(nodeFs.statSync(at(out, linked)).ino, nodeFs.statSync(at(out, dir, renamed)).ino, 'the hard link stays one inode')
  const fd = nodeFs.openSync(at(out, linked), 'r')
  t.same(getXattr(fd, 'user.upper'), Buffer.from('set in the upper'), 'the exported xattr')
  nodeFs.closeSync(fd)
})

t.test('strings that name no bytes are refused', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const store = await TreeStore.create(join(root, 'store'), { lower, autoFlushMs: 0 })
  t.teardown(() => store.close())
  const bad: Array<[string, string | Buffer, string]> = [
    ['a lone high surrogate', '/a\ud800', 'EINVAL'],
    ['a lone low surrogate below the escapes', '/a\udc41', 'EINVAL'],
    ['escapes of bytes that are valid UTF-8 (é written as two escapes)', '/\udcc3\udca9', 'EINVAL'],
    ['a NUL byte inside a Buffer name', Buffer.from([0x2f, 0x61, 0x00, 0x62]), 'EINVAL'],
    ['a 256-byte name as a Buffer', Buffer.concat([Buffer.from('/'), Buffer.alloc(256, 0xe9)]), 'ENAMETOOLONG'],
    ['".." as a Buffer component', Buffer.from('/a/../b'), 'EINVAL'],
  ]
  for (const [what, path, code] of bad) {
    await t.rejects(store.stat(path), { code }, `stat: ${what} → ${code}`)
    await t.rejects(store.mkdir(path), { code }, `mkdir: ${what} → ${code}`)
  }
  await t.rejects(store.readdir('/', { after: 'x\ud800' }), { code: 'EINVAL' }, 'a readdir cookie that names no bytes')
  await t.rejects(store.readdir('/', { encoding: 'latin1' as 'utf8' }), { code: 'EINVAL' }, 'an encoding other than utf8 or buffer')
  await t.rejects(store.symlink(Buffer.from([0x61, 0x00]), '/s'), { code: 'EINVAL' }, 'a symlink target with a NUL byte')
  t.ok((await store.stat(Buffer.concat([Buffer.from('/'), Buffer.alloc(255, 0xe9)])).catch((e: { code: string }) => e.code)) === 'ENOENT', 'a 255-byte name is allowed (and absent)')
})
