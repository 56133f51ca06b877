// Which layer each cell of `pagecow inspect`'s page map comes from, for a store layered on other
// stores (SPEC §11): plain data beside the state map, folded the same way (the CLI draws it).
import type { PageMapView } from '../page-map-view.js'
import type { LayerExtent } from './layer-extent.js'

/** The layers of a chain's page map: one entry per cell of the state map it goes with. */
export interface LayerMapView {
  /** The chain's layers by depth: each store's directory, the raw image last. */
  layers: string[]
  /**
   * Per cell, the shallowest layer that holds any of its pages (DATA or ZERO of a store, or data
   * of the raw image): 0 the store itself. null when every page of the cell is a hole of the raw image.
   */
  cells: Array<number | null>
}

/** Fold `extents` (the whole image, by layer) into the cells of `view`. Cost grows with the extents and cells. */
export function buildLayerMapView(extents: Iterable<LayerExtent>, view: PageMapView, layers: string[]): LayerMapView {
  const cells: Array<number | null> = new Array<number | null>(view.cells.length).fill(null)
  const cellBytes = view.pagesPerCell * view.pageSize
  for (const e of extents) {
    if (e.state === 'hole') continue
    const end = Math.ceil((e.start + e.length) / cellBytes)
    for (let cell = Math.floor(e.start / cellBytes); cell < end; cell++) {
      const was = cells[cell]
      if (was === null || was === undefined || e.depth < was) cells[cell] = e.depth
    }
  }
  return { layers, cells }
}
