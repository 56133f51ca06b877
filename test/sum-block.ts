// Page checksums are stored by how many there are: a block of scattered pages costs 10 bytes a
// sum, a full one 8 KiB; whatever is stored reads back as it was, and bytes that cannot be a block
// are refused.
import t from 'tap'
import Database from 'better-sqlite3'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { ImageStore } from '../lib/index.js'
import { SumBlock, SUMS_PER_BLOCK } from '../lib/integrity/sum-block.js'
import { Random } from './fixtures/random.js'

t.test('round trips, sparse and dense', async (t) => {
  const rng = new Random(5)
  for (const count of [0, 1, 2, 63, 64, 65, 200, 818, 819, 820, 1024]) {
    const block = new SumBlock()
    const want = new Map<number, bigint>()
    while (want.size < count) want.set(rng.int(0, SUMS_PER_BLOCK), BigInt(rng.int(1, 2 ** 31)) * 4294967311n)
    for (const [i, s] of want) block.set(i, s)
    const bytes = block.encode()
    t.equal(bytes.length, count <= 819 ? count * 10 : SUMS_PER_BLOCK * 8, `${count} sums stored in ${bytes.length} bytes`)
    const back = SumBlock.decode(bytes)!
    let same = true
    for (let i = 0; i < SUMS_PER_BLOCK; i++) if (back.get(i) !== (want.get(i) ?? 0n)) same = false
    t.ok(same, `${count} sums read back`)
  }
  const b = new SumBlock()
  t.equal(b.set(3, 7n), true)
  t.equal(b.set(3, 7n), false, 'the same sum again is no change')
  t.equal(b.set(3, 0n), true)
  t.equal(b.encode().length, 0, 'a sum removed is gone')
})

t.test('bytes that cannot be a block', async (t) => {
  const pair = (i: number, sum: bigint) => {
    const b = Buffer.alloc(10)
    b.writeUInt16LE(i)
    b.writeBigUInt64LE(sum, 2)
    return b
  }
  const bad: Array<[string, Buffer]> = [
    ['a length that is no whole pair', Buffer.alloc(11)],
    ['an index past the block', pair(1024, 1n)],
    ['a zero sum stored', pair(3, 0n)],
    ['indexes out of order', Buffer.concat([pair(5, 1n), pair(4, 1n)])],
    ['an index twice', Buffer.concat([pair(5, 1n), pair(5, 2n)])],
    ['too many pairs for the sparse form', Buffer.alloc(820 * 10)],
  ]
  for (const [what, bytes] of bad) t.equal(SumBlock.decode(bytes), undefined, what)
})

t.test('a store of scattered pages keeps a few bytes per sum', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  nodeFs.writeFileSync(lower, '')
  nodeFs.truncateSync(lower, 4096 * SUMS_PER_BLOCK * 2000)
  const store = await ImageStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  for (let i = 0; i < 2000; i++) await store.write(4096 * SUMS_PER_BLOCK * i + 4096 * (i % 7), Buffer.alloc(4096, 1 + (i % 200)))
  await store.close()
  const db = new Database(join(dir, 'store', 'pagecow.db'), { readonly: true })
  const { rows, bytes } = db.prepare('SELECT count(*) AS rows, sum(length(sums)) AS bytes FROM page_sums').get() as { rows: number; bytes: number }
  db.close()
  t.equal(rows, 2000, 'a row per block')
  t.equal(bytes, 2000 * 10, '10 bytes a sum, not 8 KiB a block')
  const again = await ImageStore.open(join(dir, 'store'), { readOnly: true })
  t.same(await again.read(4096 * SUMS_PER_BLOCK * 1999 + 4096 * (1999 % 7), 4), Buffer.alloc(4, 1 + (1999 % 200)), 'and reads verify against them')
  await again.close()
})
