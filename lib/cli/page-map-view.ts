// The drawing of `pagecow inspect`'s page map (the folded map itself is lib/page-map-view.ts).
import type { ExtentState } from '../index.js'
import type { PageMapView } from '../page-map-view.js'
import type { LayerMapView } from '../layers/layer-map-view.js'
import { formatSize } from './format-size.js'

/** One glyph per state; a legend line explains them. */
export const GLYPHS: Readonly<Record<ExtentState, string>> = { data: '█', zero: '▒', lower: '░', hole: '·' }

/** The map as lines: each row starts with the offset of its first cell. */
export function drawPageMap(view: PageMapView): string[] {
  const cellBytes = view.pagesPerCell * view.pageSize
  const rows: Array<[label: string, glyphs: string]> = []
  for (let first = 0; first < view.cells.length; first += view.width) {
    const glyphs = view.cells.slice(first, first + view.width).map((state) => GLYPHS[state])
    rows.push([formatSize(first * cellBytes), glyphs.join('')])
  }
  const labelWidth = Math.max(0, ...rows.map(([label]) => label.length))
  return rows.map(([label, glyphs]) => `${label.padStart(labelWidth)} │${glyphs}`)
}

/** What the map's header says about its scale. */
export function describeScale(view: PageMapView): string {
  const pages = view.pagesPerCell === 1 ? '1 page' : `${view.pagesPerCell} pages`
  return `1 cell = ${pages} (${formatSize(view.pagesPerCell * view.pageSize)}); ${view.cells.length} cells, ${view.width} per row`
}

/** The legend line. */
export function legend(): string {
  return `legend: ${GLYPHS.data} data (upper)  ${GLYPHS.zero} zero (upper)  ${GLYPHS.lower} lower data  ${GLYPHS.hole} hole (a cell shows the first state, in this order, that any of its pages is in)`
}

/** The drawn map, its legend and the table of pages and bytes per state, as report lines. */
export function pageMapSection(map: PageMapView, totalPages: number, size: number): string[] {
  const lines = [`page map: ${describeScale(map)}`, ...drawPageMap(map), legend(), '', `${'state'.padEnd(9)}${'pages'.padStart(12)}${'bytes'.padStart(12)}`]
  for (const state of ['data', 'zero', 'lower', 'hole'] as const) {
    const total = map.totals[state]
    lines.push(`${GLYPHS[state]} ${state.padEnd(7)}${String(total.pages).padStart(12)}${formatSize(total.bytes).padStart(12)}`)
  }
  lines.push(`${'  total'.padEnd(9)}${String(totalPages).padStart(12)}${formatSize(size).padStart(12)}`)
  return lines
}

/** A layer's glyph: its depth as a digit, `+` from 10 down, `·` for a hole of the raw image. */
function layerGlyph(depth: number | null): string {
  return depth === null ? GLYPHS.hole : depth < 10 ? String(depth) : '+'
}

/** The layer map of a chain: the same cells as the page map, each showing the layer it comes from, and a key. */
export function layerMapSection(view: PageMapView, layers: LayerMapView): string[] {
  const cellBytes = view.pagesPerCell * view.pageSize
  const rows: Array<[label: string, glyphs: string]> = []
  for (let first = 0; first < layers.cells.length; first += view.width) {
    rows.push([formatSize(first * cellBytes), layers.cells.slice(first, first + view.width).map(layerGlyph).join('')])
  }
  const labelWidth = Math.max(0, ...rows.map(([label]) => label.length))
  return [
    'layer map: the layer each cell comes from (the shallowest that holds any of its pages)',
    ...rows.map(([label, glyphs]) => `${label.padStart(labelWidth)} │${glyphs}`),
    ...layers.layers.map((path, depth) => `  ${layerGlyph(depth)} ${depth === 0 ? 'this store' : depth === layers.layers.length - 1 ? 'the raw image' : 'the store'} ${path}`),
    `  ${GLYPHS.hole} a hole of the raw image`,
  ]
}
