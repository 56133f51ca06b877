// WriteGate on its own: freeze makes writers wait (per file), thaw lets them on in order, the
// timeout fails them, freeze waits for a write under way, the hook runs once per file while it is
// pending and its failure fails the writes that waited, drain sees the last writer out.
import t from 'tap'
import { isPagecowError } from '../lib/errors.js'
import { WriteGate } from '../lib/store/write-gate.js'
import { stateOf } from './fixtures/promise-state.js'

t.test('open: only when nothing is frozen and no hook is set', async (t) => {
  const gate = new WriteGate()
  t.ok(gate.open)
  await gate.freeze(1)
  t.notOk(gate.open)
  gate.thaw(1)
  t.ok(gate.open)
  gate.hook(() => undefined)
  t.notOk(gate.open)
  gate.hook(undefined)
  t.ok(gate.open)
})

t.test('a frozen file: its writers wait, others do not; thaw lets them on in order', async (t) => {
  const gate = new WriteGate()
  const landed: string[] = []
  await gate.freeze(7)
  const a = gate.through(7, () => landed.push('a'))
  const b = gate.through(7, () => landed.push('b'))
  await gate.through(8, () => landed.push('other file'))
  t.same(landed, ['other file'], 'a write to another file goes on')
  t.equal(await stateOf(a), 'pending')
  t.same(gate.frozen().map((f) => [f.key, f.waiting]), [[7, 2]], 'frozen() tells the waiting writers')
  gate.thaw(7)
  await Promise.all([a, b])
  t.same(landed, ['other file', 'a', 'b'])
  t.same(gate.frozen(), [])
})

t.test('freeze twice is EBUSY, thaw of an unfrozen file EINVAL (as FIFREEZE/FITHAW answer)', async (t) => {
  const gate = new WriteGate((key) => `file #${key}`)
  await gate.freeze(1)
  await t.rejects(gate.freeze(1), { code: 'EBUSY', message: /file #1/ })
  t.throws(() => gate.thaw(2), { code: 'EINVAL', message: /file #2/ })
  gate.thaw(1)
  t.throws(() => gate.thaw(1), { code: 'EINVAL' })
})

t.test('freeze waits for a write under way (async work) and no later write starts', async (t) => {
  const gate = new WriteGate()
  gate.hook(() => undefined) // the slow path, as when anything is hooked or frozen
  let finish!: () => void
  const events: string[] = []
  const writing = gate.through(3, async () => {
    events.push('write started')
    await new Promise<void>((resolve) => (finish = resolve))
    events.push('write landed')
  })
  await Promise.resolve()
  const freezing = gate.freeze(3).then(() => events.push('frozen'))
  const later = gate.through(3, () => events.push('later write'))
  t.equal(await stateOf(freezing), 'pending', 'freeze waits for the write under way')
  finish()
  await writing
  await freezing
  t.same(events, ['write started', 'write landed', 'frozen'])
  t.equal(await stateOf(later), 'pending', 'a write after freeze() waits')
  gate.thaw(3)
  await later
  t.same(events.at(-1), 'later write')
})

t.test('timeout: a waiting writer fails with EFROZEN after timeoutMs, the file stays frozen', async (t) => {
  const gate = new WriteGate()
  await gate.freeze(1, 30)
  let ran = false
  const started = Date.now()
  await t.rejects(
    gate.through(1, () => (ran = true)),
    { code: 'EFROZEN', errno: 110 },
  )
  t.ok(Date.now() - started >= 25, 'it waited about the timeout')
  t.notOk(ran, 'the write did not run')
  t.ok(gate.isFrozen(1), 'still frozen')
  const next = gate.through(1, () => (ran = true))
  gate.thaw(1)
  await next
  t.ok(ran, 'after thaw a write goes through')
  await gate.freeze(2, 0)
  await t.rejects(gate.through(2, () => {}), { code: 'EFROZEN' }, 'timeoutMs 0: writers fail at once')
})

t.test('hook: called before the write, once per file while pending; other files go on', async (t) => {
  const gate = new WriteGate()
  const calls: number[] = []
  const landed: string[] = []
  let release!: () => void
  const pending = new Promise<void>((resolve) => (release = resolve))
  const first = new Set<number>()
  gate.hook((key) => {
    calls.push(key)
    if (key !== 5 || first.has(key)) return undefined // a one-shot handler: only the first write of file 5
    first.add(key)
    return pending
  })
  const a = gate.through(5, () => landed.push('a'))
  const b = gate.through(5, () => landed.push('b'))
  await gate.through(6, () => landed.push('file 6'))
  t.same(landed, ['file 6'])
  t.same(calls, [5, 6], 'the second writer of file 5 waits on the running hook, not a second call')
  t.equal(await stateOf(a), 'pending')
  release()
  await Promise.all([a, b])
  t.same(landed, ['file 6', 'a', 'b'])
})

t.test('hook: a freeze that comes while the hook runs holds the write until thaw', async (t) => {
  const gate = new WriteGate()
  let release!: () => void
  let fired = false
  gate.hook(() => (fired ? undefined : ((fired = true), new Promise<void>((resolve) => (release = resolve)))))
  let landed = false
  const w = gate.through(1, () => (landed = true))
  await Promise.resolve()
  await gate.freeze(1) // resolves at once: the waiting write has not changed a byte
  release()
  t.equal(await stateOf(w), 'pending')
  t.notOk(landed)
  gate.thaw(1)
  await w
  t.ok(landed)
})

t.test('hook failure: the writes that waited fail (EIO, or the handler\'s PagecowError), the next asks again', async (t) => {
  const gate = new WriteGate((key) => `file ${key}`)
  let fail = true
  gate.hook(() => (fail ? Promise.reject(new Error('copy-before-write failed')) : undefined))
  let landed = 0
  const err = await gate.through(1, () => landed++).catch((e: unknown) => e)
  t.ok(isPagecowError(err, 'EIO'), 'EIO')
  t.match((err as Error).message, /copy-before-write failed/)
  gate.hook(() => {
    throw new Error('thrown')
  })
  await t.rejects(gate.through(1, () => landed++), { code: 'EIO', message: /thrown/ }, 'a handler that throws')
  t.equal(landed, 0)
  fail = false
  gate.hook(() => (fail ? Promise.reject(new Error('x')) : undefined))
  await gate.through(1, () => landed++)
  t.equal(landed, 1)
})

t.test('thawAll and drain: every waiter is let on, drain resolves when the last has landed', async (t) => {
  const gate = new WriteGate()
  await gate.freeze(1)
  await gate.freeze(2)
  let landed = 0
  const writes = [gate.through(1, () => landed++), gate.through(2, () => landed++), gate.through(2, () => landed++)]
  const drained = gate.drain()
  t.equal(await stateOf(drained), 'pending')
  t.equal(gate.thawAll(), 2)
  await drained
  t.equal(landed, 3)
  await Promise.all(writes)
  await gate.drain() // nothing in the gate: at once
})
