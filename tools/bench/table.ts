// The results table: Markdown, so a run's output pastes into BENCHMARKS.md as it is.
import * as fmt from './format.js'
import type { Row } from './row.js'

const HEADERS = [
  'case',
  'what',
  'pagecow',
  'baseline',
  'throughput pagecow/baseline (≥1 better)',
  'time pagecow/baseline (≤1 better)',
  'ratio range over reps',
  'target',
  'met',
]

export function formatTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.case,
    r.label,
    r.pagecow,
    r.baseline,
    r.ratioKind === 'throughput' ? fmt.ratio(r.ratio) : '',
    r.ratioKind === 'time' ? fmt.ratio(r.ratio) : '',
    r.ratioRange ? `${fmt.ratio(r.ratioRange[0])}–${fmt.ratio(r.ratioRange[1])}` : '',
    r.target ?? '',
    r.met === null ? '' : r.met ? 'yes' : '**no**',
  ])
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: string[]) => `| ${c.map((s, i) => s.padEnd(widths[i]!)).join(' | ')} |`
  return [line(HEADERS), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n')
}
