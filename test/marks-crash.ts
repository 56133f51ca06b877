// Change tracking survives crashes (SPEC §3, §7; issue 12): a child writes, flushes, marks and
// unmarks at random and is killed with SIGKILL at a random instant. Reopened, the store still has
// every mark whose mark() had resolved (and was not being removed), and for each one `changes
// --since` lists every page whose bytes differ from the bytes the child saved at the mark: a
// superset, never a miss, with no rescan. The same store goes through several kills, so marks
// outlive more than one crash and the recovery of a killed writer's rewrites is exercised.
import * as nodeFs from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { checkStore, ImageStore } from '../lib/index.js'
import { runThenKill } from './fixtures/kill-child.js'
import { makeLower } from './fixtures/lower.js'
import { Random, testSeeds } from './fixtures/random.js'

const CHILD = fileURLToPath(new URL('./fixtures/marks-crash-child.ts', import.meta.url))
const P = 4096

interface Logged {
  ready: boolean
  marked: string[]
  unmarking: Set<string>
}

function readLog(path: string): Logged {
  const out: Logged = { ready: false, marked: [], unmarking: new Set() }
  if (!nodeFs.existsSync(path)) return out
  for (const line of nodeFs.readFileSync(path, 'utf8').split('\n')) {
    let record: { ready?: boolean; marked?: string; unmarking?: string }
    try {
      record = JSON.parse(line) as typeof record
    } catch {
      continue // the last line, cut by the kill
    }
    if (record.ready) out.ready = true
    if (record.marked) out.marked.push(record.marked)
    if (record.unmarking) out.unmarking.add(record.unmarking)
  }
  return out
}

async function runChild(store: string, dir: string, seed: number, killAfterMs: number): Promise<void> {
  nodeFs.rmSync(`${dir}/log`, { force: true })
  await runThenKill(CHILD, [store, dir, String(seed)], () => readLog(`${dir}/log`).ready, killAfterMs)
}

/** Pages whose content differs between `then` and `now` (growth that reads zeros is no change). */
function differingPages(then: Buffer, now: Buffer): number[] {
  const out: number[] = []
  for (let p = 0; p * P < Math.max(then.length, now.length); p++) {
    const a = then.subarray(p * P, (p + 1) * P)
    const b = now.subarray(p * P, (p + 1) * P)
    const common = Math.min(a.length, b.length)
    if (!a.subarray(0, common).equals(b.subarray(0, common)) || (b.length > a.length && b.subarray(common).some((x) => x !== 0))) out.push(p)
  }
  return out
}

for (const seed of testSeeds([11, 12, 13])) {
  t.test(`marks through ${4} kills (seed ${seed})`, async (t) => {
    const rng = new Random(seed)
    const dir = t.testdir()
    const lower = makeLower(`${dir}/lower.img`, 64 * P + 100, rng, 0.7)
    const storeDir = `${dir}/store`
    await (await ImageStore.create(storeDir, { lower: lower.path, pageSize: P, autoFlushMs: 0 })).close()
    let checkedMarks = 0
    for (let round = 0; round < 4; round++) {
      await runChild(storeDir, dir, seed * 100 + round, rng.int(150, 900))
      const logged = readLog(`${dir}/log`)
      const store = await ImageStore.open(storeDir, { autoFlushMs: 0 })
      const names = new Set(store.marks().map((m) => m.name))
      for (const name of logged.marked) {
        if (!logged.unmarking.has(name)) t.ok(names.has(name), `round ${round}: mark ${name}, taken before the kill, is there`)
      }
      const now = await store.read(0, store.size)
      for (const name of names) {
        const snap = `${dir}/snap-${name}`
        if (!nodeFs.existsSync(snap)) continue // killed between the mark and its copy
        const reported = new Set<number>()
        for (const e of store.changedExtents(name)) for (let p = e.start / P; p < (e.start + e.length) / P; p++) reported.add(p)
        const missed = differingPages(nodeFs.readFileSync(snap), now).filter((p) => !reported.has(p))
        t.same(missed, [], `round ${round}: every page changed since ${name} is listed`)
        checkedMarks++
      }
      await store.close()
      const report = await checkStore(storeDir)
      t.ok(report.clean, `round ${round}: fsck is clean`, { problems: report.problems })
    }
    t.ok(checkedMarks > 0, `${checkedMarks} marks checked against their saved content`)
  })
}
