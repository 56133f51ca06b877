// One line of the results table, as printed and as stored in the JSON file.
import * as fmt from './format.js'
import { median } from './timing.js'

/** Which way a ratio reads: throughput pagecow/baseline (≥ 1 is better) or time pagecow/baseline (≤ 1 is better). */
export type RatioKind = 'throughput' | 'time'

export interface Row {
  /** The case it belongs to (`seq-read`, …) and a label for this line. */
  case: string
  label: string
  /** Formatted headline figures. */
  pagecow: string
  baseline: string
  ratio: number | null
  ratioKind: RatioKind | null
  /** Lowest and highest per-repetition ratio: the noise. */
  ratioRange: [number, number] | null
  /** The target in words (`≥ 0.8×`, `< 1 ms`) and whether this run met it; null if none. */
  target: string | null
  met: boolean | null
  /** Raw numbers (milliseconds, bytes, samples) for the JSON file. */
  details: Record<string, unknown>
}

/** Ratios of paired repetitions: a[i] / b[i]. */
export function pairRatios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((x, i) => x / b[i]!)
}

export function range(values: readonly number[]): [number, number] {
  return [Math.min(...values), Math.max(...values)]
}

/**
 * A paired throughput measurement as a row: `work` bytes (or operations) per repetition; the
 * ratio is the median over repetitions of baseline time / pagecow time.
 */
export function throughputRow(o: {
  case: string
  label: string
  work: number
  unit: 'bytes' | 'ops'
  pagecowMs: number[]
  baselineMs: number[]
  baselineName: string
  /** Lowest acceptable throughput ratio, if the issue sets one. */
  atLeast?: number
  details?: Record<string, unknown>
}): Row {
  const pc = median(o.pagecowMs)
  const base = median(o.baselineMs)
  const show = (ms: number) => (o.unit === 'bytes' ? fmt.rate(o.work, ms) : fmt.opsRate(o.work, ms))
  // The median of the per-repetition ratios: each repetition pairs the two sides under the
  // same conditions, so its ratio is steadier than either side's own figure.
  const ratios = pairRatios(o.baselineMs, o.pagecowMs)
  const ratio = median(ratios)
  return {
    case: o.case,
    label: o.label,
    pagecow: show(pc),
    baseline: `${show(base)} (${o.baselineName})`,
    ratio,
    ratioKind: 'throughput',
    ratioRange: range(ratios),
    target: o.atLeast === undefined ? null : `≥ ${o.atLeast}×`,
    met: o.atLeast === undefined ? null : ratio >= o.atLeast,
    details: { work: o.work, unit: o.unit, pagecowMs: o.pagecowMs, baselineMs: o.baselineMs, ...o.details },
  }
}
