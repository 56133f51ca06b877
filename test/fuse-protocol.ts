// The FUSE wire codec against the layouts of linux/fuse.h (7.31 forms), byte by byte.
import t, { type Test } from 'tap'
import {
  DirentPlusWriter,
  DirentWriter,
  DT,
  FuseProtocolError,
  IN_HEADER_BYTES,
  InitFlag,
  Opcode,
  opcodeName,
  parseHeader,
  parseRequest,
  replyAttr,
  replyCreate,
  replyData,
  replyDataHeader,
  replyEmpty,
  replyEntry,
  replyError,
  replyInit,
  replyLseek,
  replyOpen,
  replyStatfs,
  replyWrite,
  replyXattrSize,
  splitMs,
  type Attr,
  type EntryOut,
  type RequestBody,
} from '../lib/fuse/protocol.js'

const EINVAL = 22
const EOVERFLOW = 75

// Request builder: the kernel's view of a request, written field by field.
const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2)
  b.writeUInt16LE(n)
  return b
}
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}
const u64 = (n: number | bigint): Buffer => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt(n))
  return b
}
const i64 = (n: number): Buffer => {
  const b = Buffer.alloc(8)
  b.writeBigInt64LE(BigInt(n))
  return b
}
const cstr = (s: string | Buffer): Buffer => Buffer.concat([Buffer.from(s), Buffer.alloc(1)])

const UNIQUE = 0x1122334455667788n

function request(opcode: number, body: Buffer[] = [], nodeid: number | bigint = 7): Buffer {
  const payload = Buffer.concat(body)
  const header = Buffer.concat([
    u32(IN_HEADER_BYTES + payload.length),
    u32(opcode),
    u64(UNIQUE),
    u64(nodeid),
    u32(1000), // uid
    u32(1001), // gid
    u32(4242), // pid
    u16(0), // total_extlen
    u16(0), // padding
  ])
  return Buffer.concat([header, payload])
}

/** Parse and drop the header, checking it on the way. */
function body(buf: Buffer): RequestBody {
  const { header, ...rest } = parseRequest(buf)
  t.same(header, { len: buf.length, opcode: buf.readUInt32LE(4), unique: UNIQUE, nodeid: 7, uid: 1000, gid: 1001, pid: 4242 })
  return rest
}

function throwsProtocolError(t: Test, fn: () => unknown, errno: number, unique: bigint | undefined, what: string): void {
  try {
    fn()
    t.fail(`${what}: did not throw`)
  } catch (err) {
    if (!(err instanceof FuseProtocolError)) throw err
    t.same([err.errno, err.unique], [errno, unique], what)
  }
}

t.test('opcodes match enum fuse_opcode', async (t) => {
  const expected: Array<[keyof typeof Opcode, number]> = [
    ['LOOKUP', 1], ['FORGET', 2], ['GETATTR', 3], ['SETATTR', 4], ['READLINK', 5], ['SYMLINK', 6],
    ['MKNOD', 8], ['MKDIR', 9], ['UNLINK', 10], ['RMDIR', 11], ['RENAME', 12], ['LINK', 13],
    ['OPEN', 14], ['READ', 15], ['WRITE', 16], ['STATFS', 17], ['RELEASE', 18], ['FSYNC', 20],
    ['SETXATTR', 21], ['GETXATTR', 22], ['LISTXATTR', 23], ['REMOVEXATTR', 24], ['FLUSH', 25],
    ['INIT', 26], ['OPENDIR', 27], ['READDIR', 28], ['RELEASEDIR', 29], ['FSYNCDIR', 30],
    ['GETLK', 31], ['SETLK', 32], ['SETLKW', 33], ['ACCESS', 34], ['CREATE', 35], ['INTERRUPT', 36],
    ['BMAP', 37], ['DESTROY', 38], ['IOCTL', 39], ['POLL', 40], ['NOTIFY_REPLY', 41],
    ['BATCH_FORGET', 42], ['FALLOCATE', 43], ['READDIRPLUS', 44], ['RENAME2', 45], ['LSEEK', 46],
    ['COPY_FILE_RANGE', 47],
  ]
  t.same(Object.entries(Opcode), expected)
  t.equal(opcodeName(26), 'INIT')
  t.equal(opcodeName(4096), 'UNKNOWN(4096)')
  t.equal(InitFlag.EXPLICIT_INVAL_DATA, 1 << 25)
})

t.test('requests decode field by field', async (t) => {
  const name = Buffer.from([0x66, 0xff, 0x6f]) // not UTF-8
  const cases: Array<[string, Buffer, RequestBody]> = [
    ['lookup', request(Opcode.LOOKUP, [cstr(name)]), { op: 'lookup', name }],
    ['forget', request(Opcode.FORGET, [u64(3)]), { op: 'forget', nlookup: 3 }],
    [
      'batch forget',
      request(Opcode.BATCH_FORGET, [u32(2), u32(0), u64(9), u64(1), u64(2 ** 40), u64(5)]),
      { op: 'batchForget', items: [{ nodeid: 9, nlookup: 1 }, { nodeid: 2 ** 40, nlookup: 5 }] },
    ],
    ['getattr', request(Opcode.GETATTR, [u32(1), u32(0), u64(12)]), { op: 'getattr', flags: 1, fh: 12 }],
    ['readlink', request(Opcode.READLINK), { op: 'readlink' }],
    ['symlink: name then target', request(Opcode.SYMLINK, [cstr('ln'), cstr('../t')]), { op: 'symlink', name: Buffer.from('ln'), target: Buffer.from('../t') }],
    [
      'mknod',
      request(Opcode.MKNOD, [u32(0o10644), u32(0x0801), u32(0o22), u32(0), cstr('fifo')]),
      { op: 'mknod', mode: 0o10644, rdev: 0x0801, umask: 0o22, name: Buffer.from('fifo') },
    ],
    ['mkdir', request(Opcode.MKDIR, [u32(0o40755), u32(0o22), cstr('d')]), { op: 'mkdir', mode: 0o40755, umask: 0o22, name: Buffer.from('d') }],
    ['unlink', request(Opcode.UNLINK, [cstr('f')]), { op: 'unlink', name: Buffer.from('f') }],
    ['rmdir', request(Opcode.RMDIR, [cstr('d')]), { op: 'rmdir', name: Buffer.from('d') }],
    [
      'rename',
      request(Opcode.RENAME, [u64(5), cstr('a'), cstr('bb')]),
      { op: 'rename', newdir: 5, flags: 0, name: Buffer.from('a'), newname: Buffer.from('bb') },
    ],
    [
      'rename2',
      request(Opcode.RENAME2, [u64(5), u32(2), u32(0), cstr('a'), cstr('bb')]),
      { op: 'rename', newdir: 5, flags: 2, name: Buffer.from('a'), newname: Buffer.from('bb') },
    ],
    ['link', request(Opcode.LINK, [u64(33), cstr('hard')]), { op: 'link', oldnodeid: 33, name: Buffer.from('hard') }],
    ['open', request(Opcode.OPEN, [u32(0o2), u32(1)]), { op: 'open', flags: 0o2, openFlags: 1 }],
    [
      'read',
      request(Opcode.READ, [u64(4), u64(2 ** 40 + 1), u32(131072), u32(2), u64(0xabcdn), u32(0o100000), u32(0)]),
      { op: 'read', fh: 4, offset: 2 ** 40 + 1, size: 131072, readFlags: 2, lockOwner: 0xabcdn, flags: 0o100000 },
    ],
    ['statfs', request(Opcode.STATFS), { op: 'statfs' }],
    [
      'release',
      request(Opcode.RELEASE, [u64(4), u32(0o2), u32(1), u64(77)]),
      { op: 'release', fh: 4, flags: 0o2, releaseFlags: 1, lockOwner: 77n },
    ],
    ['fsync', request(Opcode.FSYNC, [u64(4), u32(1), u32(0)]), { op: 'fsync', fh: 4, fsyncFlags: 1 }],
    [
      'setxattr: the 8-byte fuse_setxattr_in',
      request(Opcode.SETXATTR, [u32(3), u32(1), cstr('user.x'), Buffer.from([0, 1, 2])]),
      { op: 'setxattr', name: Buffer.from('user.x'), value: Buffer.from([0, 1, 2]), flags: 1 },
    ],
    [
      'setxattr with an empty value',
      request(Opcode.SETXATTR, [u32(0), u32(0), cstr('user.x')]),
      { op: 'setxattr', name: Buffer.from('user.x'), value: Buffer.alloc(0), flags: 0 },
    ],
    ['getxattr', request(Opcode.GETXATTR, [u32(64), u32(0), cstr('user.x')]), { op: 'getxattr', name: Buffer.from('user.x'), size: 64 }],
    ['listxattr', request(Opcode.LISTXATTR, [u32(0), u32(0)]), { op: 'listxattr', size: 0 }],
    ['removexattr', request(Opcode.REMOVEXATTR, [cstr('user.x')]), { op: 'removexattr', name: Buffer.from('user.x') }],
    ['flush', request(Opcode.FLUSH, [u64(4), u32(0), u32(0), u64(99)]), { op: 'flush', fh: 4, lockOwner: 99n }],
    [
      'init: a 7.38 kernel sends the 64-byte fuse_init_in',
      request(Opcode.INIT, [u32(7), u32(38), u32(131072), u32(0x73fffffb), Buffer.alloc(48)]),
      { op: 'init', major: 7, minor: 38, maxReadahead: 131072, flags: 0x73fffffb },
    ],
    [
      'init: an older kernel sends 16 bytes',
      request(Opcode.INIT, [u32(7), u32(31), u32(4096), u32(1)]),
      { op: 'init', major: 7, minor: 31, maxReadahead: 4096, flags: 1 },
    ],
    ['opendir', request(Opcode.OPENDIR, [u32(0o200000), u32(0)]), { op: 'opendir', flags: 0o200000, openFlags: 0 }],
    [
      'readdir',
      request(Opcode.READDIR, [u64(6), u64(3), u32(4096), u32(0), u64(0), u32(0), u32(0)]),
      { op: 'readdir', fh: 6, offset: 3, size: 4096 },
    ],
    [
      'readdirplus',
      request(Opcode.READDIRPLUS, [u64(6), u64(3), u32(4096), u32(0), u64(0), u32(0), u32(0)]),
      { op: 'readdirplus', fh: 6, offset: 3, size: 4096 },
    ],
    ['releasedir', request(Opcode.RELEASEDIR, [u64(6), u32(0o200000), u32(0), u64(0)]), { op: 'releasedir', fh: 6, flags: 0o200000, releaseFlags: 0 }],
    ['fsyncdir', request(Opcode.FSYNCDIR, [u64(6), u32(0), u32(0)]), { op: 'fsyncdir', fh: 6, fsyncFlags: 0 }],
    ['access', request(Opcode.ACCESS, [u32(4), u32(0)]), { op: 'access', mask: 4 }],
    [
      'create',
      request(Opcode.CREATE, [u32(0o101), u32(0o100644), u32(0o22), u32(0), cstr('new')]),
      { op: 'create', flags: 0o101, mode: 0o100644, umask: 0o22, openFlags: 0, name: Buffer.from('new') },
    ],
    ['interrupt', request(Opcode.INTERRUPT, [u64(0xfedcba9876543210n)]), { op: 'interrupt', unique: 0xfedcba9876543210n }],
    ['destroy', request(Opcode.DESTROY), { op: 'destroy' }],
    [
      'fallocate',
      request(Opcode.FALLOCATE, [u64(4), u64(4096), u64(8192), u32(3), u32(0)]),
      { op: 'fallocate', fh: 4, offset: 4096, length: 8192, mode: 3 },
    ],
    ['lseek', request(Opcode.LSEEK, [u64(4), u64(100), u32(3), u32(0)]), { op: 'lseek', fh: 4, offset: 100, whence: 3 }],
    ['getlk is not decoded', request(Opcode.GETLK, [Buffer.alloc(48)]), { op: 'unknown' }],
    ['an opcode past the 7.31 set', request(51, [Buffer.alloc(8)]), { op: 'unknown' }],
  ]
  for (const [what, buf, expected] of cases) t.same(body(buf), expected, what)
})

t.test('setattr: times are signed seconds plus nanoseconds', async (t) => {
  const buf = request(Opcode.SETATTR, [
    u32(0x7ff), u32(0), // valid, padding
    u64(4), u64(2 ** 33), u64(5n), // fh, size, lock_owner
    i64(-2), i64(1_700_000_000), i64(0), // atime, mtime, ctime
    u32(999_999_999), u32(5), u32(0), // *timensec
    u32(0o100600), u32(0), u32(1000), u32(100), u32(0), // mode, unused4, uid, gid, unused5
  ])
  t.equal(buf.length, IN_HEADER_BYTES + 88, 'fuse_setattr_in is 88 bytes')
  t.same(body(buf), {
    op: 'setattr',
    valid: 0x7ff,
    fh: 4,
    size: 2 ** 33,
    lockOwner: 5n,
    atime: { sec: -2, nsec: 999_999_999 },
    mtime: { sec: 1_700_000_000, nsec: 5 },
    ctime: { sec: 0, nsec: 0 },
    mode: 0o100600,
    uid: 1000,
    gid: 100,
  })
})

t.test('write: the data is a view into the request, not a copy', async (t) => {
  const data = Buffer.from('hello, fuse')
  const buf = request(Opcode.WRITE, [u64(4), u64(10), u32(data.length), u32(1), u64(0), u32(0o2), u32(0), data])
  const req = parseRequest(buf)
  if (req.op !== 'write') throw new Error('not a write')
  t.same({ ...req, header: undefined, data: undefined }, {
    op: 'write', fh: 4, offset: 10, size: data.length, writeFlags: 1, lockOwner: 0n, flags: 0o2, header: undefined, data: undefined,
  })
  t.ok(req.data.equals(data))
  t.equal(req.data.buffer, buf.buffer, 'same memory')
  t.equal(req.data.byteOffset, buf.byteOffset + IN_HEADER_BYTES + 40)
  buf[IN_HEADER_BYTES + 40] = 0x48
  t.equal(req.data.toString(), 'Hello, fuse')
})

t.test('parseHeader reads the header alone', async (t) => {
  const h = parseHeader(request(Opcode.UNLINK, [cstr('x')], 1))
  t.same(h, { len: 42, opcode: Opcode.UNLINK, unique: UNIQUE, nodeid: 1, uid: 1000, gid: 1001, pid: 4242 })
})

t.test('bad requests throw FuseProtocolError', async (t) => {
  const withLen = (buf: Buffer, len: number): Buffer => {
    buf.writeUInt32LE(len, 0)
    return buf
  }
  const cases: Array<[string, () => Buffer, number, bigint | undefined]> = [
    ['empty buffer', () => Buffer.alloc(0), EINVAL, undefined],
    ['shorter than a header', () => request(Opcode.STATFS).subarray(0, 39), EINVAL, undefined],
    ['len says more than the buffer', () => withLen(request(Opcode.STATFS), 41), EINVAL, undefined],
    ['len says less than the buffer', () => withLen(request(Opcode.LOOKUP, [cstr('a')]), 40), EINVAL, undefined],
    ['a nodeid past MAX_SAFE_INTEGER', () => request(Opcode.GETATTR, [Buffer.alloc(16)], 2n ** 53n), EOVERFLOW, UNIQUE],
    ['a name without its NUL', () => request(Opcode.LOOKUP, [Buffer.from('abc')]), EINVAL, UNIQUE],
    ['an empty lookup body', () => request(Opcode.LOOKUP), EINVAL, UNIQUE],
    ['bytes after the name', () => request(Opcode.UNLINK, [cstr('a'), Buffer.from('b')]), EINVAL, UNIQUE],
    ['symlink target without its NUL', () => request(Opcode.SYMLINK, [cstr('a'), Buffer.from('b')]), EINVAL, UNIQUE],
    ['rename without the new name', () => request(Opcode.RENAME, [u64(1), cstr('a')]), EINVAL, UNIQUE],
    ['a short fuse_read_in', () => request(Opcode.READ, [Buffer.alloc(39)]), EINVAL, UNIQUE],
    ['a long fuse_open_in', () => request(Opcode.OPEN, [Buffer.alloc(16)]), EINVAL, UNIQUE],
    ['a body on STATFS', () => request(Opcode.STATFS, [Buffer.alloc(8)]), EINVAL, UNIQUE],
    ['a short fuse_init_in', () => request(Opcode.INIT, [u32(7), u32(31), u32(0)]), EINVAL, UNIQUE],
    ['write data shorter than size', () => request(Opcode.WRITE, [u64(1), u64(0), u32(10), Buffer.alloc(20), Buffer.alloc(9)]), EINVAL, UNIQUE],
    ['write data longer than size', () => request(Opcode.WRITE, [u64(1), u64(0), u32(10), Buffer.alloc(20), Buffer.alloc(11)]), EINVAL, UNIQUE],
    ['setxattr value shorter than size', () => request(Opcode.SETXATTR, [u32(4), u32(0), cstr('user.x'), Buffer.alloc(3)]), EINVAL, UNIQUE],
    ['setxattr with the 16-byte struct', () => request(Opcode.SETXATTR, [u32(0), u32(0), u32(0), u32(0), cstr('user.x')]), EINVAL, UNIQUE],
    ['batch forget with fewer items than count', () => request(Opcode.BATCH_FORGET, [u32(2), u32(0), u64(1), u64(1)]), EINVAL, UNIQUE],
    ['a read offset past MAX_SAFE_INTEGER', () => request(Opcode.READ, [u64(1), u64(2n ** 63n), Buffer.alloc(24)]), EOVERFLOW, UNIQUE],
    ['an fh past MAX_SAFE_INTEGER', () => request(Opcode.FLUSH, [u64(2n ** 64n - 1n), Buffer.alloc(16)]), EOVERFLOW, UNIQUE],
    ['a forget nlookup past MAX_SAFE_INTEGER', () => request(Opcode.FORGET, [u64(2n ** 53n)]), EOVERFLOW, UNIQUE],
  ]
  for (const [what, make, errno, unique] of cases) throwsProtocolError(t, () => parseRequest(make()), errno, unique, what)
  t.doesNotThrow(() => parseRequest(request(Opcode.FORGET, [u64(2 ** 53 - 1)])), 'MAX_SAFE_INTEGER itself is fine')
})

const ATTR: Attr = {
  ino: 2 ** 40 + 3,
  size: 2 ** 35 + 1,
  blocks: 67108865,
  atimeNs: 1_500_500_000n,
  mtimeNs: -1_500_000n,
  ctimeNs: 1_700_000_000_123_250_001n,
  mode: 0o100644,
  nlink: 2,
  uid: 1000,
  gid: 1001,
  rdev: 0x0801,
  blksize: 4096,
}

/** fuse_attr at `off`, field by field at the offsets gcc reports. */
function checkAttr(t: Test, b: Buffer, off: number): void {
  t.equal(b.readBigUInt64LE(off), 2n ** 40n + 3n, 'ino')
  t.equal(b.readBigUInt64LE(off + 8), 2n ** 35n + 1n, 'size')
  t.equal(b.readBigUInt64LE(off + 16), 67108865n, 'blocks')
  t.equal(b.readBigInt64LE(off + 24), 1n, 'atime: 1500.5 ms is 1 s')
  t.equal(b.readUInt32LE(off + 48), 500_500_000, '... + 500 500 000 ns')
  t.equal(b.readBigInt64LE(off + 32), -1n, 'mtime: -1.5 ms is -1 s')
  t.equal(b.readUInt32LE(off + 52), 998_500_000, '... + 998 500 000 ns')
  t.equal(b.readBigInt64LE(off + 40), 1_700_000_000n, 'ctime')
  t.equal(b.readUInt32LE(off + 56), 123_250_001, 'ctime ns, to the nanosecond')
  t.equal(b.readUInt32LE(off + 60), 0o100644, 'mode')
  t.equal(b.readUInt32LE(off + 64), 2, 'nlink')
  t.equal(b.readUInt32LE(off + 68), 1000, 'uid')
  t.equal(b.readUInt32LE(off + 72), 1001, 'gid')
  t.equal(b.readUInt32LE(off + 76), 0x0801, 'rdev')
  t.equal(b.readUInt32LE(off + 80), 4096, 'blksize')
  t.equal(b.readUInt32LE(off + 84), 0, 'flags')
}

const ENTRY: EntryOut = { nodeid: 12, generation: 3, entryValidMs: 1500.5, attrValidMs: 250, attr: ATTR }

function checkEntry(t: Test, b: Buffer, off: number): void {
  t.equal(b.readBigUInt64LE(off), 12n, 'nodeid')
  t.equal(b.readBigUInt64LE(off + 8), 3n, 'generation')
  t.equal(b.readBigUInt64LE(off + 16), 1n, 'entry_valid')
  t.equal(b.readBigUInt64LE(off + 24), 0n, 'attr_valid')
  t.equal(b.readUInt32LE(off + 32), 500_500_000, 'entry_valid_nsec')
  t.equal(b.readUInt32LE(off + 36), 250_000_000, 'attr_valid_nsec')
  checkAttr(t, b, off + 40)
}

function checkHeader(t: Test, b: Buffer, length: number, error = 0): void {
  t.equal(b.length, length, 'length')
  t.equal(b.readUInt32LE(0), length, 'len')
  t.equal(b.readInt32LE(4), error, 'error')
  t.equal(b.readBigUInt64LE(8), UNIQUE, 'unique')
}

t.test('splitMs: seconds rounded down, nanoseconds in [0, 1e9)', async (t) => {
  t.same(splitMs(1500.5), { sec: 1, nsec: 500_500_000 })
  t.same(splitMs(-1.5), { sec: -1, nsec: 998_500_000 })
  t.same(splitMs(-1000), { sec: -1, nsec: 0 })
  t.same(splitMs(-1000.000001), { sec: -2, nsec: 999_999_999 })
  t.same(splitMs(0.0000004), { sec: 0, nsec: 0 })
  t.ok(Object.is(splitMs(-0).sec, 0), 'no -0')
  t.same(splitMs(999.9999999), { sec: 1, nsec: 0 }, 'a rounding carry')
  t.throws(() => splitMs(NaN), RangeError)
})

t.test('replies: sizes and fields at the fuse.h offsets', async (t) => {
  t.test('error and empty', async (t) => {
    checkHeader(t, replyError(UNIQUE, 2), 16, -2)
    checkHeader(t, replyEmpty(UNIQUE), 16)
    for (const bad of [0, -2, 1.5, 4096]) t.throws(() => replyError(UNIQUE, bad), RangeError, `errno ${bad}`)
  })
  t.test('entry', async (t) => {
    const b = replyEntry(UNIQUE, ENTRY)
    checkHeader(t, b, 16 + 128)
    checkEntry(t, b, 16)
  })
  t.test('attr', async (t) => {
    const b = replyAttr(UNIQUE, 2250, ATTR)
    checkHeader(t, b, 16 + 104)
    t.equal(b.readBigUInt64LE(16), 2n, 'attr_valid')
    t.equal(b.readUInt32LE(24), 250_000_000, 'attr_valid_nsec')
    t.equal(b.readUInt32LE(28), 0, 'dummy')
    checkAttr(t, b, 32)
  })
  t.test('open and create', async (t) => {
    const o = replyOpen(UNIQUE, 9, 3)
    checkHeader(t, o, 16 + 16)
    t.equal(o.readBigUInt64LE(16), 9n, 'fh')
    t.equal(o.readUInt32LE(24), 3, 'open_flags')
    const c = replyCreate(UNIQUE, ENTRY, 2 ** 40, 1)
    checkHeader(t, c, 16 + 128 + 16)
    checkEntry(t, c, 16)
    t.equal(c.readBigUInt64LE(144), 2n ** 40n, 'fh')
    t.equal(c.readUInt32LE(152), 1, 'open_flags')
  })
  t.test('write, xattr size, lseek', async (t) => {
    const w = replyWrite(UNIQUE, 131072)
    checkHeader(t, w, 24)
    t.equal(w.readUInt32LE(16), 131072)
    const x = replyXattrSize(UNIQUE, 17)
    checkHeader(t, x, 24)
    t.equal(x.readUInt32LE(16), 17)
    const l = replyLseek(UNIQUE, 2 ** 45)
    checkHeader(t, l, 24)
    t.equal(l.readBigUInt64LE(16), 2n ** 45n)
  })
  t.test('statfs', async (t) => {
    const b = replyStatfs(UNIQUE, { blocks: 2 ** 34, bfree: 5, bavail: 4, files: 1000, ffree: 900, bsize: 4096, namelen: 255, frsize: 512 })
    checkHeader(t, b, 16 + 80)
    t.same(
      [0, 8, 16, 24, 32].map((o) => b.readBigUInt64LE(16 + o)),
      [2n ** 34n, 5n, 4n, 1000n, 900n],
    )
    t.same([40, 44, 48].map((o) => b.readUInt32LE(16 + o)), [4096, 255, 512])
    t.ok(b.subarray(16 + 52).equals(Buffer.alloc(28)), 'padding and spare are 0')
  })
  t.test('data and its header alone', async (t) => {
    const b = replyData(UNIQUE, Buffer.from('target'))
    checkHeader(t, b, 22)
    t.equal(b.subarray(16).toString(), 'target')
    const h = replyDataHeader(UNIQUE, 131072)
    t.equal(h.length, 16)
    t.equal(h.readUInt32LE(0), 16 + 131072, 'len counts the data')
    t.equal(h.readInt32LE(4), 0)
    t.equal(h.readBigUInt64LE(8), UNIQUE)
  })
  t.test('init: the 64-byte fuse_init_out', async (t) => {
    const b = replyInit(UNIQUE, {
      major: 7, minor: 31, maxReadahead: 131072, flags: InitFlag.ASYNC_READ | InitFlag.MAX_PAGES,
      maxBackground: 12, congestionThreshold: 9, maxWrite: 1 << 20, timeGran: 1, maxPages: 256,
    })
    checkHeader(t, b, 16 + 64)
    t.same([0, 4, 8, 12].map((o) => b.readUInt32LE(16 + o)), [7, 31, 131072, (1 << 0) | (1 << 22)])
    t.equal(b.readUInt16LE(16 + 16), 12, 'max_background')
    t.equal(b.readUInt16LE(16 + 18), 9, 'congestion_threshold')
    t.equal(b.readUInt32LE(16 + 20), 1 << 20, 'max_write')
    t.equal(b.readUInt32LE(16 + 24), 1, 'time_gran')
    t.equal(b.readUInt16LE(16 + 28), 256, 'max_pages')
    t.ok(b.subarray(16 + 30).equals(Buffer.alloc(34)), 'map_alignment, flags2, unused are 0')
  })
  t.test('values the wire cannot carry', async (t) => {
    t.throws(() => replyOpen(UNIQUE, 2 ** 53, 0), RangeError, 'fh past MAX_SAFE_INTEGER')
    t.throws(() => replyEntry(UNIQUE, { ...ENTRY, entryValidMs: -1 }), RangeError, 'a negative validity')
    t.throws(() => replyAttr(UNIQUE, 1, { ...ATTR, size: -1 }), RangeError, 'a negative size')
    t.throws(() => replyAttr(UNIQUE, 1, { ...ATTR, mtimeNs: 2n ** 64n * 1_000_000_000n }), RangeError, 'a time past what s64 seconds hold')
  })
})

t.test('DirentWriter: fuse_dirent records padded to 8 bytes', async (t) => {
  const w = new DirentWriter(96)
  t.ok(w.add(100, 1, DT.DIR, Buffer.from('.')), '24 + 1 bytes take 32')
  t.ok(w.add(2 ** 40, 2, DT.REG, Buffer.from('file1234')), '24 + 8 bytes take 32, no padding')
  t.equal(w.buffer.length, 64)
  t.notOk(w.add(5, 3, DT.LNK, Buffer.from('abcdefghi')), '24 + 9 bytes need 40, 32 are left')
  t.equal(w.buffer.length, 64, 'nothing added')
  t.equal(w.count, 2)
  t.ok(w.add(5, 3, DT.LNK, Buffer.from('abcdefgh')), 'exactly fills the buffer')
  t.equal(w.count, 3)
  const b = w.buffer
  t.equal(b.length, 96)
  t.equal(b.readBigUInt64LE(0), 100n, 'ino')
  t.equal(b.readBigUInt64LE(8), 1n, 'off')
  t.equal(b.readUInt32LE(16), 1, 'namelen')
  t.equal(b.readUInt32LE(20), DT.DIR, 'type')
  t.equal(b.subarray(24, 25).toString(), '.')
  t.ok(b.subarray(25, 32).equals(Buffer.alloc(7)), 'zero padding')
  t.equal(b.readBigUInt64LE(32), 2n ** 40n)
  t.equal(b.readUInt32LE(48), 8)
  t.equal(b.readUInt32LE(52), DT.REG)
  t.equal(b.subarray(56, 64).toString(), 'file1234')
  t.equal(b.readBigUInt64LE(64 + 8), 3n)
  for (const bad of ['', 'a/b', 'a\0b']) t.throws(() => w.add(1, 1, DT.REG, Buffer.from(bad)), RangeError, JSON.stringify(bad))
  t.equal(new DirentWriter(10).add(1, 1, DT.REG, Buffer.from('a')), false, 'a buffer smaller than one entry')
})

t.test('DirentPlusWriter: fuse_entry_out then fuse_dirent, padded to 8 bytes', async (t) => {
  const w = new DirentPlusWriter(2 * 160)
  t.ok(w.add(ENTRY, 1, DT.REG, Buffer.from('abc')), '128 + 24 + 3 bytes take 160')
  t.notOk(w.add(ENTRY, 2, DT.REG, Buffer.from('abcdefghi')), '168 do not fit in 160')
  t.ok(w.add({ ...ENTRY, nodeid: 0 }, 2, DT.DIR, Buffer.from('..')))
  const b = w.buffer
  t.equal(b.length, 320)
  t.equal(w.count, 2)
  checkEntry(t, b, 0)
  t.equal(b.readBigUInt64LE(128), 2n ** 40n + 3n, 'dirent ino is attr.ino')
  t.equal(b.readBigUInt64LE(136), 1n, 'off')
  t.equal(b.readUInt32LE(144), 3, 'namelen')
  t.equal(b.readUInt32LE(148), DT.REG, 'type')
  t.equal(b.subarray(152, 155).toString(), 'abc')
  t.ok(b.subarray(155, 160).equals(Buffer.alloc(5)), 'zero padding')
  t.equal(b.readBigUInt64LE(160), 0n, 'second entry nodeid')
  t.same([...w.nodeids()], [12], 'nodeids: the records that count a lookup, read back')
  t.same([...new DirentPlusWriter(64).nodeids()], [], 'none in an empty listing')
})
