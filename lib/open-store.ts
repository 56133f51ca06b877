// Open a store of either kind: the store record says whether it overlays an image or a tree.
// Each kind's module is loaded when a store of that kind is first opened or created, so a program
// that only ever opens images (the CLI's image commands) never loads the tree code.
import { resolve } from 'node:path'
import * as fs from './fs.js'
import { fromSystemError, isPagecowError, parseWith, PagecowError } from './errors.js'
import type { ImageStore } from './image/image-store.js'
import { createOptionsSchema, openOptionsSchema, type CreateOptions, type OpenOptions } from './image/options.js'
import { DATABASE_FILE, hasDatabase, openDatabase } from './store/database.js'
import { readStoreMeta, type StoreKind } from './store/meta.js'
import type { TreeStore } from './tree/tree-store.js'

const imageStore = async () => (await import('./image/image-store.js')).ImageStore
const treeStore = async () => (await import('./tree/tree-store.js')).TreeStore

/** A store of either kind; `kind` tells which. */
export type AnyStore = ImageStore | TreeStore

/** The kind of the store in `dir` ('image' or 'tree'), read without taking its lock. */
export async function storeKind(dir: string): Promise<StoreKind> {
  const path = resolve(dir)
  if (!hasDatabase(path)) throw new PagecowError('ENOENT', `no pagecow store at ${path}`)
  let db
  try {
    db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: true, anyOlderSchema: true }) // the store record reads the same in every schema
    return readStoreMeta(db, path).kind
  } catch (err) {
    throw fromSystemError(err, `opening the store ${path}`)
  } finally {
    db?.close()
  }
}

/**
 * Create a store in `dir` over `lower`: a tree store if `lower` is a directory, an image store
 * otherwise. Options as ImageStore.create / TreeStore.create.
 */
export async function createStore(dir: string, options: CreateOptions): Promise<AnyStore> {
  const opts = parseWith(createOptionsSchema, options, 'create')
  let isDirectory: boolean
  try {
    isDirectory = fs.statSync(opts.lower).isDirectory()
  } catch (err) {
    const e = fromSystemError(err, `reading the lower ${opts.lower}`)
    if (e.code === 'ENOENT') throw new PagecowError('ENOENT', `the lower ${resolve(opts.lower)} does not exist`, { cause: err })
    throw e
  }
  return isDirectory ? (await treeStore()).create(dir, opts) : (await imageStore()).create(dir, opts)
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
