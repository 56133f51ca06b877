// ReadPolicy: reads stay on the event loop while they are fast, go to the pool once half the
// recent ones were slow (the disk answers), and are tried inline again now and then.
import t from 'tap'
import { ReadPolicy } from '../lib/nbd/read-policy.js'

const KiB = 1024
const MiB = 1024 * KiB

t.test('fast reads stay inline; a slow read now and then does not move them', async (t) => {
  const policy = new ReadPolicy()
  for (let i = 0; i < 100; i++) {
    t.equal(policy.inline(i), true)
    policy.observe(256 * KiB, i % 4 === 0 ? 5 : 0.03) // a preempted read in four
  }
  t.equal(policy.pooled, false, 'a quarter of the reads slow is not the disk')
})

t.test('eight slow reads in sixteen send reads to the pool; probes bring them back when the cache answers', async (t) => {
  const policy = new ReadPolicy()
  for (let i = 0; i < 8; i++) policy.observe(256 * KiB, 2) // 2 ms for 256 KiB: the disk
  t.equal(policy.pooled, true)
  t.equal(policy.inline(1000), true, 'the first read after the switch probes inline')
  policy.observe(256 * KiB, 3)
  t.equal(policy.inline(1001), false, 'it was slow: the pool')
  t.equal(policy.inline(1199), false)
  t.equal(policy.inline(1201), true, 'another probe 200 ms later')
  policy.observe(256 * KiB, 0.05)
  // Fast: every next read probes at once; nine fast ones in the last sixteen win the reads back.
  for (let i = 0; i < 7; i++) {
    t.equal(policy.inline(1202 + i), true, 'each fast probe lets the next read try too')
    policy.observe(256 * KiB, 0.05)
  }
  t.equal(policy.pooled, true, 'eight slow ones in the last sixteen: still the pool')
  t.equal(policy.inline(1210), true)
  policy.observe(256 * KiB, 0.05)
  t.equal(policy.pooled, false, 'one more fast one: inline again')
})

t.test('slow is judged per MiB, with a floor for small reads', async (t) => {
  const big = new ReadPolicy()
  for (let i = 0; i < 16; i++) big.observe(32 * MiB, 40) // 40 ms for 32 MiB: 800 MB/s, the cache
  t.equal(big.pooled, false)
  const small = new ReadPolicy()
  for (let i = 0; i < 16; i++) small.observe(4 * KiB, 0.4) // 400 µs for 4 KiB: under the floor
  t.equal(small.pooled, false)
  for (let i = 0; i < 8; i++) small.observe(4 * KiB, 0.6)
  t.equal(small.pooled, true)
})
