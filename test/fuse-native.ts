// The native pieces the FUSE server stands on (lib/fs.ts over native/pagecow.c), on descriptors a
// test can hold: a readiness watch on a pipe (fires when readable, not before; pause, resume and
// close honoured), and spliced replies into a plain file (header, file bytes, zeros, exactly as
// the kernel would get them), with the refusals the server falls back on and a table of bad calls.
import { closeSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setImmediate as turn } from 'node:timers/promises'
import t from 'tap'
import * as fs from '../lib/fs.js'

const PAGE = 4096
const E2BIG = 7
const EBADF = 9

/** A pipe as [read end, write end] (Node has no pipe(2): a FIFO in a test directory). */
function pipe(dir: string): [number, number] {
  const path = join(dir, 'fifo')
  fs.mknod(path, 'fifo', 0o600)
  const r = openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  const w = openSync(path, fs.constants.O_WRONLY)
  return [r, w]
}

/** Let the event loop poll a few times. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await turn()
  await new Promise((r) => setTimeout(r, 20))
}

t.test('watchReadable: fires when the descriptor is readable, not before; pause, resume, close', async (t) => {
  const [r, w] = pipe(t.testdir())
  t.teardown(() => {
    closeSync(r)
    closeSync(w)
  })
  const statuses: number[] = []
  const watch = fs.watchReadable(r, (status) => statuses.push(status))
  await turns()
  t.same(statuses, [], 'nothing to read: no call')
  writeSync(w, 'x')
  await turns()
  t.ok(statuses.length >= 1 && statuses.every((s) => s === 0), 'readable: called with status 0')
  fs.watchPause(watch)
  statuses.length = 0
  await turns()
  t.same(statuses, [], 'paused: no calls while the byte waits unread')
  fs.watchResume(watch)
  await turns()
  t.ok(statuses.length >= 1, 'resumed: called again, the byte still unread')
  t.equal(readSync(r, Buffer.alloc(8)), 1, 'the byte')
  t.throws(() => readSync(r, Buffer.alloc(8)), { code: 'EAGAIN' }, 'then nothing: EAGAIN, not a block (the watch made it non-blocking)')
  statuses.length = 0
  await turns()
  t.same(statuses, [], 'read empty: no more calls')
  fs.watchClose(watch)
  fs.watchClose(watch)
  writeSync(w, 'y')
  await turns()
  t.same(statuses, [], 'closed (twice: harmless): no calls though readable')
  fs.watchResume(watch)
  await turns()
  t.same(statuses, [], 'resuming a closed watch does nothing')
})

t.test('watchReadable: bad calls are refused (EINVAL)', async (t) => {
  const [r, w] = pipe(t.testdir())
  t.teardown(() => {
    closeSync(r)
    closeSync(w)
  })
  const call = (f: (...a: unknown[]) => unknown, ...args: unknown[]) => () => f(...args)
  for (const [name, fn] of [
    ['a negative descriptor', call(fs.watchReadable as never, -1, () => {})],
    ['no callback', call(fs.watchReadable as never, r)],
    ['a callback that is not a function', call(fs.watchReadable as never, r, 'cb')],
    ['a descriptor that is not a number', call(fs.watchReadable as never, String(r), () => {})],
    ['pausing something that is not a watch', call(fs.watchPause as never, {})],
    ['resuming nothing', call(fs.watchResume as never, undefined)],
    ['closing a number', call(fs.watchClose as never, 3)],
  ] as const) {
    t.throws(fn, { code: 'EINVAL' }, name)
  }
  const closed = openSync(join(t.testdir(), 'x'), 'w')
  closeSync(closed)
  t.throws(() => fs.watchReadable(closed, () => {}), { code: 'EBADF' }, 'a closed descriptor: EBADF')
})

t.test('spliceReply: header, file bytes and zeros, as one write; the refusals the server falls back on', async (t) => {
  const dir = t.testdir()
  const source = join(dir, 'source')
  const data = randomBytes(20 * PAGE + 123)
  writeFileSync(source, data) // just written: in the page cache
  const fd = openSync(source, 'r')
  t.teardown(() => closeSync(fd))
  const capacity = fs.spliceCapacity()
  t.ok(capacity >= PAGE && capacity % PAGE === 0, `the capacity is whole pages (${capacity} bytes)`)
  const header = Buffer.from('HEADER-16-BYTES!')
  let n = 0
  const splice = (position: number, bytes: number, zeros: number) => {
    const out = join(dir, `out${n++}`)
    const ofd = openSync(out, 'w')
    try {
      return { done: fs.spliceReply(ofd, header, fd, position, bytes, zeros), got: () => readFileSync(out) }
    } finally {
      closeSync(ofd)
    }
  }
  for (const [name, position, bytes, zeros] of [
    ['page-aligned bytes', 0, 8 * PAGE, 0],
    ['unaligned bytes', 1000, 5 * PAGE + 7, 0],
    ['bytes to the end of the file, then zeros', 18 * PAGE, 2 * PAGE + 123, PAGE - 123 + 2 * PAGE],
    ['zeros only (a range past the lower)', 0, 0, 3 * PAGE + 5],
    ['nothing but the header', 0, 0, 0],
  ] as const) {
    const r = splice(position, bytes, zeros)
    t.equal(r.done, header.length + bytes + zeros, `${name}: every byte written`)
    t.ok(r.got().equals(Buffer.concat([header, data.subarray(position, position + bytes), Buffer.alloc(zeros)])), `${name}: exactly header, bytes, zeros`)
  }
  const big = splice(0, 0, capacity + PAGE)
  t.equal(big.done, -E2BIG, 'more than the pipe holds: -E2BIG')
  t.equal(big.got().length, 0, 'and nothing written')
  const short = splice(19 * PAGE, 2 * PAGE, 0)
  t.ok(short.done < 0, `bytes past the end of the file: refused (${short.done})`)
  t.equal(short.got().length, 0, 'and nothing written')
  const after = splice(0, PAGE, 0)
  t.equal(after.done, header.length + PAGE, 'the next reply is whole: the pipe was emptied after the failure')
  t.ok(after.got().equals(Buffer.concat([header, data.subarray(0, PAGE)])))
  const closed = openSync(join(dir, 'closed'), 'w')
  closeSync(closed)
  t.equal(fs.spliceReply(closed, header, fd, 0, PAGE, 0), -EBADF, 'a closed destination: -EBADF')
})

t.test('spliceReply: bad calls are refused (EINVAL)', async (t) => {
  const dir = t.testdir()
  writeFileSync(join(dir, 'f'), 'x')
  const fd = openSync(join(dir, 'f'), 'r')
  t.teardown(() => closeSync(fd))
  const header = Buffer.alloc(16)
  for (const [name, args] of [
    ['an empty header', [1, Buffer.alloc(0), fd, 0, 1, 0]],
    ['a header over a page', [1, Buffer.alloc(PAGE + 1), fd, 0, 1, 0]],
    ['a header that is not a Buffer', [1, 'header', fd, 0, 1, 0]],
    ['a negative position', [1, header, fd, -1, 1, 0]],
    ['negative bytes', [1, header, fd, 0, -1, 0]],
    ['negative zeros', [1, header, fd, 0, 0, -1]],
    ['too few arguments', [1, header, fd]],
  ] as const) {
    t.throws(() => (fs.spliceReply as (...a: unknown[]) => number)(...args), { code: 'EINVAL' }, name)
  }
})

t.test('the reply pipe of a worker thread is closed when the worker ends (no descriptors left behind)', async (t) => {
  const { Worker } = await import('node:worker_threads')
  const { readdirSync } = await import('node:fs')
  const addon = new URL('../build/Release/pagecow.node', import.meta.url).pathname
  const open = () => readdirSync('/proc/self/fd').length
  // Each worker splices (so makes its pipe) and ends; the pipe is the thread's own.
  const runWorker = () =>
    new Promise<number>((resolve, reject) => {
      const w = new Worker(`require('node:worker_threads').parentPort.postMessage(require(${JSON.stringify(addon)}).spliceCapacity())`, { eval: true })
      let capacity = 0
      w.on('message', (m: number) => (capacity = m))
      w.on('error', reject)
      w.on('exit', () => resolve(capacity))
    })
  t.ok((await runWorker()) >= PAGE, 'a worker has a pipe of its own') // the first also loads what workers share
  const before = open()
  for (let i = 0; i < 4; i++) await runWorker()
  t.equal(open(), before, 'four workers later, as many descriptors open as before')
})
