// The tree behaviour suite through a real FUSE mount: every scenario of test/tree-behaviour.ts and
// seeded random operation sequences run through the plain-directory adapter twice, once over a
// subtree of the MOUNT POINT (the kernel → FUSE → pagecow) and once over the same subtree of a
// plain copy of the lower (the kernel's own semantics). Outcomes (error codes included) and the
// resulting trees must agree, before and after an unmount and a remount. Three times: over a lower
// directory, mounted by default and with --writeback-cache (the kernel caching writes), and over a
// squashfs image of it read in user space (the plain copy then made from the kernel's mount of
// the image).
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { checkTreeStore, TreeStore } from '../lib/index.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { checkNothingLeftMounted, fuseUsable, mountStore, mountTestDir, unmountAndWait } from './fixtures/fuse-mounted.js'
import { fileSha256 } from './fixtures/squashfs-store.js'
import { kernelMount, mksquashfs } from './fixtures/squashfs-tree.js'
import { PAIR_LOWERS, pairMissing } from './fixtures/tree-pair.js'
import { Random, testSeeds } from './fixtures/random.js'
import { outcome, PlainAdapter, snapshot } from './fixtures/tree-adapters.js'
import { buildLower, copyTree, treeChecksum } from './fixtures/tree-lower.js'
import { applyOp, describeOp, listing, randomOp } from './fixtures/tree-ops.js'
import { scenarios } from './fixtures/tree-scenarios.js'

const STEPS = 200

if (fuseUsable(t)) {
  const variants = [...PAIR_LOWERS.map((lowerFormat) => ({ lowerFormat, args: [] as string[] })), { lowerFormat: PAIR_LOWERS[0]!, args: ['--writeback-cache'] }]
  for (const { lowerFormat, args } of variants) {
    t.test(`the behaviour suite through the mount${args.length ? ` (${args.join(' ')})` : ''} of a store over a ${lowerFormat === 'squashfs' ? 'squashfs image' : 'directory'}, against a plain copy`, async (t) => {
      const missing = pairMissing(lowerFormat)
      if (missing) return cannotRun(t, missing)
      const dir = mountTestDir(t)
      const lower = join(dir, 'lower')
      const plain = join(dir, 'plain')
      const storeDir = join(dir, 'store')
      const mnt = join(dir, 'mnt')
      // One subtree per scenario and per seed, each a whole buildLower() tree: one mount serves all.
      const names = Object.keys(scenarios)
      const seeds = testSeeds([1, 2, 3, 4, 5, 6])
      const subtrees = [...names.map((_, i) => `s${i}`), ...seeds.map((seed) => `r${seed}`)]
      for (const sub of subtrees) {
        mkdirSync(join(lower, sub), { recursive: true })
        buildLower(join(lower, sub))
      }
      let storeLower = lower
      if (lowerFormat === 'squashfs') {
        storeLower = join(dir, 'lower.sqfs')
        mksquashfs(lower, storeLower, [])
        const unmount = kernelMount(storeLower, join(dir, 'kernel-mount'))
        try {
          copyTree(join(dir, 'kernel-mount'), plain)
        } finally {
          unmount()
        }
      } else {
        copyTree(lower, plain)
      }
      const checksum = () => (lowerFormat === 'squashfs' ? fileSha256(storeLower) : treeChecksum(lower))
      const lowerSum = checksum()
      await (await TreeStore.create(storeDir, { lower: storeLower })).close()
      mkdirSync(mnt)
      let m = await mountStore(t, storeDir, mnt, args)
      const adapters = (sub: string) => ({ mounted: new PlainAdapter(join(mnt, sub)), reference: new PlainAdapter(join(plain, sub)) })

      for (const [i, name] of names.entries()) {
        await t.test(name, async (t) => {
          const { mounted, reference } = adapters(`s${i}`)
          const logs: string[][] = []
          for (const a of [mounted, reference]) {
            const lines: string[] = []
            await scenarios[name]!(a, (l) => lines.push(l))
            logs.push(lines)
          }
          t.same(logs[0], logs[1], 'the same outcomes through the mount as on a plain directory')
          t.same(await snapshot(mounted), await snapshot(reference), 'the same tree')
        })
      }

      for (const seed of seeds) {
        await t.test(`random operations, seed ${seed}`, async (t) => {
          const { mounted, reference } = adapters(`r${seed}`)
          const r = new Random(seed)
          for (let i = 0; i < STEPS; i++) {
            const op = randomOp(r, await listing(reference))
            const got = await outcome(applyOp(mounted, op))
            const want = await outcome(applyOp(reference, op))
            if (got !== want) {
              t.equal(got, want, `step ${i}: ${describeOp(op)} (seed ${seed})`)
              break
            }
            if (i % 40 === 39 && !t.same(await snapshot(mounted), await snapshot(reference), `trees agree after step ${i} (seed ${seed})`)) break
          }
          t.same(await snapshot(mounted), await snapshot(reference), `trees agree at the end (seed ${seed})`)
        })
      }

      await unmountAndWait(t, m)
      t.ok((await checkTreeStore(storeDir)).clean, 'fsck: clean')
      t.equal(checksum(), lowerSum, 'the lower is untouched')
      m = await mountStore(t, storeDir, mnt, args)
      await t.test('mounted again: every subtree still agrees with its plain copy', async (t) => {
        for (const sub of subtrees) {
          const { mounted, reference } = adapters(sub)
          t.same(await snapshot(mounted), await snapshot(reference), sub)
        }
      })
      await unmountAndWait(t, m)
    })
  }
}

checkNothingLeftMounted(t)
