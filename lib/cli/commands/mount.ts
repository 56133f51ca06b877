// `pagecow mount STORE MOUNTPOINT`: serve the store as a FUSE file system. By default a daemon
// serves it and this command returns once the mount is usable; --foreground serves in this
// process. The server never touches its own mount: a blocking call into it would wait for ever.
import { spawn } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { PagecowError, type ErrorCode } from '../../errors.js'
import { ControlServer } from '../../control/control-server.js'
import { checkMountpoint, StoreMount } from '../../fuse/store-mount.js'
import { openStore, storeKind } from '../../open-store.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, countValue, DETECT_ZEROES_HELP, detectZeroesValue, parseCommandLine } from '../options.js'

const schema = z.strictObject({
  store: z.string().min(1, 'the store directory is required'),
  mountpoint: z.string().min(1, 'the mount point is required'),
  readOnly: z.boolean().optional(),
  allowOther: z.boolean().optional(),
  suid: z.boolean().optional(),
  dev: z.boolean().optional(),
  foreground: z.boolean().optional(),
  maxNodes: countValue(64, 100_000_000).optional(),
  writebackCache: z.boolean().optional(),
  detectZeroes: detectZeroesValue.optional(),
  json: z.boolean().optional(),
  ...commonFlags,
})

/** The environment variable naming the descriptor a daemon reports readiness on. */
const READY_FD_ENV = 'PAGECOW_MOUNT_READY_FD'
/**
 * libuv's pool serves the mount's cold reads (8 at once: the session's large-buffer bound), the
 * uppers' fdatasyncs and cache notifications: more than the default 4.
 */
const THREAD_POOL = '8'
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

interface Ready {
  ok: boolean
  mountpoint?: string
  image?: string
  pid?: number
  writebackCache?: boolean
  code?: ErrorCode
  message?: string
}

export function mountCommand(io: CliIo) {
  const cmd = newCommand('mount', io)
    .summary('mount the store as a file system (FUSE)')
    .description(
      'mount a tree store as its merged tree, or an image store as a directory holding the image as one file; returns once the mount is usable and a background server keeps serving it until `pagecow umount`; SIGINT/SIGTERM to the server flush and unmount. Needs root (or CAP_SYS_ADMIN) and /dev/fuse',
    )
    .argument('<STORE>', 'the store directory')
    .argument('<MOUNTPOINT>', 'an existing directory to mount on')
    .option('--read-only', 'a read-only mount (the store is opened without the writer lock)')
    .option('--allow-other', 'let other users use the mount (permissions are still checked)')
    .option('--suid', 'honour set-user-ID and set-group-ID bits (default: the mount is nosuid)')
    .option('--dev', 'let device nodes be opened as devices (default: the mount is nodev)')
    .option('--foreground', 'serve in this process until unmounted or interrupted')
    .option('--max-nodes <N>', 'inodes the kernel may cache through the mount before the server asks it to drop some (bounds its memory); default 16384')
    .option(
      '--writeback-cache',
      'let the kernel cache writes: write(2) returns once the page cache has them, and they reach the store at fsync, close or sync (or after ~30 s): faster writes, a longer window of loss if the server dies; fsync is as durable as without',
    )
    .option('--detect-zeroes <MODE>', DETECT_ZEROES_HELP)
    .option('--json', 'print one JSON line describing the mount')
    .action(async (store: string, mountpoint: string) => {
      const opts = parseCommandLine(cmd, schema, { store, mountpoint })
      // Before anything is opened or written: a missing store or a bad mount point says so.
      await storeKind(opts.store)
      checkMountpoint(opts.mountpoint)
      const readyFd = io.env[READY_FD_ENV]
      if (opts.foreground) return serve(io, opts, readyFd === undefined ? undefined : Number(readyFd))
      const ready = await startDaemon(io, opts)
      if (!ready.ok) throw new PagecowError(ready.code ?? 'EIO', ready.message ?? 'mount: the server failed to start')
      const shown = { store: opts.store, mountpoint: ready.mountpoint, image: ready.image ?? null, pid: ready.pid, writebackCache: ready.writebackCache === true }
      await writeTo(io.stdout, opts.json ? `${JSON.stringify(shown)}\n` : `mounted ${opts.store} at ${ready.mountpoint}${ready.image ? ` (image: ${ready.image})` : ''}; \`pagecow umount ${ready.mountpoint}\` unmounts\n`)
    })
  return examples(cmd, ['pagecow mount rootfs.cow /mnt/rootfs', 'pagecow mount vm1.cow /mnt/vm1 && qemu-img info /mnt/vm1/disk.raw', 'pagecow umount /mnt/rootfs'])
}

type Options = z.output<typeof schema>

/** Serve the mount here until it ends; report readiness (or the failure) on `readyFd`. */
async function serve(io: CliIo, opts: Options, readyFd: number | undefined): Promise<void> {
  const report = (ready: Ready) => {
    if (readyFd === undefined) return
    try {
      nodeFs.writeSync(readyFd, `${JSON.stringify(ready)}\n`)
      nodeFs.closeSync(readyFd)
    } catch {
      // The starter went away; the mount serves on regardless.
    }
  }
  let store
  let control: ControlServer | undefined
  let mount: StoreMount
  try {
    store = await openStore(opts.store, { readOnly: opts.readOnly === true, ...(opts.detectZeroes === undefined ? {} : { detectZeroes: opts.detectZeroes }) })
    // Other pagecow commands reach the served store through it (flush, inspect); a read-only
    // mount holds no writer to reach.
    if (!store.readOnly) control = await ControlServer.listen(store)
    mount = await StoreMount.mount(store, opts.mountpoint, {
      allowOther: opts.allowOther === true,
      suid: opts.suid === true,
      dev: opts.dev === true,
      writebackCache: opts.writebackCache === true,
      ...(opts.maxNodes === undefined ? {} : { maxNodes: opts.maxNodes }),
    })
  } catch (err) {
    await control?.close().catch(() => {})
    await store?.close().catch(() => {})
    report({ ok: false, code: err instanceof PagecowError ? err.code : 'EIO', message: err instanceof Error ? err.message : String(err) })
    throw err
  }
  mount.on('warning', (err: Error) => io.stderr.write(`pagecow mount: ${err.message}\n`))
  const handlers = STOP_SIGNALS.map((name) => {
    const handler = () => {
      io.stderr.write(`pagecow mount: ${name}: flushing and unmounting ${mount.mountpoint}\n`)
      // Freezes end with the server (they are not persistent): a writer waiting for one would
      // keep its file open, and so the mount busy, for ever. Its write lands before the flush.
      if (!store.readOnly) store.thawAll()
      mount.unmount().catch((err: unknown) => io.stderr.write(`pagecow mount: ${err instanceof Error ? err.message : String(err)}\n`))
    }
    process.on(name, handler)
    return [name, handler] as const
  })
  report({ ok: true, mountpoint: mount.mountpoint, ...(mount.imagePath ? { image: mount.imagePath } : {}), pid: process.pid, writebackCache: mount.writebackCache })
  if (readyFd === undefined) {
    const shown = { store: store.path, mountpoint: mount.mountpoint, image: mount.imagePath ?? null, pid: process.pid, writebackCache: mount.writebackCache }
    await writeTo(io.stdout, opts.json ? `${JSON.stringify(shown)}\n` : `serving ${store.path} at ${mount.mountpoint}; Ctrl-C unmounts\n`)
  }
  try {
    await mount.ended
  } finally {
    await control?.close()
    await store.close() // flushes
    handlers.forEach(([name, handler]) => process.off(name, handler))
  }
}

/** Start `pagecow mount --foreground` detached and wait for it to say the mount is usable. */
async function startDaemon(io: CliIo, opts: Options): Promise<Ready> {
  // A long-running server allocates a little per request and keeps little: V8's default young
  // generation (up to 3 × 16 MiB) and old-space growth (the heap grows well past what is live
  // before a full collection) let its RSS sit far above what it needs. A 10k-entry walk: 106 →
  // 82 MiB peak at the same speed; three untars of 3 000 files: 123 → 99 MiB with 19 MiB live.
  // V8 flags must be set at start.
  const args = [...process.execArgv, '--max-semi-space-size=2', '--heap-growing-percent=20', process.argv[1]!, 'mount', opts.store, opts.mountpoint, '--foreground']
  if (opts.readOnly) args.push('--read-only')
  if (opts.allowOther) args.push('--allow-other')
  if (opts.suid) args.push('--suid')
  if (opts.dev) args.push('--dev')
  if (opts.maxNodes !== undefined) args.push('--max-nodes', String(opts.maxNodes))
  if (opts.writebackCache) args.push('--writeback-cache')
  if (opts.detectZeroes !== undefined) args.push('--detect-zeroes', opts.detectZeroes)
  const log = openLog(opts)
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
    env: { ...io.env, [READY_FD_ENV]: '3', UV_THREADPOOL_SIZE: io.env.UV_THREADPOOL_SIZE ?? THREAD_POOL },
  })
  if (typeof log === 'number') nodeFs.closeSync(log)
  const pipe = child.stdio[3] as NodeJS.ReadableStream
  let text = ''
  pipe.setEncoding('utf8')
  pipe.on('data', (chunk: string) => (text += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  await Promise.race([new Promise((resolve) => pipe.once('end', resolve)), exited])
  child.unref()
  ;(pipe as unknown as { destroy(): void }).destroy()
  const line = text.split('\n')[0]
  if (!line) return { ok: false, code: 'EIO', message: `mount: the server exited (code ${await exited}) before mounting; see ${logPath(opts) ?? 'its output'}` }
  return JSON.parse(line) as Ready
}

/**
 * The daemon's output goes to STORE/mount.log (a read-only mount's store may not take it). Like
 * every store file it is never reached through a symlink, nor opened if it is not a regular file
 * (a FIFO would block the daemon's output): EUNSAFE.
 */
function openLog(opts: Options): number | 'ignore' {
  const path = logPath(opts)
  if (!path) return 'ignore'
  const c = nodeFs.constants
  const flags = c.O_WRONLY | c.O_APPEND | c.O_NOFOLLOW | c.O_NONBLOCK
  const owner = nodeFs.statSync(opts.store)
  let fd: number
  let created = true
  try {
    try {
      fd = nodeFs.openSync(path, flags | c.O_CREAT | c.O_EXCL, 0o644)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      created = false
      fd = nodeFs.openSync(path, flags)
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP') throw new PagecowError('EUNSAFE', `${path} is a symlink; pagecow never follows one inside a store (remove it)`)
    if (code === 'ENXIO') throw new PagecowError('EUNSAFE', `${path} is a FIFO, not a regular file; remove it`)
    return 'ignore'
  }
  const st = nodeFs.fstatSync(fd)
  // Root starting a mount of a user's store: the new log is the user's, as the store is.
  if (created && st.uid !== owner.uid && process.geteuid?.() === 0) nodeFs.fchownSync(fd, owner.uid, owner.gid)
  else if (!st.isFile() || st.uid !== owner.uid) {
    nodeFs.closeSync(fd)
    throw new PagecowError('EUNSAFE', `${path} is ${st.isFile() ? `owned by uid ${st.uid}, not by the store's owner (uid ${owner.uid})` : 'not a regular file'}; remove it`)
  }
  return fd
}

function logPath(opts: Options): string | undefined {
  return opts.readOnly ? undefined : join(opts.store, 'mount.log')
}
