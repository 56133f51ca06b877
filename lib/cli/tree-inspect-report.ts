// What `pagecow inspect` prints for a tree store: what changed (like git status), or the page map
// of one file of it.
import type { TreeFileReport, TreeInspectReport } from '../inspect-report.js'
import { formatSize } from './format-size.js'
import { pageMapSection } from './page-map-view.js'
import { formatChange } from './tree-format.js'
import { escapeName } from './escape-name.js'

export function formatTreeInspect({ info, changes }: TreeInspectReport): string {
  const lines = [
    `store  ${info.path}`,
    `       tree, page size ${formatSize(info.pageSize)}${info.readOnly ? '' : ', open for writing'}`,
    `lower  ${info.lower.path}`,
    '',
  ]
  if (changes.length === 0) lines.push('no changes: the merged tree is the lower')
  else lines.push(`${count(changes.length, 'change')}:`, ...changes.map((c) => '  ' + formatChange(c, info.pageSize).trimEnd()))
  const f = info.files
  const w = info.written
  lines.push(
    '',
    `records              ${count(info.namespace.inodes, 'inode')}, ${count(info.namespace.entries, 'entry', 'entries')}, ${count(info.namespace.whiteouts, 'whiteout')}, ${count(info.namespace.xattrs, 'xattr')}`,
    `files with data      ${f.withData}: ${count(f.dataPages, 'data page')} (${formatSize(f.dataPages * info.pageSize)}), ${count(f.zeroPages, 'zero page')}`,
    `upper on disk        ${formatSize(info.upper.allocatedBytes)} allocated (file sizes ${formatSize(info.upper.apparentBytes)})`,
    `database             ${formatSize(info.upper.databaseBytes)}`,
    `written              ${formatSize(w.userBytes)} by users, ${formatSize(w.upperBytes)} to the upper`,
    `write amplification  ${w.amplification === null ? 'n/a (nothing written yet)' : `${w.amplification.toFixed(2)}×`}`,
  )
  return lines.join('\n') + '\n'
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

export function formatTreeFile({ info, map }: TreeFileReport): string {
  const lines = [
    `file   ${escapeName(info.path)} (inode ${info.ino})`,
    `       ${formatSize(info.size)} (${info.size} bytes), page size ${formatSize(info.pageSize)}, ${info.pages.total} pages`,
    `lower  ${info.lowerPath ?? 'none (created in the upper, or truncated to nothing)'}`,
    '',
    ...pageMapSection(map, info.pages.total, info.size),
    '',
    `upper on disk  ${formatSize(info.upper.allocatedBytes)}`,
  ]
  return lines.join('\n') + '\n'
}
