// Human units for the table: rates, operation counts, durations and sizes.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

export function bytes(n: number): string {
  let i = 0
  while (Math.abs(n) >= 1024 && i < UNITS.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : n < 10 ? 2 : 1)} ${UNITS[i]}`
}

/** Bytes per second from a byte count and milliseconds. */
export function rate(byteCount: number, ms: number): string {
  return `${bytes((byteCount / ms) * 1000)}/s`
}

/** Operations per second from a count and milliseconds. */
export function opsRate(count: number, ms: number): string {
  const perSec = (count / ms) * 1000
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)} M op/s`
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)} k op/s`
  return `${perSec.toFixed(0)} op/s`
}

export function duration(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}

export function ratio(r: number | null): string {
  return r === null || !Number.isFinite(r) ? '' : `${r.toFixed(r < 10 ? 2 : 1)}×`
}

export function count(n: number): string {
  return n.toLocaleString('en-US')
}
