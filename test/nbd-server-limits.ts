// The server's bounds against clients that misbehave (issue 9): memory across all connections
// (slow readers, unfinished WRITEs), and the idle timeout (silent clients cannot lock others out).
import { spawn, type ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { ImageStore, NbdServer, type DisconnectReason } from '../lib/index.js'
import { NBD_CMD_READ, NBD_CMD_WRITE, NBD_REP_ERR_POLICY } from '../lib/nbd/protocol.js'
import { childEnv } from './fixtures/child-env.js'
import { runCli } from './fixtures/cli-io.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { makeImageStore, shortTempDir } from './fixtures/nbd-served.js'

const MiB = 1024 * 1024
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')

/** A store over a lower of `size` random bytes (READ replies then carry data, not holes). */
async function dataStore(t: Test, size: number): Promise<string> {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  const fd = openSync(lower, 'w')
  const block = Buffer.alloc(4 * MiB)
  try {
    for (let pos = 0; pos < size; pos += block.length) writeSync(fd, randomFillSync(block), 0, block.length, pos)
  } finally {
    closeSync(fd)
  }
  const store = await ImageStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
  await store.close()
  return join(dir, 'store')
}

interface Served {
  store: ImageStore
  server: NbdServer
  socket: string
  warnings: Error[]
  disconnects: Array<{ id: number; reason: DisconnectReason }>
}

async function serve(t: Test, storePath: string, options: Parameters<typeof NbdServer.listen>[1]): Promise<Served> {
  const store = await ImageStore.open(storePath, { autoFlushMs: 0 })
  const socket = join(shortTempDir(t), 'nbd.sock')
  const server = await NbdServer.listen(store, { socket, ...options })
  const warnings: Error[] = []
  const disconnects: Array<{ id: number; reason: DisconnectReason }> = []
  server.on('warning', (err: Error) => warnings.push(err))
  server.on('disconnect', (d: { id: number; reason: DisconnectReason }) => disconnects.push(d))
  t.teardown(async () => {
    await server.close()
    await store.close()
  })
  return { store, server, socket, warnings, disconnects }
}

async function client(t: Test, socket: string): Promise<RawClient> {
  const c = await RawClient.connect(socket)
  t.teardown(() => c.destroy())
  await c.start()
  await c.go()
  return c
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await sleep(20)
  }
}

/** VmRSS and VmHWM of a process, in bytes. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1]) * 1024
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') }
}

/** `pagecow serve ...args` as a child; resolves once it prints its URI. */
async function serveCli(t: Test, args: string[]): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, 'serve', ...args], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  await new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('\n')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`pagecow serve exited ${code}: ${stderr}`)))
  })
  return { child, stderr: () => stderr }
}

t.test('slow readers: the server stays within its memory limit, during and after, and good clients are served', async (t) => {
  const limit = 64 * MiB
  const storePath = await dataStore(t, 64 * MiB)
  const socket = join(shortTempDir(t), 'nbd.sock')
  const s = await serveCli(t, [storePath, '--socket', socket, '--memory-limit', '64M', '--idle-timeout-ms', '1500'])
  const pid = s.child.pid as number
  // The server's own memory before any client: what it needs to run, warmed by one full read.
  const warm = await client(t, socket)
  for (let pos = 0; pos < 64 * MiB; pos += 4 * MiB) t.equal((await warm.read(pos, 4 * MiB)).errno, 0)
  warm.destroy()
  await sleep(200)
  const baseline = memoryOf(pid).rss
  // Limit plus what is not data: 64 clients' reader buffers at most, V8's heap and code growing.
  const bound = baseline + limit + 64 * MiB

  // Six clients each ask for sixteen 32 MiB READs (3 GiB in all) and read nothing.
  const slow: RawClient[] = []
  for (let i = 0; i < 6; i++) {
    const c = await RawClient.connect(socket)
    t.teardown(() => c.destroy())
    await c.start()
    await c.go({ structured: i % 2 === 0 })
    c.socket.pause()
    for (let j = 0; j < 16; j++) c.request(NBD_CMD_READ, (j % 2) * 32 * MiB, 32 * MiB)
    slow.push(c)
  }
  let peak = 0
  for (let i = 0; i < 10; i++) {
    await sleep(100)
    peak = Math.max(peak, memoryOf(pid).rss)
  }
  t.ok(peak <= bound, `RSS with the slow readers connected: ${(peak / MiB).toFixed(0)} MiB, within ${(bound / MiB).toFixed(0)} MiB (baseline ${(baseline / MiB).toFixed(0)} + limit ${limit / MiB} + 64)`)

  // A good client meanwhile: it waits for room at most until the stalled ones are cut off.
  const good = await client(t, socket)
  const started = Date.now()
  const r = await good.read(5 * MiB, MiB)
  t.equal(r.errno, 0, 'the good client is served')
  t.ok(Date.now() - started < 5000, `within the idle timeout and a check (${Date.now() - started} ms)`)
  // Thrown away unread: a client that stops reading at its high-water mark would never see the end.
  slow.forEach((c) => c.reader.discard())
  await Promise.all(slow.map((c) => c.closed()))
  t.pass('the slow readers were disconnected')
  await until('the server logged why', () => /made no progress for 1500 ms while holding/.test(s.stderr()))
  t.equal(s.stderr().match(/made no progress/g)?.length, 6, 'one warning per slow reader, on stderr')
  for (let i = 0; i < 5; i++) t.equal((await good.read(i * 8 * MiB, 4 * MiB)).errno, 0)
  good.destroy()
  await sleep(300)
  const after = memoryOf(pid)
  t.ok(after.rss <= bound, `RSS after they left: ${(after.rss / MiB).toFixed(0)} MiB`)
  t.ok(after.hwm <= bound, `and the high-water mark of the whole run: ${(after.hwm / MiB).toFixed(0)} MiB`)
  const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)))
  s.child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM still stops the server cleanly')
})

t.test('memory is counted across connections: a READ waits for room, then is served', async (t) => {
  const s = await serve(t, await dataStore(t, 64 * MiB), { memoryLimit: 32 * MiB, idleTimeoutMs: 0 })
  const hog = await client(t, s.socket)
  hog.socket.pause()
  hog.request(NBD_CMD_READ, 0, 32 * MiB) // the whole budget, never read
  await until('the hog holds the budget', () => s.server.memoryUsed === 32 * MiB)
  const other = await client(t, s.socket)
  let answered = false
  const read = other.read(0, 4096).then((r) => {
    answered = true
    return r
  })
  await sleep(300)
  t.notOk(answered, 'a second client waits while the first holds every byte')
  t.equal(s.server.memoryUsed, 32 * MiB)
  t.equal((await hog.reply()).errno, 0, 'the hog reads its reply at last')
  t.equal((await read).errno, 0, 'then the second client is served')
  await until('all memory is back', () => s.server.memoryUsed === 0)
  t.same(s.warnings, [])
})

t.test('a WRITE whose payload stops half-way holds memory: cut off after the idle timeout', async (t) => {
  const s = await serve(t, await makeImageStore(t), { idleTimeoutMs: 300 })
  const c = await client(t, s.socket)
  const header = Buffer.alloc(28)
  header.writeUInt32BE(0x25609513, 0)
  header.writeUInt16BE(NBD_CMD_WRITE, 6)
  header.writeUInt32BE(8 * MiB, 24)
  c.socket.write(Buffer.concat([header, Buffer.alloc(MiB, 1)])) // 1 MiB of 8, then nothing
  await until('the payload is reserved', () => s.server.memoryUsed === 8 * MiB)
  const started = Date.now()
  await c.closed()
  t.ok(Date.now() - started >= 200, `not before the timeout (${Date.now() - started} ms)`)
  await until('memory is back', () => s.server.memoryUsed === 0)
  t.match(s.disconnects, [{ reason: 'stalled' }])
  t.match(s.warnings.map((w) => w.message), [/made no progress for 300 ms while holding 8388608 bytes/])
  t.ok((await s.store.read(0, MiB)).equals(Buffer.alloc(MiB)), 'nothing of the unfinished WRITE was stored')
})

t.test('a slow but steady reader keeps its connection', async (t) => {
  const s = await serve(t, await dataStore(t, 16 * MiB), { idleTimeoutMs: 400 })
  const c = await client(t, s.socket)
  // 12 READs of 1 MiB, 4 in flight, each reply left unread for 250 ms: 3 s in all, while the
  // server's queue stands still 250 ms at a time.
  let sent = 0
  const send = () => c.request(NBD_CMD_READ, (sent++ % 16) * MiB, MiB)
  for (let i = 0; i < 4; i++) send()
  for (let done = 0; done < 12; done++) {
    await sleep(250)
    t.equal((await c.reply()).errno, 0)
    if (sent < 12) send()
  }
  t.same(s.disconnects, [], 'never disconnected')
  t.same(s.warnings, [])
})

t.test('silent clients: a full server makes room by disconnecting the one idle longest', async (t) => {
  const s = await serve(t, await makeImageStore(t), { maxConnections: 3, idleTimeoutMs: 1500 })
  const silent: RawClient[] = []
  for (let i = 0; i < 3; i++) {
    silent.push(await client(t, s.socket))
    await sleep(300) // more than an idle check apart (a quarter of the timeout)
  }
  const early = await RawClient.connect(s.socket)
  t.teardown(() => early.destroy())
  await early.start()
  await t.rejects(early.go({ structured: false }), { reply: NBD_REP_ERR_POLICY, message: /busy/ }, 'before the timeout: the server is busy')
  early.destroy()

  await sleep(1000)
  t.equal(s.server.connections, 3, 'idle clients keep their slots while nobody else wants one')
  // The second one stays active; the first is the idlest.
  silent[1]!.request(NBD_CMD_READ, 0, 512)
  await silent[1]!.reply()
  await sleep(200)
  const late = await client(t, s.socket)
  t.equal((await late.read(0, 4096)).errno, 0, 'after the timeout a newcomer is served')
  await silent[0]!.closed()
  t.pass('the client idle longest was disconnected')
  t.match(s.disconnects, [{ reason: 'idle' }])
  t.equal(s.server.connections, 3)
  silent[1]!.request(NBD_CMD_READ, 0, 512)
  t.equal((await silent[1]!.reply()).errno, 0, 'the others are still served')
  t.same(s.warnings, [], 'making room is routine: no warning')
})

t.test('an idle client alone is never disconnected; with idleTimeoutMs 0 nobody is', async (t) => {
  const s = await serve(t, await makeImageStore(t), { maxConnections: 1, idleTimeoutMs: 0 })
  const c = await client(t, s.socket)
  c.socket.pause()
  c.request(NBD_CMD_READ, 0, 4 * MiB) // holds memory and never reads
  await sleep(600)
  const other = await RawClient.connect(s.socket)
  t.teardown(() => other.destroy())
  await other.start()
  await t.rejects(other.go({ structured: false }), { reply: NBD_REP_ERR_POLICY, message: /busy/ }, 'no timeout: the slot stays taken')
  c.socket.resume()
  t.equal((await c.reply()).errno, 0, 'and the old client is still served')
  t.same(s.disconnects, [])

  const t2 = await serve(t, await makeImageStore(t), { idleTimeoutMs: 200 })
  const alone = await client(t, t2.socket)
  await sleep(700)
  t.equal((await alone.read(0, 4096)).errno, 0, 'an idle client with the default policy and room to spare keeps its connection')
  t.same(t2.disconnects, [])
})

t.test('bad options: NbdServer and pagecow serve refuse them with EINVAL', async (t) => {
  const storePath = await makeImageStore(t)
  const store = await ImageStore.open(storePath, { autoFlushMs: 0 })
  t.teardown(() => store.close())
  const bad: Array<[string, unknown]> = [
    ['memoryLimit under one largest request', { memoryLimit: 32 * MiB - 1 }],
    ['memoryLimit not an integer', { memoryLimit: 64 * MiB + 0.5 }],
    ['memoryLimit as a string', { memoryLimit: '64M' }],
    ['memoryLimit over 1 TiB', { memoryLimit: 2 ** 41 }],
    ['idleTimeoutMs negative', { idleTimeoutMs: -1 }],
    ['idleTimeoutMs between 0 and 100', { idleTimeoutMs: 50 }],
    ['idleTimeoutMs not an integer', { idleTimeoutMs: 1000.5 }],
    ['idleTimeoutMs misspelled', { idleTimeout: 1000 }],
  ]
  for (const [name, options] of bad) {
    await t.rejects(NbdServer.listen(store, { socket: join(shortTempDir(t), 's'), ...(options as object) }), { code: 'EINVAL' }, name)
  }
  const cli: Array<[string, string[], RegExp]> = [
    ['--memory-limit too small', ['--memory-limit', '1M'], /--memory-limit: must be at least 32\.0 MiB/],
    ['--memory-limit not a size', ['--memory-limit', 'lots'], /--memory-limit:/],
    ['--memory-limit negative', ['--memory-limit', '-64M'], /--memory-limit:/],
    ['--idle-timeout-ms negative', ['--idle-timeout-ms', '-1'], /--idle-timeout-ms: must be a whole number/],
    ['--idle-timeout-ms too short', ['--idle-timeout-ms', '50'], /--idle-timeout-ms: must be 0 \(never\) or at least 100/],
    ['--idle-timeout-ms with a unit', ['--idle-timeout-ms', '30s'], /--idle-timeout-ms: must be a whole number/],
    ['--idle-timeout-ms too long', ['--idle-timeout-ms', String(2 ** 31)], /--idle-timeout-ms:/],
  ]
  for (const [name, args, message] of cli) {
    const run = await runCli(['serve', storePath, '--socket', join(shortTempDir(t), 's'), ...args])
    t.equal(run.code, 2, `${name}: exit 2, a usage error`)
    t.match(run.stderr, message, name)
    t.match(run.stderr, /\(EINVAL\)/, `${name}: EINVAL`)
    t.equal(run.stdout, '', `${name}: nothing on stdout`)
  }
})
