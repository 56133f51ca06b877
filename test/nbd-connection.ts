// The transmission phase, driven by hand: replies of every kind, bad requests, bad clients.
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { checkStore, PagecowError } from '../lib/index.js'
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_ENOTSUP,
  NBD_ESHUTDOWN,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_REQUEST_MAGIC,
} from '../lib/nbd/protocol.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { lowerBytes } from './fixtures/cli-lower.js'
import { LOWER_SIZE, serveStore, type Served } from './fixtures/nbd-served.js'
import { Random } from './fixtures/random.js'

const MiB = 1024 * 1024

async function client(t: Test, s: Served, options?: Parameters<RawClient['go']>[0]): Promise<RawClient> {
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  await c.go(options)
  return c
}

function header(type: number, offset: number | bigint, length: number, flags = 0, handle = 99n): Buffer {
  const h = Buffer.alloc(28)
  h.writeUInt32BE(NBD_REQUEST_MAGIC, 0)
  h.writeUInt16BE(flags, 4)
  h.writeUInt16BE(type, 6)
  h.writeBigUInt64BE(handle, 8)
  h.writeBigUInt64BE(BigInt(offset), 16)
  h.writeUInt32BE(length, 24)
  return h
}

t.test('structured READ: holes as hole chunks, data as data chunks; DF gives one chunk', async (t) => {
  const s = await serveStore(t, {
    prepare: async (store) => {
      await store.zero(MiB + 64 * 1024, 64 * 1024) // ZERO pages inside lower data
      await store.write(5 * MiB, Buffer.alloc(8192, 7))
    },
  })
  const c = await client(t, s)
  const offset = MiB - 8192
  const length = 6 * MiB
  const expected = await s.store.read(offset, length)
  const r = await c.read(offset, length)
  t.equal(r.errno, 0)
  t.ok(r.data.equals(expected), 'reassembled bytes are the store bytes')
  let covered = 0
  for (const chunk of r.chunks) {
    if (chunk.type === NBD_REPLY_TYPE_OFFSET_HOLE) covered += chunk.data.readUInt32BE(8)
    if (chunk.type === NBD_REPLY_TYPE_OFFSET_DATA) covered += chunk.data.length - 8
  }
  t.equal(covered, length, 'chunks cover the request exactly')
  t.ok(r.chunks.filter((c) => c.type === NBD_REPLY_TYPE_OFFSET_HOLE).length >= 3, 'lower holes and ZERO pages are sent as holes')
  t.equal(r.chunks.at(-1)?.flags, 1, 'the last chunk is marked done')

  const df = await c.read(offset, 64 * 1024, NBD_CMD_FLAG_DF)
  t.same(df.chunks.map((c) => c.type), [NBD_REPLY_TYPE_OFFSET_DATA], 'DF: one data chunk')
  t.ok(df.data.equals(expected.subarray(0, 64 * 1024)))
})

t.test('simple READ when structured replies were not negotiated', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s, { structured: false })
  c.request(NBD_CMD_READ, MiB, 4096)
  const r = await c.simpleReply(4096)
  t.equal(r.errno, 0)
  t.ok(r.data.equals(lowerBytes(MiB, 4096)))
  c.request(NBD_CMD_READ, LOWER_SIZE, 1)
  t.equal((await c.simpleReply(1)).errno, NBD_EINVAL, 'an error carries no payload')
  c.request(NBD_CMD_READ, 0, 512, { flags: NBD_CMD_FLAG_DF })
  t.equal((await c.simpleReply(512)).errno, NBD_EINVAL, 'DF without structured replies is invalid')
  c.request(NBD_CMD_BLOCK_STATUS, 0, 512)
  t.equal((await c.simpleReply()).errno, NBD_EINVAL, 'BLOCK_STATUS without a context is invalid')
})

t.test('a WRITE split into tiny TCP segments lands whole; pipelined requests all answered', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s)
  const data = new Random(3).bytes(10000)
  const bytes = Buffer.concat([header(NBD_CMD_WRITE, 3 * MiB + 123, data.length, 0, 7n), data])
  for (let pos = 0; pos < bytes.length; ) {
    const n = pos < 40 ? 1 : 997 // the header byte by byte, then odd-sized pieces
    c.socket.write(bytes.subarray(pos, pos + n))
    pos += n
    if (pos < 64) await sleep(1)
  }
  const w = await c.reply()
  t.same([w.errno, w.handle], [0, 7n])
  t.ok((await s.store.read(3 * MiB + 123, data.length)).equals(data))

  const burst: Buffer[] = []
  for (let i = 0; i < 40; i++) {
    burst.push(header(NBD_CMD_WRITE, 4 * MiB + i * 512, 512, 0, BigInt(1000 + i)), Buffer.alloc(512, i))
  }
  c.socket.write(Buffer.concat(burst))
  const handles = new Set<bigint>()
  for (let i = 0; i < 40; i++) {
    const r = await c.reply()
    t.equal(r.errno, 0)
    handles.add(r.handle)
  }
  t.equal(handles.size, 40, 'every handle answered once')
  t.ok((await s.store.read(4 * MiB + 39 * 512, 512)).equals(Buffer.alloc(512, 39)))
})

t.test('requests past the end: EINVAL for reads, ENOSPC for writes; the connection goes on', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s)
  const cases: Array<[string, number, number, number, number, Buffer?]> = [
    ['READ', NBD_CMD_READ, LOWER_SIZE - 512, 1024, NBD_EINVAL],
    ['WRITE', NBD_CMD_WRITE, LOWER_SIZE - 512, 1024, NBD_ENOSPC, Buffer.alloc(1024, 1)],
    ['WRITE at 2^63', NBD_CMD_WRITE, 0, 16, NBD_ENOSPC, Buffer.alloc(16, 1)],
    ['TRIM', NBD_CMD_TRIM, LOWER_SIZE, 4096, NBD_EINVAL],
    ['WRITE_ZEROES', NBD_CMD_WRITE_ZEROES, LOWER_SIZE - 4096, 8192, NBD_ENOSPC],
    ['BLOCK_STATUS', NBD_CMD_BLOCK_STATUS, LOWER_SIZE, 1, NBD_EINVAL],
    ['CACHE', NBD_CMD_CACHE, LOWER_SIZE + 1, 1, NBD_EINVAL],
  ]
  const before = await s.store.read(LOWER_SIZE - 8192, 8192)
  for (const [name, type, offset, length, errno, data] of cases) {
    if (name === 'WRITE at 2^63') {
      c.socket.write(Buffer.concat([header(type, 2n ** 63n, length), data as Buffer]))
    } else {
      c.request(type, offset, length, data ? { data } : {})
    }
    const r = await c.reply()
    t.equal(r.errno, errno, name)
    if (r.chunks.length > 0) t.match(r.chunks[0]?.data.subarray(6).toString(), /past the end/, 'the error says why')
  }
  t.ok((await s.store.read(LOWER_SIZE - 8192, 8192)).equals(before), 'nothing was written')
  t.equal((await c.read(LOWER_SIZE - 512, 512)).errno, 0, 'the last bytes are readable')
})

t.test('bad commands and flags get EINVAL', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s)
  const cases: Array<[string, number, number, number]> = [
    ['unknown command', 42, 0, 0],
    ['READ with NO_HOLE', NBD_CMD_READ, NBD_CMD_FLAG_NO_HOLE, 512],
    ['TRIM with REQ_ONE', NBD_CMD_TRIM, NBD_CMD_FLAG_REQ_ONE, 512],
    ['unknown flag bit', NBD_CMD_FLUSH, 1 << 9, 0],
    ['BLOCK_STATUS of 0 bytes', NBD_CMD_BLOCK_STATUS, 0, 0],
  ]
  for (const [name, type, flags, length] of cases) {
    c.request(type, 0, length, { flags })
    t.equal((await c.reply()).errno, NBD_EINVAL, name)
  }
  c.request(NBD_CMD_WRITE, 0, 4, { flags: NBD_CMD_FLAG_DF, data: Buffer.from('oops') })
  t.equal((await c.reply()).errno, NBD_EINVAL, 'a WRITE with a bad flag: its payload is still consumed')
  t.equal((await c.read(MiB, 4)).errno, 0, 'and the stream stays in step')
  t.ok((await s.store.read(0, 4)).equals(Buffer.alloc(4)), 'the refused write did not land')
})

t.test('oversized requests (over 32 MiB): READ refused and the connection goes on; WRITE refused and closed', async (t) => {
  const s = await serveStore(t, { size: 64 * MiB, regions: [[0, MiB]] })
  const c = await client(t, s)
  const other = await client(t, s)
  c.request(NBD_CMD_READ, 0, 32 * MiB + 1)
  t.equal((await c.reply()).errno, NBD_EINVAL, 'READ over the maximum block size')
  t.equal((await c.read(0, 32 * MiB)).errno, 0, 'a READ of exactly 32 MiB is served')
  c.request(NBD_CMD_BLOCK_STATUS, 0, 48 * MiB)
  t.equal((await c.reply()).errno, 0, 'BLOCK_STATUS carries no payload: any length')
  c.request(NBD_CMD_WRITE_ZEROES, 0, 40 * MiB, { flags: NBD_CMD_FLAG_NO_HOLE })
  t.equal((await c.reply()).errno, NBD_EINVAL, 'NO_HOLE zeroing over the maximum block size')
  c.request(NBD_CMD_TRIM, 0, 40 * MiB)
  t.equal((await c.reply()).errno, 0, 'TRIM of any length')

  const before = await s.store.read(0, 4096)
  c.socket.write(header(NBD_CMD_WRITE, 0, 33 * MiB))
  c.socket.write(Buffer.alloc(64 * 1024, 0xee)) // the start of a payload the server will not take
  const r = await c.reply()
  t.equal(r.errno, NBD_EINVAL, 'WRITE over 32 MiB')
  await c.closed()
  t.pass('then the server hangs up: it cannot skip a payload that size')
  t.ok((await s.store.read(0, 4096)).equals(before), 'nothing of it landed')
  t.equal((await other.read(0, 4096)).errno, 0, 'the other client is unaffected')
})

t.test('a client that disconnects in the middle of a WRITE payload: nothing lands', async (t) => {
  const s = await serveStore(t)
  const other = await client(t, s)
  const c = await client(t, s)
  const before = await s.store.read(2 * MiB, 64 * 1024)
  c.socket.write(header(NBD_CMD_WRITE, 2 * MiB, 64 * 1024))
  c.socket.write(Buffer.alloc(40 * 1024, 0x77))
  await sleep(50)
  c.destroy()
  await sleep(50)
  t.ok((await s.store.read(2 * MiB, 64 * 1024)).equals(before), 'the store is unchanged')
  t.equal(s.store.info().pages.data, 0, 'no page was copied up')
  const w = Buffer.alloc(4096, 0x31)
  other.request(NBD_CMD_WRITE, 2 * MiB, 4096, { data: w })
  t.equal((await other.reply()).errno, 0, 'the other client still writes')
  other.request(NBD_CMD_FLUSH, 0, 0)
  t.equal((await other.reply()).errno, 0)
  const report = await checkStore(s.storePath)
  t.ok(report.clean, 'the store is consistent')
  t.same(report.problems, [])
})

t.test('write commands: FUA and FLUSH commit; TRIM and WRITE_ZEROES make ZERO pages, NO_HOLE data', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s)
  c.request(NBD_CMD_WRITE, MiB, 4096, { data: Buffer.alloc(4096, 1) })
  t.equal((await c.reply()).errno, 0)
  t.equal(s.store.info().dirty, true, 'a plain write is not committed yet')
  c.request(NBD_CMD_FLUSH, 0, 0)
  t.equal((await c.reply()).errno, 0)
  t.equal(s.store.info().dirty, false, 'FLUSH committed it')
  c.request(NBD_CMD_WRITE, MiB + 4096, 4096, { flags: NBD_CMD_FLAG_FUA, data: Buffer.alloc(4096, 2) })
  t.equal((await c.reply()).errno, 0)
  t.equal(s.store.info().dirty, false, 'FUA committed before the reply')

  c.request(NBD_CMD_TRIM, 2 * MiB, 8192)
  t.equal((await c.reply()).errno, 0)
  c.request(NBD_CMD_WRITE_ZEROES, 2 * MiB + 8192, 8192, { flags: NBD_CMD_FLAG_FAST_ZERO })
  t.equal((await c.reply()).errno, 0, 'fast zero: ZERO pages are fast')
  c.request(NBD_CMD_WRITE_ZEROES, 2 * MiB + 16384, 8192, { flags: NBD_CMD_FLAG_NO_HOLE })
  t.equal((await c.reply()).errno, 0)
  c.request(NBD_CMD_WRITE_ZEROES, 0, 4096, { flags: NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO })
  t.equal((await c.reply()).errno, NBD_ENOTSUP, 'allocated zeros are not fast')
  const states = [...s.store.extents(2 * MiB, 24576)].map((e) => [e.start - 2 * MiB, e.length, e.state])
  t.same(states, [[0, 16384, 'zero'], [16384, 8192, 'data']])
  t.ok((await s.store.read(2 * MiB, 24576)).equals(Buffer.alloc(24576)), 'all read as zeros')

  c.request(NBD_CMD_CACHE, 0, 4 * MiB)
  t.equal((await c.reply()).errno, 0, 'CACHE')
})

t.test('BLOCK_STATUS: data and lower 0, ZERO pages zero, lower holes hole+zero; REQ_ONE gives one', async (t) => {
  const s = await serveStore(t, { prepare: async (store) => store.zero(MiB, 64 * 1024) })
  const c = await client(t, s)
  c.request(NBD_CMD_BLOCK_STATUS, 0, 4 * MiB)
  const r = await c.reply()
  t.equal(r.errno, 0)
  const chunk = r.chunks[0]
  t.equal(chunk?.type, NBD_REPLY_TYPE_BLOCK_STATUS)
  const data = chunk?.data ?? Buffer.alloc(4)
  t.equal(data.readUInt32BE(0), 1, 'the base:allocation context id')
  const descriptors: Array<[number, number]> = []
  for (let i = 4; i < data.length; i += 8) descriptors.push([data.readUInt32BE(i), data.readUInt32BE(i + 4)])
  t.same(descriptors, [
    [MiB, 3],
    [64 * 1024, 2],
    [2 * MiB - 64 * 1024, 0],
    [MiB, 3],
  ])
  c.request(NBD_CMD_BLOCK_STATUS, 0, 4 * MiB, { flags: NBD_CMD_FLAG_REQ_ONE })
  const one = await c.reply()
  t.same(one.chunks[0]?.data.subarray(4).length, 8, 'one descriptor')

  const plain = await client(t, s, { meta: false })
  plain.request(NBD_CMD_BLOCK_STATUS, 0, 4096)
  t.equal((await plain.reply()).errno, NBD_EINVAL, 'no context selected')
})

t.test('DISC: requests in flight are answered, then the connection closes', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s)
  c.socket.write(Buffer.concat([header(NBD_CMD_WRITE, 0, 4096, 0, 5n), Buffer.alloc(4096, 9), header(NBD_CMD_FLUSH, 0, 0, 0, 6n), header(NBD_CMD_DISC, 0, 0)]))
  t.equal((await c.reply()).handle, 5n)
  t.equal((await c.reply()).handle, 6n)
  await c.closed()
  t.ok((await s.store.read(0, 4096)).equals(Buffer.alloc(4096, 9)))
  t.equal(s.store.info().dirty, false)
})

t.test('a bad request magic ends the connection', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s)
  const h = header(NBD_CMD_READ, 0, 512)
  h.writeUInt32BE(0xdeadbeef, 0)
  c.socket.write(h)
  await c.closed()
  t.pass('disconnected')
})

t.test('a store failure: the client gets EIO, the operator a warning, the connection goes on', async (t) => {
  const s = await serveStore(t)
  s.server.removeAllListeners('warning')
  const warnings: unknown[] = []
  s.server.on('warning', (err: unknown) => warnings.push(err))
  const c = await client(t, s)
  const readInto = s.store.readInto.bind(s.store)
  const readIntoSync = s.store.readIntoSync.bind(s.store)
  s.store.readInto = async () => {
    throw new PagecowError('EIO', 'reading the lower: injected failure')
  }
  s.store.readIntoSync = () => {
    throw new PagecowError('EIO', 'reading the lower: injected failure')
  }
  const r = await c.read(0, 4096)
  t.equal(r.errno, NBD_EIO)
  t.match(r.chunks[0]?.data.subarray(6).toString(), /injected failure/, 'the message reaches the client')
  t.equal(warnings.length, 1)
  t.match(warnings[0], { code: 'EIO' })
  s.store.readInto = readInto
  s.store.readIntoSync = readIntoSync
  t.equal((await c.read(0, 4096)).errno, 0, 'the next read works')
  await s.store.close()
  c.request(NBD_CMD_READ, 0, 4096)
  t.equal((await c.reply()).errno, NBD_ESHUTDOWN, 'a store closed under the server: ESHUTDOWN, no warning')
  t.equal(warnings.length, 1)
})

t.test('READs run inline while the cache answers; once several wait on the disk, through the pool, same bytes', async (t) => {
  const s = await serveStore(t)
  const c = await client(t, s)
  const calls = { inline: 0, pool: 0 }
  const readIntoSync = s.store.readIntoSync.bind(s.store)
  const readInto = s.store.readInto.bind(s.store)
  let slow = false
  const nap = new Int32Array(new SharedArrayBuffer(4))
  s.store.readIntoSync = (target, offset) => {
    calls.inline++
    if (slow) Atomics.wait(nap, 0, 0, 3) // asleep for 3 ms, as a read waiting on the disk is
    return readIntoSync(target, offset)
  }
  s.store.readInto = (target, offset) => {
    calls.pool++
    return readInto(target, offset)
  }
  const expected = await s.store.read(MiB, 256 * 1024)
  for (let i = 0; i < 8; i++) t.ok((await c.read(MiB, 256 * 1024, NBD_CMD_FLAG_DF)).data.equals(expected))
  t.same(calls, { inline: 8, pool: 0 }, 'fast reads stay on the event loop')
  slow = true
  for (let i = 0; i < 8; i++) t.ok((await c.read(MiB, 256 * 1024, NBD_CMD_FLAG_DF)).data.equals(expected))
  for (let i = 0; i < 4; i++) t.ok((await c.read(MiB, 256 * 1024, NBD_CMD_FLAG_DF)).data.equals(expected))
  // Eight waits on the disk in the last sixteen reads switch them (one earlier read may have
  // looked like one too: another thread of the process slept meanwhile).
  t.ok(calls.pool >= 3 && calls.inline + calls.pool === 20, `then the pool, but for a probe (${JSON.stringify(calls)})`)
})
