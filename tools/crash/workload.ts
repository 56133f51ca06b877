// The child of the crash test (test/crash.ts): opens a store and runs a seeded random workload
// until it is killed. Every operation is appended to a log BEFORE it starts, and every completed
// commit point (a flush or a truncate returning) AFTER it returns, each with one writeSync, so the
// parent can rebuild what was durable at the kill and what may have happened after.
//
//   node --import tsx tools/crash/workload.ts --store DIR --log FILE --seed N --first-op N
//        [--ops N] [--auto-flush MS] [--max-pages N]
import { closeSync, openSync, writeSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ImageStore } from '../../lib/image/image-store.js'
import { pattern } from './pattern.js'

/** One line of the log. `op` numbers are unique across every run on one store. */
export type LogEntry =
  | { k: 'open'; pid: number; pageSize: number; size: number }
  | { k: 'write'; op: number; offset: number; length: number }
  | { k: 'zero' | 'discard'; op: number; offset: number; length: number }
  | { k: 'truncate'; op: number; size: number }
  | { k: 'flush'; op: number }
  /** Every op numbered `op` or lower is durable (a flush or a truncate returned). */
  | { k: 'durable'; op: number }
  | { k: 'closed' }

/** mulberry32, as in test/fixtures/random.ts (tools do not import tests). */
function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    let t = (state = (state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      store: { type: 'string' },
      log: { type: 'string' },
      seed: { type: 'string', default: '1' },
      'first-op': { type: 'string', default: '1' },
      ops: { type: 'string', default: '100000' },
      'auto-flush': { type: 'string', default: '0' },
      'max-pages': { type: 'string', default: '256' },
    },
    strict: true,
  })
  if (!values.store || !values.log) throw new Error('usage: workload.ts --store DIR --log FILE [--seed N] [--first-op N] [--ops N]')
  const next = random(Number(values.seed))
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo))
  const logFd = openSync(values.log, 'a')
  const log = (entry: LogEntry) => writeSync(logFd, JSON.stringify(entry) + '\n')

  const store = await ImageStore.open(values.store, { autoFlushMs: Number(values['auto-flush']) })
  const P = store.pageSize
  const maxBytes = Number(values['max-pages']) * P
  log({ k: 'open', pid: process.pid, pageSize: P, size: store.size })

  const first = Number(values['first-op'])
  for (let op = first; op < first + Number(values.ops); op++) {
    const size = store.size
    const r = next()
    // Offsets stay below maxBytes so the image stays small enough to check byte for byte.
    const anywhere = () => int(0, Math.min(maxBytes, size + 4 * P))
    if (r < 0.55) {
      const whole = next() < 0.4
      const offset = whole ? int(0, Math.min(maxBytes, size + 4 * P) / P) * P : anywhere()
      const length = whole ? int(1, 4) * P : int(1, 3 * P)
      log({ k: 'write', op, offset, length })
      await store.write(offset, pattern(op, offset, length))
    } else if (r < 0.7) {
      const k = next() < 0.5 ? 'zero' : 'discard'
      const offset = anywhere()
      const length = int(1, 4 * P)
      log({ k, op, offset, length })
      await store[k](offset, length)
    } else if (r < 0.715) {
      // Shrink or grow, never to nothing: the image stays interesting.
      const newSize = Math.min(maxBytes, int(Math.floor(size / 2), Math.ceil(size * 1.3) + P))
      log({ k: 'truncate', op, size: newSize })
      await store.truncate(newSize)
      log({ k: 'durable', op })
    } else if (r < 0.75) {
      log({ k: 'flush', op })
      await store.flush()
      log({ k: 'durable', op })
    } else {
      // Let the auto-flush timer and fdatasync completions run between operations.
      await new Promise((resolve) => setTimeout(resolve, int(0, 3)))
    }
  }
  await store.close()
  log({ k: 'durable', op: first + Number(values.ops) - 1 })
  log({ k: 'closed' })
  closeSync(logFd)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
