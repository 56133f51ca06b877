// The incremental file refuses damage (issue 12): every byte flipped, every cut, bytes appended —
// each is refused by apply before the target is touched (ECORRUPT; EINVAL for a damaged magic,
// which is then no incremental at all; EVERSION for another format number).
import { readFileSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import t from 'tap'
import { applyIncremental, exportImage, exportIncremental, ImageStore } from '../lib/index.js'
import { makeLower } from './fixtures/lower.js'
import { Random, testSeeds } from './fixtures/random.js'

const P = 4096

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

for (const seed of testSeeds([1])) {
  t.test(`damaged and truncated incrementals are refused, the target untouched (seed ${seed})`, async (t) => {
    const rng = new Random(seed)
    const dir = t.testdir()
    const lower = makeLower(`${dir}/lower.img`, 24 * P, rng, 0.5)
    const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
    await store.mark('A')
    await exportImage(store, `${dir}/base.img`)
    await store.write(2 * P, rng.bytes(3 * P))
    await store.zero(8 * P, 2 * P)
    await store.truncate(20 * P + 5)
    await exportIncremental(store, `${dir}/inc`, { since: 'A' })
    await store.close()
    const good = readFileSync(`${dir}/inc`)
    const before = sha(`${dir}/base.img`)
    const codeOf = async (bytes: Buffer): Promise<string> => {
      writeFileSync(`${dir}/bad`, bytes)
      try {
        await applyIncremental(`${dir}/bad`, `${dir}/base.img`)
        return 'applied'
      } catch (err) {
        return (err as { code?: string }).code ?? String(err)
      }
    }
    // Every byte of the header region and of each record boundary, and random bytes of the rest.
    const positions = new Set<number>()
    for (let i = 0; i < Math.min(good.length, 600); i += i < 64 ? 1 : 5) positions.add(i)
    for (let i = 0; i < 100; i++) positions.add(rng.int(0, good.length))
    for (let i = good.length - 40; i < good.length; i++) positions.add(i)
    const wrong: string[] = []
    for (const at of [...positions].sort((a, b) => a - b)) {
      const bad = Buffer.from(good)
      bad[at] = bad[at]! ^ (1 << rng.int(0, 8))
      const want = at < 8 ? 'EINVAL' : at < 12 ? 'EVERSION' : 'ECORRUPT'
      const got = await codeOf(bad)
      if (got !== want) wrong.push(`byte ${at}: ${got}, want ${want}`)
    }
    t.same(wrong, [], `${positions.size} flipped bytes refused with the right code`)
    const cuts: string[] = []
    for (let n = 0; n < good.length; n += n < 40 ? 1 : rng.int(1, 300)) {
      const got = await codeOf(good.subarray(0, n))
      if (got !== 'ECORRUPT') cuts.push(`cut at ${n}: ${got}`)
    }
    t.same(cuts, [], 'every cut is ECORRUPT')
    t.equal(await codeOf(Buffer.concat([good, Buffer.from([0])])), 'ECORRUPT', 'a byte appended')
    t.equal(sha(`${dir}/base.img`), before, 'the target was never touched')
    t.equal(await codeOf(good), 'applied', 'the undamaged incremental applies')
  })
}
