// The page checksum alone, in-process: pagecow's XXH64 (native/pagecow.c, many pages per call)
// against @node-rs/xxhash (what made the sums before it: a call per page) and against a plain copy
// of the same bytes (what a read from the page cache costs at least). Side by side, interleaved.
import { randomFillSync } from 'node:crypto'
import { createRequire } from 'node:module'
import { addon } from '../../lib/addon.js'
import type { BenchCase } from './bench-case.js'
import { throughputRow, type Row } from './row.js'
import { now } from './timing.js'

const require = createRequire(import.meta.url)
const PAGE = 4096
const MiB = 1024 * 1024
/** Calls per batch of each side; the order of the sides rotates every batch. */
const PER_BATCH = 64

export const integrityHash: BenchCase = {
  id: 'integrity-hash',
  group: 'integrity',
  number: 19,
  title: 'the page checksum alone: 256 pages of 4 KiB hashed in one call vs a call per page (@node-rs/xxhash) vs a copy',
  async run(ctx): Promise<Row[]> {
    const reference = (require('@node-rs/xxhash') as { xxh64: (input: Uint8Array) => bigint }).xxh64
    const bytes = randomFillSync(Buffer.alloc(MiB))
    const copy = Buffer.alloc(MiB)
    const sums = new BigUint64Array(MiB / PAGE)
    const sides: Array<[string, () => void]> = [
      [`pagecow pageSums (${addon().hashPath()})`, () => void addon().pageSums(bytes, PAGE, sums)],
      ['@node-rs/xxhash, a page at a time', () => {
        for (let at = 0; at < MiB; at += PAGE) reference(bytes.subarray(at, at + PAGE))
      }],
      ['Buffer copy', () => copy.set(bytes)],
    ]
    const batches = ctx.config.quick ? 40 : 200
    const ms: number[][] = sides.map(() => [])
    for (let b = 0; b < batches; b++) {
      for (let k = 0; k < sides.length; k++) {
        const j = (b + k) % sides.length
        const start = now()
        for (let i = 0; i < PER_BATCH; i++) sides[j]![1]()
        ms[j]!.push(Number(now() - start) / 1e6)
      }
    }
    ctx.log(`hash path: ${addon().hashPath()}`)
    const work = PER_BATCH * MiB
    const row = (a: number, b: number) =>
      throughputRow({ case: 'integrity-hash', label: `1 MiB in 4 KiB pages, ${PER_BATCH} per batch: ${sides[a]![0]} vs ${sides[b]![0]}`, work, unit: 'bytes', pagecowMs: ms[a]!, baselineMs: ms[b]!, baselineName: sides[b]![0] })
    return [row(0, 1), row(0, 2), row(1, 2)]
  },
}
