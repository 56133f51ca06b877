// `rebase --unsafe` (as `qemu-img rebase -u`): point a store at its lower where it is now, without
// reading or changing a page. For a lower that moved: the store found at the new path must be the
// one recorded (identity and generation), a raw image must match its fingerprint; `force` takes
// whatever is there (the store's pages then lie over other bytes: the caller said so).
import { relative, resolve } from 'node:path'
import { z } from 'zod'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { describeChange, fingerprint } from '../image/fingerprint.js'
import { LowerImage } from '../image/lower-image.js'
import { hasDatabase } from '../store/database.js'
import { isStoreLower, readMeta, writeMeta, type ImageLowerRecord, type ImageMeta } from '../store/meta.js'
import { peekStoreMeta } from '../store/peek-meta.js'
import { StoreCore } from '../store/store-core.js'
import { realStorePath, storeLowerRecord, type OpenLayer } from './base-store.js'
import { checkNotSealed } from './seal.js'

export const rebaseUnsafeOptionsSchema = z.strictObject({
  /** Re-point even to a lower that is not the one recorded (another store, changed bytes). Default false. */
  force: z.boolean().default(false),
})

export type RebaseUnsafeOptions = z.input<typeof rebaseUnsafeOptionsSchema>

/** What `rebaseUnsafe` did, as plain data. */
export interface RebaseUnsafeResult {
  path: string
  /** The lower's path as recorded before. */
  from: string
  /** The new lower: its path and kind. */
  onto: string
  format: 'raw' | 'store'
  /** Whether the new lower differs from the one recorded (only with `force`). */
  forced: boolean
}

/** What the image store module lends this one: its sealing and its read-only layer opening. */
export interface RebaseDeps {
  seal(path: string, by: string): Promise<void>
  openLayer: OpenLayer
  upperFile: string
}

/**
 * Point the image store at `dir` at the lower `onto` (a raw image or an image store), taking its
 * writer lock. EINVAL for a lower of another page size or a tree store; ESTALE for a lower that is
 * not the one recorded, unless `force`; ELOOP if `onto` stands on the store itself; EROFS if the
 * store is sealed (stores above it would see their lower change).
 */
export async function rebaseUnsafe(dir: string, onto: string, options: RebaseUnsafeOptions, deps: RebaseDeps): Promise<RebaseUnsafeResult> {
  const opts = parseWith(rebaseUnsafeOptionsSchema, options, 'rebase')
  if (typeof onto !== 'string' || onto === '') throw new PagecowError('EINVAL', 'rebase: the new lower is required')
  const path = resolve(dir)
  const ontoPath = resolve(onto)
  const core = StoreCore.open(path, { readOnly: false, autoFlushMs: 0, files: [deps.upperFile] })
  try {
    const meta = readMeta(core.db, path)
    checkNotSealed(path, meta, 're-pointing its lower')
    const { record, forced } = hasDatabase(ontoPath) ? await storeRecord(path, meta, ontoPath, opts.force, deps) : rawRecord(path, meta, ontoPath, opts.force)
    const { lowerBinding, ...rest } = meta
    if (lowerBinding && (forced || isStoreLower(record))) {
      throw new PagecowError('EINVAL', `rebase: ${path} is bound to the pages of ${meta.lower.path}; a lower with other bytes would fail every check (create a new store over it instead)`)
    }
    const next: ImageMeta = { ...rest, lower: record, ...(lowerBinding ? { lowerBinding } : {}) }
    core.commit(() => writeMeta(core.db, next))
    await core.generation.settle()
    return { path, from: meta.lower.path, onto: ontoPath, format: isStoreLower(record) ? 'store' : 'raw', forced }
  } catch (err) {
    throw fromSystemError(err, `rebasing ${path}`)
  } finally {
    core.abandon()
  }
}

async function storeRecord(path: string, meta: ImageMeta, ontoPath: string, force: boolean, deps: RebaseDeps): Promise<{ record: ImageLowerRecord; forced: boolean }> {
  const peek = peekStoreMeta(ontoPath)
  if (peek.kind !== 'image') throw new PagecowError('EINVAL', `rebase: ${ontoPath} is a tree store; an image store's lower is a raw image or an image store`)
  if (peek.pageSize !== meta.pageSize) throw new PagecowError('EINVAL', `rebase: ${ontoPath} has page size ${peek.pageSize}, not ${meta.pageSize}; the layers of a chain share one page size`)
  const recorded = isStoreLower(meta.lower) ? meta.lower : undefined
  const same = recorded !== undefined && peek.identity === recorded.identity
  if (!same && !force) {
    const was = recorded ? `the store ${recorded.identity}` : `the raw image ${meta.lower.path}`
    throw new PagecowError('ESTALE', `rebase: ${ontoPath} is not the lower ${path} was made on (that is ${was}); --force points it there anyway, and its pages then lie over other bytes`)
  }
  if (!peek.sealed) {
    // Opened first as it stands (a chain that would loop back to this store is refused, ELOOP), then sealed.
    ;(await deps.openLayer(ontoPath, [realStorePath(path)])).close()
    await deps.seal(ontoPath, path)
  }
  const base = await deps.openLayer(ontoPath, [realStorePath(path)])
  try {
    if (same && base.base.generation !== recorded.generation && !force) {
      throw new PagecowError('ESTALE', `rebase: the store ${ontoPath} changed since ${path} was made on it (generation ${recorded.generation}, now ${base.base.generation}); --force takes it as it is`)
    }
    const record = storeLowerRecord(path, base)
    return { record, forced: !same || base.base.generation !== recorded.generation }
  } finally {
    base.close()
  }
}

function rawRecord(path: string, meta: ImageMeta, ontoPath: string, force: boolean): { record: ImageLowerRecord; forced: boolean } {
  const image = LowerImage.open(ontoPath)
  try {
    const print = fingerprint(image)
    const change = isStoreLower(meta.lower) ? `${meta.lower.path} was a store` : describeChange(meta.lower.fingerprint, print)
    if (change && !force) {
      throw new PagecowError('ESTALE', `rebase: ${ontoPath} is not the lower the store was made on (${change}); --force points it there anyway, and its pages then lie over other bytes`)
    }
    return { record: { path: ontoPath, relative: relative(path, ontoPath), fingerprint: print }, forced: change !== null }
  } finally {
    image.close()
  }
}
