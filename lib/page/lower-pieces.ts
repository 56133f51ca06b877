// The lower's data and holes over a byte range, from SEEK_DATA/SEEK_HOLE: never by reading.
import type { ExtentState } from './extent.js'
import type { LowerSource } from './lower-source.js'

/**
 * [from, to) split into the lower's data (`lower`) and holes (`hole`); bytes at or past `limit`
 * (the lower's end, or where a truncation cut it) are a hole whatever the lower holds there.
 */
export function* lowerPieces(lower: LowerSource, from: number, to: number, limit: number): Generator<[number, number, ExtentState]> {
  const dataLimit = Math.min(to, lower.size, limit)
  let pos = from
  while (pos < dataLimit) {
    const data = lower.nextData(pos) ?? dataLimit
    if (data > pos) {
      const holeEnd = Math.min(data, dataLimit)
      yield [pos, holeEnd, 'hole']
      pos = holeEnd
      continue
    }
    const dataEnd = Math.min(lower.nextHole(pos), dataLimit)
    yield [pos, dataEnd, 'lower']
    pos = dataEnd
  }
  if (pos < to) yield [pos, to, 'hole']
}
