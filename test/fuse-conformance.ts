// POSIX behaviours through a FUSE mount of a tree store, each checked against the same operations
// on a plain ext4 directory (issue 9): names that are not UTF-8, times to the nanosecond,
// open(O_RDONLY | O_TRUNC), and chown's clearing of set-user-ID and set-group-ID bits on every
// object type, by root and by a non-root owner.
import { execFileSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { basename, dirname, join } from 'node:path'
import t from 'tap'
import { lutimensSync, setXattr, getXattr, listXattrs } from '../lib/fs.js'
import { TreeStore } from '../lib/index.js'
import { checkNothingLeftMounted, fuseUsable, mountStore, mountTestDir, run, unmountAndWait } from './fixtures/fuse-mounted.js'

const at = (dir: string, ...names: Buffer[]) => Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from('/'), n])])
const LATIN1 = Buffer.from('caf\xe9.txt', 'latin1')
const OWNER = 1000

/** The lower: a file and a directory named with bytes that are not UTF-8, files with nanosecond times. */
function buildLower(dir: string): void {
  nodeFs.mkdirSync(dir)
  nodeFs.writeFileSync(at(dir, LATIN1), 'latin-1\n')
  nodeFs.mkdirSync(at(dir, Buffer.from([0x64, 0xff])))
  nodeFs.writeFileSync(join(dir, 'timed'), 'times\n')
  lutimensSync(join(dir, 'timed'), { sec: 1_500_000_000, nsec: 111_222_333 }, { sec: 1_600_000_000, nsec: 999_999_999 })
  nodeFs.writeFileSync(join(dir, 'full'), 'some bytes\n')
  nodeFs.chmodSync(join(dir, 'full'), 0o666)
}

/** Every name under `dir` (bytes, hex), sorted: what a listing shows. */
function names(dir: string | Buffer): string[] {
  return (nodeFs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).map((n) => n.toString('hex')).sort()
}

if (fuseUsable(t, ['touch', 'setpriv', 'mkfifo', 'mknod'])) {
  t.test('through a mount as on ext4', async (t) => {
    const outer = t
    const root = mountTestDir(t)
    const lower = join(root, 'lower')
    buildLower(lower)
    const reference = join(root, 'ext4') // the same tree, a plain directory on the ext4 /work
    execFileSync('cp', ['-a', lower, reference])
    const storeDir = join(root, 'store')
    await (await TreeStore.create(storeDir, { lower })).close()
    const mnt = join(root, 'mnt')
    nodeFs.mkdirSync(mnt)
    let m = await mountStore(t, storeDir, mnt, ['--allow-other'])
    const both = [mnt, reference]

    await t.test('names that are not UTF-8', async (t) => {
      t.same(names(mnt), names(reference), 'the lower names, byte for byte (the Latin-1 one included)')
      const made = Buffer.from([0x6e, 0xe9, 0xff])
      const moved = Buffer.from([0x6d, 0x80])
      const linkName = Buffer.from([0x6c, 0xc3])
      for (const dir of both) {
        nodeFs.writeFileSync(at(dir, made), 'created\n')
        nodeFs.renameSync(at(dir, made), at(dir, moved))
        nodeFs.linkSync(at(dir, moved), at(dir, linkName))
        nodeFs.renameSync(at(dir, LATIN1), at(dir, Buffer.from([0x64, 0xff]), LATIN1))
        nodeFs.mkdirSync(at(dir, Buffer.from([0xfe])))
        nodeFs.symlinkSync(Buffer.from([0x2e, 0x2f, 0xe9]), at(dir, Buffer.from([0xfe]), Buffer.from('s')))
        const fd = nodeFs.openSync(at(dir, linkName), 'r')
        setXattr(fd, 'user.x', Buffer.from('v'))
        nodeFs.closeSync(fd)
      }
      t.same(names(mnt), names(reference), 'create, rename, link, mkdir: the same listing')
      t.same(names(at(mnt, Buffer.from([0x64, 0xff]))), names(at(reference, Buffer.from([0x64, 0xff]))), 'a lower file moved into a directory named with invalid bytes')
      t.equal(nodeFs.readFileSync(at(mnt, linkName), 'utf8'), 'created\n', 'read through the hard link')
      t.equal(nodeFs.statSync(at(mnt, linkName)).nlink, 2)
      t.equal(nodeFs.readlinkSync(at(mnt, Buffer.from([0xfe]), Buffer.from('s')), 'buffer').toString('hex'), '2e2fe9', 'a symlink target that is not UTF-8')
      const fd = nodeFs.openSync(at(mnt, moved), 'r')
      t.same(getXattr(fd, 'user.x'), Buffer.from('v'), 'xattrs of a file named with invalid bytes, through its other name')
      t.same(listXattrs(fd), ['user.x'])
      nodeFs.closeSync(fd)
      for (const dir of both) {
        nodeFs.unlinkSync(at(dir, linkName))
        nodeFs.unlinkSync(at(dir, Buffer.from([0xfe]), Buffer.from('s')))
        nodeFs.rmdirSync(at(dir, Buffer.from([0xfe])))
      }
      t.same(names(mnt), names(reference), 'unlink and rmdir: the same listing')
      const ls = await run('ls', ['-b', mnt], { env: { ...process.env, LC_ALL: 'C.UTF-8' } })
      const lsRef = await run('ls', ['-b', reference], { env: { ...process.env, LC_ALL: 'C.UTF-8' } })
      t.equal(ls.stdout, lsRef.stdout, 'ls -b prints the same')
    })

    await t.test('times to the nanosecond', async (t) => {
      const ns = (path: string) => {
        const st = nodeFs.lstatSync(path, { bigint: true })
        return [st.atimeNs, st.mtimeNs]
      }
      t.same(ns(join(mnt, 'timed')), ns(join(lower, 'timed')), 'a lower file: the lower\'s times (as the kernel reports them now), exactly')
      for (const dir of both) {
        execFileSync('touch', ['-d', '@1700000000.123456789', join(dir, 'timed')])
        execFileSync('touch', ['-h', '-d', '@-1.000000001', join(dir, 'full')])
        execFileSync('mkfifo', [join(dir, 'fifo')])
        execFileSync('touch', ['-m', '-d', '@4102444800.000000007', join(dir, 'fifo')])
      }
      t.same(ns(join(mnt, 'timed')), [1_700_000_000_123_456_789n, 1_700_000_000_123_456_789n], 'touch -d @1700000000.123456789 reads back exactly')
      t.same(ns(join(mnt, 'timed')), ns(join(reference, 'timed')))
      t.same(ns(join(mnt, 'full')), ns(join(reference, 'full')), 'a time before 1970, to the nanosecond')
      t.equal(nodeFs.lstatSync(join(mnt, 'fifo'), { bigint: true }).mtimeNs, 4_102_444_800_000_000_007n, 'a time in 2100')
      await unmountAndWait(t, m)
      const store = await TreeStore.open(storeDir, { readOnly: true })
      t.equal((await store.stat('/timed')).mtimeNs, 1_700_000_000_123_456_789n, 'kept in the store, exactly')
      await store.close()
      m = await mountStore(outer, storeDir, mnt, ['--allow-other']) // for the tests that follow
      t.same(ns(join(mnt, 'timed')), [1_700_000_000_123_456_789n, 1_700_000_000_123_456_789n], 'and after a remount')
    })

    await t.test('open(O_RDONLY | O_TRUNC) truncates, as on ext4', async (t) => {
      for (const dir of both) {
        const before = nodeFs.statSync(join(dir, 'full'), { bigint: true })
        const fd = nodeFs.openSync(join(dir, 'full'), nodeFs.constants.O_RDONLY | nodeFs.constants.O_TRUNC)
        nodeFs.closeSync(fd)
        const after = nodeFs.statSync(join(dir, 'full'), { bigint: true })
        t.equal(after.size, 0n, `${dir === mnt ? 'mount' : 'ext4'}: truncated`)
        t.ok(after.mtimeNs > before.mtimeNs, `${dir === mnt ? 'mount' : 'ext4'}: mtime moves on`)
        nodeFs.writeFileSync(join(dir, 'empty'), '')
        const e1 = nodeFs.statSync(join(dir, 'empty'), { bigint: true })
        await new Promise((r) => setTimeout(r, 5))
        nodeFs.closeSync(nodeFs.openSync(join(dir, 'empty'), nodeFs.constants.O_RDONLY | nodeFs.constants.O_TRUNC))
        t.ok(nodeFs.statSync(join(dir, 'empty'), { bigint: true }).mtimeNs > e1.mtimeNs, `${dir === mnt ? 'mount' : 'ext4'}: O_TRUNC of an empty file marks mtime too (POSIX)`)
      }
      const denied = await run('setpriv', [`--reuid=${OWNER}`, `--regid=${OWNER}`, '--clear-groups', 'python3', '-c', 'import os,sys; os.open(sys.argv[1], os.O_RDONLY | os.O_TRUNC)', join(mnt, 'timed')])
      t.not(denied.code, 0, 'O_TRUNC without write permission is refused (the kernel checks it), as on ext4')
      t.equal(nodeFs.statSync(join(mnt, 'timed')).size, 6, 'and changes nothing')
    })

    await t.test('chown clears set-user-ID and set-group-ID as ext4 does, on every type', async (t) => {
      const types: Array<[string, (path: string) => void]> = [
        ['file', (p) => nodeFs.writeFileSync(p, '')],
        ['fifo', (p) => execFileSync('mkfifo', [p])],
        ['char-device', (p) => execFileSync('mknod', [p, 'c', '1', '3'])],
        ['block-device', (p) => execFileSync('mknod', [p, 'b', '7', '250'])],
        // Bound by its name from its directory: a socket's path must fit in 107 bytes, and the
        // test directory's depends on where the checkout is.
        ['socket', (p) => execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', basename(p)], { cwd: dirname(p) })],
        ['directory', (p) => nodeFs.mkdirSync(p)],
      ]
      const chowns: Array<[string, (p: string) => string[]]> = [
        ['root, to the same owner', (p) => ['chown', '-h', '0:0', p]],
        ['root, to a new owner', (p) => ['chown', '-h', `${OWNER}:${OWNER}`, p]],
        ['the non-root owner, to its own group', (p) => ['setpriv', `--reuid=${OWNER}`, `--regid=${OWNER}`, '--clear-groups', 'chown', '-h', `${OWNER}:${OWNER}`, p]],
      ]
      for (const [type, make] of types) {
        for (const mode of [0o6755, 0o6745, 0o4711, 0o2770]) {
          for (const [who, command] of chowns) {
            const results: string[] = []
            for (const dir of both) {
              const p = join(dir, `${type}-${mode.toString(8)}-${who.length}`)
              make(p)
              nodeFs.chownSync(p, who.startsWith('the non-root') ? OWNER : 0, who.startsWith('the non-root') ? OWNER : 0)
              nodeFs.chmodSync(p, mode)
              const [cmd, ...args] = command(p)
              const r = await run(cmd!, args)
              results.push(`${r.code === 0 ? 'ok' : `exit ${r.code}`} ${(nodeFs.lstatSync(p).mode & 0o7777).toString(8)}`)
            }
            t.equal(results[0], results[1], `${type} ${mode.toString(8)}, chown by ${who}: ${results[1]}`)
          }
        }
      }
    })

    await unmountAndWait(t, m)
  })
  t.test('nothing left mounted', async (t) => checkNothingLeftMounted(t))
}
