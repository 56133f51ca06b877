// Page checksums are our own XXH64 (native/pagecow.c): the digests must be XXH64's exactly, as
// @node-rs/xxhash computed them for every store made before it (stores keep their format), on both
// of the addon's loops (AVX-512 four pages at a time, and scalar), for every length and alignment.
import t from 'tap'
import { randomFillSync } from 'node:crypto'
import { createRequire } from 'node:module'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { addon } from '../lib/addon.js'
import { firstMismatch, pageSum, pageSums, recordSum } from '../lib/integrity/hash.js'
import * as fs from '../lib/fs.js'

const require = createRequire(import.meta.url)
const reference = (require('@node-rs/xxhash') as { xxh64: (input: Uint8Array) => bigint }).xxh64
const referencePageSum = (bytes: Uint8Array): bigint => reference(bytes) || 1n

const paths = addon().hashPath() === 'avx512' ? [false, true] : [true]

for (const scalarOnly of paths) {
  t.test(`the ${scalarOnly ? 'scalar' : 'AVX-512'} loop gives XXH64's digests`, async (t) => {
    addon().hashPath(scalarOnly)
    t.teardown(() => void addon().hashPath(false))
    t.equal(addon().hashPath(), scalarOnly ? 'scalar' : 'avx512')
    const bytes = randomFillSync(Buffer.alloc(300_000))
    let compared = 0
    const wrong: string[] = []
    // Every length to 1 KiB at every alignment to 8, then lengths around the page sizes.
    for (let length = 0; length <= 1024; length++) {
      for (let offset = 0; offset < 8; offset++) {
        const input = bytes.subarray(offset, offset + length)
        compared++
        if (addon().xxh64(input) !== reference(input)) wrong.push(`${length}@${offset}`)
      }
    }
    for (const size of [512, 4096, 65536, 262144]) {
      for (const length of [size - 1, size, size + 1, size + 31, size + 33]) {
        const input = bytes.subarray(3, 3 + length)
        compared++
        if (addon().xxh64(input) !== reference(input)) wrong.push(`${length}@3`)
      }
    }
    t.same(wrong, [], `${compared} inputs: the same digests as @node-rs/xxhash`)
    t.equal(addon().xxh64(Buffer.alloc(0)), 0xef46db3751d8e999n, "the empty input's digest as the specification's test vectors give it")

    // Many pages per call: every page size, counts around the four-at-a-time groups, a short last page.
    for (const pageSize of [512, 4096, 65536]) {
      for (const count of [1, 2, 3, 4, 5, 7, 8, 9]) {
        for (const extra of [0, 100]) {
          const input = bytes.subarray(1, 1 + Math.min(bytes.length - 1, count * pageSize + extra))
          const out = new BigUint64Array(count + 1)
          const summed = pageSums(input, pageSize, out)
          const want: bigint[] = []
          for (let at = 0; at < input.length && want.length < out.length; at += pageSize) want.push(referencePageSum(input.subarray(at, at + pageSize)))
          t.equal(summed, want.length, `${pageSize}-byte pages, ${count} and ${extra} bytes: pages summed`)
          t.same([...out.subarray(0, summed)], want, `${pageSize}-byte pages, ${count} and ${extra} bytes: the sums`)
        }
      }
    }
  })
}

t.test('a page sum is never 0; a record sum is the digest of its encoding', async (t) => {
  const page = randomFillSync(Buffer.alloc(4096))
  t.equal(pageSum(page), referencePageSum(page))
  t.not(pageSum(Buffer.alloc(4096)), 0n)
  t.equal(recordSum(['x', 1]).readBigUInt64LE(), reference(Buffer.concat([Buffer.of(3, 1, 0, 0, 0), Buffer.from('x'), Buffer.of(1), Buffer.from(new Float64Array([1]).buffer)])))
})

t.test('firstMismatch finds the first damaged page, skips pages without an expected sum', async (t) => {
  const ps = 4096
  const bytes = randomFillSync(Buffer.alloc(ps * 11))
  const expected = new BigUint64Array(11)
  pageSums(bytes, ps, expected)
  t.equal(firstMismatch(bytes, ps, expected, 0), -1, 'all match')
  bytes[5 * ps + 17]! ^= 1
  bytes[9 * ps]! ^= 0x80
  t.equal(firstMismatch(bytes, ps, expected, 0), 5)
  t.equal(firstMismatch(bytes, ps, expected, 6), 9, 'from a later page')
  expected[5] = 0n
  t.equal(firstMismatch(bytes, ps, expected, 0), 9, 'a page expected as 0 is not checked')
  t.equal(firstMismatch(bytes.subarray(0, 9 * ps + 100), ps, expected, 0), -1, 'a short last page is not checked')
})

t.test('preadPages reads scattered pages, neighbours together, zeros past the end', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'f')
  const ps = 4096
  const content = randomFillSync(Buffer.alloc(ps * 20 + 100))
  nodeFs.writeFileSync(path, content)
  const fd = nodeFs.openSync(path, 'r')
  t.teardown(() => nodeFs.closeSync(fd))
  const pages = [0, 3, 4, 5, 19, 20, 21, 2]
  const target = Buffer.alloc(ps * pages.length, 0xee)
  fs.preadPages(fd, target, ps, Float64Array.from(pages, (p) => p * ps), pages.length)
  const want = Buffer.alloc(ps * pages.length)
  pages.forEach((p, i) => {
    if (p * ps < content.length) content.copy(want, i * ps, p * ps, Math.min(content.length, (p + 1) * ps))
  })
  t.ok(target.equals(want), 'each piece as a pread of it gives it, zeros past the end')
  const bad: Array<[string, () => void, string]> = [
    ['a closed descriptor', () => fs.preadPages(1 << 20, target, ps, Float64Array.of(0), 1), 'EBADF'],
    ['a negative position', () => fs.preadPages(fd, target, ps, Float64Array.of(-ps), 1), 'EINVAL'],
  ]
  for (const [what, call, code] of bad) t.throws(call, { code, syscall: 'pread' }, what)
  t.throws(() => fs.preadPages(fd, Buffer.alloc(ps), ps, Float64Array.of(0, ps), 2), TypeError, 'more pieces than the target holds')
})
