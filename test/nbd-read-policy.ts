// ReadPolicy: large reads stay on the event loop while they are fast or merely preempted, go to
// the pool once half the recent ones waited on the disk, and are tried inline again now and then.
import t from 'tap'
import { ReadPolicy } from '../lib/nbd/read-policy.js'

const KiB = 1024
const MiB = 1024 * KiB

/** A policy whose process "sleeps" only when told, and a helper that reports one inline read. */
function policyWithClock() {
  let sleeps = 0
  const policy = new ReadPolicy(() => sleeps)
  const read = (length: number, ms: number, slept: boolean) => {
    const mark = policy.mark()
    if (slept) sleeps++
    policy.observe(length, ms, mark)
  }
  return { policy, read }
}

t.test('fast reads stay inline; slow reads that did not sleep (preempted) do not move them', async (t) => {
  const { policy, read } = policyWithClock()
  for (let i = 0; i < 100; i++) {
    t.equal(policy.inline(i), true)
    read(256 * KiB, i % 2 === 0 ? 5 : 0.03, false) // every other one stopped by the scheduler for 5 ms
  }
  t.equal(policy.pooled, false, 'taking long without sleeping is not the disk')
  for (let i = 0; i < 7; i++) read(256 * KiB, 0.03, true)
  t.equal(policy.pooled, false, 'sleeping without taking long is not the disk either')
})

t.test('eight disk waits in sixteen send reads to the pool; probes bring them back when the cache answers', async (t) => {
  const { policy, read } = policyWithClock()
  for (let i = 0; i < 8; i++) read(256 * KiB, 2, true) // 2 ms for 256 KiB, asleep: the disk
  t.equal(policy.pooled, true)
  t.equal(policy.inline(1000), true, 'the first read after the switch probes inline')
  read(256 * KiB, 3, true)
  t.equal(policy.inline(1001), false, 'it waited on the disk: the pool')
  t.equal(policy.inline(1199), false)
  t.equal(policy.inline(1201), true, 'another probe 200 ms later')
  read(256 * KiB, 0.05, false)
  // Fast: every next read probes at once; nine fast ones in the last sixteen win the reads back.
  for (let i = 0; i < 7; i++) {
    t.equal(policy.inline(1202 + i), true, 'each fast probe lets the next read try too')
    read(256 * KiB, 0.05, false)
  }
  t.equal(policy.pooled, true, 'eight disk waits in the last sixteen: still the pool')
  t.equal(policy.inline(1210), true)
  read(256 * KiB, 0.05, false)
  t.equal(policy.pooled, false, 'one more fast one: inline again')
})

t.test('slow is judged per MiB, with a floor for shorter reads', async (t) => {
  const big = policyWithClock()
  for (let i = 0; i < 16; i++) big.read(32 * MiB, 20, true) // 20 ms for 32 MiB: 1.6 GB/s, the cache
  t.equal(big.policy.pooled, false)
  const small = policyWithClock()
  for (let i = 0; i < 16; i++) small.read(64 * KiB, 0.2, true) // 200 µs: under the floor
  t.equal(small.policy.pooled, false)
  for (let i = 0; i < 8; i++) small.read(64 * KiB, 0.3, true)
  t.equal(small.policy.pooled, true)
})
