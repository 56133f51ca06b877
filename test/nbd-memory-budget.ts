// MemoryBudget: bytes taken within a limit, waiters served in arrival order, aborts take nothing.
import t from 'tap'
import { MemoryBudget } from '../lib/nbd/memory-budget.js'

const tick = () => new Promise((resolve) => setImmediate(resolve))

t.test('takes within the limit; past it, waits until bytes come back', async (t) => {
  const budget = new MemoryBudget(100)
  t.ok(budget.tryTake(60))
  t.notOk(budget.tryTake(41), 'over the limit: refused')
  t.equal(budget.used, 60, 'a refused take takes nothing')
  let got = false
  const waiting = budget.take(50).then(() => (got = true))
  await tick()
  t.notOk(got, 'waits while 60 + 50 > 100')
  t.equal(budget.waiting, 1)
  budget.give(20)
  await waiting
  t.ok(got, 'served once 40 + 50 fit')
  t.equal(budget.used, 90)
  t.throws(() => budget.give(91), /never taken/, 'giving back more than was taken is a bug, caught')
})

t.test('first come, first served: small requests do not overtake a big one waiting', async (t) => {
  const budget = new MemoryBudget(100)
  t.ok(budget.tryTake(90))
  const order: string[] = []
  const big = budget.take(80).then(() => order.push('big'))
  const small = budget.take(5).then(() => order.push('small'))
  t.notOk(budget.tryTake(5), 'tryTake does not jump the line either, though 5 would fit')
  await tick()
  t.same(order, [], 'the small one waits behind the big one')
  budget.give(90)
  await Promise.all([big, small])
  t.same(order, ['big', 'small'])
  t.equal(budget.used, 85)
})

t.test('an aborted wait takes nothing and lets the next in line through', async (t) => {
  const budget = new MemoryBudget(100)
  t.ok(budget.tryTake(50))
  const abort = new AbortController()
  const big = budget.take(80, abort.signal)
  const small = budget.take(40)
  abort.abort(new Error('stopped'))
  await t.rejects(big, /stopped/)
  await small
  t.equal(budget.used, 90, 'the small one got its bytes; the aborted one none')
  await t.rejects(budget.take(1000, abort.signal), /stopped/, 'an aborted signal fails at once')
  t.equal(budget.waiting, 0)
})
