// `pagecow map --output=json`: extents in the fields and layout of `qemu-img map --output=json`.
import type { Extent } from '../index.js'

/**
 * One entry of qemu-img's JSON map. `depth` 0 is the upper, 1 the lower; `offset` is where the
 * bytes are stored (the upper and the lower keep every byte at its own offset); ZERO pages of the
 * upper store nothing, so they have no offset, like qemu's zero clusters.
 */
export interface QemuMapEntry {
  start: number
  length: number
  depth: 0 | 1
  present: boolean
  zero: boolean
  data: boolean
  offset?: number
}

export function toQemuMapEntry(extent: Extent): QemuMapEntry {
  const { start, length } = extent
  switch (extent.state) {
    case 'data':
      return { start, length, depth: 0, present: true, zero: false, data: true, offset: start }
    case 'zero':
      return { start, length, depth: 0, present: true, zero: true, data: false }
    case 'lower':
      return { start, length, depth: 1, present: true, zero: false, data: true, offset: start }
    case 'hole':
      return { start, length, depth: 1, present: true, zero: true, data: false, offset: start }
  }
}

/** One entry as qemu-img prints it: `{ "start": 0, "length": 4096, …, "offset": 0}`. */
export function formatQemuMapEntry(entry: QemuMapEntry): string {
  const fields = `"start": ${entry.start}, "length": ${entry.length}, "depth": ${entry.depth}, "present": ${entry.present}, "zero": ${entry.zero}, "data": ${entry.data}`
  return entry.offset === undefined ? `{ ${fields}}` : `{ ${fields}, "offset": ${entry.offset}}`
}

/**
 * The whole map, one entry per line inside a JSON array, as qemu-img prints it; yields pieces to
 * write in order, so a map of millions of extents is never held in memory.
 */
export function* qemuMapLines(extents: Iterable<Extent>): Generator<string> {
  let first = true
  for (const extent of extents) {
    yield `${first ? '[' : ',\n'}${formatQemuMapEntry(toQemuMapEntry(extent))}`
    first = false
  }
  yield first ? '[]\n' : ']\n'
}
