// What `pagecow inspect` shows, as plain data: a store's info with its folded page map, a tree
// store's changes, or one tree file's map. Built from the stores' public queries only, so a
// control server can build it for a served store (its unflushed pages included) and the CLI
// prints the same report either way.
import { PagecowError } from './errors.js'
import type { ImageStore, StoreInfo } from './image/image-store.js'
import type { AnyStore } from './open-store.js'
import { buildPageMapView, type PageMapView } from './page-map-view.js'
import { buildLayerMapView, type LayerMapView } from './layers/layer-map-view.js'
import type { TreeChange } from './tree/changes.js'
import type { TreeFileInfo } from './tree/file-ops.js'
import type { TreeStore, TreeStoreInfo } from './tree/tree-store.js'

/** An image store: the library's info as is, and the folded map. */
export interface InspectReport {
  info: StoreInfo
  map: PageMapView
  /** A store layered on other stores: which layer each cell of `map` comes from. */
  layers?: LayerMapView
}

/** A tree store: the store info and every change. */
export interface TreeInspectReport {
  info: TreeStoreInfo
  changes: TreeChange[]
}

/** One file of a tree store: the file's info and its folded page map. */
export interface TreeFileReport {
  info: TreeFileInfo
  map: PageMapView
}

export type AnyInspectReport = InspectReport | TreeInspectReport | TreeFileReport

/** Read the store's info and fold its extents into a map `width` cells wide. */
export function inspectStore(store: ImageStore, width?: number): InspectReport {
  const info = store.info()
  const map = buildPageMapView(store.extents(), { size: info.size, pageSize: info.pageSize, width })
  if (info.lower.format !== 'store') return { info, map }
  const layers = store.backingChain().map((l) => l.path)
  return { info, map, layers: buildLayerMapView(store.extentsByLayer(), map, layers) }
}

export function inspectTree(store: TreeStore): TreeInspectReport {
  return { info: store.info(), changes: [...store.changes()] }
}

export async function inspectTreeFile(store: TreeStore, path: string, width?: number): Promise<TreeFileReport> {
  const info = await store.fileInfo(path)
  const map = buildPageMapView(store.extents(path), { size: info.size, pageSize: info.pageSize, width })
  return { info, map }
}

/**
 * The report `pagecow inspect STORE [PATH]` prints: an image store takes no PATH (EINVAL); a
 * tree store without one reports its changes, with one that file's map.
 */
export async function inspectAny(store: AnyStore, options: { path?: string | undefined; width?: number | undefined } = {}): Promise<AnyInspectReport> {
  const { path, width } = options
  if (store.kind === 'image') {
    if (path !== undefined) throw new PagecowError('EINVAL', `inspect: ${store.path} is an image store; it has no paths (drop ${JSON.stringify(path)})`)
    return inspectStore(store, width)
  }
  return path === undefined ? inspectTree(store) : inspectTreeFile(store, path, width)
}
