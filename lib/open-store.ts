// Open a store of either kind: the store record says whether it overlays an image or a tree.
// Each kind's module is loaded when a store of that kind is first opened or created, so a program
// that only ever opens images (the CLI's image commands) never loads the tree code.
import { resolve } from 'node:path'
import { z } from 'zod'
import { isPagecowError, parseWith, PagecowError } from './errors.js'
import type { ImageStore } from './image/image-store.js'
import { createOptionsSchema, openOptionsSchema, type OpenOptions } from './image/options.js'
import { detectLowerFormat, lowerFormatSchema } from './lower-format.js'
import { DATABASE_FILE, hasDatabase } from './store/database.js'
import type { StoreKind } from './store/meta.js'
import { peekStoreMeta } from './store/peek-meta.js'
import type { TreeStore } from './tree/tree-store.js'

const imageStore = async () => (await import('./image/image-store.js')).ImageStore
const treeStore = async () => (await import('./tree/tree-store.js')).TreeStore

/** A store of either kind; `kind` tells which. */
export type AnyStore = ImageStore | TreeStore

/** The kind of the store in `dir` ('image' or 'tree'), read without taking its lock. */
export async function storeKind(dir: string): Promise<StoreKind> {
  const path = resolve(dir)
  if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
  return peekStoreMeta(path).kind
}

const anyCreateOptionsSchema = createOptionsSchema.extend({
  /** A raw image, a directory, a squashfs image or a tree store; or a list of tree lowers (TreeStore.create). */
  lower: z.union([z.string().min(1, 'the lower path is required'), z.array(z.string())]),
  /** 'raw', 'directory' or 'squashfs'; default: told by what `lower` is. */
  lowerFormat: lowerFormatSchema.optional(),
})

/** `createStore(dir, { lower, lowerFormat, pageSize, autoFlushMs })`. */
export type AnyCreateOptions = z.input<typeof anyCreateOptionsSchema>

/**
 * Create a store in `dir` over `lower`: a tree store if `lower` is a directory or a squashfs
 * image (told by its magic), an image store over another image store (a chain, SPEC §11) or over
 * any other file. `lowerFormat` ('raw',
 * 'directory', 'squashfs') insists on one: 'raw' makes an image store of a squashfs image, and
 * a lower that is not what it names is refused. Other options as ImageStore.create / TreeStore.create.
 */
export async function createStore(dir: string, options: AnyCreateOptions): Promise<AnyStore> {
  const { lowerFormat, ...opts } = parseWith(anyCreateOptionsSchema, options, 'create')
  if (Array.isArray(opts.lower)) {
    // Several lowers stack trees; TreeStore.create checks the list.
    if (lowerFormat === 'raw' || lowerFormat === 'store') throw new PagecowError('EINVAL', `create: a list of lowers makes a tree store; lowerFormat ${lowerFormat} is for one image or image store`)
    return (await treeStore()).create(dir, { ...opts, lower: opts.lower, lowerFormat })
  }
  const lower = resolve(opts.lower)
  const found = detectLowerFormat(lower)
  const format = lowerFormat ?? found
  if (format === 'raw' && (found === 'directory' || found === 'store')) throw new PagecowError('EINVAL', `the lower ${lower} is a directory, not a raw image`)
  if (format === 'store') {
    if (found !== 'store') throw new PagecowError('EINVAL', `the lower ${lower} is not a pagecow store (no ${DATABASE_FILE} in it)`)
    // A tree store is the lower of a tree store (TreeStore.create seals and records it).
    if (peekStoreMeta(lower).kind === 'tree') return (await treeStore()).create(dir, { ...opts, lower: opts.lower })
  }
  if (format === 'raw' || format === 'store') return (await imageStore()).create(dir, { ...opts, lower: opts.lower })
  return (await treeStore()).create(dir, { ...opts, lower: opts.lower, lowerFormat: format })
}

/** Open the store in `dir`, whatever its kind: `{ readOnly = false, autoFlushMs = 5000 }`. */
export async function openStore(dir: string, options: OpenOptions = {}): Promise<AnyStore> {
  const opts = parseWith(openOptionsSchema, options, 'open')
  let kind: StoreKind
  try {
    kind = await storeKind(dir)
  } catch (err) {
    // No kind to read (a missing store, a damaged or unreadable database): the full open says
    // precisely what is wrong (the writer lock, permissions, the database), as it always did.
    if ((isPagecowError(err, 'ENOENT') && !hasDatabase(resolve(dir))) || isPagecowError(err, 'EUNSAFE')) throw err
    return (await imageStore()).open(dir, opts)
  }
  return kind === 'tree' ? (await treeStore()).open(dir, opts) : (await imageStore()).open(dir, opts)
}
