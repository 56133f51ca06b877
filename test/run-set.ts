// RunSet (lib/changes/run-set.ts): the runs of integers first-dirty events remember, checked
// against a plain array of booleans after random adds and deletes.
import t from 'tap'
import { RunSet } from '../lib/changes/run-set.js'
import { Random } from './fixtures/random.js'

const N = 300

/** The maximal runs of `model` within [start, end) that are `value`. */
function runsOf(model: boolean[], value: boolean, start = 0, end = model.length): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (let i = start; i < end; i++) {
    if (model[i] !== value) continue
    const last = out.at(-1)
    if (last && last[1] === i) last[1] = i + 1
    else out.push([i, i + 1])
  }
  return out
}

for (const seed of [1, 2, 3, 4]) {
  t.test(`random adds and deletes, seed ${seed}`, async (t) => {
    const random = new Random(seed)
    const set = new RunSet()
    const model: boolean[] = new Array<boolean>(N).fill(false)
    let wrong = 0
    for (let step = 0; step < 2000; step++) {
      const a = random.int(0, N)
      const b = Math.min(N, a + random.int(0, random.chance(0.2) ? 100 : 6))
      const adding = random.chance(0.6)
      if (adding) set.add(a, b)
      else set.delete(a, b)
      model.fill(adding, a, b)
      for (let i = 0; i < N; i++) if (set.has(i) !== model[i]) wrong++
      const x = random.int(0, N)
      const y = Math.min(N, x + random.int(0, 50))
      const gaps = [...set.gaps(x, y)]
      if (JSON.stringify(gaps) !== JSON.stringify(runsOf(model, false, x, y))) wrong++
      if (set.runs !== runsOf(model, true).length) wrong++
    }
    t.equal(wrong, 0, 'members, gaps and run counts match the model at every step')
  })
}
