// A file pagecow writes for a user (export, read --output) must never be the lower or inside the
// store, or inside a base store of its chain: replacing any would destroy what the store overlays
// (SPEC §3, §8, §11).
import { dirname, resolve } from 'node:path'
import * as fs from '../fs.js'
import { PagecowError } from '../errors.js'

/** The parts of a store the guard needs. */
export interface GuardedStore {
  readonly path: string
  info(): { lower: { path: string } }
  /** An image store: every layer under it (base stores, the raw image at the bottom). */
  backingChain?(): ReadonlyArray<{ path: string; format: 'pagecow' | 'raw' }>
}

/**
 * Refuse `output` when it is the store's lower image (compared by device and inode, so hard
 * links and other spellings count) or a path inside the store directory; for a store on other
 * stores, inside any of them or the raw image at the bottom of the chain. EINVAL either way.
 */
export function checkOutputPath(store: GuardedStore, output: string): void {
  const layers = store.backingChain?.() ?? [
    { path: store.path, format: 'pagecow' as const },
    { path: store.info().lower.path, format: 'raw' as const },
  ]
  const target = statOrUndefined(output)
  const dir = realpathOrUndefined(dirname(resolve(output)))
  for (const [depth, layer] of layers.entries()) {
    const whose = depth === 0 ? '' : ` (under ${store.path})`
    if (layer.format === 'raw') {
      const lower = target && statOrUndefined(layer.path)
      if (target && lower && target.dev === lower.dev && target.ino === lower.ino) {
        throw new PagecowError('EINVAL', `${output} is the lower image of ${store.path}${depth > 1 ? `'s chain` : ''}; writing it would destroy what the store overlays`)
      }
      continue
    }
    const storeDir = realpathOrUndefined(layer.path) ?? layer.path
    if (dir !== undefined && (dir === storeDir || dir.startsWith(`${storeDir}/`))) {
      throw new PagecowError('EINVAL', `${output} is inside the store ${layer.path}${whose}; write it somewhere else`)
    }
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
