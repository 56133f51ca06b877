// The FUSE server's node table: node ids back to store paths, through hard links, renames,
// removals, forgotten directories and the PATH_MAX limit.
import t from 'tap'
import { InodeTable } from '../lib/fuse/inode-table.js'
import { FUSE_ROOT_ID } from '../lib/fuse/protocol.js'

t.test('paths follow lookups, renames and removals', async (t) => {
  const table = new InodeTable(100)
  const a = table.remember(FUSE_ROOT_ID, 'a', 101)
  const f = table.remember(a.nodeid, 'f', 102)
  t.equal(table.path(f.nodeid), '/a/f')
  table.renamed({ parent: a.nodeid, name: 'f' }, { parent: FUSE_ROOT_ID, name: 'g' }, false)
  t.equal(table.path(f.nodeid), '/g', 'a rename moves the name')
  const h = table.remember(a.nodeid, 'h', 103)
  table.renamed({ parent: FUSE_ROOT_ID, name: 'g' }, { parent: a.nodeid, name: 'h' }, true)
  t.equal(table.path(f.nodeid), '/a/h', 'exchange: f takes h’s name')
  t.equal(table.path(h.nodeid), '/g', 'and h takes f’s')
  table.removed(FUSE_ROOT_ID, 'g')
  t.throws(() => table.path(h.nodeid), { code: 'ENOENT' }, 'removed: no name left')
  t.equal(table.pathIfNamed(h.nodeid), undefined)
})

t.test('a hard link whose other name sits in a forgotten directory still has a path', async (t) => {
  const table = new InodeTable(100)
  const a = table.remember(FUSE_ROOT_ID, 'a', 101)
  const b = table.remember(FUSE_ROOT_ID, 'b', 102)
  const viaB = table.remember(b.nodeid, 'y', 200)
  const viaA = table.remember(a.nodeid, 'x', 200)
  t.equal(viaA.nodeid, viaB.nodeid, 'one node for one inode')
  t.equal(table.path(viaA.nodeid), '/a/x', 'the latest name first')
  table.forget(a.nodeid, 1) // the kernel dropped /a (and /a/x with it)
  t.equal(table.path(viaA.nodeid), '/b/y', 'the name in the forgotten directory is skipped')
  t.equal(table.size, 3, 'root, b and the file')
})

t.test('parent: the directory a node is named in, what its ".." shows', async (t) => {
  const table = new InodeTable(100)
  const a = table.remember(FUSE_ROOT_ID, 'a', 101)
  const b = table.remember(a.nodeid, 'b', 102)
  t.equal(table.parent(FUSE_ROOT_ID).ino, 100, 'the root’s is the root')
  t.equal(table.parent(a.nodeid).ino, 100)
  t.equal(table.parent(b.nodeid).ino, 101)
  table.renamed({ parent: a.nodeid, name: 'b' }, { parent: FUSE_ROOT_ID, name: 'b' }, false)
  t.equal(table.parent(b.nodeid).ino, 100, 'moved by a rename')
  table.removed(FUSE_ROOT_ID, 'b')
  t.throws(() => table.parent(b.nodeid), { code: 'ENOENT' }, 'removed: no name left')
})

t.test('paths longer than PATH_MAX are refused before they are built', async (t) => {
  const table = new InodeTable(100)
  let parent = FUSE_ROOT_ID
  const name = 'd'.repeat(200)
  for (let i = 0; i < 20; i++) parent = table.remember(parent, name, 1000 + i).nodeid
  t.equal(table.path(parent).length, 20 * 201, '20 levels: 4020 bytes')
  t.throws(() => table.childPath(parent, name), { code: 'ENAMETOOLONG' })
  const deeper = table.remember(parent, name, 2000)
  t.throws(() => table.path(deeper.nodeid), { code: 'ENAMETOOLONG' })
})

t.test('shedding: the coldest nodes first, a node looked up again is kept', async (t) => {
  const table = new InodeTable(100)
  const nodes = Array.from({ length: 10 }, (_, i) => table.remember(FUSE_ROOT_ID, `n${i}`, 200 + i))
  table.remember(FUSE_ROOT_ID, 'n0', 200) // n0 is now the most recent
  const shed = table.shed(3, (n) => n.nodeid === nodes[1]!.nodeid)
  t.same(shed.map((n) => n.ino), [202, 203, 204], 'the three coldest, the kept one skipped')
  t.equal(table.active, 7)
  table.remember(FUSE_ROOT_ID, 'n2', 202)
  t.equal(table.active, 8, 'looked up again before its FORGET: active again')
  table.forget(shed[1]!.nodeid, 1)
  t.equal(table.size, 10, 'a FORGET removes it')
  t.equal(table.active, 8)
})
