// Where a store's control socket lives: in the store directory, beside its lock.
import { join, resolve } from 'node:path'
import { CONTROL_SOCKET_FILE } from '../store/store-file.js'

export { CONTROL_SOCKET_FILE }

/** The control socket of the store in `dir`. */
export function controlSocketPath(dir: string): string {
  return join(resolve(dir), CONTROL_SOCKET_FILE)
}
