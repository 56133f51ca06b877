// A file pagecow writes for a user (export, read --output) must never be the lower or inside the
// store: replacing either would destroy what the store overlays (SPEC §3, §8).
import { dirname, resolve } from 'node:path'
import * as fs from '../fs.js'
import { PagecowError } from '../errors.js'

/** The parts of a store the guard needs. */
export interface GuardedStore {
  readonly path: string
  info(): { lower: { path: string } }
}

/**
 * Refuse `output` when it is the store's lower image (compared by device and inode, so hard
 * links and other spellings count) or a path inside the store directory. EINVAL either way.
 */
export function checkOutputPath(store: GuardedStore, output: string): void {
  const target = statOrUndefined(output)
  const lower = target && statOrUndefined(store.info().lower.path)
  if (target && lower && target.dev === lower.dev && target.ino === lower.ino) {
    throw new PagecowError('EINVAL', `${output} is the lower image of ${store.path}; writing it would destroy what the store overlays`)
  }
  const dir = realpathOrUndefined(dirname(resolve(output)))
  const storeDir = realpathOrUndefined(store.path) ?? store.path
  if (dir !== undefined && (dir === storeDir || dir.startsWith(`${storeDir}/`))) {
    throw new PagecowError('EINVAL', `${output} is inside the store ${store.path}; write it somewhere else`)
  }
}

function statOrUndefined(path: string) {
  try {
    return fs.statSync(path)
  } catch {
    return undefined
  }
}

function realpathOrUndefined(path: string): string | undefined {
  try {
    return fs.realpathSync(path)
  } catch {
    return undefined
  }
}
