// A PageSet holds exactly the pages put in it, whatever mix of single pages and ranges, sparse or
// dense chunks, chunk edges and pages past 2^32: checked against a Set<number> after every step of
// random operations, and trimTo keeps only whole chunks, the fullest ones.
import t from 'tap'
import { PAGES_PER_CHUNK } from '../lib/geometry.js'
import { PageSet } from '../lib/integrity/page-set.js'
import { Random } from './fixtures/random.js'
import type { TapTest } from './fixtures/tap-test.js'

const chunkOf = (page: number) => Math.floor(page / PAGES_PER_CHUNK)

/** Places pages are drawn from: a few chunks, near their edges and word edges, and far out. */
function pageFrom(rng: Random): number {
  const chunk = [0, 1, 2, 7, 2 ** 20, 2 ** 27 - 1][rng.int(0, 6)]!
  const local = rng.int(0, 4) === 0 ? [0, 31, 32, 33, 63, 64, PAGES_PER_CHUNK - 1, PAGES_PER_CHUNK - 33][rng.int(0, 8)]! : rng.int(0, 600)
  return chunk * PAGES_PER_CHUNK + local
}

function same(t: TapTest, set: PageSet, model: Set<number>, step: string): boolean {
  const got = [...set.pages()]
  const want = [...model].sort((a, b) => a - b)
  const chunks = new Set(want.map(chunkOf)).size
  if (got.length !== want.length || got.some((p, i) => p !== want[i])) {
    t.fail(`${step}: members differ (${got.length} vs ${want.length})`)
    return false
  }
  if (set.chunkCount !== chunks || set.isEmpty !== (want.length === 0)) {
    t.fail(`${step}: ${set.chunkCount} chunks, model ${chunks}`)
    return false
  }
  return true
}

t.test('random operations against a Set<number> model', async (t) => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const rng = new Random(seed)
    const set = new PageSet()
    const model = new Set<number>()
    let ok = true
    for (let step = 0; step < 2000 && ok; step++) {
      const op = rng.int(0, 10)
      const page = pageFrom(rng)
      // Ranges up to a few hundred pages (a dense chunk), now and then across a chunk's end.
      const len = rng.int(0, 3) === 0 ? rng.int(0, 400) : rng.int(1, 40)
      const start = rng.int(0, 10) === 0 ? (chunkOf(page) + 1) * PAGES_PER_CHUNK - rng.int(0, len + 1) : page
      const end = start + len
      let what: string
      if (op <= 2) {
        what = `add(${page})`
        set.add(page)
        model.add(page)
      } else if (op === 3) {
        what = `addRange(${start}, ${end})`
        set.addRange(start, end)
        for (let p = start; p < end; p++) model.add(p)
      } else if (op <= 5) {
        what = `delete(${page})`
        set.delete(page)
        model.delete(page)
      } else if (op === 6) {
        what = `deleteRange(${start}, ${end})`
        set.deleteRange(start, end)
        for (let p = start; p < end; p++) model.delete(p)
      } else if (op === 7) {
        what = `has(${page})`
        if (set.has(page) !== model.has(page)) ok = t.fail(`step ${step}: ${what} is ${set.has(page)}`)
      } else if (op === 8) {
        what = `hasRange(${start}, ${end})`
        let want = true
        for (let p = start; p < end; p++) if (!model.has(p)) want = false
        if (set.hasRange(start, end) !== want) ok = t.fail(`step ${step}: ${what} is ${!want}`)
      } else {
        what = 'trimTo'
        if (rng.int(0, 20) === 0) {
          const keep = rng.int(0, 4)
          const before = new Map<number, number>()
          for (const p of model) before.set(chunkOf(p), (before.get(chunkOf(p)) ?? 0) + 1)
          set.trimTo(keep)
          const kept = new Set([...set.pages()].map(chunkOf))
          if (set.chunkCount > keep && before.size > keep) ok = t.fail(`step ${step}: trimTo(${keep}) left ${set.chunkCount} chunks`)
          const smallestKept = Math.min(...[...kept].map((c) => before.get(c)!))
          for (const [c, n] of before) if (!kept.has(c) && n > smallestKept) ok = t.fail(`step ${step}: trimTo dropped a fuller chunk (${n} > ${smallestKept})`)
          for (const p of [...model]) if (!kept.has(chunkOf(p))) model.delete(p)
        }
      }
      if (ok && !same(t, set, model, `seed ${seed}, step ${step}, after ${what}`)) ok = false
    }
    if (ok) t.pass(`seed ${seed}: 2000 operations matched the model`)
  }
})

t.test('a chunk that fills up and empties again', async (t) => {
  const set = new PageSet()
  set.addRange(0, PAGES_PER_CHUNK)
  t.ok(set.hasRange(0, PAGES_PER_CHUNK), 'a whole chunk')
  t.notOk(set.hasRange(0, PAGES_PER_CHUNK + 1), 'not a page past it')
  t.equal([...set.pages()].length, PAGES_PER_CHUNK)
  for (let p = 1; p < PAGES_PER_CHUNK; p += 2) set.delete(p)
  t.equal([...set.pages()].length, PAGES_PER_CHUNK / 2, 'every other page deleted')
  set.deleteRange(0, PAGES_PER_CHUNK)
  t.ok(set.isEmpty, 'a chunk emptied is dropped')
  t.equal(set.chunkCount, 0)
  set.add(2 ** 43 - 1)
  t.ok(set.has(2 ** 43 - 1), 'the last page of 2^43')
  t.same([...set.pages()], [2 ** 43 - 1])
})
