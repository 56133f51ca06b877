// SocketReader: exact-length reads whatever the segmentation, backpressure, and a peer that leaves.
import { PassThrough } from 'node:stream'
import t from 'tap'
import { ConnectionClosedError, SocketReader } from '../lib/nbd/socket-reader.js'
import { Random } from './fixtures/random.js'

t.test('reads of any length from segments of any size give the bytes in order', async (t) => {
  const rng = new Random(9)
  const data = rng.bytes(100_000)
  const stream = new PassThrough()
  const reader = new SocketReader(stream, 4096)
  const reads: Buffer[] = []
  const lengths: number[] = []
  for (let total = 0; total < data.length; ) {
    const n = Math.min(data.length - total, rng.pick([0, 1, 3, 28, 4096, 9000]))
    lengths.push(n)
    total += n
  }
  const reading = (async () => {
    for (const n of lengths) reads.push(await reader.read(n))
  })()
  for (let pos = 0; pos < data.length; ) {
    const n = rng.pick([1, 2, 7, 500, 65536])
    stream.write(data.subarray(pos, pos + n))
    pos += n
    if (rng.chance(0.1)) await new Promise((r) => setImmediate(r))
  }
  await reading
  t.same(reads.map((r) => r.length), lengths)
  t.ok(Buffer.concat(reads).equals(data), 'the same bytes, in order')
  t.equal(reader.buffered, 0)
})

t.test('backpressure: the stream is paused past the high-water mark with no reader', async (t) => {
  const stream = new PassThrough()
  const reader = new SocketReader(stream, 1000)
  stream.write(Buffer.alloc(1500))
  await new Promise((r) => setImmediate(r))
  t.ok(stream.isPaused(), 'paused with 1500 bytes unread')
  await reader.read(1200)
  t.notOk(stream.isPaused(), 'resumed once read below the mark')
  const big = reader.read(5000)
  stream.write(Buffer.alloc(6000))
  t.equal((await big).length, 5000, 'a read bigger than the mark is still served')
})

t.test('a peer that leaves fails the pending read and every later one', async (t) => {
  const stream = new PassThrough()
  const reader = new SocketReader(stream)
  stream.write(Buffer.from('abc'))
  const pending = reader.read(10)
  stream.end()
  await t.rejects(pending, ConnectionClosedError)
  await t.rejects(reader.read(4), ConnectionClosedError, 'more than what is left')
  t.equal((await reader.read(3)).toString(), 'abc', 'what arrived is still readable')
})

t.test('buffered bytes stay readable after the peer ended; cancel() fails a pending read', async (t) => {
  const stream = new PassThrough()
  const reader = new SocketReader(stream)
  stream.end(Buffer.from('hello'))
  await new Promise((r) => setImmediate(r))
  t.equal((await reader.read(5)).toString(), 'hello')

  const other = new SocketReader(new PassThrough())
  const pending = other.read(4)
  other.cancel()
  await t.rejects(pending, ConnectionClosedError)
  await t.rejects(Promise.all([other.read(1), other.read(1)]), 'one read at a time, and closed')
})

t.test('readInto: payloads land in the given buffer whatever the segments; what follows stays readable', async (t) => {
  const rng = new Random(11)
  const stream = new PassThrough()
  const reader = new SocketReader(stream, 4096)
  const data = rng.bytes(300_000)
  stream.write(data.subarray(0, 100)) // some of it buffered before the read starts
  await new Promise((r) => setImmediate(r))
  const target = Buffer.alloc(200_000)
  const filling = reader.readInto(target)
  for (let pos = 100; pos < data.length; ) {
    const n = rng.pick([1, 999, 65536, 70000])
    stream.write(data.subarray(pos, pos + n))
    pos += n
    if (rng.chance(0.2)) await new Promise((r) => setImmediate(r))
  }
  t.equal(await filling, target, 'resolves with the target itself')
  t.ok(target.equals(data.subarray(0, 200_000)), 'the first 200 000 bytes, in order')
  const rest = Buffer.alloc(100_000)
  await reader.readInto(rest)
  t.ok(rest.equals(data.subarray(200_000)), 'the bytes after it, from the buffer and the stream')
  t.equal(reader.received, data.length, 'received counts every byte')
  const empty = Buffer.alloc(0)
  t.equal(await reader.readInto(empty), empty, 'an empty target is filled at once')
  const pending = reader.readInto(Buffer.alloc(10))
  stream.end(Buffer.from('abc'))
  await t.rejects(pending, ConnectionClosedError, 'a peer that leaves mid-payload fails the read')
})
