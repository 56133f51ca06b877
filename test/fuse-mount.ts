// A tree store mounted through FUSE (`pagecow mount`, a real daemon) and used by real programs:
// cp, dd, tar, ls, stat, rm, mv, ln, chmod, truncate, find, python3 and make. Where a program's
// result can be compared, the same commands run on a plain copy of the lower and must print the
// same and leave the same tree. Then what the store recorded: one page per small write, whiteouts,
// opaque directories, renames; fsck clean, the lower untouched, inode numbers stable.
import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync, writeSync, ftruncateSync, lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { checkTreeStore, TreeStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { checkNothingLeftMounted, fuseUsable, haveTools, mountStore, mountTestDir, python, run, sh, unmountAndWait, type Mounted } from './fixtures/fuse-mounted.js'
import { Random } from './fixtures/random.js'
import { PlainAdapter, snapshot } from './fixtures/tree-adapters.js'
import { buildLower, copyTree, treeChecksum } from './fixtures/tree-lower.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const P = 4096

/** data/big.bin: 1 GiB, holes except these random-data regions ([start, length]). */
const BIG_REGIONS: Array<[number, number]> = [
  [MiB, 64 * KiB],
  [512 * MiB - 64 * KiB, 128 * KiB],
  [GiB - 100 * KiB, 100 * KiB],
]
/** Where the 1-byte write lands: the middle of the file, inside a lower data region. */
const BIG_WRITE_AT = 512 * MiB + 7

/** data/sparse.bin: 1 MiB with data at [64 KiB, 128 KiB) and [512 KiB, 516 KiB). */
const SPARSE_REGIONS: Array<[number, number]> = [
  [64 * KiB, 64 * KiB],
  [512 * KiB, 4 * KiB],
]

/** What the tests below need besides buildLower(): big and sparse files, a namespace playground. */
function buildExtras(lower: string): void {
  const r = new Random(4)
  mkdirSync(join(lower, 'data'))
  const sparse = (path: string, size: number, regions: Array<[number, number]>) => {
    const fd = openSync(join(lower, path), 'wx')
    ftruncateSync(fd, size)
    for (const [start, length] of regions) writeSync(fd, r.bytes(length), 0, length, start)
    closeSync(fd)
  }
  sparse('data/big.bin', GiB, BIG_REGIONS)
  sparse('data/sparse.bin', MiB, SPARSE_REGIONS)
  writeFileSync(join(lower, 'data/shared.txt'), Buffer.alloc(3 * P + 100, 's'))
  execFileSync('ln', [join(lower, 'data/shared.txt'), join(lower, 'data/shared-link')])
  writeFileSync(join(lower, 'data/xattr.txt'), 'metadata only\n')
  for (const d of ['ns', 'ns/dir-gone', 'ns/dir-gone/sub', 'ns/opaque', 'ns/opaque/sub', 'ns/movedir', 'ns/movedir/sub', 'ns/empty']) mkdirSync(join(lower, d))
  for (const f of ['ns/gone.txt', 'ns/dir-gone/a', 'ns/dir-gone/sub/b', 'ns/opaque/x', 'ns/opaque/sub/y', 'ns/movefile.txt', 'ns/movedir/m1', 'ns/movedir/sub/m2']) {
    writeFileSync(join(lower, f), `${f}\n`)
  }
}

/** A file's bytes [start, start + length) through normal reads. */
function readRange(path: string, start: number, length: number): Buffer {
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(length)
    const n = readSync(fd, buf, 0, length, start)
    return buf.subarray(0, n)
  } finally {
    closeSync(fd)
  }
}

async function inspectJson<T>(t: Test, args: string[]): Promise<T> {
  const r = await runCli(['inspect', ...args, '--json'])
  t.equal(r.code, 0, `pagecow inspect ${args.join(' ')}${r.stderr ? `: ${r.stderr}` : ''}`)
  return JSON.parse(r.stdout) as T
}

interface StoreReport {
  info: { files: { dataPages: number }; upper: { allocatedBytes: number } }
  changes: Array<{ path: string; status: string; type: string; from?: string; pages?: { copied: number; zero: number; total: number }; metadata?: boolean }>
}
interface FileReport {
  info: { size: number; pages: { total: number; data: number; zero: number; lower: number }; upper: { allocatedBytes: number } }
  map: { cells: string[] }
}

/** Inode numbers of `paths` in the tree at `root`. */
function inos(root: string, paths: string[]): Record<string, number> {
  return Object.fromEntries(paths.map((p) => [p, lstatSync(join(root, p)).ino]))
}

// ---- the programs ----

/**
 * Real programs doing real work. Inode numbers go to lines starting `ino ` (they differ between
 * the trees and are compared separately); everything else must print the same on both.
 */
const PROGRAMS = String.raw`
cp etc/hosts home/user/hosts.cp
cp -r usr/share/doc home/user/doc.cp
cp -a usr/bin home/user/bin.a
dd if=etc/ssl/cert.pem of=home/user/dd.out bs=1000 skip=2 count=5 status=none
printf DDWRITE | dd of=usr/bin/tool bs=1 seek=5000 conv=notrunc status=none
dd if=/dev/zero of=home/user/zeros bs=4096 count=3 status=none
tar -cf home/tree.tar etc usr/share
tar -tf home/tree.tar | sort
mkdir home/x
tar -xpf home/tree.tar -C home/x
rm home/tree.tar
ls -1A home/x/etc
ls -ln --time-style=+ etc usr/bin | grep -v '^total' | awk '$1 ~ /^d/ {$5="-"} {print}'
stat -c '%A %h %s %F %N' etc/hosts etc/hosts-link usr/bin/tool usr/bin/tool-link var/fifo
echo "ino passwd $(stat -c %i etc/passwd) doc $(stat -c %i usr/share/doc) cp $(stat -c %i home/user/hosts.cp)"
mv etc/passwd etc/passwd.moved
mv usr/share/doc usr/doc.moved
mv home/user/hosts.cp etc/hosts.cp2
echo "ino passwd $(stat -c %i etc/passwd.moved) doc $(stat -c %i usr/doc.moved) cp $(stat -c %i etc/hosts.cp2)"
ls usr/doc.moved
ln etc/hosts home/hosts.hard
ln -s ../etc/hosts home/hosts.sym
cat home/hosts.sym
stat -c '%h %N' etc/hosts home/hosts.hard home/hosts.sym
echo "ino hard $(stat -c %i etc/hosts) $(stat -c %i home/hosts.hard)"
chmod 600 etc/hosts
chmod u+s,g+w home/user/zeros
chmod 1777 var/empty
stat -c '%a %n' etc/hosts home/hosts.hard home/user/zeros var/empty
truncate -s 5 etc/ssl/cert.pem
truncate -s 100000 home/user/zeros
truncate -s +10 usr/bin/tool-link
stat -c '%s %n' etc/ssl/cert.pem home/user/zeros usr/bin/tool usr/bin/tool-link
rm etc/shadow
rm -r home/x/usr
rm home/user/notes.txt
find . -path ./data -prune -o \( -type d -printf '%y %m %n %p\n' \) -o \( ! -type d -printf '%y %m %n %s %p\n' \) | sort
md5sum etc/hosts usr/bin/tool etc/ssl/cert.pem home/user/dd.out home/x/etc/ssl/cert.pem
`

/** pread/pwrite across page boundaries and past the end, and MAP_SHARED writes; prints JSON. */
const PYTHON_IO = String.raw`
import os, mmap, json, hashlib
out = {}
fd = os.open('home/user/py.bin', os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o640)
os.pwrite(fd, b'A' * 10000, 0)
os.pwrite(fd, b'hello', 4094)
out['pread'] = os.pread(fd, 9, 4092).decode()
os.pwrite(fd, b'Z', 20000)
out['size'] = os.fstat(fd).st_size
out['gap'] = os.pread(fd, 8, 12000).hex()
out['tail'] = os.pread(fd, 10, 19995).hex()
os.close(fd)
fd = os.open('usr/bin/setuid', os.O_RDWR)
os.pwrite(fd, b'SU', 1)
out['setuid'] = os.pread(fd, 100, 0).decode()
out['setuid_mode'] = oct(os.fstat(fd).st_mode)
os.close(fd)
fd = os.open('usr/bin/tool', os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED)
m[8190:8200] = b'MMAPMMAPMM'
m[len(m) - 1:] = b'!'
m.flush()
m.close()
out['mmap_pread'] = os.pread(fd, 10, 8190).decode()
os.close(fd)
with open('usr/bin/tool-link', 'rb') as f:
    data = f.read()
out['via_link'] = data[8190:8200].decode()
out['link_tail'] = data[-3:].hex()
fd = os.open('home/user/mapped.bin', os.O_CREAT | os.O_RDWR, 0o600)
os.ftruncate(fd, 3 * 4096)
m = mmap.mmap(fd, 3 * 4096, mmap.MAP_SHARED)
for i in range(3):
    m[i * 4096 + 10:i * 4096 + 14] = b'pg' + bytes([48 + i]) + b'!'
m.flush()
m.close()
os.close(fd)
with open('home/user/mapped.bin', 'rb') as f:
    data = f.read()
out['mapped'] = [data[i * 4096 + 10:i * 4096 + 14].decode() for i in range(3)]
out['mapped_sha'] = hashlib.sha256(data).hexdigest()[:16]
print(json.dumps(out, sort_keys=True))
`

/** O_EXCL, O_TRUNC, O_APPEND, long names, statvfs and xattrs; each outcome as data, JSON out. */
const PYTHON_SEMANTICS = String.raw`
import os, json, errno
out = []
def attempt(label, f):
    try:
        v = f()
        out.append([label, 'ok', v if isinstance(v, (int, str, list)) or v is None else repr(v)])
    except OSError as e:
        out.append([label, errno.errorcode[e.errno]])
def create(path, flags=os.O_CREAT | os.O_EXCL | os.O_WRONLY):
    os.close(os.open(path, flags, 0o644))
def read(path):
    with open(path, 'rb') as f:
        return f.read().decode()
attempt('create 256-byte name', lambda: create('n' * 256))
attempt('create 255-byte name', lambda: create('home/' + 'n' * 255))
attempt('stat 255', lambda: os.stat('home/' + 'n' * 255).st_size)
attempt('listdir has 255', lambda: ('n' * 255) in os.listdir('home'))
attempt('mkdir 256', lambda: os.mkdir('home/' + 'd' * 256))
attempt('stat 256', lambda: os.stat('home/' + 'd' * 256))
attempt('multibyte 256', lambda: create('home/' + '\u00e9' * 128))
attempt('rename to 256', lambda: os.rename('home/' + 'n' * 255, 'home/' + 'n' * 256))
attempt('symlink 256', lambda: os.symlink('x', 'home/' + 's' * 256))
attempt('unlink 255', lambda: os.unlink('home/' + 'n' * 255))
attempt('excl on lower file', lambda: create('etc/hosts'))
attempt('excl on lower dir', lambda: create('usr'))
attempt('excl on symlink', lambda: create('etc/hosts-link'))
attempt('excl new', lambda: create('home/excl'))
attempt('excl again', lambda: create('home/excl'))
def trunc(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, data)
    os.close(fd)
    return read(path)
attempt('O_TRUNC lower file', lambda: trunc('usr/doc.moved/README', b'short\n'))
attempt('O_TRUNC size', lambda: os.stat('usr/doc.moved/README').st_size)
attempt('O_TRUNC new', lambda: trunc('home/excl', b'abc'))
def append(path, data, offset=None):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    if offset is None:
        os.write(fd, data)
    else:
        os.pwrite(fd, data, offset)
    os.close(fd)
    return read(path)
attempt('O_APPEND lower', lambda: append('etc/ssl/cert.pem', b'+1'))
attempt('O_APPEND again', lambda: append('etc/ssl/cert.pem', b'+2'))
attempt('O_APPEND pwrite', lambda: append('home/excl', b'+3', 0))
attempt('O_APPEND|O_CREAT', lambda: (os.close(os.open('home/appended', os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)), append('home/appended', b'a'), append('home/appended', b'b'))[-1])
def statvfs():
    s = os.statvfs('.')
    return [s.f_namemax, s.f_bsize > 0, s.f_blocks > 0, s.f_bfree <= s.f_blocks, s.f_files >= s.f_ffree]
attempt('statvfs', statvfs)
attempt('setxattr lower', lambda: os.setxattr('data/xattr.txt', 'user.color', b'blue'))
attempt('getxattr', lambda: os.getxattr('data/xattr.txt', 'user.color').decode())
attempt('setxattr create existing', lambda: os.setxattr('data/xattr.txt', 'user.color', b'red', os.XATTR_CREATE))
attempt('setxattr replace missing', lambda: os.setxattr('data/xattr.txt', 'user.size', b'L', os.XATTR_REPLACE))
attempt('setxattr replace', lambda: os.setxattr('data/xattr.txt', 'user.color', b'green', os.XATTR_REPLACE))
attempt('getxattr replaced', lambda: os.getxattr('data/xattr.txt', 'user.color').decode())
attempt('listxattr lower', lambda: sorted(os.listxattr('etc/hosts')))
attempt('getxattr lower', lambda: os.getxattr('etc/hosts', 'user.origin').decode())
attempt('removexattr lower', lambda: os.removexattr('etc/hosts', 'user.keep'))
attempt('listxattr after', lambda: sorted(os.listxattr('etc/hosts')))
attempt('getxattr removed', lambda: os.getxattr('etc/hosts', 'user.keep'))
attempt('removexattr missing', lambda: os.removexattr('etc/hosts', 'user.keep'))
attempt('setxattr dir', lambda: os.setxattr('usr', 'user.dir', b'd'))
attempt('listxattr dir', lambda: sorted(os.listxattr('usr')))
attempt('setxattr new file', lambda: os.setxattr('home/excl', 'user.big', b'v' * 4000))
attempt('getxattr big', lambda: len(os.getxattr('home/excl', 'user.big')))
attempt('xattr content unchanged', lambda: read('data/xattr.txt'))
print(json.dumps(out))
`

/** SEEK_DATA and SEEK_HOLE at each offset given, after writing a page into a hole and a byte. */
const PYTHON_SEEK = String.raw`
import os, sys, json, errno
fd = os.open('data/sparse.bin', os.O_RDWR)
os.pwrite(fd, b'P' * 4096, 256 * 1024)
os.pwrite(fd, b'b', 701000)
os.fsync(fd)
res = []
for off in [int(a) for a in sys.argv[1:]]:
    row = [off]
    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
        try:
            row.append(os.lseek(fd, off, whence))
        except OSError as e:
            row.append(errno.errorcode[e.errno])
    res.append(row)
os.close(fd)
print(json.dumps(res))
`

/** A read-only fd opened first (through the hard link) sees a write made through a later rw fd. */
const PYTHON_RO_RW = String.raw`
import os, json, mmap
out = {}
ro = os.open('data/shared-link', os.O_RDONLY)
before = os.pread(ro, 4096 * 4, 0)
ro_map = mmap.mmap(ro, 0, mmap.MAP_SHARED, mmap.PROT_READ)
rw = os.open('data/shared.txt', os.O_RDWR)
os.pwrite(rw, b'NEW', 4096 + 10)
out['ro_sees'] = os.pread(ro, 3, 4096 + 10).decode()
out['ro_map_sees'] = ro_map[4096 + 10:4096 + 13].decode()
out['ro_rest'] = os.pread(ro, 4096 * 4, 0) == before[:4106] + b'NEW' + before[4109:]
os.pwrite(rw, b'TAIL', os.fstat(rw).st_size)
out['ro_size'] = os.fstat(ro).st_size
out['ro_tail'] = os.pread(ro, 4, os.fstat(ro).st_size - 4).decode()
os.close(rw)
out['after_close'] = os.pread(ro, 3, 4096 + 10).decode()
ro_map.close()
os.close(ro)
print(json.dumps(out, sort_keys=True))
`

/**
 * d_ino of "." and ".." as readdir(3) gives them, with st_ino of the directory and of its "..",
 * for each directory in argv. Through libc: os.scandir skips the dots, and ls -ai stats them.
 */
const PYTHON_DOTS = String.raw`
import ctypes, ctypes.util, json, os, sys
class Dirent(ctypes.Structure):
    _fields_ = [('d_ino', ctypes.c_uint64), ('d_off', ctypes.c_int64), ('d_reclen', ctypes.c_ushort), ('d_type', ctypes.c_ubyte), ('d_name', ctypes.c_char * 256)]
libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir64.restype = ctypes.POINTER(Dirent)
libc.readdir64.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
out = {}
for path in sys.argv[1:]:
    d = libc.opendir(os.fsencode(path))
    if not d:
        raise OSError(ctypes.get_errno(), 'opendir', path)
    dots = {}
    while True:
        e = libc.readdir64(d)
        if not e:
            break
        if e.contents.d_name in (b'.', b'..'):
            dots[e.contents.d_name.decode()] = e.contents.d_ino
    libc.closedir(d)
    out[path] = {'dot': dots['.'], 'dotdot': dots['..'], 'ino': os.stat(path).st_ino, 'parent': os.stat(os.path.join(path, '..')).st_ino}
print(json.dumps(out))
`

const C_PROJECT: Record<string, string> = {
  'proj/Makefile': 'CC ?= cc\nCFLAGS = -O1 -Wall\n\nhello: main.o util.o\n\t$(CC) -o $@ main.o util.o\n\n%.o: %.c util.h\n\t$(CC) $(CFLAGS) -c $<\n\nclean:\n\trm -f hello *.o\n',
  'proj/util.h': 'int triangle(int n);\n',
  'proj/util.c': '#include "util.h"\nint triangle(int n) { return n <= 0 ? 0 : n + triangle(n - 1); }\n',
  'proj/main.c': '#include <stdio.h>\n#include "util.h"\nint main(void) { printf("triangle(100) = %d\\n", triangle(100)); return 0; }\n',
  'proj/run.sh': '#!/bin/sh\nset -e\ncd "$(dirname "$0")"\ncat *.c | wc -l\n',
}

if (fuseUsable(t, ['python3', 'tar', 'dd', 'find', 'truncate', 'md5sum', 'awk', 'fallocate'])) {
  t.test('a tree store mounted: real programs, page granularity, the namespace, remounting', async (t) => {
    const dir = mountTestDir(t)
    const lower = join(dir, 'lower')
    const plain = join(dir, 'plain')
    const storeDir = join(dir, 'store')
    const mnt = join(dir, 'mnt')
    buildLower(lower)
    buildExtras(lower)
    const lowerSum = treeChecksum(lower)
    copyTree(lower, plain)
    await (await TreeStore.create(storeDir, { lower })).close()
    mkdirSync(mnt)
    let m: Mounted = await mountStore(t, storeDir, mnt)
    const lowerInos = inos(lower, ['etc/passwd', 'usr/share/doc', 'etc/hosts', 'usr/bin/tool', 'data/big.bin'])

    await t.test('lower inode numbers show through', async (t) => {
      t.same(inos(mnt, Object.keys(lowerInos)), lowerInos, 'st_ino of a lower object is the lower’s')
      const tool = statSync(join(mnt, 'usr/bin/tool'))
      t.equal(statSync(join(mnt, 'usr/bin/tool-link')).ino, tool.ino, 'a lower hard link pair is one inode')
      t.equal(tool.nlink, 2)
    })

    await t.test('readdir: "." and ".." carry the inode numbers stat shows; the root’s ".." is itself', async (t) => {
      type Dots = Record<string, { dot: number; dotdot: number; ino: number; parent: number }>
      // A directory made through the mount, then moved: its ".." follows it.
      const setup = 'mkdir -p dots/a/b dots/c && mv dots/a/b dots/c/b'
      const dirs = ['.', 'usr', 'usr/share/doc', 'dots', 'dots/c/b']
      for (const [label, root] of [['mount', mnt], ['plain', plain]] as const) {
        const made = await sh(setup, root)
        t.equal(made.code, 0, made.stderr)
        const seen = await python<Dots>(t, PYTHON_DOTS, root, dirs)
        for (const d of dirs) {
          t.equal(seen[d]?.dot, seen[d]?.ino, `${label}, ${d}: "." is the directory`)
          // The mount's root is its file system's root: its ".." is itself, as on any file system.
          const parent = label === 'mount' && d === '.' ? seen[d]?.ino : seen[d]?.parent
          t.equal(seen[d]?.dotdot, parent, `${label}, ${d}: ".." is ${d === '.' && label === 'mount' ? 'the root itself' : 'the parent'}`)
        }
        t.equal((await sh('rm -r dots', root)).code, 0)
      }
    })

    await t.test('a 1-byte write in the middle of a 1 GiB lower file copies one page', async (t) => {
      const big = join(mnt, 'data/big.bin')
      const lowerBig = join(lower, 'data/big.bin')
      // First thing on a fresh store: the totals below change by this write alone.
      const before = await inspectJson<StoreReport>(t, [storeDir])
      const fileBefore = await inspectJson<FileReport>(t, [storeDir, '/data/big.bin'])
      t.match(fileBefore.info, { size: GiB, pages: { data: 0, zero: 0, total: GiB / P } })
      const dd = await run('dd', ['of=' + big, 'bs=1', `seek=${BIG_WRITE_AT}`, 'conv=notrunc,fsync', 'status=none'], { input: 'X' })
      t.equal(dd.code, 0, `dd writes one byte${dd.stderr ? `: ${dd.stderr}` : ''}`)
      const after = await inspectJson<StoreReport>(t, [storeDir])
      const fileAfter = await inspectJson<FileReport>(t, [storeDir, '/data/big.bin'])
      t.equal(after.info.files.dataPages - before.info.files.dataPages, 1, 'the store holds one more data page')
      t.equal(after.info.upper.allocatedBytes - before.info.upper.allocatedBytes, P, 'the upper grew by one page on disk')
      t.match(fileAfter.info, { size: GiB, pages: { data: 1, zero: 0, total: GiB / P }, upper: { allocatedBytes: P } })
      t.equal(fileAfter.map.cells.filter((c) => c === 'data').length, 1, 'one cell of the map shows data')
      t.match(after.changes.find((c) => c.path === '/data/big.bin'), { status: 'modified', pages: { copied: 1, zero: 0, total: GiB / P } })
      // The rest reads as before: every lower region, and the holes between them.
      for (const [start, length] of BIG_REGIONS) {
        const want = readRange(lowerBig, start, length)
        if (BIG_WRITE_AT >= start && BIG_WRITE_AT < start + length) want[BIG_WRITE_AT - start] = 'X'.charCodeAt(0)
        t.ok(readRange(big, start, length).equals(want), `region at ${start} reads the lower’s bytes${BIG_WRITE_AT >= start && BIG_WRITE_AT < start + length ? ' and the byte written' : ''}`)
      }
      for (const at of [0, 100 * MiB, 511 * MiB, 700 * MiB, GiB - 200 * KiB]) {
        t.ok(readRange(big, at, 64 * KiB).equals(Buffer.alloc(64 * KiB)), `the hole at ${at} reads zeros`)
      }
      t.equal(statSync(big).size, GiB)
      const same = await run('dd', ['of=' + join(plain, 'data/big.bin'), 'bs=1', `seek=${BIG_WRITE_AT}`, 'conv=notrunc', 'status=none'], { input: 'X' })
      t.equal(same.code, 0, 'the same write on the plain copy')
    })

    await t.test('fallocate: punch-hole and zero-range read zeros, whole pages become ZERO; plain allocation is refused', async (t) => {
      const cert = 'etc/ssl/cert.pem' // 10 000 bytes in the lower
      const ops = [
        ['-p', '-o', String(P), '-l', String(P)], // punch one whole page: ZERO
        ['-z', '-o', '100', '-l', '50'], // zero part of page 0: written
        ['-z', '-o', String(2 * P - 10), '-l', '20'], // across pages 1 and 2
      ]
      for (const root of [mnt, plain]) {
        for (const args of ops) {
          const r = await run('fallocate', [...args, join(root, cert)])
          t.equal(r.code, 0, `fallocate ${args.join(' ')} on ${root === mnt ? 'the mount' : 'the plain copy'}${r.stderr ? `: ${r.stderr}` : ''}`)
        }
      }
      t.ok(readFileSync(join(mnt, cert)).equals(readFileSync(join(plain, cert))), 'the file reads as on the plain copy')
      const file = await inspectJson<FileReport>(t, [storeDir, '/' + cert])
      t.match(file.info, { size: 10_000, pages: { zero: 1 } }, 'the punched page is ZERO')
      t.equal(file.info.upper.allocatedBytes, 2 * P, 'only the two partly zeroed pages take space')
      const plainAlloc = await run('fallocate', ['-n', '-o', '0', '-l', String(P), join(mnt, cert)])
      t.not(plainAlloc.code, 0, 'plain allocation is refused: nothing can be reserved')
      t.match(plainAlloc.stderr, /not supported|unsupported/)
    })

    await t.test('cp, dd, tar, ls, stat, mv, ln, chmod, truncate, rm, find: as on a plain directory', async (t) => {
      const onMount = await sh(PROGRAMS, mnt)
      const onPlain = await sh(PROGRAMS, plain)
      t.equal(onPlain.code, 0, `the programs run on the plain copy${onPlain.stderr ? `: ${onPlain.stderr}` : ''}`)
      t.equal(onMount.code, 0, `the programs run on the mount${onMount.stderr ? `: ${onMount.stderr}` : ''}`)
      t.equal(onMount.stderr, '', 'nothing on stderr')
      const dropInos = (s: string) => s.split('\n').filter((l) => !l.startsWith('ino ')).join('\n')
      t.equal(dropInos(onMount.stdout), dropInos(onPlain.stdout), 'every program printed the same')
      const inoLines = onMount.stdout.split('\n').filter((l) => l.startsWith('ino '))
      const [before, after, hard] = inoLines
      t.equal(after?.replace(/^ino /, ''), before?.replace(/^ino /, ''), 'mv keeps the inode numbers of a lower file, a lower directory and a new file')
      t.match(before, `ino passwd ${lowerInos['etc/passwd']} doc ${lowerInos['usr/share/doc']} cp `, 'the lower’s inode numbers')
      const [, a, b] = hard?.match(/^ino hard (\d+) (\d+)$/) ?? []
      t.ok(a !== undefined && a === b, 'ln makes a second name of the same inode')
      t.same(await snapshot(new PlainAdapter(mnt)), await snapshot(new PlainAdapter(plain)), 'the same tree: types, modes, link counts, contents, targets')
    })

    await t.test('python3: pread/pwrite across pages and past the end, mmap MAP_SHARED writes', async (t) => {
      const got = await python<Record<string, unknown>>(t, PYTHON_IO, mnt)
      const want = await python<Record<string, unknown>>(t, PYTHON_IO, plain)
      t.same(got, want, 'the same results as on a plain directory')
      t.match(got, {
        pread: 'AAhelloAA',
        size: 20001,
        gap: '0000000000000000',
        mmap_pread: 'MMAPMMAPMM',
        via_link: 'MMAPMMAPMM',
        mapped: ['pg0!', 'pg1!', 'pg2!'],
        setuid: 'sSUd\n',
      })
      t.equal(got.link_tail, '000021', 'the last byte, written through the mapping, reads through the other name')
      t.same(await snapshot(new PlainAdapter(mnt)), await snapshot(new PlainAdapter(plain)), 'the same tree')
    })

    await t.test('a read-only fd opened before a read-write fd sees its writes', async (t) => {
      const got = await python<Record<string, unknown>>(t, PYTHON_RO_RW, mnt)
      t.same(got, await python<Record<string, unknown>>(t, PYTHON_RO_RW, plain), 'as on a plain directory')
      t.same(got, { ro_sees: 'NEW', ro_map_sees: 'NEW', ro_rest: true, ro_size: 3 * P + 104, ro_tail: 'TAIL', after_close: 'NEW' })
    })

    await t.test('SEEK_DATA / SEEK_HOLE report the merged view', async (t) => {
      const offsets = [0, 64 * KiB, 100 * KiB, 128 * KiB, 200 * KiB, 256 * KiB, 258 * KiB, 260 * KiB, 300 * KiB, 512 * KiB, 515 * KiB, 516 * KiB, 700 * KiB, 701_000, 704_511, 704_512, MiB - 1, MiB, 2 * MiB].map(String)
      const got = await python<Array<[number, number | string, number | string]>>(t, PYTHON_SEEK, mnt, offsets)
      const want = await python<Array<[number, number | string, number | string]>>(t, PYTHON_SEEK, plain, offsets)
      t.same(got, want, 'the same answers as a plain file with the same writes')
      const at = (off: number) => got.find((r) => r[0] === off)
      t.same(at(0), [0, 64 * KiB, 0], 'a hole at the start, data at 64 KiB')
      t.same(at(128 * KiB), [128 * KiB, 256 * KiB, 128 * KiB], 'the page written into a hole is data')
      t.same(at(258 * KiB), [258 * KiB, 258 * KiB, 260 * KiB], 'and ends after one page')
      t.same(at(701_000), [701_000, 701_000, 704_512], 'a 1-byte write makes its page data')
      t.same(at(516 * KiB), [516 * KiB, 700_416, 516 * KiB], 'the next data is the page of the 1-byte write')
      t.same(at(704_512), [704_512, 'ENXIO', 704_512])
      t.same(at(MiB - 1), [MiB - 1, 'ENXIO', MiB - 1], 'no data after the last region; the end is a hole')
      t.same(at(MiB), [MiB, 'ENXIO', 'ENXIO'], 'past the end: ENXIO')
    })

    await t.test('ENAMETOOLONG, O_EXCL, O_TRUNC, O_APPEND, statfs, xattrs', async (t) => {
      const got = await python<Array<[string, string, unknown?]>>(t, PYTHON_SEMANTICS, mnt)
      const want = await python<Array<[string, string, unknown?]>>(t, PYTHON_SEMANTICS, plain)
      t.same(got, want, 'the same outcomes as on a plain directory')
      const outcome = (label: string) => got.find((r) => r[0] === label)?.slice(1)
      t.same(outcome('create 256-byte name'), ['ENAMETOOLONG'])
      t.same(outcome('mkdir 256'), ['ENAMETOOLONG'])
      t.same(outcome('multibyte 256'), ['ENAMETOOLONG'], '128 two-byte characters are 256 bytes')
      t.same(outcome('create 255-byte name'), ['ok', null])
      t.same(outcome('excl on lower file'), ['EEXIST'])
      t.same(outcome('excl again'), ['EEXIST'])
      t.same(outcome('O_TRUNC lower file'), ['ok', 'short\n'])
      t.same(outcome('O_APPEND pwrite'), ['ok', 'abc+3'], 'O_APPEND appends whatever the offset (Linux pwrite)')
      t.same(outcome('O_APPEND|O_CREAT'), ['ok', 'ab'])
      t.same(outcome('statvfs'), ['ok', [255, true, true, true, true]])
      t.same(outcome('getxattr replaced'), ['ok', 'green'])
      t.same(outcome('listxattr after'), ['ok', ['user.origin']])
      t.same(outcome('getxattr removed'), ['ENODATA'])
      const stf = await run('stat', ['-f', '-c', '%l %b', mnt])
      t.match(stf.stdout, /^255 \d+\n$/, '`stat -f` works on the mount')
      t.same(await snapshot(new PlainAdapter(mnt)), await snapshot(new PlainAdapter(plain)), 'the same tree')
    })

    await t.test('paths deeper than PATH_MAX: ENAMETOOLONG where the store path would pass 4096 bytes, and the mount carries on', async (t) => {
      // mkdir + chdir one level at a time: the kernel never sees a long path, the server would.
      const script = [
        'import errno, json, os, sys',
        'os.chdir(sys.argv[1]); os.mkdir("deep"); os.chdir("deep")',
        'name = "d" * 200',
        'depth = 0',
        'try:',
        '    while depth < 40:',
        '        os.mkdir(name); os.chdir(name); depth += 1',
        '    print(json.dumps([depth, "ok"]))',
        'except OSError as e:',
        '    print(json.dumps([depth, errno.errorcode[e.errno]]))',
      ].join('\n')
      const [depth, error] = await python<[number, string]>(t, script, mnt, [mnt])
      // /deep is 5 bytes; each level adds 201: 20 levels make 4025, a 21st would make 4226.
      t.same([depth, error], [20, 'ENAMETOOLONG'], 'refused at the first level whose store path would pass PATH_MAX')
      t.same(readdirSync(join(mnt, 'deep')).length, 1, 'the mount still answers')
      const rm = await run('rm', ['-rf', join(mnt, 'deep')])
      t.equal(rm.code, 0, `and the deep tree can be removed (rm -r works level by level): ${rm.stderr}`)
    })

    await t.test('whiteouts, opaque directories and renames through rm, rmdir, mkdir, mv', async (t) => {
      const script = String.raw`
rm ns/gone.txt
rm -r ns/dir-gone
rm -r ns/opaque
mkdir ns/opaque
echo new > ns/opaque/new
rmdir ns/empty
mv ns/movefile.txt ns/moved.txt
mv ns/movedir ns/moveddir
ls -A ns ns/opaque ns/moveddir ns/moveddir/sub
cat ns/moved.txt ns/moveddir/sub/m2
test ! -e ns/gone.txt && test ! -e ns/dir-gone/a && test ! -e ns/opaque/x && test ! -e ns/movedir
echo again > ns/gone.txt
cat ns/gone.txt
`
      const onMount = await sh(script, mnt)
      const onPlain = await sh(script, plain)
      t.equal(onMount.code, 0, onMount.stderr)
      t.equal(onMount.stdout, onPlain.stdout, 'the same listings and contents as a plain directory')
      t.match(onMount.stdout, /ns\/opaque:\nnew\n/, 'the opaque directory shows only its new entry')
      t.same(await snapshot(new PlainAdapter(mnt)), await snapshot(new PlainAdapter(plain)), 'the same tree')
    })

    await t.test('untar a C project and build it with make on the mount', async (t) => {
      if (!haveTools(t, ['cc', 'make'], 'apt-get install build-essential')) return
      const pkg = join(dir, 'pkg')
      for (const [path, text] of Object.entries(C_PROJECT)) {
        mkdirSync(join(pkg, path, '..'), { recursive: true })
        writeFileSync(join(pkg, path), text, { mode: path.endsWith('.sh') ? 0o755 : 0o644 })
      }
      const tarball = join(dir, 'proj.tar.gz')
      execFileSync('tar', ['-czf', tarball, '-C', pkg, 'proj'])
      const build = await sh(`mkdir src && tar -xzf "${tarball}" -C src && make -C src/proj && ./src/proj/hello && ./src/proj/run.sh`, mnt)
      t.equal(build.code, 0, `untar, make and run${build.stderr ? `: ${build.stderr}` : ''}`)
      t.match(build.stdout, /triangle\(100\) = 5050\n5\n$/, 'the program built on the mount runs; the script too')
      t.equal(statSync(join(mnt, 'src/proj/hello')).mode & 0o111, 0o111, 'the linker made it executable')
      const again = await sh('make -C src/proj', mnt)
      t.match(again.stdout, /is up to date/, 'make sees the mtimes it left: nothing to rebuild')
      const rebuild = await sh('touch src/proj/util.c && make -C src/proj && make -C src/proj clean && ls src/proj', mnt)
      t.equal(rebuild.code, 0, rebuild.stderr)
      t.match(rebuild.stdout, /cc .*-c util\.c/, 'touching a source rebuilds it')
      t.notMatch(rebuild.stdout, /-c main\.c/, 'and only it')
      t.match(rebuild.stdout, /Makefile\nmain\.c\nrun\.sh\nutil\.c\nutil\.h\n$/, 'clean removed the objects')
      t.equal((await sh('rm -r src', mnt)).code, 0, 'rm -r of the whole project')
      t.same(await snapshot(new PlainAdapter(mnt)), await snapshot(new PlainAdapter(plain)), 'the tree is the plain copy’s again')
    })

    // What the store recorded, seen after unmounting; then the same tree on a second mount.
    const seen = await snapshot(new PlainAdapter(mnt))
    const watched = ['etc/passwd.moved', 'usr/doc.moved', 'etc/hosts.cp2', 'etc/hosts', 'home/hosts.hard', 'usr/bin/tool', 'data/big.bin', 'ns/moveddir', 'ns/opaque', 'home/user/py.bin']
    const inosBefore = inos(mnt, watched)
    await unmountAndWait(t, m)

    await t.test('after unmounting: inspect lists the changes, fsck is clean, the lower is untouched', async (t) => {
      const report = await inspectJson<StoreReport>(t, [storeDir])
      const status = (path: string) => report.changes.find((c) => c.path === path)
      t.match(status('/ns/gone.txt'), { status: 'replaced', type: 'file' }, 'a removed lower file made again')
      t.match(status('/ns/dir-gone'), { status: 'whiteout', type: 'directory' })
      t.match(status('/ns/empty'), { status: 'whiteout', type: 'directory' })
      t.match(status('/ns/opaque'), { status: 'opaque', type: 'directory' })
      t.match(status('/ns/moved.txt'), { status: 'renamed', from: '/ns/movefile.txt' })
      t.match(status('/ns/moveddir'), { status: 'renamed', from: '/ns/movedir', type: 'directory' })
      t.match(status('/etc/shadow'), { status: 'whiteout' })
      t.match(status('/data/big.bin'), { status: 'modified', pages: { copied: 1 } })
      t.match(status('/data/xattr.txt'), { status: 'metadata' }, 'xattrs copied no data')
      const text = await runCli(['inspect', storeDir])
      t.match(text.stdout, /deleted\s+\/ns\/dir-gone \(directory\)/, 'the human report shows the whiteout')
      t.match(text.stdout, /opaque\s+\/ns\/opaque \(directory\)/, 'and the opaque directory')
      const fsck = await runCli(['fsck', storeDir, '--json'])
      t.equal(fsck.code, 0, `pagecow fsck exits 0: ${fsck.stdout}${fsck.stderr}`)
      t.match(JSON.parse(fsck.stdout), { clean: true })
      t.ok((await checkTreeStore(storeDir)).clean)
      t.equal(treeChecksum(lower), lowerSum, 'the lower tree is byte for byte, mode for mode, as it was')
    })

    m = await mountStore(t, storeDir, mnt)
    await t.test('mounted again: the same tree, the same inode numbers', async (t) => {
      t.same(inos(mnt, watched), inosBefore, 'inode numbers survive unmount and remount')
      t.same(await snapshot(new PlainAdapter(mnt)), seen, 'the same tree')
      t.same(await snapshot(new PlainAdapter(mnt)), await snapshot(new PlainAdapter(plain)), 'still the plain copy’s tree, where both saw the same programs')
    })
    await unmountAndWait(t, m)
  })
}

checkNothingLeftMounted(t)
