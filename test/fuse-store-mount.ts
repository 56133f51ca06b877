// StoreMount.mount against a fake kernel (mount(8), umount(8) and the reads of /dev/fuse
// replaced): a session that stops before the kernel's INIT is answered makes mount() fail with a
// clear error and leaves nothing mounted, where it used to hand back a dead mount. A real kernel
// cannot be made to lose that race on demand.
import t, { type Test } from 'tap'
import { mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { TreeStore } from '../lib/index.js'
import * as actualKernelMount from '../lib/fuse/kernel-mount.js'
import type { KernelMountOptions, MountEntry } from '../lib/fuse/kernel-mount.js'
import { IN_HEADER_BYTES, KERNEL_MAJOR, KERNEL_MINOR, Opcode } from '../lib/fuse/protocol.js'
import { actualFs, systemError } from './fixtures/mock-fs.js'

const EXT = import.meta.url.endsWith('.ts') ? 'ts' : 'js'
type StoreMountModule = typeof import('../lib/fuse/store-mount.js')

/** FUSE_INIT as the kernel sends it, speaking protocol `major`.`minor`. */
function init(major: number, minor: number): Buffer {
  const b = Buffer.alloc(IN_HEADER_BYTES + 16)
  b.writeUInt32LE(b.length, 0)
  b.writeUInt32LE(Opcode.INIT, 4)
  b.writeBigUInt64LE(1n, 8)
  b.writeUInt32LE(major, IN_HEADER_BYTES)
  b.writeUInt32LE(minor, IN_HEADER_BYTES + 4)
  return b
}

/** The kernel side: what the session reads, and the one mount it makes. */
class FakeKernel {
  /** What the next reads return, in order; then reads find nothing until the connection ends. */
  readonly requests: Buffer[] = []
  #ended = false
  #readable: ((status: number) => void) | undefined
  mounted: MountEntry | undefined
  readonly unmounts: boolean[] = []

  readonly fs = {
    watchReadable: (_fd: number, callback: (status: number) => void) => {
      this.#readable = callback
      if (this.requests.length > 0 || this.#ended) setImmediate(() => callback(0))
      return {}
    },
    watchPause: () => {},
    watchResume: () => {},
    watchClose: () => void (this.#readable = undefined),
    readSync: (_fd: number, buffer: Buffer, offset: number) => {
      const req = this.requests.shift()
      if (!req) throw systemError(this.#ended ? 'ENODEV' : 'EAGAIN', 'read')
      req.copy(buffer, offset)
      return req.length
    },
  }

  readonly kernelMount = {
    ...actualKernelMount,
    kernelMount: async (mountpoint: string, options: KernelMountOptions, serve: (fd: number) => void): Promise<number> => {
      const fd = openSync('/dev/null', 'r+') // takes the replies; the session closes it
      this.mounted = { device: '0:0', mountpoint, readOnly: options.readOnly, source: options.source, fsType: actualKernelMount.FS_TYPE }
      serve(fd)
      return fd
    },
    kernelUnmount: async (mountpoint: string, lazy: boolean): Promise<void> => {
      if (this.mounted?.mountpoint !== mountpoint) throw new Error(`umount ${mountpoint}: not mounted`)
      this.unmounts.push(lazy)
      this.mounted = undefined
      this.end()
    },
    findMount: (mountpoint: string) => (this.mounted?.mountpoint === mountpoint ? this.mounted : undefined),
    setReadahead: () => {},
  }

  /** The connection ends (unmounted, aborted): every read fails with ENODEV. */
  end(): void {
    this.#ended = true
    const readable = this.#readable
    if (readable) setImmediate(() => readable(0))
  }
}

/** A tree store, a mount point, and StoreMount loaded over `kernel`. */
async function setUp(t: Test, kernel: FakeKernel): Promise<{ store: TreeStore; mnt: string; StoreMount: StoreMountModule['StoreMount'] }> {
  const dir = t.testdir({ lower: { f: 'x' } })
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const store = await TreeStore.create(join(dir, 'store'), { lower: join(dir, 'lower') })
  t.teardown(() => store.close())
  const { StoreMount } = await t.mockImport<StoreMountModule>(new URL(`../lib/fuse/store-mount.${EXT}`, import.meta.url).href, {
    [new URL(`../lib/fs.${EXT}`, import.meta.url).href]: { ...actualFs, ...kernel.fs },
    [new URL(`../lib/fuse/kernel-mount.${EXT}`, import.meta.url).href]: kernel.kernelMount,
  })
  return { store, mnt, StoreMount }
}

const rows: Array<{ name: string; setup: (k: FakeKernel) => void; message: RegExp }> = [
  {
    name: 'the connection ends before INIT is read (unmounted or aborted meanwhile)',
    setup: (k) => k.end(),
    message: /ended before the kernel's INIT was answered; nothing is mounted/,
  },
  {
    name: 'INIT of a protocol we do not speak',
    setup: (k) => k.requests.push(init(KERNEL_MAJOR - 1, 40)),
    message: new RegExp(`kernel speaks protocol ${KERNEL_MAJOR - 1}\\.40; pagecow speaks ${KERNEL_MAJOR}\\.${KERNEL_MINOR}`),
  },
]

for (const row of rows) {
  t.test(`mount fails when the session stops before INIT: ${row.name}`, async (t) => {
    const kernel = new FakeKernel()
    const { store, mnt, StoreMount } = await setUp(t, kernel)
    row.setup(kernel)
    const result = await StoreMount.mount(store, mnt).then(
      (mount) => ({ mount }),
      (err: unknown) => ({ err }),
    )
    if ('mount' in result) {
      t.fail('mount() resolved with a mount that serves nothing')
      await result.mount.unmount()
      return
    }
    // By name, not instanceof: the mocked modules have their own copy of PagecowError.
    t.match(result.err, { name: 'PagecowError', code: 'EIO', message: row.message }, 'a clear error')
    t.equal(kernel.mounted, undefined, 'nothing is left mounted')
  })
}

t.test('the fake kernel serves a mount that answers INIT (the control)', async (t) => {
  const kernel = new FakeKernel()
  const { store, mnt, StoreMount } = await setUp(t, kernel)
  kernel.requests.push(init(KERNEL_MAJOR, KERNEL_MINOR))
  const mount = await StoreMount.mount(store, mnt)
  t.ok(kernel.mounted, 'mounted')
  await mount.unmount()
  t.same(kernel.unmounts, [false], 'unmounted plainly')
})
