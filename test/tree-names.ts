// Names are validated and nothing resolves outside the tree (SPEC §6): bad names and escaping
// symlinks, as tables of (call, expected code).
import t from 'tap'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { TreeStore } from '../lib/index.js'
import { checkName, splitPath } from '../lib/tree/names.js'
import { buildLower, treeChecksum } from './fixtures/tree-lower.js'

const long = 'x'.repeat(256)
const longest = 'é'.repeat(127) + 'x' // 255 bytes

t.test('checkName and splitPath', async (t) => {
  const bad: Array<[unknown, string]> = [
    ['', 'EINVAL'],
    ['.', 'EINVAL'],
    ['..', 'EINVAL'],
    ['a/b', 'EINVAL'],
    ['a\0b', 'EINVAL'],
    ['\ud800', 'EINVAL'],
    [long, 'ENAMETOOLONG'],
    ['é'.repeat(128), 'ENAMETOOLONG'],
    [42, 'EINVAL'],
    [null, 'EINVAL'],
  ]
  for (const [name, code] of bad) t.throws(() => checkName(name, 'test'), { code }, `${JSON.stringify(name)?.slice(0, 20)} → ${code}`)
  t.equal(checkName(longest, 'test'), longest, '255 bytes is allowed')
  t.same(splitPath('/a//b/', 'test'), ['a', 'b'], 'empty components are ignored')
  t.same(splitPath('', 'test'), [], 'the root')
  t.same(splitPath('/', 'test'), [])
  t.throws(() => splitPath('/a/../b', 'test'), { code: 'EINVAL' })
  t.throws(() => splitPath('./a', 'test'), { code: 'EINVAL' })
  t.throws(() => splitPath('/' + 'a/'.repeat(2100), 'test'), { code: 'ENAMETOOLONG' })
  t.throws(() => splitPath(undefined, 'test'), { code: 'EINVAL' })
})

t.test('every call refuses bad names and paths', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  buildLower(lower)
  const sum = treeChecksum(lower)
  const store = await TreeStore.create(join(root, 'store'), { lower })
  t.teardown(() => store.close())
  const paths: Array<[string, string]> = [
    ['/etc/..', 'EINVAL'],
    ['/etc/../..', 'EINVAL'],
    ['/./etc', 'EINVAL'],
    ['/etc/a\0b', 'EINVAL'],
    [`/etc/${long}`, 'ENAMETOOLONG'],
  ]
  const calls: Record<string, (p: string) => Promise<unknown>> = {
    stat: (p) => store.stat(p),
    readdir: (p) => store.readdir(p),
    open: (p) => store.open(p, 'r'),
    'open O_CREAT': (p) => store.open(p, 'w'),
    create: (p) => store.create(p),
    mkdir: (p) => store.mkdir(p),
    mknod: (p) => store.mknod(p, { type: 'fifo' }),
    symlink: (p) => store.symlink('target', p),
    'link to': (p) => store.link('/etc/hosts', p),
    'link from': (p) => store.link(p, '/x'),
    'rename to': (p) => store.rename('/etc/hosts', p),
    'rename from': (p) => store.rename(p, '/x'),
    unlink: (p) => store.unlink(p),
    rmdir: (p) => store.rmdir(p),
    chmod: (p) => store.chmod(p, 0o600),
    chown: (p) => store.chown(p, 1, 1),
    utimens: (p) => store.utimens(p, { mtimeMs: 0 }),
    truncate: (p) => store.truncate(p, 0),
    readlink: (p) => store.readlink(p),
    setxattr: (p) => store.setxattr(p, 'user.a', Buffer.from('v')),
    getxattr: (p) => store.getxattr(p, 'user.a'),
    listxattr: (p) => store.listxattr(p),
  }
  for (const [call, fn] of Object.entries(calls)) {
    for (const [path, code] of paths) await t.rejects(fn(path), { code }, `${call} ${JSON.stringify(path).slice(0, 24)} → ${code}`)
  }
  await store.create(`/etc/${longest}`)
  t.ok((await store.readdir('/etc')).some((e) => e.name === longest), 'a 255-byte name works')
  await t.rejects(store.symlink('', '/s'), { code: 'EINVAL' }, 'empty symlink target')
  await t.rejects(store.symlink('a\0b', '/s'), { code: 'EINVAL' }, 'NUL in a symlink target')
  await t.rejects(store.symlink('x'.repeat(4096), '/s'), { code: 'ENAMETOOLONG' })
  await t.rejects(store.setxattr('/etc/hosts', 'nonamespace', Buffer.from('v')), { code: 'ENOTSUP' })
  await t.rejects(store.setxattr('/etc/hosts', 'user.', Buffer.from('v')), { code: 'ENOTSUP' })
  await t.rejects(store.setxattr('/etc/hosts', 'user.big', Buffer.alloc(65537)), { code: 'E2BIG' })
  await t.rejects(store.setxattr('/etc/hosts', 'user.' + long, Buffer.from('v')), { code: 'ENAMETOOLONG' })
  await t.rejects(store.mkdir('/x', { mode: 0o7777 + 1 }), { code: 'EINVAL' }, 'mode out of range')
  await t.rejects(store.mkdir('/x', { mdoe: 0o755 } as never), { code: 'EINVAL' }, 'a misspelled option')
  await t.rejects(store.chmod('/etc/hosts', -1), { code: 'EINVAL' })
  await t.rejects(store.chown('/etc/hosts', 1.5, 0), { code: 'EINVAL' })
  await t.rejects(store.open('/etc/hosts', 'rw'), { code: 'EINVAL' }, 'unknown string flags')
  await t.rejects(store.open('/etc/hosts', 3), { code: 'EINVAL' }, 'O_ACCMODE 3')
  await t.rejects(store.rename('/etc/hosts', '/x', { noReplace: true, exchange: true }), { code: 'EINVAL' })
  await t.rejects(store.rmdir('/'), { code: 'EBUSY' })
  await t.rejects(store.rename('/', '/x'), { code: 'EBUSY' })
  await t.rejects(store.unlink('/'), { code: 'EISDIR' })
  await t.rejects(store.mkdir('/'), { code: 'EEXIST' })
  t.equal(treeChecksum(lower), sum, 'the lower is untouched')
})

t.test('symlinks are never followed: nothing outside the tree is reached', async (t) => {
  const root = t.testdir({ outside: { 'secret.txt': 'SECRET', dir: { 'inner.txt': 'INNER' } } })
  const lower = join(root, 'lower')
  buildLower(lower)
  nodeFs.symlinkSync(join(root, 'outside'), join(lower, 'to-outside'))
  nodeFs.symlinkSync('../outside/secret.txt', join(lower, 'rel-secret'))
  nodeFs.symlinkSync('/', join(lower, 'to-root'))
  nodeFs.symlinkSync('loop', join(lower, 'loop'))
  nodeFs.symlinkSync('..', join(lower, 'etc/up'))
  const sum = treeChecksum(lower)
  const outsideSum = treeChecksum(join(root, 'outside'))
  const store = await TreeStore.create(join(root, 'store'), { lower })
  t.teardown(() => store.close())
  await store.symlink('/etc', '/upper-abs')

  const table: Array<[string, () => Promise<unknown>, string]> = [
    ['open an absolute symlink', () => store.open('/etc-abs'), 'ELOOP'],
    ['open a relative symlink out', () => store.open('/rel-secret'), 'ELOOP'],
    ['open through a symlink', () => store.open('/to-outside/secret.txt'), 'ELOOP'],
    ['stat through a symlink', () => store.stat('/to-outside/secret.txt'), 'ELOOP'],
    ['stat through ../../..', () => store.stat('/usr/escape/etc'), 'ELOOP'],
    ['readdir a symlink', () => store.readdir('/to-root'), 'ELOOP'],
    ['readdir through a symlink', () => store.readdir('/to-outside/dir'), 'ELOOP'],
    ['readdir through ..', () => store.readdir('/etc/up/etc'), 'ELOOP'],
    ['mkdir through a symlink', () => store.mkdir('/to-outside/new'), 'ELOOP'],
    ['create through a symlink', () => store.open('/to-outside/new', 'w'), 'ELOOP'],
    ['O_CREAT on a symlink', () => store.open('/rel-secret', 'w'), 'ELOOP'],
    ['truncate a symlink', () => store.truncate('/rel-secret', 0), 'ELOOP'],
    ['write through an upper symlink', () => store.open('/upper-abs/passwd', 'w'), 'ELOOP'],
    ['unlink through a symlink', () => store.unlink('/to-outside/secret.txt'), 'ELOOP'],
    ['rename into a symlink', () => store.rename('/etc/hosts', '/to-outside/hosts'), 'ELOOP'],
    ['rename out of a symlink', () => store.rename('/to-outside/secret.txt', '/stolen'), 'ELOOP'],
    ['link out of a symlink', () => store.link('/to-outside/secret.txt', '/stolen'), 'ELOOP'],
    ['a symlink loop', () => store.stat('/loop/x'), 'ELOOP'],
    ['chmod a symlink', () => store.chmod('/to-outside', 0o777), 'ENOTSUP'],
    ['xattrs through a symlink', () => store.listxattr('/to-outside/secret.txt'), 'ELOOP'],
    ['map a symlink', async () => [...store.extents('/rel-secret')], 'ELOOP'],
  ]
  for (const [what, call, code] of table) await t.rejects(call(), { code }, `${what} → ${code}`)
  t.equal(await store.readlink('/to-outside'), join(root, 'outside'), 'readlink returns the target verbatim')
  t.equal(await store.readlink('/usr/escape'), '../../..')
  t.match(await store.stat('/to-root'), { type: 'symlink' }, 'the link itself is what stat sees')
  // Operations on the link itself stay inside the store.
  await store.chown('/to-outside', 4321, 4321)
  await store.utimens('/to-outside', { mtimeMs: 0 })
  await store.rename('/to-outside', '/renamed-link')
  await store.unlink('/rel-secret')
  t.equal(treeChecksum(lower), sum, 'the lower is untouched')
  t.equal(treeChecksum(join(root, 'outside')), outsideSum, 'outside the lower is untouched')
  t.equal(nodeFs.readFileSync(join(root, 'outside/secret.txt'), 'utf8'), 'SECRET')
})
