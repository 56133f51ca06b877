// The control socket in one process: a store served by ControlServer, reached by ControlClient
// and callStore as another pagecow process would. What the socket is (mode, owner, lifetime,
// stale ones), what the protocol does with every bad input (a table), and that the server and
// its store come out of each unharmed.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { callStore, watchStore } from '../lib/control/call-store.js'
import { ControlClient } from '../lib/control/control-client.js'
import { ControlServer } from '../lib/control/control-server.js'
import { flushMethod } from '../lib/control/methods/flush.js'
import { inspectMethod } from '../lib/control/methods/inspect.js'
import { watchMethod, type WatchEvent } from '../lib/control/methods/watch.js'
import { MAX_REQUEST_BYTES } from '../lib/control/protocol.js'
import { checkStore, ImageStore, isPagecowError, TreeStore } from '../lib/index.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { childEnv } from './fixtures/child-env.js'
import { BAD_LINES, ControlPeer as Peer } from './fixtures/control-peer.js'

const PAGE = 4096

/** A fresh directory with a short path, for tests that bind sockets themselves (sun_path: 108 bytes). */
function shortDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'pcctl-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface Served {
  dir: string
  store: ImageStore
  control: ControlServer
}

/** An image store (1 MiB lower of 0x11) served by a ControlServer; both closed at teardown. */
async function served(t: Test, inDir?: string): Promise<Served> {
  const dir = inDir ?? mkdtempSync(join(tmpdir(), 'pcctl-'))
  writeFileSync(join(dir, 'lower.img'), Buffer.alloc(1 << 20, 0x11))
  const store = await ImageStore.create(join(dir, 'store'), { lower: join(dir, 'lower.img'), autoFlushMs: 0 })
  const control = await ControlServer.listen(store)
  t.teardown(async () => {
    await control.close()
    await store.close()
    if (!inDir) rmSync(dir, { recursive: true, force: true })
  })
  return { dir: join(dir, 'store'), store, control }
}

t.test('the socket: STORE/control.sock, mode 0600, the server\'s own, there while it serves', async (t) => {
  const s = await served(t)
  const path = join(s.dir, 'control.sock')
  t.equal(s.control.path, path)
  const st = lstatSync(path)
  t.ok(st.isSocket(), 'a socket')
  t.equal(st.mode & 0o777, 0o600, 'mode 0600')
  t.equal(st.uid, process.geteuid?.(), 'owned by the server\'s user')
  t.strictSame((await callStore(s.dir, flushMethod, {})).path, s.store.path)
  await s.control.close()
  t.throws(() => lstatSync(path), { code: 'ENOENT' }, 'removed at close')
  await s.control.close() // idempotent
})

t.test('a read-only store has no control socket; bad options are EINVAL', async (t) => {
  const s = await served(t)
  await s.control.close()
  const ro = await ImageStore.open(s.dir, { readOnly: true })
  t.teardown(() => ro.close())
  await t.rejects(ControlServer.listen(ro), { code: 'EROFS' })
  for (const bad of [{ maxConnections: 0 }, { idleTimeoutMs: -1 }, { maxconnections: 3 }, { maxConnections: 1.5 }] as never[]) {
    await t.rejects(ControlServer.listen(s.store, bad), { code: 'EINVAL' }, JSON.stringify(bad))
  }
  t.throws(() => lstatSync(join(s.dir, 'control.sock')), { code: 'ENOENT' }, 'no socket left by the refusals')
})

t.test('inspect through the socket shows what the server holds, unflushed pages included', async (t) => {
  const s = await served(t)
  await s.store.write(5 * PAGE, Buffer.alloc(PAGE, 0xab))
  const remote = await callStore(s.dir, inspectMethod, {})
  t.equal('map' in remote && remote.map.totals.data.pages, 1, 'one DATA page, not flushed yet')
  // What another process sees of the store on disk: nothing yet.
  const ro = await ImageStore.open(s.dir, { readOnly: true })
  t.equal(ro.info().pages.data, 0, 'a read-only open sees only what was committed')
  await ro.close()
  t.strictSame(remote, JSON.parse(JSON.stringify(await inspectMethod.run(s.store, {}))), 'the report the server would make itself')
})

t.test('an error on the server is re-thrown by the client with its code and message', async (t) => {
  const s = await served(t)
  let local: unknown
  try {
    await inspectMethod.run(s.store, { path: '/etc/hosts' })
  } catch (err) {
    local = err
  }
  t.ok(isPagecowError(local, 'EINVAL'))
  await t.rejects(callStore(s.dir, inspectMethod, { path: '/etc/hosts' }), { name: 'PagecowError', code: 'EINVAL', message: (local as Error).message })
  const client = await ControlClient.connect(s.dir)
  t.ok(client)
  t.teardown(() => client?.close())
  await t.rejects(client!.call(inspectMethod, { width: 0 }), { code: 'EINVAL', message: /width/ }, 'params checked by the server too')
  await s.store.close()
  await t.rejects(client!.call(flushMethod, {}), { code: 'ECLOSED' }, 'a closed store says so')
})

t.test('callStore on a store no server holds opens it here, as the CLI always did', async (t) => {
  const s = await served(t)
  await s.store.write(0, Buffer.from('x'))
  await s.control.close()
  await t.rejects(callStore(s.dir, flushMethod, {}), { code: 'EBUSY' }, 'held by a writer without a control socket: EBUSY as before')
  const report = await callStore(s.dir, inspectMethod, {})
  t.equal('map' in report && report.map.totals.data.pages, 0, 'read-only: the committed state')
  await s.store.close()
  t.strictSame(await callStore(s.dir, flushMethod, {}), { path: s.store.path })
  await t.rejects(callStore(join(s.dir, 'nothing'), flushMethod, {}), { code: 'ENOENT' })
  await t.rejects(callStore(s.dir, flushMethod, { force: true } as never), { code: 'EINVAL' }, 'params checked on a local run too')
})

t.test('a tree store is served the same way', async (t) => {
  const dir = t.testdir({ lower: { 'f.txt': 'lower text\n' } })
  const store = await TreeStore.create(join(dir, 'store'), { lower: join(dir, 'lower'), autoFlushMs: 0 })
  const control = await ControlServer.listen(store)
  t.teardown(async () => {
    await control.close()
    await store.close()
  })
  const h = await store.open('/f.txt', 'r+')
  await h.write(0, Buffer.from('UPPER'))
  await h.close()
  const tree = await callStore(join(dir, 'store'), inspectMethod, {})
  t.match(tree, { info: { kind: 'tree' }, changes: [{ path: '/f.txt', status: 'modified' }] })
  const file = await callStore(join(dir, 'store'), inspectMethod, { path: '/f.txt', width: 8 })
  t.match(file, { info: { path: '/f.txt' }, map: { width: 8, totals: { data: { pages: 1 } } } })
  await t.rejects(callStore(join(dir, 'store'), inspectMethod, { path: '/missing' }), { code: 'ENOENT' })
})

t.test('a stale socket (its server killed) is ignored by clients and replaced by the next server', async (t) => {
  const dir = shortDir(t)
  writeFileSync(join(dir, 'lower.img'), Buffer.alloc(1 << 20, 0x11))
  const storeDir = join(dir, 'store')
  await (await ImageStore.create(storeDir, { lower: join(dir, 'lower.img') })).close()
  // A process that binds STORE/control.sock and dies by SIGKILL leaves the socket behind.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(join(storeDir, 'control.sock'))}, () => console.log('up'))`], { env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] })
  await once(child.stdout, 'data')
  child.kill('SIGKILL')
  await once(child, 'exit')
  t.ok(lstatSync(join(storeDir, 'control.sock')).isSocket(), 'the stale socket is there')
  t.equal(await ControlClient.connect(storeDir), undefined, 'a client finds no server')
  t.strictSame(await callStore(storeDir, flushMethod, {}), { path: storeDir }, 'so the store is opened here')
  const store = await ImageStore.open(storeDir, { autoFlushMs: 0 })
  const control = await ControlServer.listen(store)
  t.teardown(async () => {
    await control.close()
    await store.close()
  })
  const client = await ControlClient.connect(storeDir)
  t.ok(client, 'the new server took the path')
  client?.close()
})

t.test('a live socket is not taken over', async (t) => {
  const s = await served(t)
  await t.rejects(ControlServer.listen(s.store), { code: 'EBUSY' })
  t.ok(await ControlClient.connect(s.dir).then((c) => (c?.close(), c !== undefined)), 'the first server still answers')
})

t.test('a client never trusts a control.sock the store did not make', async (t) => {
  const dir = shortDir(t)
  writeFileSync(join(dir, 'lower.img'), Buffer.alloc(1 << 20, 0x11))
  const storeDir = join(dir, 'store')
  await (await ImageStore.create(storeDir, { lower: join(dir, 'lower.img') })).close()
  const path = join(storeDir, 'control.sock')
  const plant: Array<[string, () => void]> = [
    ['a regular file', () => writeFileSync(path, 'not a socket')],
    ['a symlink to a socket elsewhere', () => symlinkSync(join(dir, 'elsewhere.sock'), path)],
    ['a directory', () => mkdirSync(path)],
  ]
  for (const [what, make] of plant) {
    make()
    await t.rejects(callStore(storeDir, flushMethod, {}), { code: 'EUNSAFE' }, what)
    await t.rejects(ImageStore.open(storeDir, { readOnly: true }), { code: 'EUNSAFE' }, `${what}: the store refuses it as any store file`)
    t.match((await checkStore(storeDir)).problems, [{ code: 'EUNSAFE', message: /control\.sock/ }], `${what}: fsck reports it`)
    rmSync(path, { recursive: true, force: true })
  }
  // A socket owned by another user (not root, not the store's owner): a server of theirs.
  const other = net.createServer()
  await new Promise<void>((r) => other.listen(path, r))
  t.teardown(() => other.close())
  chownSync(path, 12345, 12345)
  await t.rejects(callStore(storeDir, flushMethod, {}), { code: 'EUNSAFE', message: /uid 12345/ })
})

t.test('a store path longer than a socket address holds works (through /proc/self/fd)', async (t) => {
  const dir = join(t.testdir(), 'd'.repeat(120))
  mkdirSync(dir)
  const s = await served(t, dir)
  t.ok(Buffer.byteLength(s.control.path) > 108, `${Buffer.byteLength(s.control.path)} bytes`)
  t.ok(lstatSync(s.control.path).isSocket())
  await s.store.write(0, Buffer.from('x'))
  t.strictSame(await callStore(s.dir, flushMethod, {}), { path: s.store.path })
})

t.test('bad input table: each line gets an error with its code, the connection and the store go on', async (t) => {
  const s = await served(t)
  await s.store.write(PAGE, Buffer.alloc(PAGE, 0x5a))
  const peer = new Peer(s.control.path)
  t.teardown(() => peer.destroy())
  for (const bad of BAD_LINES) {
    peer.send(Buffer.concat([Buffer.from(bad.line), Buffer.from('\n')]))
    const reply = await peer.next()
    t.match(reply, { id: bad.id, error: { code: bad.code, message: String } }, bad.what)
  }
  peer.send('\n\r\n   \n') // blank lines are nothing
  peer.send('{"id": 99, "method": "flush"}\n')
  t.strictSame(await peer.next(), { id: 99, result: { path: s.store.path } }, 'then a good request is served on the same connection')
  t.ok((await s.store.read(PAGE, PAGE)).equals(Buffer.alloc(PAGE, 0x5a)), 'the store reads what was written')
  t.equal(s.control.connections, 1)
})

t.test('an over-long line gets an error and the connection is closed; others are served', async (t) => {
  const s = await served(t)
  for (const withNewline of [false, true]) {
    const peer = new Peer(s.control.path)
    t.teardown(() => peer.destroy())
    const huge = Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x61)
    peer.send(withNewline ? Buffer.concat([huge, Buffer.from('\n')]) : huge)
    t.match(await peer.next(), { id: null, error: { code: 'EINVAL', message: /longer than/ } }, withNewline ? 'with a newline' : 'without one')
    t.equal(await peer.next(), null, 'then hung up on')
  }
  // Lines up to the cap are fine: padding inside the JSON.
  const peer = new Peer(s.control.path)
  t.teardown(() => peer.destroy())
  const line = `{"id": 1, "method": "flush"${' '.repeat(MAX_REQUEST_BYTES - 40)}}`
  peer.send(`${line}\n`)
  t.strictSame(await peer.next(), { id: 1, result: { path: s.store.path } }, `a ${line.length}-byte line is served`)
})

t.test('peers that vanish mid-request, mid-line or mid-stream harm nothing', async (t) => {
  const s = await served(t)
  for (let i = 0; i < 20; i++) {
    await s.store.write(i * PAGE, Buffer.alloc(PAGE, i))
    const peer = new Peer(s.control.path)
    if (i % 3 === 0) peer.send('{"id": 1, "method": "flush"}\n{"id": 2, "method": "inspect"}\n')
    else if (i % 3 === 1) peer.send('{"id": 1, "meth')
    else peer.send('{"id": 1, "method": "watch", "params": {"events": ["flushed"]}}\n')
    await new Promise((r) => setTimeout(r, i % 4))
    peer.destroy()
  }
  await s.store.flush() // a stream whose peer is gone must not throw when the event comes
  t.ok(await waitUntil(() => s.control.connections === 0), 'every vanished peer is let go')
  t.equal(s.store.listenerCount('flush'), 0, 'no stream left listening to the store')
  t.strictSame(await callStore(s.dir, flushMethod, {}), { path: s.store.path }, 'still served')
  for (let i = 0; i < 20; i++) t.ok((await s.store.read(i * PAGE, PAGE)).equals(Buffer.alloc(PAGE, i)), `page ${i}`)
})

t.test('many peers at once: all served; past maxConnections one is told EBUSY', async (t) => {
  const s = await served(t)
  await s.store.write(0, Buffer.from('x'))
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => i % 2 ? callStore(s.dir, flushMethod, {}) : callStore(s.dir, inspectMethod, {})))
  t.equal(results.length, 40, '40 requests on 40 connections, all answered')
  await s.control.close()
  const small = await ControlServer.listen(s.store, { maxConnections: 3 })
  t.teardown(() => small.close())
  const peers = [0, 1, 2].map(() => new Peer(small.path))
  for (const [i, p] of peers.entries()) p.send(`{"id": ${i}, "method": "flush"}\n`)
  for (const p of peers) t.match(await p.next(), { result: { path: s.store.path } })
  const extra = new Peer(small.path)
  t.match(await extra.next(), { id: null, error: { code: 'EBUSY' } }, 'the fourth is refused')
  t.equal(await extra.next(), null, 'and hung up on')
  await t.rejects(callStore(s.dir, flushMethod, {}), { code: 'EBUSY' }, 'a client re-throws the refusal')
  peers.forEach((p) => p.destroy())
  t.ok(await waitUntil(() => small.connections === 0))
  t.strictSame(await callStore(s.dir, flushMethod, {}), { path: s.store.path }, 'room again once they leave')
})

t.test('a peer that does not read its replies is not served further (nor buffered for); others are', async (t) => {
  // A 64 GiB sparse lower: a map of 16 × 4096 cells, each reply about 460 KB of JSON.
  const dir = shortDir(t)
  const lower = join(dir, 'lower.img')
  writeFileSync(lower, '')
  truncateSync(lower, 64 * 2 ** 30)
  const store = await ImageStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  const control = await ControlServer.listen(store)
  t.teardown(async () => {
    await control.close()
    await store.close()
  })
  const slow = new Peer(control.path)
  t.teardown(() => slow.destroy())
  slow.socket.pause()
  const N = 200
  const held = () => {
    const m = process.memoryUsage()
    return m.heapUsed + m.arrayBuffers
  }
  const before = held()
  for (let i = 0; i < N; i++) slow.send(`{"id": ${i}, "method": "inspect", "params": {"width": 4096}}\n`)
  await new Promise((r) => setTimeout(r, 1000))
  const grew = held() - before
  t.ok(grew < 40e6, `the server holds ${(grew / 1e6).toFixed(1)} MB more, not the ${((N * 460e3) / 1e6).toFixed(0)} MB of every reply`)
  t.strictSame(await callStore(join(dir, 'store'), flushMethod, {}), { path: store.path }, 'another peer is served meanwhile')
  slow.socket.resume()
  for (let i = 0; i < N; i++) {
    const reply = await slow.next()
    if (reply?.id !== i || !('result' in reply)) {
      t.fail(`reply ${i}: ${JSON.stringify(reply).slice(0, 200)}`)
      return
    }
  }
  t.pass(`all ${N} replies, in order, once it reads`)
})

t.test('an idle peer is hung up on after idleTimeoutMs; a stream is not idle', async (t) => {
  const s = await served(t)
  await s.control.close()
  const control = await ControlServer.listen(s.store, { idleTimeoutMs: 200 })
  t.teardown(() => control.close())
  const idle = new Peer(control.path)
  const watching = new Peer(control.path)
  watching.send('{"id": 1, "method": "watch", "params": {"events": ["flushed"]}}\n')
  const started = Date.now()
  t.equal(await idle.next(), null, 'the idle peer is let go')
  t.ok(Date.now() - started >= 150, 'after the timeout')
  await new Promise((r) => setTimeout(r, 400))
  await s.store.write(0, Buffer.from('y'))
  await s.store.flush()
  t.match(await watching.next(), { id: 1, event: { event: 'flushed' } }, 'the watcher still gets events')
  watching.destroy()
})

t.test('watch: a stream of flushed events; the server ends it at close; abort ends it quietly', async (t) => {
  const s = await served(t)
  const events: WatchEvent[] = []
  const done = (async () => {
    for await (const e of watchStore(s.dir, watchMethod, { events: ['flushed'] })) {
      events.push(e)
      if (events.length === 2) await s.control.close() // the server stops: the stream ends
    }
  })()
  await waitUntil(() => s.store.listenerCount('flush') === 1)
  for (let i = 0; i < 2; i++) {
    await s.store.write(i * PAGE, Buffer.from('z'))
    await callStore(s.dir, flushMethod, {})
  }
  await done
  t.equal(events.length, 2)
  t.match(events[0], { event: 'flushed', at: /^\d{4}-\d\d-\d\dT/ })
  t.equal(s.store.listenerCount('flush'), 0, 'the stream let go of the store')

  const again = await ControlServer.listen(s.store)
  t.teardown(() => again.close())
  const stop = new AbortController()
  const seen: WatchEvent[] = []
  const watching = (async () => {
    for await (const e of watchStore(s.dir, watchMethod, { events: ['flushed'] }, { signal: stop.signal })) seen.push(e)
  })()
  await waitUntil(() => s.store.listenerCount('flush') === 1)
  await s.store.write(0, Buffer.from('w'))
  await s.store.flush()
  await waitUntil(() => seen.length === 1)
  stop.abort()
  await watching
  t.equal(seen.length, 1, 'aborting ends the watch without an error')
  t.ok(await waitUntil(() => s.store.listenerCount('flush') === 0), 'and the server stops the stream')
  await again.close()
  await t.rejects(
    (async () => {
      for await (const e of watchStore(s.dir, watchMethod, { events: ['flushed'] })) t.fail(`no event expected: ${JSON.stringify(e)}`)
    })(),
    { code: 'ENOENT', message: /no server/ },
    'no server: ENOENT',
  )
})

t.test('the server checks its peer\'s uid (SO_PEERCRED), and the mode keeps others out first', async (t) => {
  if (process.geteuid?.() !== 0) return cannotRun(t, 'not root: cannot run a peer as another user')
  // A directory others may traverse, so that only the socket's own mode stands in the way.
  const dir = shortDir(t)
  chmodSync(dir, 0o755)
  const s = await served(t, dir)
  chmodSync(s.dir, 0o755)
  /** Connect as uid/gid 65534 and print the first line, or the connect error's code. */
  const asNobody = async (): Promise<string> => {
    const script = `const c = require('net').connect(${JSON.stringify(s.control.path)}); c.on('error', (e) => { console.log(e.code); process.exit(0) }); c.on('data', (d) => { process.stdout.write(String(d)); process.exit(0) }); c.on('connect', () => c.write('{"id": 1, "method": "flush"}\\n'))`
    const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    await once(child, 'exit')
    return out.trim()
  }
  t.equal(await asNobody(), 'EACCES', 'mode 0600: another user cannot even connect')
  chmodSync(s.control.path, 0o666)
  const reply = JSON.parse(await asNobody()) as { id: null; error: { code: string; message: string } }
  t.match(reply, { id: null, error: { code: 'EACCES', message: /uid 65534/ } }, 'a loosened mode: the server refuses the peer by its uid')
  t.strictSame(await callStore(s.dir, flushMethod, {}), { path: s.store.path }, 'the owner is still served')
})

t.test('root serving a user\'s store gives the socket to the user, who is served', async (t) => {
  if (process.geteuid?.() !== 0) return cannotRun(t, 'not root: cannot serve another user\'s store')
  const dir = shortDir(t)
  chmodSync(dir, 0o755)
  const storeDir = join(dir, 'store')
  mkdirSync(storeDir)
  chownSync(storeDir, 65534, 65534)
  writeFileSync(join(dir, 'lower.img'), Buffer.alloc(1 << 20, 0x11))
  chmodSync(join(dir, 'lower.img'), 0o644)
  const store = await ImageStore.create(storeDir, { lower: join(dir, 'lower.img'), autoFlushMs: 0 })
  const control = await ControlServer.listen(store)
  t.teardown(async () => {
    await control.close()
    await store.close()
  })
  const st = lstatSync(control.path)
  t.equal(st.uid, 65534, 'the socket is the store owner\'s')
  t.equal(st.mode & 0o777, 0o600)
  const script = `const c = require('net').connect(${JSON.stringify(control.path)}); c.on('error', (e) => { console.log(e.code); process.exit(0) }); c.on('data', (d) => { process.stdout.write(String(d)); process.exit(0) }); c.on('connect', () => c.write('{"id": 1, "method": "flush"}\\n'))`
  const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await once(child, 'exit')
  t.strictSame(JSON.parse(out), { id: 1, result: { path: storeDir } }, 'the owner (uid 65534) is served by root\'s server')
  t.ok((await checkStore(storeDir)).problems.every((p) => !/control\.sock/.test(p.message)), 'fsck finds nothing wrong with the socket')
})

t.test('a peer that stops reading a stream is cut off, not buffered for', async (t) => {
  const s = await served(t)
  const peer = new Peer(s.control.path)
  t.teardown(() => peer.destroy())
  peer.send('{"id": 1, "method": "watch", "params": {"events": ["flushed"]}}\n')
  t.ok(await waitUntil(() => s.store.listenerCount('flush') === 1), 'the stream is on')
  peer.socket.pause()
  // 100 000 events of about 60 bytes (6 MB): more than the 4 MiB a stream may leave unread.
  let emitted = 0
  while (emitted < 100_000 && s.store.listenerCount('flush') > 0) {
    s.store.emit('flush')
    emitted++
  }
  t.equal(s.store.listenerCount('flush'), 0, `the server stopped the stream (after ${emitted} events)`)
  t.ok(await waitUntil(() => s.control.connections === 0), 'and let the peer go')
  peer.socket.resume()
  let events = 0
  for (let reply = await peer.next(); reply !== null; reply = await peer.next()) events++
  t.ok(events > 1000 && events < 100_000, `the peer read what was sent before the cut (${events} events), then the end`)
  t.strictSame(await callStore(s.dir, flushMethod, {}), { path: s.store.path }, 'others are served')
})

t.test('close() takes no new request, finishes the one in flight, ends streams and hangs up', async (t) => {
  const s = await served(t)
  const busy = new Peer(s.control.path)
  const watching = new Peer(s.control.path)
  t.teardown(() => {
    busy.destroy()
    watching.destroy()
  })
  watching.send('{"id": 7, "method": "watch", "params": {"events": ["flushed"]}}\n')
  t.ok(await waitUntil(() => s.store.listenerCount('flush') === 1))
  const N = 2000
  busy.send(Array.from({ length: N }, (_, i) => `{"id": ${i}, "method": "inspect"}\n`).join(''))
  t.match(await busy.next(), { id: 0, result: {} }, 'the first is answered')
  const started = Date.now()
  await s.control.close()
  t.ok(Date.now() - started < 2000, `close() took ${Date.now() - started} ms`)
  let answered = 1
  for (let reply = await busy.next(); reply !== null; reply = await busy.next()) {
    if (reply.id !== answered || !('result' in reply)) t.fail(`reply ${answered}: ${JSON.stringify(reply).slice(0, 100)}`)
    answered++
  }
  t.ok(answered < N, `${answered} of ${N} pipelined requests answered, in order, then the end`)
  t.strictSame(await watching.next(), { id: 7, end: true }, 'a stream is told it ended')
  t.equal(await watching.next(), null, 'then hung up on')
  t.throws(() => lstatSync(s.control.path), { code: 'ENOENT' })
})

t.test('ControlClient re-throws an unknown error code from a newer server as EIO', async (t) => {
  const dir = shortDir(t)
  writeFileSync(join(dir, 'lower.img'), Buffer.alloc(1 << 20, 0x11))
  const storeDir = join(dir, 'store')
  await (await ImageStore.create(storeDir, { lower: join(dir, 'lower.img') })).close()
  const replies: Record<string, string> = {
    unknownCode: '{"id": 1, "error": {"code": "EFUTURE", "message": "from the future"}}',
    garbage: 'this is not json',
    wrongShape: '{"id": 1, "result": {"path": 42}}',
    extraKey: '{"id": 1, "result": {"path": "/x"}, "also": 1}',
  }
  const expected: Record<string, { code: string; message?: RegExp }> = {
    unknownCode: { code: 'EIO', message: /from the future/ },
    garbage: { code: 'EIO', message: /malformed/ },
    wrongShape: { code: 'EIO', message: /not what this pagecow expects/ },
    extraKey: { code: 'EIO', message: /malformed/ },
  }
  for (const [name, line] of Object.entries(replies)) {
    const fake = net.createServer((c) => c.once('data', () => c.write(`${line}\n`)))
    await new Promise<void>((r) => fake.listen(join(storeDir, 'control.sock'), r))
    await t.rejects(callStore(storeDir, flushMethod, {}), expected[name]!, name)
    await new Promise<void>((r) => fake.close(() => r()))
  }
  const hangUp = net.createServer((c) => c.once('data', () => c.destroy()))
  await new Promise<void>((r) => hangUp.listen(join(storeDir, 'control.sock'), r))
  await t.rejects(callStore(storeDir, flushMethod, {}), { code: 'EIO', message: /closed the connection/ }, 'a server that hangs up')
  await new Promise<void>((r) => hangUp.close(() => r()))
})

/** Poll `check` until it holds; false after `ms`. */
async function waitUntil(check: () => boolean, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) return false
    await new Promise((r) => setTimeout(r, 10))
  }
  return true
}

