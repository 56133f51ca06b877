// Mounts with --writeback-cache (the kernel caches writes and sends them later, larger), each
// case also run on a default mount and, where the kernel has its own answer, on a plain directory:
// another handle sees a write at once; after fsync the store has it (the CLI reads it while the
// mount runs, and it survives SIGKILL of the server); O_APPEND still appends; a write by a user
// without CAP_FSETID clears set-user-ID, and any write drops security.capability, as on ext4.
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { checkTreeStore, ImageStore, StoreMount, TreeStore } from '../lib/index.js'
import {
  checkNothingLeftMounted,
  fuseUsable,
  isMounted,
  mountStore,
  mountTestDir,
  pagecow,
  pidAlive,
  python,
  run,
  unmount,
  unmountAndWait,
  waitFor,
  type Mounted,
} from './fixtures/fuse-mounted.js'

const NOBODY = 65534
/** The system's python3: one under /root (pyenv) cannot be run by nobody. */
const PYTHON = '/usr/bin/python3'
const MODES: Array<[string, string[]]> = [
  ['--writeback-cache', ['--writeback-cache']],
  ['default', []],
]

interface Fixture {
  dir: string
  lower: string
  storeDir: string
  mnt: string
  /** A plain directory holding a copy of the lower: the kernel's own answers. */
  plain: string
}

async function fixture(t: Test, name: string): Promise<Fixture> {
  const dir = join(mountTestDir(t), name)
  const lower = join(dir, 'lower')
  const plain = join(dir, 'plain')
  for (const d of [lower, plain]) {
    mkdirSync(d, { recursive: true })
    writeFileSync(join(d, 'log.txt'), 'lower line\n')
    writeFileSync(join(d, 'big'), Buffer.alloc(256 * 1024, 'b'))
    writeFileSync(join(d, 'setuid'), 'x'.repeat(100))
    chmodSync(join(d, 'setuid'), 0o4777)
    writeFileSync(join(d, 'capable'), 'y'.repeat(100))
    chmodSync(join(d, 'capable'), 0o755)
  }
  chmodSync(plain, 0o777)
  const storeDir = join(dir, 'store')
  await (await TreeStore.create(storeDir, { lower })).close()
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  return { dir, lower, storeDir, mnt, plain }
}

/** SIGKILL the server, clear its dead mount: what is in the store now is what survived. */
async function killServer(t: Test, m: Mounted): Promise<void> {
  process.kill(m.pid, 'SIGKILL')
  t.ok(await waitFor(() => !pidAlive(m.pid)), 'the server is dead')
  const u = await unmount(m.mountpoint)
  t.equal(u.code, 0, `pagecow umount clears the dead mount${u.stderr ? `: ${u.stderr}` : ''}`)
  t.notOk(isMounted(m.mountpoint), 'nothing mounted')
}

async function readInStore(storeDir: string, path: string): Promise<Buffer> {
  const store = await TreeStore.open(storeDir, { readOnly: true })
  try {
    const h = await store.open(path, 'r')
    const data = await h.read(0, (await h.stat()).size)
    await h.close()
    return data
  } finally {
    await store.close()
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

if (fuseUsable(t, ['python3', 'setpriv', 'dd', 'cp', 'tar', PYTHON])) {
  for (const [mode, args] of MODES) {
    t.test(`${mode}: another handle sees a write at once; after fsync the CLI reads it while mounted, and it survives SIGKILL of the server`, async (t) => {
      const f = await fixture(t, 'handles')
      const m = await mountStore(t, f.storeDir, f.mnt, args)
      t.equal(m.writebackCache, args.length > 0, `pagecow mount --json: writebackCache ${args.length > 0}`)
      const data = randomBytes(300_000)
      writeFileSync(join(f.dir, 'data.bin'), data)
      const seen = await python<{ size: number; sameBytes: boolean; bigPiece: string; mmap: string }>(
        t,
        `import os, sys, mmap, hashlib
data = open('../data.bin', 'rb').read()
w = os.open('new.bin', os.O_CREAT | os.O_WRONLY, 0o644)
os.write(w, data)
r = os.open('new.bin', os.O_RDONLY)           # a second handle, the first still open
got = os.pread(r, len(data) + 10, 0)
size = os.fstat(r).st_size
b = os.open('big', os.O_RDWR)                 # a lower file: a write in its middle, by mmap too
os.pwrite(b, b'HELLO', 100000)
mm = mmap.mmap(b, 0)
mm[200000:200005] = b'MMAP!'
mm.flush()
piece = os.pread(os.open('big', os.O_RDONLY), 5, 100000)
os.fsync(w)
os.fsync(b)
print('{"size": %d, "sameBytes": %s, "bigPiece": "%s", "mmap": "%s"}' % (size, 'true' if got == data else 'false', piece.decode(), mm[200000:200005].decode()))
sys.stdout.flush()
os._exit(0)                                   # nothing closed: only fsync made it durable`,
        f.mnt,
      )
      t.same(seen, { size: data.length, sameBytes: true, bigPiece: 'HELLO', mmap: 'MMAP!' }, 'the second handle sees every byte and the size; a write to a lower file reads back')
      const cli = await pagecow(['read', f.storeDir, '/new.bin', '--output', join(f.dir, 'via-cli.bin')])
      t.equal(cli.code, 0, `pagecow read while mounted${cli.stderr ? `: ${cli.stderr}` : ''}`)
      t.equal(sha(readFileSync(join(f.dir, 'via-cli.bin'))), sha(data), 'the CLI reads the fsync’ed file from the store while it is mounted')
      await killServer(t, m)
      t.equal(sha(await readInStore(f.storeDir, '/new.bin')), sha(data), 'after SIGKILL: the fsync’ed new file')
      const big = await readInStore(f.storeDir, '/big')
      t.equal(big.subarray(100000, 100005).toString(), 'HELLO', 'after SIGKILL: the fsync’ed pwrite')
      t.equal(big.subarray(200000, 200005).toString(), 'MMAP!', 'after SIGKILL: the fsync’ed mmap write')
      t.ok((await checkTreeStore(f.storeDir)).clean, 'fsck: clean')
    })

    t.test(`${mode}: data written and not yet sent to the store is found by SEEK_DATA/SEEK_HOLE; cp --sparse=always and tar --sparse copy it whole`, async (t) => {
      const f = await fixture(t, 'sparse')
      const m = await mountStore(t, f.storeDir, f.mnt, args)
      // Nothing synced and the writer's handle still open: with the write cache the store has none
      // of it when the copies run.
      const script = `import os, sys, json, subprocess, hashlib
os.chdir(sys.argv[1])
fd = os.open('sparse', os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.ftruncate(fd, 4 << 20)
os.pwrite(fd, b'D' * 4096, 1 << 20)
os.pwrite(fd, b'E' * 100, (3 << 20) + 5)
data = []
at = 0
while True:
    try:
        start = os.lseek(fd, at, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, start, os.SEEK_HOLE)
    data.append([start, end])
    at = end
written = [[1 << 20, (1 << 20) + 4096], [(3 << 20) + 5, (3 << 20) + 105]]
out = {'covered': all(any(a <= s and e <= b for a, b in data) for s, e in written)}
want = hashlib.sha256(open('sparse', 'rb').read()).hexdigest()
subprocess.run(['cp', '--sparse=always', 'sparse', sys.argv[2] + '/copy'], check=True)
out['cp'] = hashlib.sha256(open(sys.argv[2] + '/copy', 'rb').read()).hexdigest() == want
subprocess.run(['tar', '--sparse', '-cf', sys.argv[2] + '/a.tar', 'sparse'], check=True)
os.makedirs(sys.argv[2] + '/x', exist_ok=True)
subprocess.run(['tar', '-xf', sys.argv[2] + '/a.tar', '-C', sys.argv[2] + '/x'], check=True)
out['tar'] = hashlib.sha256(open(sys.argv[2] + '/x/sparse', 'rb').read()).hexdigest() == want
os.close(fd)  # only now: a close sends the cached pages to the store
print(json.dumps(out))`
      for (const [name, dir] of [
        ['plain', f.plain],
        ['mount', f.mnt],
      ] as const) {
        const copies = join(f.dir, `copies-${name}`)
        mkdirSync(copies)
        const got = await python<Record<string, boolean>>(t, script, dir, [dir, copies])
        t.same(got, { covered: true, cp: true, tar: true }, `${name}: every written byte lies in a data range; cp and tar copy the file whole`)
      }
      await unmountAndWait(t, m)
    })

    t.test(`${mode}: O_APPEND appends; set-user-ID cleared by a write of a user without CAP_FSETID; security.capability dropped by any write, as on ext4`, async (t) => {
      const f = await fixture(t, 'privileges')
      const m = await mountStore(t, f.storeDir, f.mnt, [...args, '--allow-other']) // nobody writes too
      const script = `import os, sys, struct, json
os.chdir(sys.argv[1])
out = {}
fd = os.open('log.txt', os.O_WRONLY | os.O_APPEND)
os.write(fd, b'one\\n')
os.pwrite(fd, b'two\\n', 0) if hasattr(os, 'pwrite') else None
os.close(fd)
fd = os.open('fresh.txt', os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
os.write(fd, b'a')
os.write(fd, b'b')
os.close(fd)
out['log'] = open('log.txt').read()
out['fresh'] = open('fresh.txt').read()
# VFS_CAP_REVISION_2 | effective, CAP_NET_BIND_SERVICE permitted
os.setxattr('capable', 'security.capability', struct.pack('<IIIII', 0x02000001, 1 << 10, 0, 0, 0))
out['capBefore'] = 'security.capability' in os.listxattr('capable')
fd = os.open('capable', os.O_WRONLY)
os.write(fd, b'Z')
os.fsync(fd)
os.close(fd)
out['capAfter'] = 'security.capability' in os.listxattr('capable')
# As rpm does: write a program, give it a capability through the open file, then close it.
fd = os.open('installed', os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o755)
os.write(fd, b'\x7fELF' + b'p' * 5000)
os.setxattr(fd, 'security.capability', struct.pack('<IIIII', 0x02000001, 1 << 13, 0, 0, 0))
os.close(fd)
out['capSetAfterWrite'] = 'security.capability' in os.listxattr('installed')
print(json.dumps(out))`
      const want = await python<Record<string, unknown>>(t, script, f.plain, [f.plain])
      const got = await python<Record<string, unknown>>(t, script, f.mnt, [f.mnt])
      t.same(want.capBefore, true, 'the plain directory took the capability')
      t.same(got, want, 'appends, and the capability dropped by a write, as on the plain directory')
      t.equal(got.log, 'lower line\none\ntwo\n', 'O_APPEND: every write at the end (pwrite too, as Linux does)')
      t.equal(got.capSetAfterWrite, true, 'a capability given after the write, before the close, stays')
      // A write by nobody to a world-writable set-user-ID file: the bit goes, on ext4 and here.
      const modes: Record<string, string> = {}
      for (const [name, dir] of [
        ['plain', f.plain],
        ['mount', f.mnt],
      ] as const) {
        const r = await run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', PYTHON, '-c', 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY); os.write(fd, b"N"); os.fsync(fd); os.close(fd)', join(dir, 'setuid')])
        t.equal(r.code, 0, `${name}: nobody writes to the set-user-ID file${r.stderr ? `: ${r.stderr.trim()}` : ''}`)
        modes[name] = (statSync(join(dir, 'setuid')).mode & 0o7777).toString(8)
      }
      t.equal(modes.mount, modes.plain, `the mode after the write: ${modes.plain} on both`)
      t.equal(modes.mount, '777', 'set-user-ID cleared')
      await unmountAndWait(t, m)
      const store = await TreeStore.open(f.storeDir, { readOnly: true })
      t.teardown(() => store.close())
      t.equal(((await store.stat('/setuid')).mode & 0o7777).toString(8), '777', 'the store has the cleared mode')
      t.notOk((await store.listxattr('/capable')).includes('security.capability'), 'the store dropped the capability')
      t.ok((await store.listxattr('/installed')).includes('security.capability'), 'and kept the one given after the write')
      t.equal((await readInStore(f.storeDir, '/fresh.txt')).toString(), 'ab', 'the appended file in the store')
    })
  }

  t.test('an image mount with --writeback-cache: dd with fsync survives SIGKILL of the server; the library reports the mode', async (t) => {
    const dir = mountTestDir(t)
    const lower = join(dir, 'disk.raw')
    writeFileSync(lower, randomBytes(8 * 1024 * 1024))
    const storeDir = join(dir, 'store')
    await (await ImageStore.create(storeDir, { lower })).close()
    const mnt = join(dir, 'mnt')
    mkdirSync(mnt)
    const m = await mountStore(t, storeDir, mnt, ['--writeback-cache'])
    t.ok(m.writebackCache, 'the kernel caches writes')
    const patch = randomBytes(3 * 4096 + 100)
    writeFileSync(join(dir, 'patch.bin'), patch)
    const dd = await run('dd', [`if=${join(dir, 'patch.bin')}`, `of=${m.image}`, 'bs=1', 'seek=5000', 'conv=notrunc,fsync', 'status=none'])
    t.equal(dd.code, 0, dd.stderr)
    await killServer(t, m)
    const store = await ImageStore.open(storeDir)
    t.teardown(() => store.close())
    t.equal(sha(await store.read(5000, patch.length)), sha(patch), 'after SIGKILL: the bytes dd wrote with conv=fsync')
    // The library: the mode as the kernel granted it, off unless asked, refused for a bad value.
    for (const [options, want] of [
      [{}, false],
      [{ writebackCache: true }, true],
    ] as const) {
      const lib = await StoreMount.mount(store, mnt, options)
      t.equal(lib.writebackCache, want, `StoreMount ${JSON.stringify(options)}: writebackCache ${want}`)
      await lib.unmount()
    }
    await store.close()
    const readOnly = await ImageStore.open(storeDir, { readOnly: true })
    t.teardown(() => readOnly.close())
    const ro = await StoreMount.mount(readOnly, mnt, { writebackCache: true })
    t.equal(ro.writebackCache, false, 'never for a read-only store')
    await ro.unmount()
    await t.rejects(StoreMount.mount(readOnly, mnt, { writebackCache: 'yes' } as never), { code: 'EINVAL' }, 'writebackCache must be a boolean')
    const bad = await pagecow(['mount', storeDir, mnt, '--writeback-cache=1'])
    t.equal(bad.code, 2, '--writeback-cache takes no value: a usage error (exit 2)')
    t.match(bad.stderr, /\(EINVAL\)/)
  })
}

checkNothingLeftMounted(t)
