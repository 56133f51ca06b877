// Running servers are controllable: `pagecow flush`, `inspect` and `watch` against a store that a
// real `pagecow mount` (FUSE) or `pagecow serve` (NBD) daemon holds, through its control socket.
// A flush through the socket makes the data durable (the server is then SIGKILLed and the store
// reopened), inspect shows pages the server has not flushed, a killed server's stale socket is
// harmless, and the real servers survive the bad-input table and keep serving.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, lstatSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { checkStore, checkTreeStore, ImageStore, TreeStore } from '../lib/index.js'
import { NBD_CMD_WRITE } from '../lib/nbd/protocol.js'
import { childEnv } from './fixtures/child-env.js'
import { serveOnSocket } from './fixtures/pagecow-serve.js'
import { BAD_LINES, ControlPeer } from './fixtures/control-peer.js'
import { runCli } from './fixtures/cli-io.js'
import { fuseUsable, kill, mountStore, mountTestDir, pagecow, pidAlive, ROOT, unmount, waitFor } from './fixtures/fuse-mounted.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { makeImageStore } from './fixtures/nbd-served.js'

const PAGE = 4096
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')

interface InspectJson {
  info: { readOnly: boolean; pages: { data: number } }
  map: { cells: string[]; pagesPerCell: number; totals: { data: { pages: number } } }
}

/** The state drawn for `page` in the report's map. */
const cellOf = (report: InspectJson, page: number) => report.map.cells[Math.floor(page / report.map.pagesPerCell)]

/** `pagecow inspect STORE --json` as a real process: its exit code and report. */
async function inspectJson(t: Test, store: string, args: string[] = []): Promise<InspectJson> {
  const r = await pagecow(['inspect', store, '--json', ...args])
  t.equal(r.code, 0, `pagecow inspect exits 0${r.stderr ? `: ${r.stderr.trim()}` : ''}`)
  return JSON.parse(r.stdout) as InspectJson
}

/** Committed DATA pages, as a read-only open (what inspect showed before the control socket) sees them. */
async function committedDataPages(store: string): Promise<number> {
  const ro = await ImageStore.open(store, { readOnly: true })
  try {
    return ro.info().pages.data
  } finally {
    await ro.close()
  }
}

/**
 * Write one page (through `write`, which must not flush) and return the page once inspect through
 * the server shows it while the store on disk does not have it yet: the server's autoflush (every
 * 5 s) may commit it in between, and then the next page is tried.
 */
async function showsUnflushed(t: Test, store: string, write: (page: number) => Promise<void>): Promise<number> {
  for (let page = 8; page < 16; page++) {
    await write(page)
    const before = await committedDataPages(store)
    const report = await inspectJson(t, store)
    const after = await committedDataPages(store)
    if (before === after && report.map.totals.data.pages === after + 1) {
      t.pass(`page ${page}: inspect through the server shows ${report.map.totals.data.pages} DATA pages, the store on disk ${after}`)
      t.equal(cellOf(report, page), 'data', 'the written page is drawn as data')
      return page
    }
    t.comment(`page ${page}: the server flushed meanwhile (${before} -> ${after}); again`)
  }
  t.fail('inspect never showed an unflushed page')
  return -1
}

t.test('pagecow mount (image): inspect shows unflushed pages, flush makes them durable', async (t) => {
  if (!fuseUsable(t)) return
  const dir = mountTestDir(t)
  writeFileSync(join(dir, 'disk.raw'), Buffer.alloc(4 << 20, 0x11))
  const store = join(dir, 'store')
  t.equal((await runCli(['create', store, '--lower', join(dir, 'disk.raw')])).code, 0)
  mkdirSync(join(dir, 'mnt'))
  const m = await mountStore(t, store, join(dir, 'mnt'))
  const sock = lstatSync(join(store, 'control.sock'))
  t.ok(sock.isSocket() && (sock.mode & 0o777) === 0o600, 'the daemon made STORE/control.sock, mode 0600')
  const writePage = async (page: number) => {
    const fd = openSync(m.image!, 'r+')
    writeSync(fd, Buffer.alloc(PAGE, 0xa0 + page), 0, PAGE, page * PAGE) // no fsync: not durable
    closeSync(fd)
  }
  const page = await showsUnflushed(t, store, writePage)
  const served = await inspectJson(t, store)
  t.equal(served.info.readOnly, false, 'the report is the server\'s: its store is open for writing')

  const flushed = await pagecow(['flush', store])
  t.strictSame([flushed.code, flushed.stdout, flushed.stderr], [0, `flushed ${store}\n`, ''], 'pagecow flush: as on a closed store')
  t.ok(pidAlive(m.pid), 'the server goes on serving')
  kill(m.pid) // SIGKILL: whatever was not flushed is lost
  t.ok(await waitFor(() => !pidAlive(m.pid)), 'the server is dead')
  await unmount(m.mountpoint) // the dead mount

  const reopened = await ImageStore.open(store, { readOnly: true })
  t.ok((await reopened.read(page * PAGE, PAGE)).equals(Buffer.alloc(PAGE, 0xa0 + page)), 'the flushed page survived SIGKILL')
  await reopened.close()
  t.ok((await checkStore(store)).clean, 'fsck: clean')
  t.ok(lstatSync(join(store, 'control.sock')).isSocket(), 'the killed server left its socket')
  const closed = await inspectJson(t, store)
  t.strictSame(closed.map, served.map, 'inspect of the closed store (the stale socket ignored) draws the map the server drew')
  const again = await pagecow(['flush', store])
  t.strictSame([again.code, again.stdout], [0, `flushed ${store}\n`], 'flush of the closed store')
})

t.test('pagecow mount (tree): inspect lists unflushed changes and a file\'s pages; flush; SIGKILL; all there', async (t) => {
  if (!fuseUsable(t)) return
  const dir = mountTestDir(t)
  mkdirSync(join(dir, 'lower', 'etc'), { recursive: true })
  writeFileSync(join(dir, 'lower', 'etc', 'hosts'), 'localhost\n')
  const store = join(dir, 'store')
  t.equal((await runCli(['create', store, '--lower', join(dir, 'lower')])).code, 0)
  mkdirSync(join(dir, 'mnt'))
  const m = await mountStore(t, store, join(dir, 'mnt'))
  writeFileSync(join(m.mountpoint, 'etc', 'motd'), Buffer.alloc(3 * PAGE, 0x4d))
  const listed = await pagecow(['inspect', store, '--json'])
  t.equal(listed.code, 0, listed.stderr)
  const tree = JSON.parse(listed.stdout) as { changes: Array<{ path: string; status: string; pages?: { copied: number } }> }
  t.match(tree.changes, [{ path: '/etc/motd', status: 'new', pages: { copied: 3 } }], 'the new file, its pages')
  const file = await pagecow(['inspect', store, '/etc/motd'])
  t.equal(file.code, 0, file.stderr)
  t.match(file.stdout, /^file {3}\/etc\/motd/m, 'inspect STORE PATH draws the file\'s map')
  t.match(file.stdout, /█ data +3 +12\.0 KiB/, 'three DATA pages')
  const missing = await pagecow(['inspect', store, '/etc/nothing'])
  t.equal(missing.code, 1, 'an error on the server is exit 1 here')
  t.match(missing.stderr, /^pagecow: .*\(ENOENT\)\n$/, 'printed as every error is')
  const flushed = await pagecow(['flush', store])
  t.strictSame([flushed.code, flushed.stdout], [0, `flushed ${store}\n`])
  kill(m.pid)
  t.ok(await waitFor(() => !pidAlive(m.pid)))
  await unmount(m.mountpoint)
  const reopened = await TreeStore.open(store, { readOnly: true })
  const h = await reopened.open('/etc/motd')
  t.ok((await h.read(0, 3 * PAGE)).equals(Buffer.alloc(3 * PAGE, 0x4d)), 'the file survived SIGKILL')
  await h.close()
  await reopened.close()
  t.ok((await checkTreeStore(store)).clean, 'fsck: clean')
})


/** An NBD client that writes `page` (no FLUSH) and stays connected. */
async function nbdWrite(t: Test, socket: string, page: number, byte: number): Promise<RawClient> {
  const c = await RawClient.connect(socket)
  t.teardown(() => c.destroy())
  await c.start()
  await c.go()
  c.request(NBD_CMD_WRITE, page * PAGE, PAGE, { data: Buffer.alloc(PAGE, byte) })
  t.equal((await c.reply()).errno, 0, `NBD write of page ${page}`)
  return c
}

t.test('pagecow serve (NBD): inspect shows unflushed pages, flush makes them durable, a stale socket is replaced', async (t) => {
  const store = await makeImageStore(t)
  const s = await serveOnSocket(t, store)
  let client: RawClient | undefined
  const page = await showsUnflushed(t, store, async (p) => {
    client ??= await nbdWrite(t, s.socket, p, 0xc0 + p)
    if (p !== 8) {
      client.request(NBD_CMD_WRITE, p * PAGE, PAGE, { data: Buffer.alloc(PAGE, 0xc0 + p) })
      t.equal((await client.reply()).errno, 0)
    }
  })
  const flushed = await pagecow(['flush', store])
  t.strictSame([flushed.code, flushed.stdout, flushed.stderr], [0, `flushed ${store}\n`, ''])
  s.child.kill('SIGKILL')
  await once(s.child, 'exit')
  t.ok(lstatSync(join(store, 'control.sock')).isSocket(), 'the killed server left its socket')
  const reopened = await ImageStore.open(store, { readOnly: true })
  t.ok((await reopened.read(page * PAGE, PAGE)).equals(Buffer.alloc(PAGE, 0xc0 + page)), 'the flushed page survived SIGKILL')
  await reopened.close()
  t.ok((await checkStore(store)).clean, 'fsck: clean')

  const again = await serveOnSocket(t, store) // takes the stale socket's place
  await nbdWrite(t, again.socket, 20, 0xee)
  const report = await inspectJson(t, store)
  t.equal(cellOf(report, 20), 'data', 'the new server answers on the socket')
  again.child.kill('SIGTERM')
  t.equal((await once(again.child, 'exit'))[0], 0, 'SIGTERM: exit 0')
  t.throws(() => lstatSync(join(store, 'control.sock')), { code: 'ENOENT' }, 'a server that stops removes its socket')
})

t.test('pagecow watch: flushed events as JSON lines from a running server; SIGINT ends it (exit 0)', async (t) => {
  const store = await makeImageStore(t)
  const noServer = await runCli(['watch', store])
  t.equal(noServer.code, 1)
  t.match(noServer.stderr, /no server is running .*\(ENOENT\)/)
  const bad = await runCli(['watch', store, '--events', 'flushed,everything'])
  t.equal(bad.code, 2, 'an unknown event is a usage error')
  const s = await serveOnSocket(t, store)
  const watch = spawn(process.execPath, ['--import', 'tsx', BIN, 'watch', store, '--events', 'flushed'], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (watch.exitCode === null && watch.signalCode === null) watch.kill('SIGKILL')
  })
  let out = ''
  watch.stdout.on('data', (d: Buffer) => (out += d.toString()))
  // The watch connects once it has started: flush until it reports one (each flush is an event).
  let seen = false
  for (let i = 0; i < 60 && !seen; i++) {
    t.equal((await pagecow(['flush', store])).code, 0)
    seen = await waitFor(() => out.includes('\n'), 500)
  }
  t.ok(seen, 'an event arrived')
  const first = JSON.parse(out.split('\n')[0]!) as { event: string; at: string }
  t.equal(first.event, 'flushed')
  t.ok(!Number.isNaN(Date.parse(first.at)), 'with its time')
  watch.kill('SIGINT')
  const [code] = (await once(watch, 'exit')) as [number | null]
  t.equal(code, 0, 'SIGINT: exit 0')
  s.child.kill('SIGTERM')
  await once(s.child, 'exit')
})

t.test('a real server survives the bad-input table and keeps serving NBD and control requests', async (t) => {
  const store = await makeImageStore(t)
  const s = await serveOnSocket(t, store)
  const client = await nbdWrite(t, s.socket, 3, 0x77)
  const peer = new ControlPeer(join(store, 'control.sock'))
  t.teardown(() => peer.destroy())
  for (const bad of BAD_LINES) {
    peer.send(Buffer.concat([Buffer.from(bad.line), Buffer.from('\n')]))
    t.match(await peer.next(), { id: bad.id, error: { code: bad.code } }, bad.what)
  }
  const vanishing = new ControlPeer(join(store, 'control.sock'))
  vanishing.send('{"id": 1, "method": "flush"}\n{"id": 2, "meth')
  vanishing.destroy()
  const huge = new ControlPeer(join(store, 'control.sock'))
  huge.send(Buffer.alloc(1 << 20, 0x7b))
  t.match(await huge.next(), { id: null, error: { code: 'EINVAL' } }, 'a megabyte without a newline: refused')
  const read = await client.read(3 * PAGE, PAGE)
  t.ok(read.errno === 0 && read.data.equals(Buffer.alloc(PAGE, 0x77)), 'NBD still serves the page')
  const flushed = await pagecow(['flush', store])
  t.equal(flushed.code, 0, 'flush through the socket still works')
  s.child.kill('SIGTERM')
  t.equal((await once(s.child, 'exit'))[0], 0, 'and the server stops cleanly')
  t.ok((await checkStore(store)).clean, 'fsck: clean')
})
