// The fixed newstyle handshake, driven by hand: good options, bad options and bad clients.
import t from 'tap'
import {
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_TRIM,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_NAME,
  NBD_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_POLICY,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  NBD_CMD_READ,
} from '../lib/nbd/protocol.js'
import { MAX_OPTION_BYTES } from '../lib/nbd/handshake.js'
import { goData, metaContextData, RawClient } from './fixtures/nbd-raw-client.js'
import { LOWER_SIZE, serveStore } from './fixtures/nbd-served.js'

t.test('greeting: NBDMAGIC, IHAVEOPT, fixed newstyle and no-zeroes', async (t) => {
  const s = await serveStore(t)
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  const g = await c.greeting()
  t.equal(g.magic, NBD_MAGIC)
  t.equal(g.optsMagic, NBD_OPTS_MAGIC)
  t.equal(g.flags, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES)
})

t.test('GO: export info, block sizes always, name and description on request', async (t) => {
  const s = await serveStore(t, { server: { exportName: 'disk', description: 'a disk' } })
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  const go = await c.go({ name: 'disk', infos: [NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE] })
  t.equal(go.size, LOWER_SIZE)
  const must = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_DF | NBD_FLAG_CAN_MULTI_CONN
  t.equal(go.flags & must, must)
  t.equal(go.flags & NBD_FLAG_READ_ONLY, 0)
  const byType = new Map(go.infos.map((d) => [d.readUInt16BE(0), d]))
  const bs = byType.get(NBD_INFO_BLOCK_SIZE)
  t.same(bs && [bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)], [1, 4096, 32 * 1024 * 1024])
  t.equal(byType.get(NBD_INFO_NAME)?.subarray(2).toString(), 'disk')
  t.equal(byType.get(NBD_INFO_DESCRIPTION)?.subarray(2).toString(), 'a disk')
  t.equal(go.metaContextId, 1)
  const r = await c.read(1024 * 1024, 16)
  t.equal(r.errno, 0, 'transmission works after GO')
})

t.test('the default export ("") is the one export; another name is unknown', async (t) => {
  const s = await serveStore(t, { server: { exportName: 'disk' } })
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  c.sendOption(NBD_OPT_INFO, goData('nope', []))
  const [unknown] = await c.optionReplies()
  t.equal(unknown?.type, NBD_REP_ERR_UNKNOWN)
  t.match(unknown?.data.toString(), /nope/, 'the message names the export')
  c.sendOption(NBD_OPT_INFO, goData('', []))
  t.equal((await c.optionReplies()).at(-1)?.type, NBD_REP_ACK, 'INFO does not end the handshake')
  await c.go({ name: '' })
  t.pass('GO with the default name')
})

t.test('an unknown option gets NBD_REP_ERR_UNSUP and the client can continue', async (t) => {
  const s = await serveStore(t)
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  c.sendOption(0x4242, Buffer.from('whatever the payload'))
  const [r] = await c.optionReplies()
  t.equal(r?.option, 0x4242)
  t.equal(r?.type, NBD_REP_ERR_UNSUP)
  c.sendOption(NBD_OPT_STARTTLS)
  t.equal((await c.optionReplies())[0]?.type, NBD_REP_ERR_POLICY, 'no TLS: refused, not fatal')
  const go = await c.go()
  t.equal(go.size, LOWER_SIZE, 'the session goes on to transmission')
})

t.test('malformed options get NBD_REP_ERR_INVALID', async (t) => {
  const s = await serveStore(t)
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  const cases: Array<[string, number, Buffer]> = [
    ['LIST with data', NBD_OPT_LIST, Buffer.from('x')],
    ['STRUCTURED_REPLY with data', NBD_OPT_STRUCTURED_REPLY, Buffer.from('x')],
    ['GO with a name longer than its data', NBD_OPT_GO, Buffer.from([0, 0, 0, 9, 65])],
    ['GO with trailing bytes', NBD_OPT_GO, Buffer.concat([goData('', []), Buffer.from([1])])],
    ['SET_META_CONTEXT before structured replies', NBD_OPT_SET_META_CONTEXT, metaContextData('', ['base:allocation'])],
    ['LIST_META_CONTEXT with a short query', NBD_OPT_LIST_META_CONTEXT, Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 20, 65])],
  ]
  for (const [name, option, data] of cases) {
    c.sendOption(option, data)
    const replies = await c.optionReplies()
    t.equal(replies.at(-1)?.type, NBD_REP_ERR_INVALID, name)
  }
  await c.go()
  t.pass('and the session still works')
})

t.test('LIST, LIST_META_CONTEXT and SET_META_CONTEXT', async (t) => {
  const s = await serveStore(t, { server: { exportName: 'disk' } })
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  c.sendOption(NBD_OPT_LIST)
  const list = await c.optionReplies()
  t.same(list.map((r) => r.type), [NBD_REP_SERVER, NBD_REP_ACK])
  const entry = list[0]?.data ?? Buffer.alloc(4)
  t.equal(entry.subarray(4, 4 + entry.readUInt32BE(0)).toString(), 'disk')

  c.sendOption(NBD_OPT_STRUCTURED_REPLY)
  t.equal((await c.optionReplies())[0]?.type, NBD_REP_ACK)
  for (const queries of [[], ['base:'], ['base:allocation'], ['qemu:dirty-bitmap:x', 'base:allocation']]) {
    c.sendOption(NBD_OPT_LIST_META_CONTEXT, metaContextData('disk', queries))
    const replies = await c.optionReplies()
    t.same(replies.map((r) => r.type), [NBD_REP_META_CONTEXT, NBD_REP_ACK], `list ${JSON.stringify(queries)}`)
    t.equal(replies[0]?.data.subarray(4).toString(), 'base:allocation')
  }
  c.sendOption(NBD_OPT_SET_META_CONTEXT, metaContextData('disk', ['x-other:thing', 'base:']))
  t.same((await c.optionReplies()).map((r) => r.type), [NBD_REP_ACK], 'unknown namespaces and base: select nothing')
  c.sendOption(NBD_OPT_SET_META_CONTEXT, metaContextData('disk', ['base:allocation']))
  const set = await c.optionReplies()
  t.same(set.map((r) => r.type), [NBD_REP_META_CONTEXT, NBD_REP_ACK])
  t.not(set[0]?.data.readUInt32BE(0), 0, 'a selected context has a nonzero id')
})

t.test('EXPORT_NAME: size and flags, with or without the 124 zero bytes', async (t) => {
  const s = await serveStore(t, { server: { exportName: 'disk' } })
  for (const noZeroes of [true, false]) {
    const c = await RawClient.connect(s.socket)
    t.teardown(() => c.destroy())
    await c.start(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? 2 : 0))
    c.sendOption(NBD_OPT_EXPORT_NAME, Buffer.from('disk'))
    const reply = await c.reader.read(noZeroes ? 10 : 134)
    t.equal(Number(reply.readBigUInt64BE(0)), LOWER_SIZE)
    t.equal(reply.readUInt16BE(8) & NBD_FLAG_HAS_FLAGS, NBD_FLAG_HAS_FLAGS)
    if (!noZeroes) t.ok(reply.subarray(10).equals(Buffer.alloc(124)), '124 zero bytes')
    c.request(NBD_CMD_READ, 0, 512)
    const r = await c.simpleReply(512)
    t.equal(r.errno, 0, `simple replies after EXPORT_NAME (noZeroes ${noZeroes})`)
  }
  const bad = await RawClient.connect(s.socket)
  await bad.start()
  bad.sendOption(NBD_OPT_EXPORT_NAME, Buffer.from('other'))
  await bad.closed()
  t.pass('EXPORT_NAME of an unknown export ends the session (no error can be sent)')
})

t.test('wrong magic from the client: a clean disconnect, and the server keeps serving', async (t) => {
  const s = await serveStore(t)
  const c = await RawClient.connect(s.socket)
  await c.start()
  c.sendOption(NBD_OPT_GO, goData('', []), 0x1122334455667788n)
  await c.closed()
  t.pass('disconnected')

  const http = await RawClient.connect(s.socket)
  await http.greeting()
  http.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  await http.closed()
  t.pass('a client speaking something else is disconnected too')

  const flags = await RawClient.connect(s.socket)
  await flags.start(0x80)
  await flags.closed()
  t.pass('unknown client flags: disconnected, as the protocol asks')

  const ok = await RawClient.connect(s.socket)
  t.teardown(() => ok.destroy())
  await ok.start()
  await ok.go()
  t.equal((await ok.read(0, 4096)).errno, 0, 'a good client is still served')
})

t.test('an oversized option is refused and the session ends; ABORT is acknowledged', async (t) => {
  const s = await serveStore(t)
  const c = await RawClient.connect(s.socket)
  await c.start()
  const header = Buffer.alloc(16)
  header.writeBigUInt64BE(NBD_OPTS_MAGIC, 0)
  header.writeUInt32BE(NBD_OPT_GO, 8)
  header.writeUInt32BE(MAX_OPTION_BYTES + 1, 12)
  c.socket.write(header)
  t.equal((await c.optionReply()).type, NBD_REP_ERR_TOO_BIG)
  await c.closed()

  const a = await RawClient.connect(s.socket)
  await a.start()
  a.sendOption(NBD_OPT_ABORT)
  t.equal((await a.optionReply()).type, NBD_REP_ACK)
  await a.closed()
  t.pass('ABORT: acknowledged, then closed')
})

t.test('a client that never finishes the handshake is cut off', async (t) => {
  const s = await serveStore(t, { server: { handshakeTimeoutMs: 200 } })
  const c = await RawClient.connect(s.socket)
  await c.greeting()
  const started = Date.now()
  await c.closed()
  t.ok(Date.now() - started < 5000, 'closed after the handshake timeout')
})
