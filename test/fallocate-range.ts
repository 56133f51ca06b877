// fallocate(2) modes on a mount: which range each honoured mode zeroes, and a table of the modes
// refused (plain allocation, unknown flags, punch-hole without keep-size).
import t from 'tap'
import { fallocateZeroRange } from '../lib/fuse/fallocate-range.js'

const KEEP_SIZE = 0x01
const PUNCH_HOLE = 0x02
const COLLAPSE_RANGE = 0x08
const ZERO_RANGE = 0x10
const INSERT_RANGE = 0x20

t.test('the range each honoured mode zeroes', async (t) => {
  const size = 10_000
  t.same(fallocateZeroRange(PUNCH_HOLE | KEEP_SIZE, 100, 50, size), { offset: 100, length: 50 }, 'punch-hole inside the file')
  t.same(fallocateZeroRange(PUNCH_HOLE | KEEP_SIZE, 9_000, 5_000, size), { offset: 9_000, length: 1_000 }, 'keep-size: cut at the end')
  t.equal(fallocateZeroRange(PUNCH_HOLE | KEEP_SIZE, 20_000, 10, size), null, 'keep-size past the end: nothing')
  t.same(fallocateZeroRange(ZERO_RANGE, 9_000, 5_000, size), { offset: 9_000, length: 5_000 }, 'zero-range without keep-size grows the file')
  t.same(fallocateZeroRange(ZERO_RANGE | KEEP_SIZE, 9_000, 5_000, size), { offset: 9_000, length: 1_000 })
})

t.test('modes refused, each with its errno', async (t) => {
  const refused: Array<[string, number, string]> = [
    ['plain allocation', 0, 'ENOTSUP'],
    ['plain allocation, keep-size', KEEP_SIZE, 'ENOTSUP'],
    ['collapse-range', COLLAPSE_RANGE, 'ENOTSUP'],
    ['insert-range', INSERT_RANGE, 'ENOTSUP'],
    ['punch-hole with an unknown flag', PUNCH_HOLE | KEEP_SIZE | 0x100, 'ENOTSUP'],
    ['punch-hole without keep-size (Linux refuses it too)', PUNCH_HOLE, 'EINVAL'],
  ]
  for (const [what, mode, code] of refused) t.throws(() => fallocateZeroRange(mode, 0, 4096, 10_000), { code }, what)
})
