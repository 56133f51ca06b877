// A store mounted through FUSE: the library API behind `pagecow mount`. The process that holds
// the mount serves it from its event loop, so it must never touch the mount itself (a
// synchronous call into its own mount would wait for ever): the CLI runs it as a daemon.
import { EventEmitter } from 'node:events'
import { resolve } from 'node:path'
import { z } from 'zod'
import { parseWith, PagecowError } from '../errors.js'
import * as fs from '../fs.js'
import { ImageStore } from '../image/image-store.js'
import type { TreeStore } from '../tree/tree-store.js'
import { MAX_WRITE } from './dispatch.js'
import { ImageFs } from './image-fs.js'
import { abortConnection, findMount, kernelMount, kernelUnmount, setReadahead } from './kernel-mount.js'
import { LOCK_FILE, WriterLock } from '../store/writer-lock.js'
import { FuseSession } from './session.js'
import { TreeFs } from './tree-fs.js'

export const DEFAULT_MAX_NODES = 16_384

export const mountOptionsSchema = z.strictObject({
  /** Let users other than the one who mounted use the mount (they still pass the modes' checks). */
  allowOther: z.boolean().default(false),
  /**
   * Honour set-user-ID and set-group-ID bits of files on the mount. Default false: the mount is
   * `nosuid`, so a set-user-ID program in the lower runs with its caller's rights.
   */
  suid: z.boolean().default(false),
  /**
   * Let device nodes on the mount be opened as devices. Default false: the mount is `nodev`, so
   * opening one fails with EACCES.
   */
  dev: z.boolean().default(false),
  /**
   * Inodes the kernel may hold through the mount before the server asks it to drop the least
   * recently used: bounds the server's memory whatever the size of the tree.
   */
  maxNodes: z.number().int().min(64).max(100_000_000).default(DEFAULT_MAX_NODES),
  /**
   * Let the kernel cache writes (FUSE_WRITEBACK_CACHE): write(2) returns once the page cache has
   * the data and reaches the store later, in larger requests: at fsync(2), close(2), sync(2), under
   * memory pressure, or after the kernel's dirty expiry (vm.dirty_expire_centisecs, 30 s by
   * default). Until then the store (and `pagecow` commands reading it) does not have those writes,
   * and a server killed meanwhile loses them; fsync(2) is as durable as without. Default false.
   * Ignored for a read-only store.
   */
  writebackCache: z.boolean().default(false),
})
export type MountOptions = z.input<typeof mountOptionsSchema>

/** Readahead on the mount: the largest READ the kernel sends us (MAX_WRITE, 1020 KiB). */
const READAHEAD_KB = MAX_WRITE / 1024

export class StoreMount extends EventEmitter {
  readonly mountpoint: string
  readonly store: TreeStore | ImageStore
  /** Resolves when the kernel ends the mount (umount by anyone, or an abort). */
  readonly ended: Promise<void>
  readonly #fd: number
  readonly #fs: TreeFs | ImageFs
  readonly #session: FuseSession
  #unmounting: Promise<void> | undefined

  private constructor(mountpoint: string, store: TreeStore | ImageStore, fd: number, fs_: TreeFs | ImageFs, session: FuseSession) {
    super()
    this.mountpoint = mountpoint
    this.store = store
    this.#fd = fd
    this.#fs = fs_
    this.#session = session
    this.ended = session.run().finally(() => this.#release())
  }

  /** Mount `store` at the directory `mountpoint`. A read-only store makes a read-only mount. */
  static async mount(store: TreeStore | ImageStore, mountpoint: string, options: MountOptions = {}): Promise<StoreMount> {
    const opts = parseWith(mountOptionsSchema, options, 'mount')
    const target = checkMountpoint(mountpoint, store)
    const ops = store instanceof ImageStore ? new ImageFs(store) : await TreeFs.over(store, opts.maxNodes)
    // Warnings before the caller could listen are handed on right after mount() returns (or told
    // in its error).
    const warnings: string[] = []
    let listening = false
    let mount: StoreMount | undefined
    let session: FuseSession | undefined
    try {
      await kernelMount(target, { readOnly: store.readOnly, allowOther: opts.allowOther, suid: opts.suid, dev: opts.dev, source: store.path }, (fd) => {
        session = new FuseSession(fd, ops, (message) => (listening && mount ? mount.emit('warning', new Error(message)) : warnings.push(message)), {
          writebackCache: opts.writebackCache,
        })
        mount = new StoreMount(target, store, fd, ops, session)
      })
    } catch (err) {
      await mount?.ended // undone: the session ended and let go of the descriptor
      throw err
    }
    if (!mount || !session) throw new PagecowError('EIO', `mount: ${target} was mounted but not served`)
    // Usable once INIT is answered; only then does raising the readahead stick. A session that
    // stops first (the mount undone or aborted meanwhile, a kernel whose protocol we do not speak)
    // serves nothing: the caller would hold a dead mount it cannot tell from a live one.
    if (!(await session.initialized)) {
      // Unmounting ends the connection, and so the readers still waiting on it. A dead mount left
      // behind would also make the next mount there fail.
      if (findMount(target)?.source === store.path) await kernelUnmount(target, true).catch(() => {})
      await mount.ended
      const why = warnings.length > 0 ? `: ${warnings.join('; ')}` : ''
      throw new PagecowError('EIO', `mount: the session at ${target} ended before the kernel's INIT was answered${why}; nothing is mounted`)
    }
    try {
      setReadahead(target, READAHEAD_KB)
    } catch (err) {
      warnings.push(`reads stay at 128 KiB a request: ${err instanceof Error ? err.message : String(err)}`)
    }
    const made = mount
    process.nextTick(() => {
      listening = true
      warnings.forEach((w) => made.emit('warning', new Error(w)))
    })
    return made
  }

  /** Inodes the kernel holds through this mount now (for a tree store; an image store has two). */
  get nodes(): number {
    return this.#fs instanceof TreeFs ? this.#fs.nodes : 2
  }

  /** Whether the kernel caches writes on this mount (the writebackCache option, granted by the kernel). */
  get writebackCache(): boolean {
    return this.#session.writebackCache
  }

  /** The image's path inside the mount, for an image store. */
  get imagePath(): string | undefined {
    return this.#fs instanceof ImageFs ? `${this.mountpoint}/${this.#fs.fileName}` : undefined
  }

  /**
   * Flush, then unmount and wait for the kernel to end the session. If files on the mount are
   * still open, the mount is detached lazily and ends when the last of them closes. A process
   * whose write(2) waits for a frozen file keeps it open: thaw first (`store.thawAll()`).
   */
  unmount(): Promise<void> {
    this.#unmounting ??= (async () => {
      if (!this.store.readOnly) await this.store.flush()
      try {
        await kernelUnmount(this.mountpoint, false)
      } catch (err) {
        if (!(err instanceof PagecowError) || err.code !== 'EBUSY') throw err
        this.emit('warning', new Error(`${this.mountpoint} is busy: detached lazily; it ends when the last open file on it closes`))
        await kernelUnmount(this.mountpoint, true)
      }
      await this.ended
    })()
    return this.#unmounting
  }

  async #release(): Promise<void> {
    if (this.#fs instanceof TreeFs) await this.#fs.closeAll()
    fs.closeSync(this.#fd)
  }
}

/**
 * The real path of `mountpoint` if a store can be mounted there: an existing directory that is
 * not a pagecow mount already (a dead one included). Resolved before mounting: once mounted, only
 * the kernel may look at it from the serving process.
 */
export function checkMountpoint(mountpoint: string, store?: TreeStore | ImageStore): string {
  const target = resolve(mountpoint)
  let st
  try {
    st = fs.statSync(target)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') throw new PagecowError('EBUSY', `mount: ${target} is a mount whose server died; run \`pagecow umount ${target}\` first`)
    throw new PagecowError('ENOENT', `mount: the mount point ${target} does not exist`)
  }
  if (!st.isDirectory()) throw new PagecowError('ENOTDIR', `mount: the mount point ${target} is not a directory`)
  const real = fs.realpathSync(target)
  if (findMount(real)) throw new PagecowError('EBUSY', `mount: a pagecow store is already mounted at ${real}`)
  if (store) {
    // The server reaches the store and the lower by path: if the mount covered them, its own
    // calls would come back to it and wait for ever.
    // A store on other stores reads every one of them, and the raw image at the bottom; a tree
    // store reads each of its lowers.
    const chain = store instanceof ImageStore ? store.backingChain() : []
    const stores = chain.length > 0 ? chain.filter((l) => l.format === 'pagecow').map((l) => fs.realpathSync(l.path)) : [fs.realpathSync(store.path)]
    const lowers = (store instanceof ImageStore ? [chain.at(-1)?.path ?? store.info().lower.path] : store.lowerPaths).map((p) => fs.realpathSync(p))
    const covered = stores.find((path) => overlaps(real, path)) ?? (store instanceof ImageStore ? lowers.find((l) => l.startsWith(`${real}/`)) : lowers.find((l) => overlaps(real, l)))
    if (covered !== undefined) {
      throw new PagecowError('EINVAL', `mount: the mount point ${real} overlaps ${covered}, which the store reads; mount it elsewhere (a store is not mounted over its own lower: the lower stays readable where it is)`)
    }
  }
  return real
}

/** Whether one path is the other or under it. */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`) || a === '/' || b === '/'
}

export const unmountOptionsSchema = z.strictObject({
  /**
   * Detach even while files on the mount are open (umount -l). Default false: a busy mount is
   * refused with EBUSY.
   */
  lazy: z.boolean().default(false),
  /**
   * Abort the mount's FUSE connection first: for a server that hangs. Requests waiting on it fail
   * with ECONNABORTED (a write among them is lost, as in a crash: SPEC §3), later ones with
   * ENOTCONN; a mount still busy is then detached as with `lazy`. The server, if it can still
   * run, flushes what it had and lets go of the store.
   */
  abort: z.boolean().default(false),
  /** How long to wait for the serving process to flush and let go of the store; default 60 s. */
  waitMs: z.number().int().min(0).max(3_600_000).default(60_000),
})
export type UnmountOptions = z.input<typeof unmountOptionsSchema>

/**
 * Unmount the pagecow mount at `mountpoint` — served or left behind by a killed server — and wait
 * until the store it showed is no longer held, so the next open of the store succeeds.
 * With `lazy`, a mount with files still open on it is detached instead, and this resolves at
 * once: its server lets go of the store when the last of those files closes. With `abort`, the
 * connection is cut first (a hung server: see unmountOptionsSchema).
 * Returns the store's path.
 */
export async function unmountStore(mountpoint: string, options: UnmountOptions = {}): Promise<string> {
  const opts = parseWith(unmountOptionsSchema, options, 'umount')
  const entry = findMount(resolve(mountpoint))
  if (!entry) throw new PagecowError('EINVAL', `umount: ${resolve(mountpoint)} is not a pagecow mount`)
  if (opts.abort) await abortConnection(entry)
  try {
    // Plainly first, even with `lazy`: only a mount that was not busy can be waited for.
    await kernelUnmount(entry.mountpoint, false)
  } catch (err) {
    // A busy mount whose connection was cut serves nothing any more: detach it as --lazy would.
    if (!(opts.lazy || opts.abort) || !(err instanceof PagecowError) || err.code !== 'EBUSY') throw err
    await kernelUnmount(entry.mountpoint, true)
    // Without an abort the server holds the store until the open files close, which may be
    // never: not waited for. An aborted server gets no more requests and lets go at once.
    if (!opts.abort) return entry.source
  }
  // A read-only server holds no lock: nothing to wait for (and the lock may be another writer's).
  if (entry.readOnly) return entry.source
  const lock = `${entry.source}/${LOCK_FILE}`
  const until = Date.now() + opts.waitMs
  while (!WriterLock.isFree(lock)) {
    if (Date.now() >= until) throw new PagecowError('EBUSY', `umount: ${entry.mountpoint} is unmounted, but ${entry.source} is still held after ${opts.waitMs} ms (its server is still flushing, or hung)`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return entry.source
}
