// The life of a mount: SIGTERM flushes and unmounts; SIGKILL leaves a dead mount that
// `pagecow umount` clears, with every fsync'ed write kept; a read-only mount refuses writes with
// EROFS (and SIGINT ends it); a busy mount refuses to unmount until --lazy, which detaches it at
// once (with nothing open, --lazy waits for the store to be free, as umount does); and bad inputs
// of `pagecow mount` / `pagecow umount`, from a table, each fail with a clear error and lose nothing.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { checkTreeStore, TreeStore } from '../lib/index.js'
import {
  checkNothingLeftMounted,
  fuseUsable,
  isMounted,
  kill,
  mountStore,
  mountTestDir,
  pagecow,
  pidAlive,
  python,
  sh,
  unmount,
  unmountAndWait,
  waitFor,
  type Mounted,
} from './fixtures/fuse-mounted.js'
import { treeChecksum } from './fixtures/tree-lower.js'

interface Fixture {
  dir: string
  lower: string
  storeDir: string
  mnt: string
  lowerSum: string
}

/** A small lower tree, a tree store over it, and an empty mount point. */
async function fixture(t: Test): Promise<Fixture> {
  const dir = mountTestDir(t)
  const lower = join(dir, 'lower')
  mkdirSync(join(lower, 'etc'), { recursive: true })
  writeFileSync(join(lower, 'etc/hosts'), '127.0.0.1 localhost\n')
  writeFileSync(join(lower, 'big'), Buffer.alloc(64 * 1024, 'b'))
  const storeDir = join(dir, 'store')
  await (await TreeStore.create(storeDir, { lower })).close()
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  return { dir, lower, storeDir, mnt, lowerSum: treeChecksum(lower) }
}

/** Read `path` in a store opened read-only (the mount must be gone or read-only). */
async function readInStore(storeDir: string, path: string): Promise<string> {
  const store = await TreeStore.open(storeDir, { readOnly: true })
  try {
    const h = await store.open(path, 'r')
    const data = await h.read(0, (await h.stat()).size)
    await h.close()
    return data.toString()
  } finally {
    await store.close()
  }
}

/**
 * Send `signal` to the daemon: it must flush, unmount and exit by itself. If it does not, end it
 * (SIGKILL aborts its connection) so the rest of the test can look at the store.
 */
async function stopWith(t: Test, m: Mounted, signal: NodeJS.Signals): Promise<void> {
  process.kill(m.pid, signal)
  const exited = await waitFor(() => !pidAlive(m.pid), 10_000)
  t.ok(exited, `${signal}: the daemon exits`)
  if (!exited) {
    kill(m.pid)
    await waitFor(() => !pidAlive(m.pid) && !isMounted(m.mountpoint), 10_000)
  }
  t.notOk(isMounted(m.mountpoint), `${signal}: the mount is gone`)
}

if (fuseUsable(t, ['python3'])) {
  t.test('SIGTERM to the daemon flushes, unmounts and exits', async (t) => {
    const f = await fixture(t)
    const m = await mountStore(t, f.storeDir, f.mnt)
    // Written, never fsync'ed: only the daemon's flush on SIGTERM makes these durable.
    const w = await sh('echo unflushed > new.txt && printf X | dd of=big bs=1 seek=40000 conv=notrunc status=none && mkdir d', f.mnt)
    t.equal(w.code, 0, w.stderr)
    await stopWith(t, m, 'SIGTERM')
    t.match(readFileSync(join(f.storeDir, 'mount.log'), 'utf8'), /SIGTERM: flushing and unmounting/, 'it said why, in STORE/mount.log')
    const store = await TreeStore.open(f.storeDir) // for writing: the lock is free
    t.teardown(() => store.close())
    const h = await store.open('/new.txt', 'r')
    t.equal((await h.read(0, 100)).toString(), 'unflushed\n', 'the unflushed file is there')
    await h.close()
    const big = await store.open('/big', 'r')
    t.equal((await big.read(39_999, 3)).toString(), 'bXb', 'the unflushed write is there')
    await big.close()
    t.equal((await store.stat('/d')).type, 'directory')
    await store.close()
    t.ok((await checkTreeStore(f.storeDir)).clean, 'fsck: clean')
    t.equal(treeChecksum(f.lower), f.lowerSum, 'the lower is untouched')
  })

  t.test('SIGKILL leaves a dead mount: umount clears it, fsync’ed data is kept, it mounts again', async (t) => {
    const f = await fixture(t)
    const m = await mountStore(t, f.storeDir, f.mnt)
    const synced = await python<string>(
      t,
      `import os
fd = os.open('synced.txt', os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b'durable\\n')
os.fsync(fd)
os.close(fd)
fd = os.open('big', os.O_WRONLY)
os.pwrite(fd, b'KEPT', 4096 * 3)
os.fsync(fd)
os.close(fd)
print('"ok"')`,
      f.mnt,
    )
    t.equal(synced, 'ok')
    process.kill(m.pid, 'SIGKILL')
    t.ok(await waitFor(() => !pidAlive(m.pid)), 'the daemon is dead')
    t.ok(isMounted(f.mnt), 'its mount is left behind')
    t.throws(() => statSync(f.mnt), { code: /^(ENOTCONN|ECONNABORTED)$/ }, 'and is dead: ENOTCONN or ECONNABORTED')
    const again = await pagecow(['mount', f.storeDir, f.mnt])
    t.equal(again.code, 1, 'mounting over the dead mount fails')
    t.match(again.stderr, /^pagecow: .*server died.*pagecow umount.* \(EBUSY\)\n$/, 'saying what to do')
    const u = await unmount(f.mnt)
    t.equal(u.code, 0, `pagecow umount clears it${u.stderr ? `: ${u.stderr}` : ''}`)
    t.notOk(isMounted(f.mnt), 'no longer mounted')
    const fsck = await pagecow(['fsck', f.storeDir])
    t.equal(fsck.code, 0, `pagecow fsck: clean${fsck.stderr ? `: ${fsck.stderr}` : ''}`)
    t.match(fsck.stdout, /clean/)
    t.equal(await readInStore(f.storeDir, '/synced.txt'), 'durable\n', 'the fsync’ed new file is there')
    t.equal((await readInStore(f.storeDir, '/big')).slice(4096 * 3 - 1, 4096 * 3 + 5), 'bKEPTb', 'the fsync’ed write is there')
    const m2 = await mountStore(t, f.storeDir, f.mnt)
    t.equal(readFileSync(join(f.mnt, 'synced.txt'), 'utf8'), 'durable\n', 'mounted again, it serves the data')
    writeFileSync(join(f.mnt, 'after.txt'), 'after\n')
    await unmountAndWait(t, m2)
    t.equal(await readInStore(f.storeDir, '/after.txt'), 'after\n')
    t.ok((await checkTreeStore(f.storeDir)).clean, 'fsck: clean')
    t.equal(treeChecksum(f.lower), f.lowerSum, 'the lower is untouched')
  })

  t.test('a read-only mount refuses every write with EROFS; SIGINT ends it', async (t) => {
    const f = await fixture(t)
    const m = await mountStore(t, f.storeDir, f.mnt, ['--read-only'])
    const outcomes = await python<Record<string, string>>(
      t,
      `import os, errno, json
out = {}
def attempt(label, f):
    try:
        f()
        out[label] = 'ok'
    except OSError as e:
        out[label] = errno.errorcode[e.errno]
attempt('read', lambda: open('etc/hosts').read())
attempt('open O_RDWR', lambda: os.open('etc/hosts', os.O_RDWR))
attempt('open O_WRONLY|O_TRUNC', lambda: os.open('big', os.O_WRONLY | os.O_TRUNC))
attempt('create', lambda: os.open('new', os.O_CREAT | os.O_WRONLY, 0o644))
attempt('mkdir', lambda: os.mkdir('d'))
attempt('unlink', lambda: os.unlink('big'))
attempt('rmdir', lambda: os.rmdir('etc'))
attempt('rename', lambda: os.rename('big', 'big2'))
attempt('link', lambda: os.link('big', 'big2'))
attempt('symlink', lambda: os.symlink('big', 'big2'))
attempt('chmod', lambda: os.chmod('big', 0o600))
attempt('truncate', lambda: os.truncate('big', 0))
attempt('utime', lambda: os.utime('big', (0, 0)))
attempt('setxattr', lambda: os.setxattr('big', 'user.x', b'1'))
print(json.dumps(out))`,
      f.mnt,
    )
    const { read, ...writes } = outcomes
    t.equal(read, 'ok', 'reads work')
    t.same(Object.entries(writes).filter(([, v]) => v !== 'EROFS'), [], 'every write: EROFS')
    t.ok(Object.keys(writes).length >= 13)
    await stopWith(t, m, 'SIGINT')
    t.equal(treeChecksum(f.lower), f.lowerSum, 'the lower is untouched')
    t.ok((await checkTreeStore(f.storeDir)).clean)
  })

  t.test('umount --lazy of a mount with nothing open waits until the store is released, as umount does', async (t) => {
    const f = await fixture(t)
    const m = await mountStore(t, f.storeDir, f.mnt)
    writeFileSync(join(f.mnt, 'written.txt'), 'written\n')
    const r = await unmount(f.mnt, ['--lazy', '--json'])
    t.equal(r.code, 0, r.stderr)
    t.same(JSON.parse(r.stdout), { mountpoint: f.mnt, store: f.storeDir })
    t.notOk(isMounted(f.mnt), 'unmounted')
    const store = await TreeStore.open(f.storeDir)
    t.pass('the store opens for writing right after: its server let go of it')
    await store.close()
    t.equal(await readInStore(f.storeDir, '/written.txt'), 'written\n', 'with what was written')
    t.ok(await waitFor(() => !pidAlive(m.pid)), 'the daemon exited')
  })

  t.test('umount --abort frees what waits on a server that hangs, detaches the busy mount; the server then flushes and lets go', async (t) => {
    const f = await fixture(t)
    const m = await mountStore(t, f.storeDir, f.mnt)
    writeFileSync(join(f.mnt, 'before.txt'), 'written before the hang\n')
    // A program with its working directory on the mount keeps it busy.
    const resident = spawn('sleep', ['60'], { cwd: f.mnt, stdio: 'ignore' })
    t.teardown(() => resident.kill())
    // A stopped server is a hung one: a stat on the mount waits for it (attributes are cached
    // for a second, so ask about a name never looked up).
    process.kill(m.pid, 'SIGSTOP')
    t.teardown(() => {
      if (pidAlive(m.pid)) process.kill(m.pid, 'SIGCONT')
    })
    const stuck = spawn('stat', [join(f.mnt, 'never-looked-up')], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stuckErr = ''
    stuck.stderr.on('data', (d: Buffer) => (stuckErr += d.toString()))
    const stuckExit = new Promise<number | null>((resolve) => stuck.once('close', (code) => resolve(code)))
    t.notOk(await waitFor(() => stuck.exitCode !== null, 500), 'the stat hangs on the stopped server')
    // Let the server run again once the connection is cut: it must then flush and exit.
    const umount = unmount(f.mnt, ['--abort', '--json'])
    t.ok(await waitFor(() => !isMounted(f.mnt), 10_000), 'the mount is gone')
    t.not(await stuckExit, 0, 'the stuck stat returned with an error')
    t.match(stuckErr, /connection abort|not connected/, `it says why: ${stuckErr.trim()}`)
    process.kill(m.pid, 'SIGCONT')
    const r = await umount
    t.equal(r.code, 0, `umount --abort${r.stderr ? `: ${r.stderr}` : ''}`)
    t.same(JSON.parse(r.stdout), { mountpoint: f.mnt, store: f.storeDir })
    t.ok(await waitFor(() => !pidAlive(m.pid), 10_000), 'the daemon exited')
    t.equal(await readInStore(f.storeDir, '/before.txt'), 'written before the hang\n', 'what it had was flushed')
    t.ok((await checkTreeStore(f.storeDir)).clean, 'fsck: clean')
    t.equal(treeChecksum(f.lower), f.lowerSum, 'the lower is untouched')
  })

  t.test('bad inputs of mount and umount: a clear error, exit 1, nothing lost; a busy mount', async (t) => {
    const f = await fixture(t)
    const m = await mountStore(t, f.storeDir, f.mnt)
    writeFileSync(join(f.mnt, 'kept.txt'), 'kept\n')
    const other = join(f.dir, 'other-store')
    await (await TreeStore.create(other, { lower: f.lower })).close()
    // Each failing mount opens its store for writing first: one store per row, so rows run at once.
    let stores = 0
    const store = async () => {
      const path = join(f.dir, `store-${++stores}`)
      await (await TreeStore.create(path, { lower: f.lower })).close()
      return path
    }
    const file = join(f.dir, 'a-file')
    writeFileSync(file, 'not a directory\n')
    const notStore = join(f.dir, 'not-a-store')
    mkdirSync(join(notStore, 'sub'), { recursive: true })
    const spare = (name: string) => {
      const p = join(f.dir, name)
      mkdirSync(p)
      return p
    }
    // Another file system mounted: `pagecow umount` must leave it alone.
    const tmpfs = spare('tmpfs')
    const tm = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'pagecow-test', tmpfs], { encoding: 'utf8' })
    t.equal(tm.status, 0, `a tmpfs to not unmount${tm.stderr ? `: ${tm.stderr}` : ''}`)
    t.teardown(() => void spawnSync('umount', [tmpfs]))
    writeFileSync(join(tmpfs, 'file'), 'on tmpfs\n')

    await (await TreeStore.create(join(f.dir, 'store-self'), { lower: f.lower })).close()
    // Each row exits 1 (the command failed), or 2 (`usage`: the command line itself is wrong).
    const rows: Array<{ name: string; args: string[]; code: string; message: RegExp; notMounted?: string; usage?: true }> = [
      { name: 'mount: the mount point does not exist', args: ['mount', await store(), join(f.dir, 'nowhere')], code: 'ENOENT', message: /does not exist/ },
      { name: 'mount: the mount point is a file', args: ['mount', await store(), file], code: 'ENOTDIR', message: /not a directory/, notMounted: file },
      { name: 'mount: the mount point is already mounted', args: ['mount', other, f.mnt], code: 'EBUSY', message: /already mounted/ },
      { name: 'mount: the store is already mounted elsewhere', args: ['mount', f.storeDir, spare('second')], code: 'EBUSY', message: /open for writing by pid \d+/, notMounted: join(f.dir, 'second') },
      { name: 'mount: the store does not exist', args: ['mount', join(f.dir, 'no-store'), spare('m3')], code: 'ENOENT', message: /no pagecow store/, notMounted: join(f.dir, 'm3') },
      { name: 'mount: a directory that is not a store', args: ['mount', notStore, spare('m4')], code: 'ENOENT', message: /no pagecow store/, notMounted: join(f.dir, 'm4') },
      { name: 'mount: an unknown option', args: ['mount', await store(), spare('m5'), '--bogus'], code: 'EINVAL', message: /unknown option '--bogus'/, notMounted: join(f.dir, 'm5'), usage: true },
      { name: 'mount: no mount point', args: ['mount', await store()], code: 'EINVAL', message: /missing required argument 'MOUNTPOINT'/, usage: true },
      // Mounted over what the server reads, it would wait on itself for ever: refused.
      { name: 'mount: over the store’s own lower', args: ['mount', await store(), f.lower], code: 'EINVAL', message: /overlaps .*which the store reads/, notMounted: f.lower },
      { name: 'mount: over the store directory itself', args: ['mount', join(f.dir, 'store-self'), join(f.dir, 'store-self')], code: 'EINVAL', message: /overlaps/, notMounted: join(f.dir, 'store-self') },
      { name: 'umount: a directory that is not a mount', args: ['umount', notStore], code: 'EINVAL', message: /is not a pagecow mount/ },
      { name: 'umount: another file system’s mount', args: ['umount', tmpfs], code: 'EINVAL', message: /is not a pagecow mount/ },
      { name: 'umount: a path that does not exist', args: ['umount', join(f.dir, 'nowhere')], code: 'EINVAL', message: /is not a pagecow mount/ },
      { name: 'umount: an unknown option', args: ['umount', f.mnt, '--bogus'], code: 'EINVAL', message: /unknown option '--bogus'/, usage: true },
      { name: 'umount: a bad --wait-ms', args: ['umount', f.mnt, '--wait-ms', 'soon'], code: 'EINVAL', message: /--wait-ms/, usage: true },
    ]
    // Independent rows: run them at once (each is a separate CLI process).
    const results = await Promise.all(rows.map((row) => pagecow(row.args)))
    rows.forEach((row, i) => {
      const r = results[i]!
      t.equal(r.code, row.usage ? 2 : 1, `${row.name}: exit ${row.usage ? 2 : 1}`)
      t.match(r.stderr, new RegExp(`^pagecow: .* \\(${row.code}\\)\\n`), `${row.name}: a one-line error with code ${row.code}`)
      t.match(r.stderr, row.message, `${row.name}: the message says what is wrong`)
      t.notMatch(r.stderr, /\n\s+at /, `${row.name}: no stack trace`)
      if (row.notMounted) t.notOk(isMounted(row.notMounted), `${row.name}: nothing mounted there`)
    })
    t.ok(isMounted(f.mnt), 'the store is still mounted')
    t.equal(readFileSync(join(f.mnt, 'kept.txt'), 'utf8'), 'kept\n', 'and serves what was written')
    t.equal(readFileSync(join(tmpfs, 'file'), 'utf8'), 'on tmpfs\n', 'the tmpfs is still mounted')
    t.same(readdirSync(notStore), ['sub'], 'a directory that is not a store is left as it was (no mount.log)')
    t.notOk(existsSync(join(f.dir, 'no-store')), 'no store directory was made')

    // Busy: a file open on the mount. umount refuses; --lazy detaches; the daemon ends at the close.
    const holder = spawn('python3', ['-c', 'import sys; f = open(sys.argv[1]); print("open", flush=True); sys.stdin.read(); print(f.read(), end="")', join(f.mnt, 'kept.txt')], { stdio: ['pipe', 'pipe', 'inherit'] })
    let held = ''
    holder.stdout.on('data', (d: Buffer) => (held += d.toString()))
    t.teardown(() => void holder.kill('SIGKILL'))
    t.ok(await waitFor(() => held.startsWith('open')), 'a process holds a file open on the mount')
    const busy = await unmount(f.mnt)
    t.equal(busy.code, 1, 'umount of a busy mount fails')
    t.match(busy.stderr, /busy.* \(EBUSY\)\n$/, 'with EBUSY')
    t.ok(isMounted(f.mnt), 'the mount stays')
    t.equal(readFileSync(join(f.mnt, 'kept.txt'), 'utf8'), 'kept\n', 'and works')
    const lazyStarted = Date.now()
    const lazy = await unmount(f.mnt, ['--lazy'])
    t.equal(lazy.code, 0, `--lazy succeeds though the file stays open${lazy.stderr ? `: ${lazy.stderr}` : ''}`)
    t.ok(Date.now() - lazyStarted < 30_000, `at once, not after the 60 s wait for the store (${Date.now() - lazyStarted} ms)`)
    t.notOk(isMounted(f.mnt), '--lazy detaches it')
    t.ok(pidAlive(m.pid), 'the daemon serves the open file meanwhile')
    const closed = new Promise<number | null>((resolve) => holder.once('exit', resolve))
    holder.stdin.end()
    t.equal(await closed, 0, 'the holder still reads its file through the detached mount')
    t.equal(held, 'open\nkept\n')
    t.ok(await waitFor(() => !pidAlive(m.pid)), 'the last close ends the daemon')
    t.equal(await readInStore(f.storeDir, '/kept.txt'), 'kept\n', 'nothing was lost')
    t.ok((await checkTreeStore(f.storeDir)).clean, 'fsck: clean')
    for (const path of [other, ...Array.from({ length: stores }, (_, i) => join(f.dir, `store-${i + 1}`))]) {
      t.ok((await checkTreeStore(path)).clean, `${path.slice(f.dir.length + 1)}: clean`)
    }
    t.equal(treeChecksum(f.lower), f.lowerSum, 'the lower is untouched')
  })
}

checkNothingLeftMounted(t)
