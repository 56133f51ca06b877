// The session's side of /dev/fuse, against a fake kernel (lib/fs's reads and writes of the device
// replaced): a reply the kernel never takes (an interrupted request: the write fails with ENOENT)
// gives back what it would have granted, the lookups it counted and the handles it opened.
import t from 'tap'
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

  /** What replaces lib/fs for the session. */
  readonly fs = {
    watchReadable: (_fd: number, callback: (status: number) => void) => {
      this.#readable = callback
      return {}
    },
    watchPause: () => {},
    watchResume: () => {},
    watchClose: () => void (this.closed = true),
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
  async send(opcode: number, nodeid: number, body: Buffer[], options: { refuse?: boolean } = {}): Promise<Buffer | undefined> {
    let reply: Buffer | undefined
    this.#take = (b) => {
      reply = b
      if (options.refuse) throw systemError('ENOENT', 'write')
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

  /** Unmount: the next read fails with ENODEV. */
  end(): void {
    this.#ended = true
    this.#readable!(0)
  }

  #reply(data: Buffer): number {
    if (!this.#take) throw new Error('a reply nobody asked for')
    this.#take(data)
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
