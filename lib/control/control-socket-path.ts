// Where a store's control socket lives: in the store directory, beside its lock.
import { join, resolve } from 'node:path'

/** The control socket's name in the store directory. */
export const CONTROL_SOCKET_FILE = 'control.sock'

/** The control socket of the store in `dir`. */
export function controlSocketPath(dir: string): string {
  return join(resolve(dir), CONTROL_SOCKET_FILE)
}
