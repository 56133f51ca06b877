// BlockCache: a least-recently-used cache bounded by the bytes of what it holds.
import t from 'tap'
import { BlockCache } from '../lib/squashfs/block-cache.js'

t.test('keeps at most its bound, dropping the least recently used', async (t) => {
  const c = new BlockCache<Buffer>(100)
  c.set(1, Buffer.alloc(40))
  c.set(2, Buffer.alloc(40))
  t.ok(c.get(1), 'a hit')
  c.set(3, Buffer.alloc(40))
  t.equal(c.bytes, 80, 'within the bound')
  t.equal(c.get(2), undefined, 'the least recently used went')
  t.ok(c.get(1) && c.get(3), 'the others stay')
  t.equal(c.hits, 3)
  t.equal(c.misses, 1)
})

t.test('a value larger than the bound is not kept; replacing a key counts once', async (t) => {
  const c = new BlockCache<Buffer>(100)
  c.set(1, Buffer.alloc(101))
  t.equal(c.size, 0)
  c.set(2, Buffer.alloc(30))
  c.set(2, Buffer.alloc(50))
  t.equal(c.bytes, 50)
  const none = new BlockCache<Buffer>(0)
  none.set(1, Buffer.alloc(1))
  t.equal(none.size, 0, 'a bound of 0 keeps nothing')
  c.clear()
  t.equal(c.bytes, 0)
})

t.test('every value dropped or refused is handed to onEvict, once', async (t) => {
  const evicted: number[] = []
  const c = new BlockCache<Buffer>(100, (b) => evicted.push(b.length))
  c.set(1, Buffer.alloc(60))
  c.set(2, Buffer.alloc(50)) // drops 1
  c.set(3, Buffer.alloc(200)) // refused
  c.set(2, Buffer.alloc(10)) // replaces 2
  c.clear() // drops the 10
  t.strictSame(evicted, [60, 200, 50, 10])
})
