// The NBD benchmark as a case of `npm run bench` (id and group `nbd`): pagecow's NBD server
// against nbdkit's cow filter (4 KiB blocks) over the shared data lower, every case of nbd.ts.
import type { BenchCase } from './bench-case.js'
import { have } from './nbd-peers.js'
import { formatNbdBench, median, runNbdBench, targetsOf, throughput, type CaseResult } from './nbd.js'
import * as fmt from './format.js'
import type { Row } from './row.js'

export const nbdCase: BenchCase = {
  id: 'nbd',
  group: 'nbd',
  number: 8,
  title: 'NBD server against nbdkit cow: sequential reads (nbdcopy), random 4 KiB writes QD1/QD16 over 1/4 connections (fio), latency tail, upper space',
  async run(ctx) {
    const missing = ['nbdkit', 'fio', 'nbdcopy'].filter((tool) => !have(tool))
    if (missing.length > 0) return [skipped(`skipped: ${missing.join(', ')} not installed (Debian: nbdkit fio libnbd-bin)`)]
    const result = await runNbdBench({
      lower: ctx.dataLower(),
      writes: ctx.config.quick ? 2000 : 10_000,
      reps: ctx.config.quick ? 1 : 3,
      log: (line) => ctx.log(line),
    })
    ctx.log(`\n${formatNbdBench(result)}`)
    const rows: Row[] = []
    for (const c of result.cases) {
      const targets = targetsOf(c)
      rows.push({
        case: 'nbd',
        label: c.label,
        pagecow: show(c, 'pagecow'),
        baseline: `${show(c, 'nbdkit')} (nbdkit cow)`,
        ratio: median(c.ratios),
        ratioKind: 'throughput',
        ratioRange: [Math.min(...c.ratios), Math.max(...c.ratios)],
        target: '≥ 1.0×',
        met: targets.ratio,
        details: { ...c },
      })
      if (c.kind === 'write') {
        const tails = c.pagecow.map((s) => (s.kind === 'write' ? s.p99 / s.p50 : Number.NaN))
        rows.push({
          case: 'nbd',
          label: `${c.label}: pagecow's p99 ÷ p50`,
          pagecow: `${median(tails).toFixed(1)}`,
          baseline: '',
          ratio: null,
          ratioKind: null,
          ratioRange: null,
          target: 'p99 ≤ 10× p50',
          met: targets.tail,
          details: {},
        })
      }
    }
    if (result.space) {
      rows.push({
        case: 'nbd',
        label: 'upper space after the writes',
        pagecow: fmt.bytes(result.space.pagecow),
        baseline: `${fmt.bytes(result.space.nbdkit)} (nbdkit cow)`,
        ratio: result.space.pagecow / result.space.nbdkit,
        ratioKind: 'time',
        ratioRange: null,
        // No target: with 4 KiB cow blocks both store one page per write; pagecow adds its database.
        target: null,
        met: null,
        details: { ...result.space },
      })
    }
    return rows
  },
}

function show(c: CaseResult, who: 'pagecow' | 'nbdkit'): string {
  const value = median(c[who].map(throughput))
  return c.kind === 'read' ? `${fmt.bytes(value)}/s` : `${value.toFixed(0)} IOPS`
}

function skipped(label: string): Row {
  return { case: 'nbd', label, pagecow: '', baseline: '', ratio: null, ratioKind: null, ratioRange: null, target: null, met: null, details: {} }
}
