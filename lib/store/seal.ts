// A tree store other stores are made on is sealed (SPEC §11: a layer that others depend on is
// never written): its record says so, writable opens of it fail with EROFS, and the stores on it
// record the seal's id, so that a base unsealed (and perhaps written) since is refused under them.
import { randomUUID } from 'node:crypto'
import { fromSystemError, PagecowError } from '../errors.js'
import { readStoreMeta, writeMeta, type TreeSeal } from './meta.js'
import { StoreCore } from './store-core.js'

/**
 * Seal the tree store at `path` (absolute) if it is not sealed yet, taking its writer lock (EBUSY
 * while a writer has it open); returns its seal. The seal is durable when this returns.
 */
export function sealStore(path: string): TreeSeal {
  const core = StoreCore.open(path, { readOnly: false, autoFlushMs: 0, files: [] })
  try {
    const meta = readStoreMeta(core.db, path)
    if (meta.kind !== 'tree') throw new PagecowError('EINVAL', `${path} is an ${meta.kind} store; only a tree store can be the lower of a tree store`)
    if (meta.sealed) return meta.sealed
    const sealed: TreeSeal = { id: randomUUID(), at: new Date().toISOString() }
    core.commit(() => writeMeta(core.db, { ...meta, sealed }))
    return sealed
  } catch (err) {
    throw fromSystemError(err, `sealing the store ${path}`)
  } finally {
    core.abandon()
  }
}

/** EROFS for a writable open of a sealed store. */
export function checkNotSealed(seal: TreeSeal | undefined, path: string): void {
  if (!seal) return
  throw new PagecowError('EROFS', `the store ${path} is sealed (since ${seal.at}): other stores are made on it, and it is never written while they depend on it; open it read-only`)
}
