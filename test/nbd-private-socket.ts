// listenPrivately: a Unix socket only its owner can reach from the moment it exists, even under
// `umask 000` and with another user racing the server's start; stale sockets replaced, live ones not.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { listenPrivately } from '../lib/nbd/private-socket.js'
import { childEnv } from './fixtures/child-env.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { makeImageStore, shortTempDir } from './fixtures/nbd-served.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')
/** The system's python3 (not a per-user shim another user cannot run). */
const PYTHON = '/usr/bin/python3'

async function closeServer(server: net.Server): Promise<void> {
  if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
}

t.test('the socket is 0600 under umask 000, is removed by remove(), and leaves no private directory', async (t) => {
  const dir = shortTempDir(t)
  const path = join(dir, 'nbd.sock')
  const server = net.createServer((s) => s.end('hi'))
  const old = process.umask(0)
  let socket
  try {
    socket = await listenPrivately(server, path)
  } finally {
    process.umask(old)
  }
  t.teardown(() => closeServer(server))
  t.equal(lstatSync(path).mode & 0o777, 0o600, 'owner only, whatever the umask')
  t.ok(lstatSync(path).isSocket())
  t.same(readdirSync(dir), ['nbd.sock'], 'the private directory it was bound in is gone')
  const c = net.connect(path)
  const [data] = (await once(c, 'data')) as [Buffer]
  t.equal(data.toString(), 'hi', 'clients reach the server through the path')
  c.destroy()
  socket.remove()
  t.notOk(existsSync(path), 'remove() unlinks it')
})

t.test('remove() leaves alone a socket that is no longer ours', async (t) => {
  const dir = shortTempDir(t)
  const path = join(dir, 'nbd.sock')
  const server = net.createServer()
  const socket = await listenPrivately(server, path)
  await closeServer(server)
  const other = net.createServer()
  t.teardown(() => closeServer(other))
  await listenPrivately(other, path) // replaces ours, stale now
  const { ino } = lstatSync(path)
  socket.remove()
  t.equal(lstatSync(path).ino, ino, "the other server's socket is still there")
})

t.test('a stale socket is replaced; a live one, or any other file, is EBUSY and left as it was', async (t) => {
  const dir = shortTempDir(t)
  const path = join(dir, 's.sock')
  // A server killed with SIGKILL leaves its socket file behind.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`])
  t.ok(existsSync(path), 'a stale socket file is left')
  const first = net.createServer()
  t.teardown(() => closeServer(first))
  await listenPrivately(first, path)
  t.equal(lstatSync(path).mode & 0o777, 0o600, 'the stale one was replaced')

  const second = net.createServer()
  await t.rejects(listenPrivately(second, path), { code: 'EBUSY' }, 'someone listens there')
  t.equal(second.listening, false, 'the refused server does not listen anywhere')
  const file = join(dir, 'plain')
  writeFileSync(file, 'keep me')
  await t.rejects(listenPrivately(net.createServer(), file), { code: 'EBUSY' }, 'a regular file is not a stale socket')
  t.ok(lstatSync(file).isFile(), 'and it is not removed')
  t.same(readdirSync(dir).sort(), ['plain', 's.sock'], 'no private directory left behind by the failures')
})

t.test('bad paths: a clear error, nothing created', async (t) => {
  const dir = shortTempDir(t)
  const cases: Array<[string, string, string]> = [
    ['no such directory', join(dir, 'missing', 's.sock'), 'ENOENT'],
    ['a file as the directory', join(dir, 'file', 's.sock'), 'ENOENT'],
    ['too long for sun_path', join(dir, 'x'.repeat(110)), 'ENAMETOOLONG'],
    ['a directory too long for the private one beside it', join(dir, 'd'.repeat(96 - dir.length), 's'), 'ENAMETOOLONG'],
    ['a trailing slash', `${join(dir, 'sock')}/`, 'EINVAL'],
  ]
  writeFileSync(join(dir, 'file'), '')
  mkdirSync(join(dir, 'd'.repeat(96 - dir.length)))
  for (const [name, path, code] of cases) {
    const server = net.createServer()
    await t.rejects(listenPrivately(server, path), { code }, name)
    t.equal(server.listening, false, `${name}: not listening`)
  }
  t.same(readdirSync(dir).sort(), ['d'.repeat(96 - dir.length), 'file'].sort(), 'nothing left behind')
  t.same(readdirSync(join(dir, 'd'.repeat(96 - dir.length))), [])
})

/**
 * A Python client that, as `user` (or root), waits with inotify for names to appear in the
 * socket's directory and then lstat()s and connect()s to `path` in a tight loop for a few
 * milliseconds, so it acts within microseconds of the socket's creation. Ends when `stopFile`
 * appears.
 */
function racer(path: string, stopFile: string, user: string | undefined) {
  const script = `
import ctypes, errno, json, os, socket, struct, sys, time
path, stop = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
IN_CREATE, IN_MOVED_TO = 0x100, 0x80
if fd < 0 or libc.inotify_add_watch(fd, os.path.dirname(path).encode(), IN_CREATE | IN_MOVED_TO) < 0:
    sys.exit("inotify: " + os.strerror(ctypes.get_errno()))
print("ready", flush=True)
seen, modes, errs, tries = 0, set(), {}, 0
def attempt():
    global seen, tries
    tries += 1
    try:
        modes.add(os.lstat(path).st_mode & 0o777)
    except OSError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        seen += 1
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno))
        errs[name] = errs.get(name, 0) + 1
    finally:
        s.close()
while not os.path.exists(stop):
    os.read(fd, 4096)
    end = time.monotonic() + 0.02
    while time.monotonic() < end:
        attempt()
print(json.dumps({"connected": seen, "modes": sorted(modes), "errors": errs, "tries": tries}), flush=True)
`
  const args = user ? ['--reuid', user, '--regid', 'nogroup', '--clear-groups', PYTHON, '-c', script, path, stopFile] : ['-c', script, path, stopFile]
  const child = spawn(user ? 'setpriv' : PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.startsWith('ready\n')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`racer exited ${code}: ${err}`)))
  })
  const result = new Promise<{ connected: number; modes: number[]; errors: Record<string, number>; tries: number }>((resolve, reject) => {
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out.slice(out.indexOf('\n') + 1)))
      } catch {
        reject(new Error(`racer exited ${code}: ${err}`))
      }
    })
  })
  return { child, ready, result }
}

/** Start `pagecow serve STORE --socket PATH` under umask 000, wait for its URI, stop it with SIGTERM. */
async function serveOnce(t: Test, store: string, path: string): Promise<void> {
  const child = spawn('sh', ['-c', 'umask 000 && exec "$@"', 'sh', process.execPath, '--import', 'tsx', BIN, 'serve', store, '--socket', path], {
    cwd: ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('\n')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)))
  })
  child.kill('SIGTERM')
  await once(child, 'exit')
}

t.test('serve --socket under umask 000: another user never connects, even racing the start', async (t) => {
  if (process.getuid?.() !== 0) return cannotRun(t, 'needs root, to run the racing client as another user (nobody)')
  if (!existsSync(PYTHON)) return cannotRun(t, `needs ${PYTHON} for the racing client (apt-get install python3)`)
  if (spawnSync('setpriv', ['--version']).status !== 0) return cannotRun(t, 'needs setpriv (util-linux) to drop to another user')
  const store = await makeImageStore(t)
  const dir = shortTempDir(t)
  chmodSync(dir, 0o755) // the directory lets everybody in: only the socket's own mode may keep them out
  const path = join(dir, 'nbd.sock')

  const stopFile = join(dir, 'stop')
  const nobody = racer(path, stopFile, 'nobody')
  await nobody.ready
  for (let i = 0; i < 4; i++) await serveOnce(t, store, path)
  writeFileSync(stopFile, '')
  const seen = await nobody.result
  t.comment(`nobody: ${JSON.stringify(seen)}`)
  t.equal(seen.connected, 0, 'nobody never connected')
  t.same(seen.modes, [0o600], 'the socket was never seen with any mode but 0600')
  t.ok((seen.errors.EACCES ?? 0) > 0, 'nobody found the socket and was refused (EACCES), not merely too late')

  // The control: the same client as root does connect, so the loop above could have.
  const stopRoot = join(dir, 'stop-root')
  const root = racer(path, stopRoot, undefined)
  await root.ready
  await serveOnce(t, store, path)
  writeFileSync(stopRoot, '')
  const rootSeen = await root.result
  t.ok(rootSeen.connected > 0, `root, racing the same way, connects (${rootSeen.connected} times)`)
})
