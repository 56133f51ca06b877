// NbdServer: options, listening, the connection cap under a flood, close() draining and flushing.
import net from 'node:net'
import { once } from 'node:events'
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { ImageStore, NbdServer } from '../lib/index.js'
import { NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE, NBD_ESHUTDOWN, NBD_OPT_ABORT, NBD_REP_ACK, NBD_REP_ERR_POLICY } from '../lib/nbd/protocol.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { LOWER_REGIONS, LOWER_SIZE, serveStore, shortTempDir } from './fixtures/nbd-served.js'

async function openStore(t: Test): Promise<ImageStore> {
  const dir = t.testdir()
  makeSparseLower(join(dir, 'lower.img'), LOWER_SIZE, LOWER_REGIONS)
  const store = await ImageStore.create(join(dir, 'store'), { lower: join(dir, 'lower.img'), autoFlushMs: 0 })
  t.teardown(() => store.close())
  return store
}

t.test('options are validated: misspelled, conflicting and out-of-range ones are EINVAL', async (t) => {
  const store = await openStore(t)
  const bad: Array<[string, unknown]> = [
    ['misspelled', { readonly: true }],
    ['socket and port', { socket: '/tmp/x.sock', port: 1 }],
    ['port out of range', { port: 70000 }],
    ['NUL in the name', { exportName: 'a\0b' }],
    ['name too long', { exportName: 'x'.repeat(4097) }],
    ['zero connections', { maxConnections: 0 }],
  ]
  for (const [name, options] of bad) {
    await t.rejects(NbdServer.listen(store, options as never), { code: 'EINVAL' }, name)
  }
  await t.rejects(NbdServer.listen({} as never, {}), { code: 'EINVAL' }, 'not a store')
})

t.test('TCP on loopback by default; port 0 picks a port; the URI names it', async (t) => {
  const store = await openStore(t)
  const server = await NbdServer.listen(store, { port: 0, exportName: 'my disk' })
  t.teardown(() => server.close())
  const address = server.address as { host: string; port: number }
  t.equal(address.host, '127.0.0.1')
  t.ok(address.port > 0)
  t.equal(server.uri, `nbd://127.0.0.1:${address.port}/my%20disk`)
  const c = await RawClient.connect({ port: address.port })
  t.teardown(() => c.destroy())
  await c.start()
  const go = await c.go({ name: 'my disk' })
  t.equal(go.size, LOWER_SIZE)
  await t.rejects(NbdServer.listen(store, { port: address.port }), { code: 'EBUSY' }, 'a port in use is EBUSY')
})

t.test('Unix socket: private to the user, a stale one is replaced, a live one is EBUSY', async (t) => {
  const store = await openStore(t)
  const socket = join(shortTempDir(t), 's.sock')
  const live = net.createServer()
  await new Promise<void>((resolve) => live.listen(socket, resolve))
  await t.rejects(NbdServer.listen(store, { socket }), { code: 'EBUSY' }, 'someone listens there')
  await new Promise<void>((resolve) => live.close(() => resolve()))
  // A server killed with SIGKILL leaves its socket file behind.
  const script = `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`
  spawnSync(process.execPath, ['-e', script])
  t.ok(existsSync(socket), 'a stale socket file is left')
  const server = await NbdServer.listen(store, { socket })
  t.equal(server.uri, `nbd+unix:///?socket=${socket}`)
  t.equal(statSync(socket).mode & 0o777, 0o600, 'the socket is private to its owner')
  await server.close()
  t.notOk(existsSync(socket), 'close() removes the socket')
})

t.test('a flood of connections: refused politely beyond the cap; the server keeps serving', async (t) => {
  const s = await serveStore(t, { server: { maxConnections: 4, handshakeTimeoutMs: 2000 } })
  const served: RawClient[] = []
  t.teardown(() => served.forEach((c) => c.destroy()))
  for (let i = 0; i < 4; i++) {
    const c = await RawClient.connect(s.socket)
    await c.start()
    await c.go()
    served.push(c)
  }
  t.equal(s.server.connections, 4)

  const refused = await RawClient.connect(s.socket)
  t.teardown(() => refused.destroy())
  await refused.start()
  await t.rejects(refused.go({ structured: false }), { reply: NBD_REP_ERR_POLICY, message: /busy/ }, 'GO over the cap is refused: the server is busy')
  refused.sendOption(NBD_OPT_ABORT)
  t.equal((await refused.optionReply()).type, NBD_REP_ACK, 'and the client may abort cleanly')
  await refused.closed()

  const flood: net.Socket[] = []
  t.teardown(() => flood.forEach((s) => s.destroy()))
  const deadline = Date.now() + 5000
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    const sock = net.connect(s.socket)
    sock.on('error', () => {})
    flood.push(sock)
  }
  await Promise.all(flood.map((sock) => Promise.race([once(sock, 'close'), once(sock, 'connect'), sleep(3000)])))
  await sleep(100)
  const closedEarly = flood.filter((sock) => sock.destroyed || sock.readableEnded).length
  t.ok(closedEarly > 0, `past the cap and the refusal room, connections are dropped (${closedEarly} of ${flood.length})`)
  t.equal(s.server.connections, 4, 'the flood never took a served slot')

  for (const [i, c] of served.entries()) {
    c.request(NBD_CMD_WRITE, i * 4096, 4096, { data: Buffer.alloc(4096, i + 1) })
    t.equal((await c.reply()).errno, 0, `served client ${i} still writes`)
  }
  flood.forEach((sock) => sock.destroy())
  await sleep(100)
  const again = await RawClient.connect(s.socket)
  t.teardown(() => again.destroy())
  await again.start()
  await t.rejects(again.go({ structured: false }), { reply: NBD_REP_ERR_POLICY, message: /busy/ }, 'after the flood, a client over the cap is again told the server is busy')
  served.pop()?.destroy()
  await sleep(100)
  const late = await RawClient.connect(s.socket)
  t.teardown(() => late.destroy())
  await late.start()
  await late.go()
  t.ok((await late.read(4096, 4096)).data.equals(Buffer.alloc(4096, 2)), 'a freed slot serves a new client, with one content')
})

t.test('close(): requests in flight finish, later ones get ESHUTDOWN, the store is flushed', async (t) => {
  const s = await serveStore(t)
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  await c.go()
  const waiting = await RawClient.connect(s.socket)
  t.teardown(() => waiting.destroy())
  await waiting.start()

  c.request(NBD_CMD_WRITE, 0, 8192, { data: Buffer.alloc(8192, 4) })
  t.equal((await c.reply()).errno, 0)
  // Make FLUSH slow, so that it is surely in flight when close() starts.
  const flush = s.store.flush.bind(s.store)
  s.store.flush = async () => {
    await sleep(200)
    return flush()
  }
  c.request(NBD_CMD_FLUSH, 0, 0)
  await sleep(50)
  const closing = s.server.close()
  c.request(NBD_CMD_READ, 0, 512)
  t.equal((await c.reply()).errno, 0, 'the FLUSH in flight is answered')
  const late = await Promise.race([c.reply().then((r) => r.errno), c.closed().then(() => 'closed')])
  t.ok(late === NBD_ESHUTDOWN || late === 'closed', `a request sent after close() gets ESHUTDOWN or nothing (${String(late)})`)
  await Promise.all([c.closed(), waiting.closed(), closing])
  t.equal(s.store.info().dirty, false, 'the store was flushed')
  t.ok((await s.store.read(0, 8192)).equals(Buffer.alloc(8192, 4)))
  await t.rejects(RawClient.connect(s.socket), 'no longer listening')
  await s.server.close()
  t.pass('close() twice is fine')
})

t.test('a server over a read-only store serves it read-only', async (t) => {
  const s = await serveStore(t)
  await s.server.close()
  await s.store.flush()
  const ro = await ImageStore.open(s.storePath, { readOnly: true })
  t.teardown(() => ro.close())
  const server = await NbdServer.listen(ro, { socket: join(shortTempDir(t), 'ro.sock') })
  t.teardown(() => server.close())
  t.equal(server.readOnly, true)
  const c = await RawClient.connect((server.address as { socket: string }).socket)
  t.teardown(() => c.destroy())
  await c.start()
  const go = await c.go()
  t.equal(go.flags & 2, 2, 'NBD_FLAG_READ_ONLY')
  c.request(NBD_CMD_FLUSH, 0, 0)
  t.equal((await c.reply()).errno, 0, 'FLUSH on a read-only export is a no-op')
  c.request(NBD_CMD_READ, 0, 512)
  t.equal((await c.reply()).errno, 0)
})

t.test('a client still in the handshake when the server closes is disconnected, never served', async (t) => {
  const s = await serveStore(t)
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  const closing = s.server.close()
  await t.rejects(c.go(), { name: 'ConnectionClosedError' })
  await Promise.all([c.closed(), closing])
})
