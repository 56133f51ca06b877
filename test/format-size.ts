import t from 'tap'
import { describeBytes, formatSize } from '../lib/cli/format-size.js'

t.test('binary units with one decimal; whole bytes under 1 KiB', async (t) => {
  const cases: Array<[number, string]> = [
    [0, '0 B'],
    [1, '1 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [4096, '4.0 KiB'],
    [1536, '1.5 KiB'],
    [2 ** 20, '1.0 MiB'],
    [1.5 * 2 ** 30, '1.5 GiB'],
    [2 ** 40, '1.0 TiB'],
    [3 * 2 ** 50, '3.0 PiB'],
    [2 ** 60, '1.0 EiB'],
    [2 ** 70, '1024.0 EiB'],
    [-4096, '-4.0 KiB'],
  ]
  for (const [bytes, text] of cases) t.equal(formatSize(bytes), text, String(bytes))
})

t.test('rounding up to the next unit says so', async (t) => {
  t.equal(formatSize(1024 * 1024 - 1), '1.0 MiB', 'not "1024.0 KiB"')
  t.equal(formatSize(1024 * 1024 - 52 * 1024), '972.0 KiB')
})

t.test('exact byte counts for messages', async (t) => {
  t.equal(describeBytes(0), '0 bytes')
  t.equal(describeBytes(1), '1 byte')
  t.equal(describeBytes(1023), '1023 bytes')
  t.equal(describeBytes(8192), '8192 bytes (8.0 KiB)')
})
