// `pagecow map --output=json`: extents in the fields and layout of `qemu-img map --output=json`.
import type { ChangedExtent, Extent, LayerExtent } from '../index.js'

/**
 * One entry of qemu-img's JSON map. `depth` 0 is the upper, 1 the lower; `offset` is where the
 * bytes are stored (the upper and the lower keep every byte at its own offset); ZERO pages of the
 * upper store nothing, so they have no offset, like qemu's zero clusters.
 */
export interface QemuMapEntry {
  start: number
  length: number
  /** In a chain (SPEC §11): the layer holding the bytes, 2 and more below the base store's upper. */
  depth: number
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

/** How many entries go into one piece of qemuMapLines(): about 64 KiB of text. */
const ENTRIES_PER_PIECE = 512

/**
 * The whole map, one entry per line inside a JSON array, as qemu-img prints it; yields pieces of
 * many entries to write in order, so a map of millions of extents is never held in memory.
 */
export function qemuMapLines(extents: Iterable<Extent>): Generator<string> {
  return mapLines(extents, qemuMapLine)
}

/**
 * An image store's map with the layer of each extent (SPEC §11), as qemu-img prints the map of a
 * chain: `depth` is the layer the bytes come from; ZERO pages of any layer have no offset.
 */
export function qemuLayerMapLines(extents: Iterable<LayerExtent>): Generator<string> {
  return mapLines(extents, qemuLayerLine)
}

/** One entry of qemuLayerMapLines() as an object (qemu-img's fields). */
export function toQemuLayerEntry({ start, length, state, depth }: LayerExtent): QemuMapEntry {
  switch (state) {
    case 'data':
      return { start, length, depth, present: true, zero: false, data: true, offset: start }
    case 'zero':
      return { start, length, depth, present: true, zero: true, data: false }
    case 'hole':
      return { start, length, depth, present: true, zero: true, data: false, offset: start }
  }
}

function qemuLayerLine({ start, length, state, depth }: LayerExtent): string {
  switch (state) {
    case 'data':
      return `{ "start": ${start}, "length": ${length}, "depth": ${depth}, "present": true, "zero": false, "data": true, "offset": ${start}}`
    case 'zero':
      return `{ "start": ${start}, "length": ${length}, "depth": ${depth}, "present": true, "zero": true, "data": false}`
    case 'hole':
      return `{ "start": ${start}, "length": ${length}, "depth": ${depth}, "present": true, "zero": true, "data": false, "offset": ${start}}`
  }
}

function* mapLines<T>(extents: Iterable<T>, line: (extent: T) => string): Generator<string> {
  let piece = ''
  let n = 0
  for (const extent of extents) {
    piece += `${n === 0 ? '[' : ',\n'}${line(extent)}`
    if (++n % ENTRIES_PER_PIECE === 0) {
      yield piece
      piece = ''
    }
  }
  yield `${piece}${n === 0 ? '[]\n' : ']\n'}`
}

/**
 * formatQemuMapEntry(toQemuMapEntry(extent)) without the object between: `pagecow map` prints an
 * entry per extent, and a short-lived process runs this cold (test/qemu-map.ts checks they agree).
 */
function qemuMapLine({ start, length, state }: Extent): string {
  switch (state) {
    case 'data':
      return `{ "start": ${start}, "length": ${length}, "depth": 0, "present": true, "zero": false, "data": true, "offset": ${start}}`
    case 'zero':
      return `{ "start": ${start}, "length": ${length}, "depth": 0, "present": true, "zero": true, "data": false}`
    case 'lower':
      return `{ "start": ${start}, "length": ${length}, "depth": 1, "present": true, "zero": false, "data": true, "offset": ${start}}`
    case 'hole':
      return `{ "start": ${start}, "length": ${length}, "depth": 1, "present": true, "zero": true, "data": false, "offset": ${start}}`
  }
}

/**
 * `pagecow changes --output=json`: the changed extents as qemu-img map entries of what they read
 * now, each with a `change` field; a piece cut off by a truncation is not present.
 */
export function* changedMapLines(extents: Iterable<ChangedExtent>): Generator<string> {
  let piece = ''
  let n = 0
  for (const e of extents) {
    const entry =
      e.state === undefined
        ? `{ "start": ${e.start}, "length": ${e.length}, "depth": 0, "present": false, "zero": true, "data": false`
        : qemuMapLine({ start: e.start, length: e.length, state: e.state, last: false }).slice(0, -1)
    piece += `${n === 0 ? '[' : ',\n'}${entry}, "change": "${e.change}"}`
    if (++n % ENTRIES_PER_PIECE === 0) {
      yield piece
      piece = ''
    }
  }
  yield `${piece}${n === 0 ? '[]\n' : ']\n'}`
}
