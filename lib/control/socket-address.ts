// A Unix socket address for a file in a store directory of any length. sun_path holds 108 bytes
// and a store's path may be longer (the socket is bound in a private directory beside it, which
// costs ten more), so a long directory is reached through /proc/self/fd/N of a descriptor held
// on it: bind(2) and connect(2) follow that link to the directory itself.
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { fromSystemError } from '../errors.js'

/** The longest directory named as it is: 107 bytes of sun_path less `/.pcXXXXXX/s` (listenPrivately). */
const MAX_DIRECT_DIR_BYTES = 95

export interface SocketAddress {
  /** The path to bind or connect to. */
  readonly path: string
  /** Let go of the directory descriptor, if one was needed. */
  close(): void
}

/** The address of `name` in the directory `dir` (absolute). */
export function socketAddress(dir: string, name: string): SocketAddress {
  if (Buffer.byteLength(join(dir, name)) <= MAX_DIRECT_DIR_BYTES) return { path: join(dir, name), close: () => {} }
  let fd: number
  try {
    fd = nodeFs.openSync(dir, nodeFs.constants.O_RDONLY | nodeFs.constants.O_DIRECTORY)
  } catch (err) {
    throw fromSystemError(err, `opening the store directory ${dir}`)
  }
  let open = true
  return {
    path: `/proc/self/fd/${fd}/${name}`,
    close: () => {
      if (open) nodeFs.closeSync(fd)
      open = false
    },
  }
}
