// The text `pagecow inspect` prints: what the store is, its page map, and the totals.
import type { InspectReport } from '../inspect-report.js'
import { formatSize } from './format-size.js'
import { layerMapSection, pageMapSection } from './page-map-view.js'

/** The report for people. */
export function formatInspect({ info, map, layers }: InspectReport): string {
  const lines = [
    `store  ${info.path}`,
    `       image of ${formatSize(info.size)} (${info.size} bytes), page size ${formatSize(info.pageSize)}, ${info.pages.total} pages${info.readOnly ? '' : ', open for writing'}`,
    `lower  ${info.lower.path} (${formatSize(info.lower.size)})${info.lower.bound ? ', bound (every lower page checked when read)' : ''}${info.lower.format === 'store' ? ', an image store (sealed; the chain: pagecow info STORE)' : ''}`,
    '',
    ...pageMapSection(map, info.pages.total, info.size),
    ...(layers ? ['', ...layerMapSection(map, layers)] : []),
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
