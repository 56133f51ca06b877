// The session's side of /dev/fuse, against a fake kernel (lib/fs's watch, reads, writes and splices
// of the device replaced): a reply the kernel never takes (an interrupted request: the write fails
// with ENOENT) gives back what it would have granted, the lookups it counted and the handles it
// opened; READ replies are spliced when the bytes lie in a file, copied otherwise or when splicing
// cannot; requests and large buffers in flight are bounded; the write cache is asked for as told.
import t, { type Test } from 'tap'
import { join } from 'node:path'
import { PagecowError, TreeStore } from '../lib/index.js'
import type { FuseOperations } from '../lib/fuse/operations.js'
import { DIRENT_NAME_OFFSET, ENTRY_OUT_BYTES, FUSE_ROOT_ID, IN_HEADER_BYTES, OUT_HEADER_BYTES, Opcode } from '../lib/fuse/protocol.js'
import { TreeFs } from '../lib/fuse/tree-fs.js'
import { actualFs, systemError } from './fixtures/mock-fs.js'

const EXT = import.meta.url.endsWith('.ts') ? 'ts' : 'js'
type SessionModule = typeof import('../lib/fuse/session.js')

const O_RDWR = 2
const O_CREAT = 0o100

const u32s = (...ns: number[]): Buffer => {
  const b = Buffer.alloc(4 * ns.length)
  ns.forEach((n, i) => b.writeUInt32LE(n, 4 * i))
  return b
}
const u64s = (...ns: number[]): Buffer => {
  const b = Buffer.alloc(8 * ns.length)
  ns.forEach((n, i) => b.writeBigUInt64LE(BigInt(n), 8 * i))
  return b
}
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`)
const align8 = (n: number): number => (n + 7) & ~7

/**
 * The kernel's end of /dev/fuse: queues one request at a time for the session, which reads it when
 * told the device is readable, takes its reply (or refuses it with ENOENT) and waits until the
 * session has nothing in flight.
 */
class FakeKernel {
  readonly #queue: Buffer[] = []
  #readable: ((status: number) => void) | undefined
  #ended = false
  /** Whether the session stopped watching the device (it does once it is over). */
  closed = false
  #take: ((reply: Buffer) => void) | undefined
  #unique = 1n
  session: { readonly inFlight: number } | undefined
  /** Replies to requests queued with push(), in the order they came. */
  readonly replies: Buffer[] = []
  pauses = 0
  resumes = 0
  /** What spliceReply answers (bytes written, or -errno), and the calls it got. */
  spliceResult = 0
  readonly spliced: Array<{ header: Buffer; fd: number; position: number; bytes: number; zeros: number }> = []

  /** What replaces lib/fs for the session. */
  readonly fs = {
    watchReadable: (_fd: number, callback: (status: number) => void) => {
      this.#readable = callback
      return {}
    },
    watchPause: () => void this.pauses++,
    watchResume: () => {
      this.resumes++
      setImmediate(() => this.#readable?.(0)) // level-triggered: readable again if anything waits
    },
    watchClose: () => void (this.closed = true),
    spliceCapacity: () => 255 * 4096,
    spliceReply: (_fuseFd: number, header: Buffer, fd: number, position: number, bytes: number, zeros: number) => {
      this.spliced.push({ header: Buffer.from(header), fd, position, bytes, zeros })
      return this.spliceResult
    },
    readSync: (_fd: number, buffer: Buffer, offset: number) => {
      const req = this.#queue.shift()
      if (!req) throw systemError(this.#ended ? 'ENODEV' : 'EAGAIN', 'read')
      req.copy(buffer, offset)
      return req.length
    },
    writeSync: (_fd: number, data: Buffer) => this.#reply(data),
    writevSync: (_fd: number, data: Buffer[]) => this.#reply(Buffer.concat(data)),
  }

  /** Send a request; its reply (undefined for FORGET), once the session has answered it. */
  async send(opcode: number, nodeid: number, body: Buffer[], options: { refuse?: boolean | 'ENODEV' } = {}): Promise<Buffer | undefined> {
    let reply: Buffer | undefined
    this.#take = (b) => {
      reply = b
      if (options.refuse) throw systemError(options.refuse === true ? 'ENOENT' : options.refuse, 'write')
    }
    const payload = Buffer.concat(body)
    const header = Buffer.alloc(IN_HEADER_BYTES) // uid, gid, pid 0: root
    header.writeUInt32LE(IN_HEADER_BYTES + payload.length, 0)
    header.writeUInt32LE(opcode, 4)
    header.writeBigUInt64LE(this.#unique++, 8)
    header.writeBigUInt64LE(BigInt(nodeid), 16)
    this.#queue.push(Buffer.concat([header, payload]))
    this.#readable!(0)
    do await new Promise((resolve) => setImmediate(resolve))
    while (this.session!.inFlight > 0)
    this.#take = undefined
    return reply
  }

  /** Queue a request without waiting: its reply goes to `replies`. */
  push(opcode: number, nodeid: number, body: Buffer[]): bigint {
    const payload = Buffer.concat(body)
    const header = Buffer.alloc(IN_HEADER_BYTES)
    header.writeUInt32LE(IN_HEADER_BYTES + payload.length, 0)
    header.writeUInt32LE(opcode, 4)
    const unique = this.#unique++
    header.writeBigUInt64LE(unique, 8)
    header.writeBigUInt64LE(BigInt(nodeid), 16)
    this.#queue.push(Buffer.concat([header, payload]))
    return unique
  }

  /** Say the device is readable (after push()). */
  poke(): void {
    this.#readable!(0)
  }

  /** Unmount: the next read fails with ENODEV. */
  end(): void {
    this.#ended = true
    this.#readable!(0)
  }

  #reply(data: Buffer): number {
    if (this.#take) this.#take(data)
    else this.replies.push(Buffer.from(data))
    return data.length
  }
}

/** `ops` with its releases recorded. */
function recording(ops: TreeFs): { ops: FuseOperations; released: number[]; releasedDirs: number[] } {
  const released: number[] = []
  const releasedDirs: number[] = []
  const proxy = new Proxy(ops, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      const fn = value.bind(target) as (...args: unknown[]) => unknown
      if (prop === 'release') return (fh: number) => (released.push(fh), fn(fh))
      if (prop === 'releasedir') return (fh: number) => (releasedDirs.push(fh), fn(fh))
      return fn
    },
  })
  return { ops: proxy, released, releasedDirs }
}

t.test('a reply the kernel never takes gives back the lookups and handles it would have granted', async (t) => {
  const dir = t.testdir({ lower: { f: 'hello\n', sub: { g: 'x' } } })
  const store = await TreeStore.create(join(dir, 'store'), { lower: join(dir, 'lower') })
  t.teardown(() => store.close())
  const rootIno = (await store.stat('/')).ino
  const tfs = await TreeFs.over(store, 1000)
  const { ops, released, releasedDirs } = recording(tfs)
  const kernel = new FakeKernel()
  const { FuseSession } = await t.mockImport<SessionModule>(new URL(`../lib/fuse/session.${EXT}`, import.meta.url).href, {
    [new URL(`../lib/fs.${EXT}`, import.meta.url).href]: { ...actualFs, ...kernel.fs },
  })
  const logged: string[] = []
  const session = new FuseSession(-1, ops, (m) => logged.push(m))
  kernel.session = session
  const running = session.run()

  /** Lookups the kernel got, by node id: what it will FORGET. */
  const held = new Map<number, number>()
  const hold = (nodeid: number) => void (nodeid !== 0 && held.set(nodeid, (held.get(nodeid) ?? 0) + 1))
  const send = async (what: string, opcode: number, nodeid: number, body: Buffer[], refuse = false): Promise<Buffer> => {
    const reply = await kernel.send(opcode, nodeid, body, { refuse })
    t.equal(reply?.readInt32LE(4), 0, `${what}${refuse ? ' (refused)' : ''}: answered`)
    return reply!
  }
  const entryNodeid = (reply: Buffer) => Number(reply.readBigUInt64LE(OUT_HEADER_BYTES))
  const openFh = (reply: Buffer, at = OUT_HEADER_BYTES) => Number(reply.readBigUInt64LE(at))
  /** READDIRPLUS records: node id, name and dirent ino of each. */
  const records = (reply: Buffer) => {
    const out: Array<{ nodeid: number; name: string; ino: number }> = []
    for (let at = OUT_HEADER_BYTES; at < reply.length; ) {
      const dirent = at + ENTRY_OUT_BYTES
      const namelen = reply.readUInt32LE(dirent + 16)
      const name = reply.subarray(dirent + DIRENT_NAME_OFFSET, dirent + DIRENT_NAME_OFFSET + namelen).toString()
      out.push({ nodeid: Number(reply.readBigUInt64LE(at)), name, ino: Number(reply.readBigUInt64LE(dirent)) })
      at += align8(ENTRY_OUT_BYTES + DIRENT_NAME_OFFSET + namelen)
    }
    return out
  }

  // LOOKUP, MKDIR: an entry counts a lookup.
  await send('lookup f', Opcode.LOOKUP, FUSE_ROOT_ID, [cstr('f')], true)
  t.equal(tfs.nodes, 1, 'a refused lookup is not counted: only the root is held')
  const f = entryNodeid(await send('lookup f', Opcode.LOOKUP, FUSE_ROOT_ID, [cstr('f')]))
  hold(f)
  await send('mkdir made', Opcode.MKDIR, FUSE_ROOT_ID, [u32s(0o40755, 0o22), cstr('made')], true)
  t.equal(tfs.nodes, 2, 'nor a refused mkdir')
  const sub = entryNodeid(await send('lookup sub', Opcode.LOOKUP, FUSE_ROOT_ID, [cstr('sub')]))
  hold(sub)

  // CREATE, OPEN, OPENDIR: a handle the kernel never got is released.
  const created = await send('create new', Opcode.CREATE, FUSE_ROOT_ID, [u32s(O_RDWR | O_CREAT, 0o100644, 0o22, 0), cstr('new')], true)
  const lostFiles = [openFh(created, OUT_HEADER_BYTES + ENTRY_OUT_BYTES), openFh(await send('open f', Opcode.OPEN, f, [u32s(0, 0)], true))]
  const keptFile = openFh(await send('open f', Opcode.OPEN, f, [u32s(0, 0)]))
  const lostDir = openFh(await send('opendir /', Opcode.OPENDIR, FUSE_ROOT_ID, [u32s(0, 0)], true))
  t.same(released, lostFiles, 'the handles of a refused create and open are released')
  t.same(releasedDirs, [lostDir], 'and that of a refused opendir')

  // READDIRPLUS: every entry in it counts a lookup.
  const root = openFh(await send('opendir /', Opcode.OPENDIR, FUSE_ROOT_ID, [u32s(0, 0)]))
  const readdirplus = (fh: number) => [u64s(fh, 0), u32s(4096, 0), u64s(0), u32s(0, 0)]
  await send('readdirplus /', Opcode.READDIRPLUS, FUSE_ROOT_ID, readdirplus(root), true)
  t.equal(tfs.nodes, 3, 'a refused listing counts none of its entries')
  const listed = records(await send('readdirplus /', Opcode.READDIRPLUS, FUSE_ROOT_ID, readdirplus(root)))
  t.same(listed.map((r) => r.name).sort(), ['.', '..', 'f', 'made', 'new', 'sub'], 'the listing: what the refused mkdir and create made is there')
  for (const r of listed) hold(r.nodeid)
  t.same(
    listed.filter((r) => r.name.startsWith('.')),
    [
      { nodeid: 0, name: '.', ino: rootIno },
      { nodeid: 0, name: '..', ino: rootIno },
    ],
    '"." and ".." of the root: the root itself, no lookup',
  )
  const subDir = openFh(await send('opendir sub', Opcode.OPENDIR, sub, [u32s(0, 0)]))
  const inSub = records(await send('readdirplus sub', Opcode.READDIRPLUS, sub, readdirplus(subDir)))
  for (const r of inSub) hold(r.nodeid)
  t.same(
    inSub.filter((r) => r.name.startsWith('.')).map((r) => [r.name, r.ino]),
    [
      ['.', (await store.stat('/sub')).ino],
      ['..', rootIno],
    ],
    '".." of a directory: its parent',
  )

  for (const fh of [root, subDir]) await send('releasedir', Opcode.RELEASEDIR, FUSE_ROOT_ID, [u64s(fh), u32s(0, 0), u64s(0)])
  await send('release', Opcode.RELEASE, f, [u64s(keptFile), u32s(0, 0), u64s(0)])
  // Everything the kernel got, forgotten: nothing may be left but the root.
  await kernel.send(Opcode.BATCH_FORGET, 0, [u32s(held.size, 0), ...[...held].map(([nodeid, n]) => u64s(nodeid, n))])
  t.equal(tfs.nodes, 1, 'once the kernel forgets what it got, only the root is left')
  t.same(released, [...lostFiles, keptFile], 'every file handle released once')
  t.same(releasedDirs, [lostDir, root, subDir], 'every directory handle released once')
  kernel.end()
  await running
  t.ok(kernel.closed, 'the session stopped watching the device once over')
  t.same(logged, [], 'ENOENT on a reply is the kernel’s to say, not an error to log')
})

t.test('a READDIRPLUS that fails after adding entries gives their lookups back', async (t) => {
  const { Dispatcher } = await import('../lib/fuse/dispatch.js')
  const forgotten: Array<[number, number]> = []
  const attr = { ino: 0, size: 0, blocks: 0, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096 }
  const ops = {
    stable: true,
    forget: (nodeid: number, n: number) => void forgotten.push([nodeid, n]),
    async readdirplus(_fh: number, _offset: number, out: { add(e: object, next: number, type: number, name: Buffer): boolean }) {
      // Two entries counted and added, then the store fails.
      out.add({ nodeid: 7, generation: 0, entryValidMs: 0, attrValidMs: 0, attr: { ...attr, ino: 70 } }, 1, 8, Buffer.from('a'))
      out.add({ nodeid: 9, generation: 0, entryValidMs: 0, attrValidMs: 0, attr: { ...attr, ino: 90 } }, 2, 8, Buffer.from('b'))
      throw new PagecowError('EIO', 'the disk went away')
    },
  } as unknown as FuseOperations
  const d = new Dispatcher(ops, () => {})
  const header = { len: 0, opcode: Opcode.READDIRPLUS, unique: 5n, nodeid: FUSE_ROOT_ID, uid: 0, gid: 0, pid: 1 }
  const reply = await d.handle({ header, op: 'readdirplus', fh: 1, offset: 0, size: 4096 }, () => Buffer.alloc(0))
  t.ok(Buffer.isBuffer(reply) && reply.readInt32LE(4) === -5, 'the reply is the error (EIO)')
  t.same(forgotten, [[7, 1], [9, 1]], 'both lookups given back')
})

/** A session over a fake kernel and `ops`, running; `logged` collects what it logs. */
async function running(t: Test, ops: Partial<FuseOperations>, options: { writebackCache?: boolean } = {}) {
  const kernel = new FakeKernel()
  const { FuseSession } = await t.mockImport<SessionModule>(new URL(`../lib/fuse/session.${EXT}`, import.meta.url).href, {
    [new URL(`../lib/fs.${EXT}`, import.meta.url).href]: { ...actualFs, ...kernel.fs },
  })
  const logged: string[] = []
  const session = new FuseSession(-1, { stable: true, readOnly: false, forget: () => {}, ...ops } as FuseOperations, (m) => logged.push(m), options)
  kernel.session = session
  const done = session.run()
  t.teardown(async () => {
    kernel.end()
    await done
  })
  return { kernel, session, logged }
}

const readBody = (fh: number, offset: number, size: number) => [u64s(fh, offset), u32s(size, 0), u64s(0), u32s(0, 0)]
const EAGAIN = 11
const E2BIG = 7
const ENOENT = 2
const EIO = 5
const ENODEV = 19

t.test('READ: bytes that lie in a file are spliced; otherwise, or when splicing cannot, copied', async (t) => {
  const span = { fd: 42, bytes: 3000, zeros: 1096 }
  for (const [name, spanOf, result, want] of [
    ['no span (pages in the upper)', undefined, 0, 'copied'],
    ['a span, spliced', span, 4112, 'spliced'],
    ['a span not in the page cache (-EAGAIN)', span, -EAGAIN, 'copied'],
    ['a span too big for the pipe (-E2BIG)', span, -E2BIG, 'copied'],
    ['a span, the request interrupted meanwhile (-ENOENT)', span, -ENOENT, 'nothing'],
    ['a span, splice failing (-EIO)', span, -EIO, 'copied'],
    ['a span, the connection gone meanwhile (-ENODEV: unmounted)', span, -ENODEV, 'nothing'],
  ] as const) {
    await t.test(name, async (t) => {
      const reads: number[] = []
      const { kernel, logged } = await running(t, {
        spanOf: () => spanOf,
        read: async (_fh: number, offset: number, size: number, scratch: Buffer) => {
          reads.push(offset)
          return scratch.fill(7, 0, size).subarray(0, size)
        },
      })
      kernel.spliceResult = result
      const reply = await kernel.send(Opcode.READ, 2, readBody(1, 8192, 4096))
      if (spanOf) {
        t.equal(kernel.spliced.length, 1, 'splicing tried')
        const s = kernel.spliced[0]!
        t.same({ fd: s.fd, position: s.position, bytes: s.bytes, zeros: s.zeros }, { fd: 42, position: 8192, bytes: 3000, zeros: 1096 }, 'the file, the offset, the bytes and the zeros')
        t.equal(s.header.readUInt32LE(0), OUT_HEADER_BYTES + 4096, 'a header for the whole reply')
        t.equal(s.header.readBigUInt64LE(8), 1n, 'answering this request')
      }
      t.same(reads, want === 'copied' ? [8192] : [], want === 'copied' ? 'read through the file system' : 'not read through the file system')
      t.equal(reply === undefined ? 'nothing' : reply.length === OUT_HEADER_BYTES + 4096 ? 'copied' : 'bad', want === 'spliced' ? 'nothing' : want, `reply: ${want}`)
      t.same(logged.length, result === -EIO ? 1 : 0, result === -EIO ? 'a failing splice is logged' : 'nothing logged')
      if (result === -EIO) {
        await kernel.send(Opcode.READ, 2, readBody(1, 0, 4096))
        t.equal(kernel.spliced.length, 1, 'and not tried again: replies are copied from then on')
      }
    })
  }
  await t.test('a span over the pipe’s capacity is not even tried', async (t) => {
    const { kernel } = await running(t, { spanOf: () => ({ fd: 42, bytes: 255 * 4096, zeros: 4096 }), read: async (_f: number, _o: number, size: number, b: Buffer) => b.subarray(0, size) })
    await kernel.send(Opcode.READ, 2, readBody(1, 0, 256 * 4096 - 4096))
    t.equal(kernel.spliced.length, 0, 'not tried: copied')
  })
})

t.test('in flight: 64 requests at most, then reading waits for one to finish', async (t) => {
  let open!: () => void
  const gate = new Promise<void>((r) => (open = r))
  const attr = { ino: 1, size: 0, blocks: 0, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, mode: 0o40755, nlink: 2, uid: 0, gid: 0, rdev: 0, blksize: 4096 }
  const { kernel, session } = await running(t, {
    getattr: async () => {
      await gate
      return attr
    },
  })
  for (let i = 0; i < 70; i++) kernel.push(Opcode.GETATTR, 1, [u32s(0, 0), u64s(0)])
  kernel.poke()
  await new Promise((r) => setImmediate(r))
  t.equal(session.inFlight, 64, '64 read and in flight, 6 left in the device')
  t.equal(kernel.pauses, 1, 'polling paused')
  open()
  while (kernel.replies.length < 70) await new Promise((r) => setImmediate(r))
  t.equal(kernel.replies.length, 70, 'every request answered once those in flight were done')
  t.ok(kernel.resumes >= 1, 'polling resumed')
})

t.test('large buffers: 8 copied READ replies at most are being read at once', async (t) => {
  let open!: () => void
  const gate = new Promise<void>((r) => (open = r))
  let reading = 0
  const { kernel } = await running(t, {
    read: async (_fh: number, _offset: number, size: number, scratch: Buffer) => {
      reading++
      await gate
      return scratch.subarray(0, size)
    },
  })
  for (let i = 0; i < 12; i++) kernel.push(Opcode.READ, 2, readBody(1, i * 65536, 65536))
  kernel.poke()
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
  t.equal(reading, 8, 'eight READs hold a buffer and read; the other four wait for one')
  open()
  while (kernel.replies.length < 12) await new Promise((r) => setImmediate(r))
  t.equal(reading, 12, 'then all twelve are read')
  t.ok(kernel.replies.every((r) => r.length === OUT_HEADER_BYTES + 65536), 'and answered in full')
})

t.test('INIT: the write cache asked for only when wanted and the store is writable; then opens drop O_APPEND and never write-only', async (t) => {
  const { Dispatcher } = await import('../lib/fuse/dispatch.js')
  const { InitFlag, KERNEL_MAJOR, KERNEL_MINOR } = await import('../lib/fuse/protocol.js')
  const O_WRONLY = 1
  const O_RDWR = 2
  const O_APPEND = 0o2000
  const O_TRUNC = 0o1000
  const header = (opcode: number) => ({ len: 0, opcode, unique: 9n, nodeid: 2, uid: 0, gid: 0, pid: 1 })
  for (const [name, wanted, readOnly, granted] of [
    ['wanted, writable store', true, false, true],
    ['not wanted', false, false, false],
    ['wanted, read-only store', true, true, false],
  ] as const) {
    const opened: number[] = []
    const ops = {
      stable: true,
      readOnly,
      forget: () => {},
      open: async (_n: number, flags: number) => (opened.push(flags), { fh: 1, keepCache: true }),
      release: async () => {},
      lseek: async () => 8192,
    } as unknown as FuseOperations
    const d = new Dispatcher(ops, () => {}, { writebackCache: wanted })
    const offered = InitFlag.WRITEBACK_CACHE | InitFlag.ASYNC_READ
    const reply = (await d.handle({ header: header(Opcode.INIT), op: 'init', major: KERNEL_MAJOR, minor: KERNEL_MINOR, maxReadahead: 0, flags: offered }, () => Buffer.alloc(0))) as Buffer
    const flags = reply.readUInt32LE(OUT_HEADER_BYTES + 12)
    t.equal((flags & InitFlag.WRITEBACK_CACHE) !== 0, granted, `${name}: WRITEBACK_CACHE ${granted ? 'asked for' : 'not asked for'}`)
    t.equal(d.writebackCache, granted, `${name}: the dispatcher knows`)
    for (const [open, expect] of [
      [O_WRONLY | O_APPEND | O_TRUNC, granted ? O_RDWR | O_TRUNC : O_WRONLY | O_APPEND | O_TRUNC],
      [O_RDWR | O_APPEND, granted ? O_RDWR : O_RDWR | O_APPEND],
      [0, 0],
    ] as const) {
      opened.length = 0
      await d.handle({ header: header(Opcode.OPEN), op: 'open', flags: open, openFlags: 0 }, () => Buffer.alloc(0))
      t.same(opened, [expect], `${name}: open(0${open.toString(8)}) acts on 0${expect.toString(8)}`)
    }
    const SEEK_DATA = 3
    const seek = (await d.handle({ header: header(Opcode.LSEEK), op: 'lseek', fh: 1, offset: 0, whence: SEEK_DATA }, () => Buffer.alloc(0))) as Buffer
    // Pages still cached in the kernel are data the store cannot see: the kernel must answer itself.
    t.equal(seek.readInt32LE(4), granted ? -38 : 0, `${name}: SEEK_DATA ${granted ? 'left to the kernel (ENOSYS)' : 'answered from the store'}`)
  }
  const offeredNone = new Dispatcher({ stable: true, readOnly: false } as unknown as FuseOperations, () => {}, { writebackCache: true })
  const reply = (await offeredNone.handle({ header: header(Opcode.INIT), op: 'init', major: KERNEL_MAJOR, minor: KERNEL_MINOR, maxReadahead: 0, flags: 0 }, () => Buffer.alloc(0))) as Buffer
  t.equal(reply.readUInt32LE(OUT_HEADER_BYTES + 12) & InitFlag.WRITEBACK_CACHE, 0, 'a kernel that does not offer it is not asked')
  t.equal(offeredNone.writebackCache, false)
})

t.test('the session is over only once the notifications being written are done (the caller closes the device after)', async (t) => {
  const kernel = new FakeKernel()
  const writes: Array<{ finish: (err?: NodeJS.ErrnoException) => void }> = []
  const { FuseSession } = await t.mockImport<SessionModule>(new URL(`../lib/fuse/session.${EXT}`, import.meta.url).href, {
    [new URL(`../lib/fs.${EXT}`, import.meta.url).href]: {
      ...actualFs,
      ...kernel.fs,
      // A notification waits in the pool (behind store work, or for a lock in the kernel).
      write: () => new Promise<number>((resolve, reject) => writes.push({ finish: (err) => (err ? reject(err) : resolve(0)) })),
    },
  })
  let notifier: { invalidateEntry(parent: number, name: string): void } | undefined
  const ops = { stable: true, readOnly: false, forget: () => {}, bindNotifier: (n: typeof notifier) => (notifier = n) } as unknown as FuseOperations
  const logged: string[] = []
  const session = new FuseSession(-1, ops, (m) => logged.push(m))
  kernel.session = session
  let over = false
  const done = session.run().then(() => (over = true))
  notifier!.invalidateEntry(FUSE_ROOT_ID, 'gone')
  notifier!.invalidateEntry(FUSE_ROOT_ID, 'also-gone')
  t.equal(writes.length, 2, 'two notifications being written')
  kernel.end()
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
  t.notOk(over, 'unmounted, but not over while a notification may still write to the device')
  t.notOk(kernel.closed, 'and still watching it')
  writes[0]!.finish()
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
  t.notOk(over, 'one done: still not over')
  writes[1]!.finish(systemError('ENODEV', 'write'))
  await done
  t.ok(over && kernel.closed, 'over once both are done')
  t.same(logged, [], 'ENODEV on a notification after the unmount is not an error')
})

t.test('a reply the kernel cannot take because the mount is gone (ENODEV) is not logged; what it granted is given back', async (t) => {
  const released: number[] = []
  const { kernel, logged } = await running(t, {
    open: async () => ({ fh: 7, keepCache: false }),
    release: async (fh: number) => void released.push(fh),
  })
  const reply = await kernel.send(Opcode.OPEN, 2, [u32s(0, 0)], { refuse: 'ENODEV' })
  t.equal(reply?.readInt32LE(4), 0, 'the open was answered')
  t.same(released, [7], 'its handle released: the kernel never got it')
  t.same(logged, [], 'nothing logged: an unmount while serving is no error')
})
