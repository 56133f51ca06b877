// File-system behaviour of tree mode, judged against the kernel: every scenario runs on a
// pagecow tree store and on a plain directory holding the same lower; outcomes (error codes
// included) and the resulting trees must be the same. Then seeded random operation sequences.
// All of it for each kind of lower: a directory, and a squashfs image of it read in user space
// (its plain copy made from the kernel's mount of the image).
import t from 'tap'
import { cannotRun } from './fixtures/cannot-run.js'
import { lowerChecksum, makePair, PAIR_LOWERS, pairMissing, reopen, type TreePair } from './fixtures/tree-pair.js'
import { outcome, snapshot } from './fixtures/tree-adapters.js'
import { canRunAsRoot } from './fixtures/tree-lower.js'
import { scenarios } from './fixtures/tree-scenarios.js'
import { Random, testSeeds } from './fixtures/random.js'
import { applyOp, describeOp, listing, randomOp } from './fixtures/tree-ops.js'

for (const lowerFormat of PAIR_LOWERS) {
  t.test(`over a ${lowerFormat === 'squashfs' ? 'squashfs image' : 'directory'}`, async (t) => {
    const missing = pairMissing(lowerFormat)
    if (missing) return cannotRun(t, missing)

    for (const [name, scenario] of Object.entries(scenarios)) {
      await t.test(name, async (t) => {
        if (name.includes('chown')) canRunAsRoot(t, 'the chown steps')
        const pair = await makePair(t.testdir(), { lowerFormat })
        const logs: Record<string, string[]> = {}
        for (const a of [pair.store, pair.plain]) {
          const lines: string[] = []
          await scenario(a, (l) => lines.push(l))
          logs[a.name] = lines
        }
        t.same(logs.pagecow, logs.plain, 'the same outcomes as the kernel')
        t.same(await snapshot(pair.store), await snapshot(pair.plain), 'the same tree')
        await reopen(pair)
        t.same(await snapshot(pair.store), await snapshot(pair.plain), 'the same tree after reopening the store')
        await pair.store.close()
        t.equal(lowerChecksum(pair), pair.lowerSum, 'the lower is untouched')
      })
    }

    // ---- randomized sequences ----

    for (const seed of testSeeds([1, 2, 3, 4])) {
      await t.test(`random operations, seed ${seed}`, async (t) => {
        const pair: TreePair = await makePair(t.testdir(), { lowerFormat })
        const r = new Random(seed)
        const steps = 160
        for (let i = 0; i < steps; i++) {
          const op = randomOp(r, await listing(pair.plain))
          const got = await outcome(applyOp(pair.store, op))
          const want = await outcome(applyOp(pair.plain, op))
          if (got !== want) {
            t.equal(got, want, `step ${i}: ${describeOp(op)} (seed ${seed})`)
            break
          }
          if (i % 40 === 39) {
            const same = t.same(await snapshot(pair.store), await snapshot(pair.plain), `trees agree after step ${i} (seed ${seed})`)
            if (!same) break
            await reopen(pair)
          }
        }
        t.same(await snapshot(pair.store), await snapshot(pair.plain), `trees agree at the end (seed ${seed})`)
        await pair.store.close()
        t.equal(lowerChecksum(pair), pair.lowerSum, 'the lower is untouched')
      })
    }
  })
}
