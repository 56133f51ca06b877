// Listening on a Unix socket that only its owner can reach from the moment it exists (SPEC §8).
// bind() creates the socket file with the process's umask: under `umask 000` it is 0777 until a
// chmod that can only come after bind, and a client that connects in between stays connected. So
// the socket is bound inside a fresh 0700 directory, made 0600 there, and only then linked to the
// path asked for (link, unlike rename, never replaces a live server's socket).
import { linkSync, lstatSync, mkdtempSync, rmSync, unlinkSync, chmodSync } from 'node:fs'
import net from 'node:net'
import { basename, dirname, join } from 'node:path'
import { PagecowError } from '../index.js'

/** sun_path holds 108 bytes, NUL included. */
const MAX_SOCKET_PATH_BYTES = 107
/** The private directory beside the socket: `.pcXXXXXX` (mkdtemp adds six characters). */
const PRIVATE_PREFIX = '.pc'
/** The socket's name inside the private directory. */
const PRIVATE_NAME = 's'

/** A socket file made by listenPrivately(): remove() unlinks it if it is still this one. */
export interface PrivateSocket {
  readonly path: string
  remove(): void
}

/**
 * Make `server` listen on the Unix socket `path`, mode 0600 from the moment the path exists. A
 * stale socket (nobody listens on it) is replaced; anything else at `path` is EBUSY. Errors:
 * ENAMETOOLONG, ENOENT (no such directory), EACCES, EBUSY, EIO.
 */
export async function listenPrivately(server: net.Server, path: string): Promise<PrivateSocket> {
  const dir = dirname(path)
  const tooLong = Buffer.byteLength(join(dir, `${PRIVATE_PREFIX}XXXXXX`, PRIVATE_NAME)) > MAX_SOCKET_PATH_BYTES
  if (tooLong || Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    const room = MAX_SOCKET_PATH_BYTES - (PRIVATE_PREFIX.length + 6 + PRIVATE_NAME.length + 2)
    throw new PagecowError(
      'ENAMETOOLONG',
      `cannot listen on ${path}: a Unix socket path is at most ${MAX_SOCKET_PATH_BYTES} bytes, and its directory at most ${room} (the socket is bound in a private directory beside it first); choose a shorter path`,
    )
  }
  if (basename(path) === '' || path.endsWith('/')) throw new PagecowError('EINVAL', `cannot listen on ${path}: the path names a directory, not a socket`)
  let privateDir: string
  try {
    privateDir = mkdtempSync(join(dir, PRIVATE_PREFIX)) // mode 0700 whatever the umask
  } catch (err) {
    throw listenError(err, path)
  }
  try {
    const bound = join(privateDir, PRIVATE_NAME)
    await listenOn(server, bound).catch((err: unknown) => {
      throw listenError(err, path)
    })
    try {
      chmodSync(bound, 0o600)
      await linkInPlace(bound, path)
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      throw err
    }
    const { dev, ino } = lstatSync(path)
    return {
      path,
      remove: () => {
        try {
          const now = lstatSync(path)
          if (now.dev === dev && now.ino === ino) unlinkSync(path)
        } catch {
          // Already gone: someone removed it, which is what we wanted.
        }
      },
    }
  } finally {
    // The socket lives on under `path`; the private name and its directory go at once.
    rmSync(privateDir, { recursive: true, force: true })
  }
}

/** Link the bound socket at `path`; a stale socket there is replaced, a live one is EBUSY. */
async function linkInPlace(bound: string, path: string): Promise<void> {
  try {
    linkSync(bound, path)
    return
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw listenError(err, path)
  }
  if (await someoneListens(path)) throw listenError(Object.assign(new Error('in use'), { code: 'EADDRINUSE' }), path)
  unlinkSync(path) // a stale socket left by a server that died
  try {
    linkSync(bound, path)
  } catch (err) {
    // Another server took the path between the unlink and the link.
    throw listenError((err as NodeJS.ErrnoException).code === 'EEXIST' ? Object.assign(new Error('in use'), { code: 'EADDRINUSE' }) : err, path)
  }
}

function listenOn(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err)
    server.once('error', onError)
    server.listen(path, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

/** Whether a live server answers on the Unix socket `path` (anything but a socket counts as taken). */
function someoneListens(path: string): Promise<boolean> {
  try {
    if (!lstatSync(path).isSocket()) return Promise.resolve(true)
  } catch {
    return Promise.resolve(false)
  }
  return new Promise((resolve) => {
    const probe = net.connect(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
}

/** A listen or bind failure as a PagecowError naming the address. */
export function listenError(err: unknown, where: string): PagecowError {
  if (err instanceof PagecowError) return err
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE') return new PagecowError('EBUSY', `cannot listen on ${where}: the address is in use (another server?)`, { cause: err })
  if (code === 'EACCES' || code === 'EPERM') return new PagecowError('EACCES', `cannot listen on ${where}: permission denied`, { cause: err })
  if (code === 'ENOENT') return new PagecowError('ENOENT', `cannot listen on ${where}: the directory does not exist`, { cause: err })
  if (code === 'ENOTDIR') return new PagecowError('ENOENT', `cannot listen on ${where}: a component of the path is not a directory`, { cause: err })
  return new PagecowError('EIO', `cannot listen on ${where}: ${(err as Error).message}`, { cause: err })
}
