import t from 'tap'
import type { Extent } from '../lib/index.js'
import { formatQemuMapEntry, qemuMapLines, toQemuMapEntry } from '../lib/cli/qemu-map.js'

const extent = (start: number, length: number, state: Extent['state'], last = false): Extent => ({ start, length, state, last })

t.test('each state maps to the qemu-img map fields of SPEC §5', async (t) => {
  t.strictSame(toQemuMapEntry(extent(0, 4096, 'data')), { start: 0, length: 4096, depth: 0, present: true, zero: false, data: true, offset: 0 })
  t.strictSame(toQemuMapEntry(extent(4096, 8192, 'zero')), { start: 4096, length: 8192, depth: 0, present: true, zero: true, data: false })
  t.strictSame(toQemuMapEntry(extent(12288, 100, 'lower')), { start: 12288, length: 100, depth: 1, present: true, zero: false, data: true, offset: 12288 })
  t.strictSame(toQemuMapEntry(extent(12388, 5, 'hole')), { start: 12388, length: 5, depth: 1, present: true, zero: true, data: false, offset: 12388 })
})

t.test('an entry is printed as qemu-img prints it', async (t) => {
  t.equal(
    formatQemuMapEntry(toQemuMapEntry(extent(65536, 4096, 'data'))),
    '{ "start": 65536, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "offset": 65536}',
  )
  t.equal(formatQemuMapEntry(toQemuMapEntry(extent(0, 512, 'zero'))), '{ "start": 0, "length": 512, "depth": 0, "present": true, "zero": true, "data": false}')
})

t.test('the map is a JSON array, one entry per line', async (t) => {
  const text = [...qemuMapLines([extent(0, 4096, 'data'), extent(4096, 4096, 'zero'), extent(8192, 4096, 'hole', true)])].join('')
  const lines = text.split('\n')
  t.equal(lines.length, 4, 'three entries and the final newline')
  t.match(lines[0], /^\[\{ "start": 0,.*\},$/)
  t.match(lines[1], /^\{ "start": 4096,.*\},$/)
  t.match(lines[2], /^\{ "start": 8192,.*\}\]$/)
  t.equal(lines[3], '')
  const parsed = JSON.parse(text) as Array<Record<string, unknown>>
  t.same(
    parsed.map((e) => e.start),
    [0, 4096, 8192],
  )
  t.equal([...qemuMapLines([])].join(''), '[]\n', 'an empty map is an empty array')
})

t.test('the map lines are the entries as formatQemuMapEntry prints them, in pieces of many', async (t) => {
  const states: Extent['state'][] = ['data', 'zero', 'lower', 'hole']
  const extents = Array.from({ length: 1300 }, (_, i) => extent(i * 4096, 4096 + i, states[i % 4]!, i === 1299))
  const pieces = [...qemuMapLines(extents)]
  t.ok(pieces.length > 1 && pieces.length < 10, `a few pieces, not one per extent (${pieces.length})`)
  const want = `[${extents.map((e) => formatQemuMapEntry(toQemuMapEntry(e))).join(',\n')}]\n`
  t.equal(pieces.join(''), want)
})
