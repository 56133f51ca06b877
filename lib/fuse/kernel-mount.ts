// Mounting and unmounting: the system calls behind `pagecow mount` and `pagecow umount`.
// As root we open /dev/fuse ourselves and let mount(8) make the mount with that descriptor
// (inherited as fd 3, named by the fd= option): no setuid helper, no native code.
import { spawn } from 'node:child_process'
import { basename, dirname, join, resolve } from 'node:path'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'

export const FUSE_DEVICE = '/dev/fuse'
export const FS_TYPE = 'fuse.pagecow'

export interface KernelMountOptions {
  readOnly: boolean
  allowOther: boolean
  /** Honour set-user-ID and set-group-ID bits (no `nosuid`). */
  suid: boolean
  /** Let device nodes on the mount be opened as devices (no `nodev`). */
  dev: boolean
  /** What /proc/mounts shows as the source: the store's path. */
  source: string
}

/** A mount of ours as /proc/self/mountinfo lists it. */
export interface MountEntry {
  /** major:minor of the mount's (anonymous) device, which names its backing device info. */
  device: string
  mountpoint: string
  readOnly: boolean
  source: string
  fsType: string
}

/**
 * Open /dev/fuse and mount it at `mountpoint`; the descriptor then serves that mount.
 * `serve(fd)` is called as soon as the mount exists, while mount(8) may still be running: newer
 * mount(8)s look at the new mount (statx) before they exit, and only a server can answer that.
 * Resolves once mount(8) succeeded; if it fails after the mount appeared, the mount is undone.
 */
export async function kernelMount(mountpoint: string, options: KernelMountOptions, serve: (fd: number) => void): Promise<number> {
  let fd: number
  try {
    fd = fs.openSync(FUSE_DEVICE, fs.constants.O_RDWR)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new PagecowError('ENOTSUP', `mount: ${FUSE_DEVICE} does not exist: load the fuse module (modprobe fuse) or install fuse3`)
    if (code === 'EACCES' || code === 'EPERM') throw new PagecowError('EACCES', `mount: cannot open ${FUSE_DEVICE} (${code}); pagecow mounts as root`)
    throw fromSystemError(err, `mount: opening ${FUSE_DEVICE}`)
  }
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  // nosuid and nodev unless asked, as fusermount does: a set-user-ID program or a device node in
  // a lower (or written through the mount) must not become one the mounting user never had.
  const flags = [options.suid ? 'suid' : 'nosuid', options.dev ? 'dev' : 'nodev']
  const data = [...flags, `fd=3`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`, 'default_permissions']
  if (options.allowOther) data.push('allow_other')
  // -i: no mount.fuse.pagecow helper; -n: no mtab; -r: read-only.
  const args = ['-i', '-n', ...(options.readOnly ? ['-r'] : []), '-t', FS_TYPE, '-o', data.join(','), options.source, mountpoint]
  const child = spawn('mount', args, { stdio: ['ignore', 'pipe', 'pipe', fd] })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  let status: number | string | undefined
  const exited = new Promise<void>((done) => {
    child.once('error', (err) => ((status = err.message), done()))
    child.once('close', (code) => ((status = code ?? 'killed'), done()))
  })
  let serving = false
  const isMounted = () => listMounts().some((m) => m.fsType === FS_TYPE && m.mountpoint === mountpoint && m.source === options.source)
  while (status === undefined) {
    if (!serving && isMounted()) {
      serving = true
      serve(fd)
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2))])
  }
  if (status === 0) {
    if (!serving) serve(fd)
    return fd
  }
  const why = (typeof status === 'string' ? status : stderr).trim()
  if (serving) await kernelUnmount(mountpoint, true).catch(() => {}) // the session ends; its owner closes fd
  else fs.closeSync(fd)
  if (uid !== 0) throw new PagecowError('EACCES', `mount: only root can mount (${why || 'mount(8) failed'}); unprivileged mounting through fusermount3 is not supported`)
  throw new PagecowError('EIO', `mount: mount(8) failed on ${mountpoint}: ${why || `exit ${status}`}`)
}

/**
 * umount(8) `mountpoint`; `lazy` detaches it even while files on it are open. Asynchronous on
 * purpose: umount(8) looks at the mount point, and when the caller is the mount's own server, its
 * event loop must stay free to answer.
 */
export async function kernelUnmount(mountpoint: string, lazy: boolean): Promise<void> {
  await runTool('umount', [...(lazy ? ['-l'] : []), mountpoint], `umount ${mountpoint}`)
}

/** Where fusectl shows the kernel's FUSE connections, one directory per connection. */
const FUSE_CONNECTIONS = '/sys/fs/fuse/connections'

/**
 * Abort the FUSE connection behind `entry` (fusectl's `abort` file): every request waiting on its
 * server fails at once with ENOTCONN, and the server's reads of /dev/fuse end. The way out of a
 * server that hangs, when its mount point cannot even be looked at.
 */
export async function abortConnection(entry: MountEntry): Promise<void> {
  // A FUSE mount's anonymous device has the connection's number as its minor.
  const connection = /^0:(\d+)$/.exec(entry.device)?.[1]
  if (connection === undefined) throw new PagecowError('EIO', `umount --abort: ${entry.mountpoint} has device ${entry.device}, not a FUSE connection's`)
  if (!listMounts().some((m) => m.fsType === 'fusectl' && m.mountpoint === FUSE_CONNECTIONS)) {
    await runTool('mount', ['-t', 'fusectl', 'fusectl', FUSE_CONNECTIONS], 'mounting fusectl to abort the connection')
  }
  try {
    fs.writeFileSync(`${FUSE_CONNECTIONS}/${connection}/abort`, '1')
  } catch (err) {
    // Gone already: the server ended (or another abort won) between the lookup and here.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw fromSystemError(err, `aborting FUSE connection ${connection} of ${entry.mountpoint}`)
  }
}

/** Run mount(8) or umount(8); its complaint becomes a PagecowError (EBUSY, EINVAL or EIO). */
async function runTool(command: string, args: string[], what: string): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const status = await new Promise<number | string>((resolve) => {
    child.once('error', (err) => resolve(err.message))
    child.once('close', (code) => resolve(code ?? 'killed'))
  })
  if (status !== 0) {
    const why = (typeof status === 'string' ? status : stderr).trim()
    const code = /busy/i.test(why) ? 'EBUSY' : /not mounted|no mount point/i.test(why) ? 'EINVAL' : 'EIO'
    throw new PagecowError(code, `${what}: ${why || `exit ${status}`}`)
  }
}

/** The pagecow mount at `mountpoint`, if there is one (a dead daemon's mount counts). */
export function findMount(mountpoint: string): MountEntry | undefined {
  // The parent resolved, not the mount point: looking at a mount whose server hangs would hang.
  const absolute = resolve(mountpoint)
  let real = absolute
  try {
    real = join(fs.realpathSync(dirname(absolute)), basename(absolute))
  } catch {
    // Compare as given.
  }
  return listMounts().find((m) => m.fsType === FS_TYPE && (m.mountpoint === real || m.mountpoint === absolute))
}

/** Mounts of this process's namespace. */
export function listMounts(): MountEntry[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields] - fstype source super-options
    const [head, tail] = line.split(' - ')
    if (!head || !tail) continue
    const fields = head.split(' ')
    const [fsType, source] = tail.split(' ')
    out.push({
      device: fields[2] ?? '',
      mountpoint: unescape(fields[4] ?? ''),
      readOnly: (fields[5] ?? '').split(',').includes('ro'),
      source: unescape(source ?? ''),
      fsType: fsType ?? '',
    })
  }
  return out
}

/** mountinfo writes space, tab, newline and backslash as octal escapes. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

/**
 * Let the kernel read ahead `kb` on this mount. FUSE caps readahead at 128 KiB (the INIT reply
 * can only lower it), which means one 128 KiB READ round trip at a time; the backing device
 * info in sysfs can raise it. Found through mountinfo: the server must not stat its own mount.
 */
export function setReadahead(mountpoint: string, kb: number): void {
  // No realpath here: resolving the mount point would ask the server, which is us.
  const entry = listMounts().find((m) => m.fsType === FS_TYPE && m.mountpoint === mountpoint)
  if (!entry) throw new PagecowError('ENOENT', `${mountpoint} is not mounted`)
  try {
    fs.writeFileSync(`/sys/class/bdi/${entry.device}/read_ahead_kb`, `${kb}\n`)
  } catch (err) {
    throw fromSystemError(err, `setting the readahead of ${mountpoint}`)
  }
}
