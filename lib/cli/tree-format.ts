// How tree-mode commands print objects, listings and changes for people.
import type { DirEntry, TreeChange, TreeStat } from '../index.js'
import { formatNs } from '../time-ns.js'
import { escapeName } from './escape-name.js'
import { formatSize } from './format-size.js'

const TYPE_CHARS: Record<TreeStat['type'], string> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  fifo: 'p',
  socket: 's',
  'char-device': 'c',
  'block-device': 'b',
}

/** `-rwsr-xr-x`, as ls prints a mode. */
export function formatMode(stat: Pick<TreeStat, 'type' | 'mode'>): string {
  const m = stat.mode
  const triple = (shift: number, special: number, setChar: string) => {
    const r = m & (4 << shift) ? 'r' : '-'
    const w = m & (2 << shift) ? 'w' : '-'
    const x = m & (1 << shift)
    const s = m & special
    return r + w + (s ? (x ? setChar : setChar.toUpperCase()) : x ? 'x' : '-')
  }
  return TYPE_CHARS[stat.type] + triple(6, 0o4000, 's') + triple(3, 0o2000, 's') + triple(0, 0o1000, 't')
}

/** The size column: bytes for files, major,minor for devices. */
function sizeColumn(stat: TreeStat): string {
  if (stat.type === 'char-device' || stat.type === 'block-device') return `${Math.floor(stat.rdev / 256) & 0xfff},${stat.rdev & 0xff}`
  return String(stat.size)
}

/** One `ls -l` line; `target` for symlinks. Names print as `ls -b` prints them. */
export function formatListing(name: string, stat: TreeStat, target?: string): string {
  const when = new Date(stat.mtimeMs).toISOString().slice(0, 16).replace('T', ' ')
  const link = target === undefined ? '' : ` -> ${escapeName(target)}`
  return `${formatMode(stat)} ${String(stat.nlink).padStart(3)} ${String(stat.uid).padStart(5)} ${String(stat.gid).padStart(5)} ${sizeColumn(stat).padStart(12)} ${when} ${escapeName(name)}${link}\n`
}

/** `pagecow stat` for people. */
export function formatStat(path: string, stat: TreeStat, target?: string): string {
  const lines = [
    `  path  ${escapeName(path)}${target === undefined ? '' : ` -> ${escapeName(target)}`}`,
    `  type  ${stat.type}`,
    `  size  ${stat.size} (${formatSize(stat.size)}), ${stat.blocks} blocks of 512 B`,
    `   ino  ${stat.ino}`,
    `  mode  ${formatMode(stat)} (0${(stat.mode & 0o7777).toString(8)})`,
    ` links  ${stat.nlink}`,
    ` owner  ${stat.uid}:${stat.gid}`,
  ]
  if (stat.rdev !== 0) lines.push(`  rdev  ${sizeColumn(stat)}`)
  for (const [label, ns] of [['access', stat.atimeNs], ['modify', stat.mtimeNs], ['change', stat.ctimeNs]] as const) {
    lines.push(`${label.padStart(6)}  ${formatNs(ns)}`)
  }
  return lines.join('\n') + '\n'
}

const STATUS_LABELS: Record<TreeChange['status'], string> = {
  new: 'new',
  replaced: 'replaced',
  opaque: 'opaque',
  renamed: 'renamed',
  linked: 'linked',
  modified: 'modified',
  metadata: 'metadata',
  whiteout: 'deleted',
}

/** One line of `pagecow inspect` on a tree store, like `git status --short` but in words. */
export function formatChange(c: TreeChange, pageSize: number): string {
  const notes: string[] = []
  if (c.from !== undefined) notes.push(`from ${escapeName(c.from)}`)
  if (c.pages) notes.push(`${c.pages.copied} of ${c.pages.total} pages copied (${formatSize(c.pages.copied * pageSize)})${c.pages.zero ? `, ${c.pages.zero} zeroed` : ''}`)
  if (c.metadata && c.status !== 'metadata') notes.push('metadata changed')
  if (c.status === 'opaque') notes.push('hides the lower directory')
  const kind = c.type === 'file' ? '' : ` (${c.type})`
  return `${STATUS_LABELS[c.status].padEnd(9)} ${escapeName(c.path)}${kind}${notes.length > 0 ? `  ${notes.join('; ')}` : ''}\n`
}

/** `ls` of a directory entry name with its type marker, for the short listing. */
export function formatName(entry: DirEntry): string {
  return entry.type === 'directory' ? `${escapeName(entry.name)}/` : escapeName(entry.name)
}
