// The text `pagecow inspect` prints: what the store is, its page map, and the totals.
import type { ImageStore, StoreInfo } from '../index.js'
import { formatSize } from './format-size.js'
import { buildPageMapView, pageMapSection, type PageMapView } from './page-map-view.js'

/** What `pagecow inspect --json` prints: the library's info as is, and the folded map. */
export interface InspectReport {
  info: StoreInfo
  map: PageMapView
}

/** Read the store's info and fold its extents into a map `width` cells wide. */
export function inspectStore(store: ImageStore, width?: number): InspectReport {
  const info = store.info()
  const map = buildPageMapView(store.extents(), { size: info.size, pageSize: info.pageSize, width })
  return { info, map }
}

/** The report for people. */
export function formatInspect({ info, map }: InspectReport): string {
  const lines = [
    `store  ${info.path}`,
    `       image of ${formatSize(info.size)} (${info.size} bytes), page size ${formatSize(info.pageSize)}, ${info.pages.total} pages${info.readOnly ? '' : ', open for writing'}`,
    `lower  ${info.lower.path} (${formatSize(info.lower.size)})${info.lower.bound ? ', bound (every lower page checked when read)' : ''}`,
    '',
    ...pageMapSection(map, info.pages.total, info.size),
  ]
  const w = info.written
  const amplification = w.amplification === null ? 'n/a (nothing written yet)' : `${w.amplification.toFixed(2)}×`
  lines.push(
    '',
    `upper on disk        ${formatSize(info.upper.allocatedBytes)} allocated (file size ${formatSize(info.upper.apparentBytes)})`,
    `database             ${formatSize(info.upper.databaseBytes)}`,
    `written              ${formatSize(w.userBytes)} by users, ${formatSize(w.upperBytes)} to the upper`,
    `write amplification  ${amplification}`,
    `copy-up bases        ${info.copyupBases} (pages copied up in part, their lower page's sum recorded)`,
  )
  return lines.join('\n') + '\n'
}
