// Crash safety of `apply` (issue 12): an apply SIGKILLed at a random moment, then run again,
// finishes; the result equals a full export made now (a tree) or the image now, byte for byte.
// Between the kill and the rerun, another incremental is refused (ECHAIN).
import { execFileSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { applyIncremental, exportImage, exportIncremental, exportTree, ImageStore, TreeStore } from '../lib/index.js'
import { runThenKill } from './fixtures/kill-child.js'
import { makeLower } from './fixtures/lower.js'
import { Random } from './fixtures/random.js'
import { describeTree, treeDifferences } from './fixtures/tree-compare.js'
import { buildStillLower, treeWorkload } from './fixtures/tree-workload.js'

const CHILD = fileURLToPath(new URL('./fixtures/apply-child.ts', import.meta.url))
const ROUNDS = 3
const PARALLEL = 3

async function inParallel(rounds: number, work: (round: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < rounds; i += PARALLEL) await Promise.all(Array.from({ length: Math.min(PARALLEL, rounds - i) }, (_, k) => work(i + k)))
}

t.test('tree: an apply killed at a random moment is finished by applying it again', async (t) => {
  const rng = new Random(2024)
  const dir = t.testdir()
  const lower = join(dir, 'lower')
  buildStillLower(lower)
  const store = await TreeStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  await treeWorkload(store, rng, 10)
  await store.mark('A')
  await exportTree(store, join(dir, 'base'))
  await treeWorkload(store, rng, 60)
  await exportIncremental(store, join(dir, 'inc'), { since: 'A' })
  await exportTree(store, join(dir, 'now'))
  await store.mark('B')
  await exportIncremental(store, join(dir, 'other'), { since: 'A' })
  await store.close()
  const now = describeTree(join(dir, 'now'))
  const killAfter = [5, 25, 60]
  await inParallel(ROUNDS, async (round) => {
    const target = join(dir, `target-${round}`)
    execFileSync('cp', ['-a', '--sparse=always', join(dir, 'base'), target])
    const ready = join(dir, `ready-${round}`)
    await runThenKill(CHILD, [join(dir, 'inc'), target, ready], () => nodeFs.existsSync(ready), killAfter[round % killAfter.length]! + rng.int(0, 10))
    const staged = nodeFs.readdirSync(target).some((n) => n.startsWith('.pagecow-apply'))
    try {
      await applyIncremental(join(dir, 'other'), target)
      t.ok(!staged, `round ${round}: another incremental applied only if the kill came before anything was staged`)
    } catch (err) {
      t.equal((err as { code?: string }).code, 'ECHAIN', `round ${round}: another incremental is refused`)
      const result = await applyIncremental(join(dir, 'inc'), target)
      t.equal(result.kind, 'tree')
      // cp -a read the directories of base: their atimes are the copy's, not the export's.
      // The targets are copies (cp -a) of one export: cp reads directories and symlinks of the
      // export (their atimes move) and may allocate a page more than the export did; neither is the apply's.
      const diffs = treeDifferences(target, now, 16).filter((d) => !(d.includes(': atimeNs ') && ['directory', 'symlink'].includes(now[d.slice(0, d.indexOf(': '))]?.type ?? '')))
      t.same(diffs, [], `round ${round}: killed, applied again: equals a full export now`)
    }
  })
})

t.test('image: an apply killed at a random moment is finished by applying it again', async (t) => {
  const rng = new Random(99)
  const dir = t.testdir()
  const P = 4096
  const lower = makeLower(`${dir}/lower.img`, 2048 * P, rng, 0.6)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize: P, autoFlushMs: 0 })
  await store.mark('A')
  await exportImage(store, `${dir}/base.img`)
  for (let i = 0; i < 300; i++) await store.write(rng.int(0, 2048) * P, rng.bytes(P))
  await store.zero(100 * P, 50 * P)
  await exportIncremental(store, `${dir}/inc`, { since: 'A' })
  await exportImage(store, `${dir}/now.img`)
  await store.close()
  const want = nodeFs.readFileSync(`${dir}/now.img`)
  await inParallel(2, async (round) => {
    const target = `${dir}/target-${round}.img`
    execFileSync('cp', ['-a', `${dir}/base.img`, target])
    const ready = `${dir}/ready-${round}`
    await runThenKill(CHILD, [`${dir}/inc`, target, ready], () => nodeFs.existsSync(ready), rng.int(0, 40))
    await applyIncremental(`${dir}/inc`, target)
    t.ok(nodeFs.readFileSync(target).equals(want), `round ${round}: applied again after the kill, equals the image now`)
  })
})
